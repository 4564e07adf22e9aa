"""`run_sweep`: the library form of `sweeps run`.

Flow: resume or start the parent run -> pack the variants not yet finished -> train packs
(Ray or serial) in the rounds the search method's scheduler asks for (`sweeps.scheduling`: grid
and random search are one round), while the driver logs each finished pack as one batch
(`open_tracker`: one transaction for a database store) -> tables, plots, artifacts
(`sweeps.report.outputs`: the plots are drawn in a helper process started with the sweep).
Ctrl-C or SIGTERM stops outstanding packs; everything logged so far stays FINISHED and the
parent run is marked KILLED, so running the same file again continues where it stopped.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, get_args

from sweeps import stopping
from sweeps.report import results
from sweeps.report.outputs import PlotWorker, write_outputs
from sweeps.records import Executor
from sweeps.scheduling import run_scheduled
from sweeps.spec.search import scheduler_of
from sweeps.spec.sweep import Sweep, load_sweep
from sweeps.tracking import Tracker, open_tracker
from sweeps.tracking.ui import open_hint

if TYPE_CHECKING:
    import pandas as pd

    from sweeps.execution.execute import RayConnection

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class SweepInterrupted(Exception):
    """The sweep was stopped by a signal; finished variants are logged."""

    def __init__(self, signum: int, logged: int, total: int, parent_run_id: str) -> None:
        self.exit_code = EXIT_CODES.get(signum, 130)
        name = signal.Signals(signum).name
        super().__init__(
            f"{name}: sweep stopped, {logged}/{total} variants logged to parent run "
            f"{parent_run_id} (marked KILLED). Run the same command again to continue."
        )


@dataclass
class SweepOutcome:
    """Everything a finished `run_sweep` produced."""

    sweep: Sweep
    parent_run_id: str
    tracking_uri: str
    frame: "pd.DataFrame"
    summary: "pd.DataFrame"
    curves: "pd.DataFrame"
    out_dir: Path
    files: list[Path]
    trained: int
    skipped: int
    failed: dict[str, str] = field(default_factory=dict)  # variant key -> error
    nodes: dict[str, int] = field(default_factory=dict)  # Ray node id -> packs run there
    writers: dict[str, int] = field(default_factory=dict)  # "host:pid" -> packs it wrote
    timings: dict[str, float] = field(default_factory=dict)
    experiment_id: str | None = None

    @property
    def status(self) -> str:
        return "FAILED" if self.failed else "FINISHED"

    def report(self, top: int = 5) -> str:
        """The text `sweeps run` prints at the end: best groups and where results are."""
        written = not self.summary.empty and "group_key" in self.summary   # configuration runs
        configurations = self.parent_run_id if written else None
        lines = [
            f"{self.sweep.name}: {self.trained} variants trained, {self.skipped} already done"
            + (f", {len(self.failed)} FAILED" if self.failed else ""),
            "",
            results.format_summary(self.summary, top=top),
            "",
            f"MLflow:  {self.tracking_uri}  (parent run {self.parent_run_id})",
            "Runs:    " + open_hint(self.tracking_uri, self.experiment_id, self.sweep.path,
                                    configurations),
            f"Tables:  {self.out_dir}/",
        ]
        if {"startup", "train_and_log", "results"} <= self.timings.keys():
            t = self.timings
            lines.append(f"Time:    start-up {t['startup']:.1f} s, training and logging "
                         f"{t['train_and_log']:.1f} s, results {t['results']:.1f} s")
        for key, error in list(self.failed.items())[:5]:
            lines.append(f"failed {key}: {error}")
        return "\n".join(lines)


def run_sweep(
    sweep: Sweep | str | Path,
    *,
    tracking_uri: str | None = None,
    address: str | None = None,
    executor: Executor = "ray",
    out: str | Path | None = None,
    fresh: bool = False,
    progress: bool = True,
) -> SweepOutcome:
    """Train every variant of a sweep not yet finished and log it to MLflow.

    Parameters
    ----------
    sweep : a loaded Sweep or the path of a sweep file.
    tracking_uri : MLflow store [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db].
    address : Ray cluster to join [default: a local instance started for the run].
    executor : "ray" (one task per pack) or "serial" (the same packs in this process).
    out : results directory [default: sweep-results/<name>/].
    fresh : start a new parent run instead of resuming the last one for this file.
    progress : show a progress bar on stderr.
    """
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    if executor not in get_args(Executor):
        raise ValueError(f"executor must be one of {get_args(Executor)}, got {executor!r}")
    out_dir = Path(out) if out is not None else Path("sweep-results") / sweep.name
    if executor == "ray" and not address:
        # A local instance stays on loopback (Ray otherwise registers the machine's outside
        # address). Ray reads this when it is first imported, hence before the import below.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    from sweeps.execution import execute
    timings: dict[str, float] = {}
    writers: dict[str, int] = {}
    clock = time.perf_counter()

    tracker = open_tracker(tracking_uri, sweep, fresh=fresh)
    plotter = None
    try:
        with ThreadPoolExecutor(max_workers=1) as background:
            # Both take seconds and mostly wait (Ray on its processes, MLflow on SQLite).
            tracker_started = background.submit(tracker.start)
            connection = execute.RayConnection(address) if executor == "ray" else None
        try:
            finished = tracker_started.result()
            workers = execute.worker_count(executor)
            timings["startup"] = time.perf_counter() - clock
            # Imports matplotlib while the packs train (started earlier, it slows start-up).
            plotter = PlotWorker()
            clock = time.perf_counter()
            with _stopped_by_signals(sweep, tracker):
                finished_metrics = {r.variant_key: r.metrics for r in tracker.records()
                                    if r.variant_key in finished}
                begun = time.perf_counter()
                earlier = () if sweep.variants_fixed else _earlier_variants(sweep, tracker)
                scheduler = scheduler_of(sweep, finished_metrics, earlier)
                begun = time.perf_counter() - begun        # Optuna's import and study
                writer = tracker.pack_writer() if connection is not None else None
                done = run_scheduled(sweep, tracker, scheduler, _pack_runner(sweep, connection),
                                     workers, progress, pack_writer=writer)
                failed, nodes = done.failed, done.nodes
                writers.update(done.writers)
                timings["logging"], timings["deciding"] = done.logging, begun + done.deciding
            timings["train_and_log"] = time.perf_counter() - clock
            # Ray shuts down (begun once every pack was in) while the outputs are written.
            clock = time.perf_counter()
            made = write_outputs(tracker, out_dir, plotter, "FAILED" if failed else "FINISHED")
            timings["results"] = time.perf_counter() - clock
        finally:
            if connection is not None:
                connection.close()
    finally:
        if plotter is not None:
            plotter.close()
    return SweepOutcome(
        sweep=sweep, parent_run_id=tracker.parent_run_id, tracking_uri=tracker.tracking_uri,
        frame=made.frame, summary=made.summary, curves=made.curves, out_dir=out_dir,
        files=made.files, trained=len(made.frame) - len(finished),
        skipped=len(finished), failed=failed, nodes=nodes, writers=writers, timings=timings,
        experiment_id=tracker.experiment_id,
    )


@contextmanager
def _stopped_by_signals(sweep: Sweep, tracker: Tracker) -> Iterator[None]:
    """Ctrl-C or SIGTERM while training: the parent run KILLED, then SweepInterrupted."""
    with stopping.signals_as_exceptions():
        try:
            yield
        except (KeyboardInterrupt, stopping.Signalled, SystemError) as error:
            stop = stopping.signal_behind(error)
            if stop is None:
                raise
            signum = getattr(stop, "signum", signal.SIGINT)
            with stopping.ignored():         # a second Ctrl-C must not cut this write short
                tracker.finish("KILLED")
            raise SweepInterrupted(
                signum, len(tracker.records()), len(sweep.variants), tracker.parent_run_id
            ) from None


def _earlier_variants(sweep: Sweep, tracker: Tracker) -> list:
    """(settings, metrics) of other sweeps' FINISHED variants in the experiment, which a
    method that chooses its variants while running warm-starts from."""
    from sweeps.spec.config import SETTING_PATHS
    from sweeps.tracking.layout import value_kind
    from sweeps.tracking.readback import earlier_variants

    kinds = {path: value_kind(v.settings.get(path) for v in sweep.variants)
             for path in SETTING_PATHS}
    return earlier_variants(tracker.tracking_uri, sweep.name, tracker.parent_run_id, kinds)


def _pack_runner(sweep: Sweep, connection: RayConnection | None):
    """run(packs, on_done, on_failed, last, on_submitted, writer) on Ray or serially: how each
    round of `run_scheduled` trains. With `last`, Ray shuts down in the background once every
    pack is in, while the driver logs the rest. With a `writer` (`Tracker.pack_writer`), each
    worker writes the children of the pack it trained."""
    from sweeps.execution import execute

    def run(packs, on_done, on_failed, last: bool, on_submitted=None,
            writer=None) -> dict[str, int]:
        if connection is None:
            execute.run_serial(packs, sweep.datasets, on_done, on_failed, on_submitted)
            return {}
        return execute.run_ray(packs, sweep.datasets, on_done, on_failed,
                               on_all_trained=connection.close_soon if last else None,
                               cancel_on_interrupt=not connection.owned,
                               on_submitted=on_submitted, writer=writer)

    return run
