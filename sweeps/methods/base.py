"""The seam every search method is built on: `SearchMethod` (what it reads from the file) and
`Scheduler` (what it decides while the sweep runs).

A scheduler is asked for work and told results, round after round, as optuna's samplers are
(``ask``/``tell``) and Ray Tune's ``TrialScheduler`` is (``on_trial_result`` -> continue,
pause, stop):

    round = scheduler.ask()          # None: the search is over
    ... train round.work to round.stops (in packs, on Ray), log round.stop ...
    scheduler.tell(results)          # {variant key: VariantResult} of the round's work

A round's work is made of requests: `Start` a new variant from its initializer, `Continue` one
that trained in an earlier round from its state, `Fork` a new variant from another's state
with its own settings (population-based training's exploit-and-explore), and `Stop` a variant
that trains no further (it is logged as a complete child run, ``pruned`` unless training says
``diverged``). The driver (`sweeps.scheduling`) keeps every variant's state between rounds,
packs the work, logs and checkpoints; a scheduler is pure bookkeeping.

The rule every method keeps: the same config (and store) gives the same rounds in the same
order, whatever the number of workers and however packs finish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional, Sequence, Union

from sweeps.methods.validation import ranked_on
from sweeps.records import Variant
from sweeps.spec.config import SearchConfig, SweepConfig
from sweeps.spec.problems import Problem
from sweeps.vocabulary import Status


# ---------------------------------------------------------------------------------------------
# Scheduler: what a method decides while the sweep runs


@dataclass(frozen=True)
class Start:
    """Train a new variant from its initializer."""

    variant: Variant


@dataclass(frozen=True)
class Continue:
    """Train on a variant that trained in an earlier round, from its state."""

    key: str


@dataclass(frozen=True)
class Fork:
    """A new variant that starts from `source`'s state (parameters, optimizer state, epoch and
    curves so far) and trains on with its own settings."""

    variant: Variant
    source: str


@dataclass(frozen=True)
class Stop:
    """End a variant that trains no further: logged as a complete child run with `status`
    (a variant whose training diverged is logged ``diverged`` whatever it says) and, when not
    None, `rung` as its ``sweep.rung`` tag."""

    status: Status = Status.PRUNED
    rung: Optional[int] = None


Request = Union[Start, Continue, Fork]


@dataclass(frozen=True)
class Round:
    """One round of work.

    work : what trains this round (variants of one round may share packs).
    stops : the epochs to measure at (`VariantResult.at_stops`), ascending; training pauses
        at the last one (empty: at each variant's train.epochs).
    stop : {variant key: Stop} of variants that end before this round trains (decided after
        the previous one); logged while this round trains.
    last : nothing trains after this round (Ray may shut down once its packs are in); so it
        is final too.
    final : every variant of this round ends with it: each is logged as its pack comes in,
        with its training's status.
    rung : the ``sweep.rung`` tag of the variants a final round logs (None: none).
    keep : keep each variant's state and join its rounds' curves (a later round continues,
        or a scheduler forks from it); without it results are logged as they come.
    record : metrics the round's variants record beyond the usual (`Pack.record`).
    label : the progress bar's text.
    packs_per_worker : how finely the round's variants are packed (None: `PACKS_PER_WORKER`,
        which balances a grid's unequal packs and logs as they come in). A round whose
        variants all end with it and cost alike trains soonest in one pack per worker: a
        population's cost grows slowly with its size (benchmarks/bench_search.py).
    """

    work: tuple[Request, ...]
    stops: tuple[int, ...] = ()
    stop: Mapping[str, Stop] = field(default_factory=dict)
    last: bool = False
    final: bool = False
    rung: Optional[int] = None
    keep: bool = False
    record: tuple[str, ...] = ()
    label: str = ""
    packs_per_worker: Optional[int] = None


class Scheduler:
    """Decides, round by round, what trains. Subclasses implement `ask` and `tell`.

    checkpoint : the parent-run artifact the driver writes `state()` and the kept variants'
        states to after each told round (None: the store's finished children are enough to
        resume, as for grid, random and model-based search).
    """

    checkpoint: ClassVar[Optional[str]] = None
    #: whether `tell` reads the results; when not, workers may write their packs' children
    #: themselves (the driver then holds records, not results)
    reads_results: ClassVar[bool] = True

    @property
    def over(self) -> bool:
        """Nothing is left to do (a resumed sweep that had finished): nothing is trained,
        logged or written again."""
        return False

    def ask(self) -> Optional[Round]:
        """The next round, or None when the search is over."""
        raise NotImplementedError

    def tell(self, results: Mapping[str, Any]) -> None:
        """The results of the round just trained: {variant key: VariantResult}, one for each
        request of its work (every one: a round whose packs failed is not told); empty
        when `reads_results` is False."""
        raise NotImplementedError

    def state(self) -> dict:
        """JSON of where the search stands (with `checkpoint`)."""
        return {}

    def restore(self, state: Mapping[str, Any], kept: set[str]) -> None:
        """Continue from `state()` written by an earlier run whose kept variants were `kept`;
        ValueError when it belongs to another search."""

    def tables(self) -> dict[str, bytes]:
        """Parent-run artifacts written once the search is over: {path: bytes}."""
        return {}


# ---------------------------------------------------------------------------------------------
# SearchMethod: what a method reads from the file


class SearchMethod:
    """One search method, built from a sweep's config (`config.search` is set).

    Subclasses set `name` (the YAML name, its key in SEARCH_METHODS) and `keys` (the optional
    search keys it reads besides method and parameters), and make their `Scheduler`
    (`scheduler`). `role` says how messages name it: "method: random", or "sampler: random"
    when another method draws its points through it.
    """

    name: ClassVar[str]
    keys: ClassVar[tuple[str, ...]] = ()
    # True: the method chooses its variants while the sweep runs (tpe, gp); its points are
    # then the corners of its space, which validate the file (`Sweep.variants_fixed`).
    chooses_while_running: ClassVar[bool] = False

    def __init__(self, config: SweepConfig, role: str = "method"):
        self.config = config
        self.search: SearchConfig = config.search
        self.role = role
        self.label = f"{role}: {self.name}"

    @property
    def reads(self) -> tuple[str, ...]:
        """The optional search keys this method, as configured, reads."""
        return self.keys

    @property
    def refuse_distribution(self) -> Optional[str]:
        """None when parameters may be ranges to draw from, else the message a range gets."""
        return (f"a distribution needs a method that draws (method: random, tpe or gp, or "
                f"sampler: random under method: halving); {self.label} takes a list of values")

    @property
    def ranks_on(self) -> Optional[str]:
        """The metric the sweep searched on, which its outputs rank on by default (summary,
        configuration runs, the parent's best metrics, plots, `sweeps summary` and `best`):
        `search.metric` (of a list, the first validation metric: `validation.ranked_on`).
        None: the file names none, so the first of `sweeps.vocabulary.DEFAULT_RANKING` the
        sweep has ranks (grid and random without `search.metric`)."""
        return ranked_on(self.search.metric)

    def check(self, clean: bool) -> list[Problem]:
        """Problems of the method's own settings. clean: search.parameters had none."""
        return []

    def check_config(self) -> list[Problem]:
        """Problems across sections (run once the whole file validates as a schema)."""
        return []

    def check_dataset(self, dataset) -> list[Problem]:
        """Problems of the method against one loaded data set."""
        return []

    def points(self) -> list[dict[str, Any]]:
        """{dotted path: value} of every swept setting, one per variant, in a fixed order:
        the sweep's variants (`Sweep.variants`), which the whole file is validated with."""
        raise NotImplementedError

    def scheduler(self, sweep: Any, finished: Mapping[str, Mapping[str, float]],
                  earlier: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]] = ()
                  ) -> Scheduler:
        """The scheduler of a loaded sweep; finished: {variant key: its final metrics} of the
        variants already FINISHED in the store (a resumed sweep); earlier: (settings, final
        metrics) of FINISHED variants of other sweeps in the experiment, read only for a
        method that `chooses_while_running` (it may warm-start from them)."""
        raise NotImplementedError

    def plan_lines(self, sweep: Any) -> list[str]:
        """Lines `sweeps plan` prints about the method's rounds (none by default)."""
        return []

    def work_share(self, sweep: Any) -> Optional[tuple[float, float]]:
        """(least, most) share of the plain grid's variant-epochs the search trains, or None
        when it trains every variant of `Sweep.variants` to the end."""
        return None

    def describe(self) -> str:
        """One line for `sweeps plan` ("grid over 4 parameters")."""
        raise NotImplementedError


