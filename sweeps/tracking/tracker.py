"""The seam between a sweep run and MLflow: the `Tracker` interface and `open_tracker`.

`sweeps.run` talks to a `Tracker` only. Database stores (``sqlite://``, ``postgresql://``,
``mysql://``) get the bulk writer (`sweeps.tracking.bulk`: one transaction per batch of
children); tracking servers (``http(s)://``) the client writer with several threads, so the
server's workers run in parallel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Protocol, Sequence

from sweeps.tracking.run_records import Predictions, RunRecord
from sweeps.tracking.store import default_tracking_uri
from sweeps.vocabulary import RunState

SERVER_WRITERS = 4      # threads writing children to a tracking server


class Tracker(Protocol):
    """Writes one sweep to MLflow, resumably (see `sweeps.tracking.track.SweepTracker`).

    `sweeps.run`, `sweeps.scheduling` and `sweeps.report` use the methods down to `finish`;
    the modules of this package that write beside the tracker (`reuse`, `groups`) also use
    the ones after it. Every tracker class offers all of them (`BulkTracker` is a
    `SweepTracker`); anything with a leading underscore is the tracker's own.
    """

    tracking_uri: str
    parent_run_id: str | None
    experiment_id: str | None
    bulk: bool          # batches go in one transaction (database store; known after start)
    kinds: dict[str, str]   # {swept path: kind} (`contract.sweep_kinds`): how params decode
    writers: int        # threads writing children through the client

    def start(self) -> set[str]:
        """Create or resume the parent run; the keys of variants already FINISHED."""

    def log_variants(self, batch: Sequence[tuple[Any, Any]]) -> list[str]:
        """Write the child runs of finished (variant, result) pairs; their run ids."""

    def pack_writer(self) -> Any:
        """A picklable writer Ray workers write their packs' children with
        (`sweeps.tracking.pack_writer.PackWriter`), or None: the driver writes."""

    def adopt(self, records: Sequence[RunRecord]) -> None:
        """Records of children the workers wrote, kept as if logged here."""

    def records(self) -> list[RunRecord]:
        """Every FINISHED child (this session's and resumed ones), by variant index."""

    def predictions(self, run_ids: Sequence[str]) -> dict[str, Predictions]:
        """{run_id: predictions.csv} of these children: held in memory (this session's),
        else read back (resumed ones); a child without them is left out."""

    def log_artifacts(self, directory: str | Path) -> None:
        """Every file under `directory` onto the parent run."""

    def write_parent_file(self, path: str, data: bytes) -> None:
        """Bytes as the parent run's artifact `path` (a search's checkpoint and tables)."""

    def read_parent_file(self, path: str) -> bytes | None:
        """The parent run's artifact `path`, or None."""

    def log_parent_metrics(self, metrics: Mapping[str, float]) -> None:
        """The best group's metrics on the parent run."""

    def write_groups(self, runs: Sequence[Any], experiment_tags: Mapping[str, str]) -> list[str]:
        """Replace the sweep run's configuration runs (`sweeps.tracking.groups`) and set
        `experiment_tags` (the UI's view of them); their run ids."""

    def finish(self, status: RunState = RunState.FINISHED) -> None:
        """End the parent run: FINISHED | KILLED | FAILED (`sweeps.vocabulary.ENDED`)."""

    def log_children(self, batch: Sequence[tuple[str, Callable[[], Any]]]) -> list[str]:
        """Write the child run make_child() of each (variant key, make_child) unless one is
        FINISHED already (`reuse`'s copies through the client); their run ids."""

    def with_retries(self, what: str, fn: Callable[[], Any],
                     on_retry: Callable[[], Any] | None = None) -> Any:
        """fn()'s result, retried after transient errors with stop signals held; on_retry()
        before each new attempt, whose result other than None is returned instead."""

    def keep_finished_children(self, keys: Collection[str] | None = None) -> list[RunRecord]:
        """The newest FINISHED child's record of each variant (of `keys`, when given), after
        deleting the variants' other children (unfinished, duplicates)."""

    def adopt_written(self, todo: dict[str, Any]) -> bool | None:
        """Before a retry: adopt what a lost commit wrote of `todo` {variant key: writer},
        taking those keys out, delete the rest's children; True when nothing is left."""

    @property
    def client(self) -> Any:
        """The `MlflowClient` of `tracking_uri`, made on first use."""

    @property
    def store(self) -> Any:
        """MLflow's tracking store behind the client (SQLAlchemy or REST)."""


def open_tracker(tracking_uri: str | None, sweep: Any, fresh: bool = False,
                 **options: Any) -> Tracker:
    """The writer for `tracking_uri` (default `default_tracking_uri()`); not yet started.

    options : passed to the tracker (`retries`, `backoff`, `histories`, `writers`).
    """
    from sweeps.tracking.bulk import BulkTracker, is_database_uri
    from sweeps.tracking.track import SweepTracker

    tracking_uri = tracking_uri or default_tracking_uri()
    if is_database_uri(tracking_uri):
        return BulkTracker(sweep, tracking_uri, fresh, **options)
    if tracking_uri.startswith(("http://", "https://")):
        options.setdefault("writers", SERVER_WRITERS)
    return SweepTracker(sweep, tracking_uri, fresh, **options)
