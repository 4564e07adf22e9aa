"""The end of a sweep: tables, plots and the parent run's artifacts, drawn while logged.

Plots cost more than everything else at the end of a sweep (importing matplotlib ~1 s and
optuna.importance ~2.5 s, ~0.5 s a figure), so they are drawn in a helper process
(`PlotWorker`) started with the sweep: it imports both while the driver imports MLflow and
Ray starts (`configs/card.yaml` took 0.93x the time it took with the helper started once
training starts, 2026-12-07), and draws while the driver writes the tables and, on a thread
of its own, the configuration runs (`write_outputs`), sharing the figures with a child it
forks (`_draw_in_two`). The driver never imports matplotlib. The helper gets only what the
plots show (the best groups' curves and predictions), not the whole sweep.

If the helper cannot be started, dies or fails, the plots are drawn in the driver (where a
real plotting error then surfaces); the tables are written either way.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sweeps.report import figures, plots
from sweeps.vocabulary import RunState, direction

log = logging.getLogger(__name__)


def _warm_up() -> None:
    """Import matplotlib and draw once off screen (fonts, the log axis's tick text), and
    import Optuna's importance evaluators (``importance.png``: ~2.5 s of imports, scikit-learn
    among them), while the sweep trains or copies rather than after it."""
    import io

    import optuna.importance  # noqa: F401 - imported for its cost, used by importance_plot

    plt = figures.pyplot()
    fig, ax = plt.subplots()
    ax.set_yscale("log")
    ax.plot([1, 2], [1e-3, 1e-1], label="x")
    ax.legend()
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)


def _draw(out_dir, frame, summary, curves, predictions, rungs=None,
          only: tuple[str, ...] | None = None) -> list[Path]:
    return plots.write_all(out_dir, frame, summary, curves, predictions=predictions,
                           rungs=rungs, only=plots.PLOT_FILES if only is None else only)


# How the helper shares the figures with the child it forks: about equal drawing times
# (loss_vs_lr ~0.6 s and the predictions ~0.1 s; the curves ~0.4 s and the rungs ~0.2 s).
FORKED_SHARE = (plots.LOSS_VS_LR, plots.PREDICTIONS_PLOT)


def _draw_in_two(job: tuple) -> list[Path]:
    """Draw the job's plots in this process and in a forked child (matplotlib is imported
    already, so the fork costs milliseconds): the cores are free once training is over.

    The child draws `FORKED_SHARE` and reports its files through a pipe; if it cannot be
    forked or fails, this process draws its share too (a real plotting error then surfaces
    here). Returns the files in `plots.PLOT_FILES` order.
    """
    ours = tuple(name for name in plots.PLOT_FILES if name not in FORKED_SHARE)
    read_end, write_end = os.pipe()
    try:
        child = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return _draw(*job)
    if child == 0:                                   # the child: draw, report, leave at once
        os.close(read_end)
        try:
            reply = pickle.dumps(("ok", _draw(*job, only=FORKED_SHARE)))
        except BaseException:  # noqa: BLE001 - the parent draws this share itself
            reply = pickle.dumps(("error", ""))
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(reply)
        os._exit(0)
    os.close(write_end)
    try:
        drawn = _draw(*job, only=ours)
    finally:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        os.waitpid(child, 0)
    status, theirs = pickle.loads(data) if data else ("error", None)
    if status != "ok":
        theirs = _draw(*job, only=FORKED_SHARE)
    files = set(drawn) | set(theirs)
    return [path for path in (Path(job[0]) / name for name in plots.PLOT_FILES) if path in files]


def _serve() -> None:
    """The helper: warm up, then draw the one job whose pickle path arrives on stdin.

    Replies on stdout with a pickled ("ok", [paths]) or ("error", text). Its own session
    (Ctrl-C is the driver's to handle); a driver that dies closes stdin, which ends it.
    """
    _warm_up()
    # matplotlib's and Optuna's objects out of the collector's full passes, here and in the
    # child `_draw_in_two` forks (one such pass took 0.14 s of the drawing).
    gc.freeze()
    line = sys.stdin.readline().strip()
    if not line:
        return
    try:
        reply = ("ok", _draw_in_two(pickle.loads(Path(line).read_bytes())))
    except Exception as error:  # noqa: BLE001 - reported to the driver, which draws itself
        reply = ("error", f"{type(error).__name__}: {error}")
    sys.stdout.buffer.write(pickle.dumps(reply))
    sys.stdout.buffer.flush()


class PlotWorker:
    """One helper process that draws the plots; started early, used once, then closed.

    A plain ``python -m sweeps.report.outputs`` subprocess rather than multiprocessing: spawning
    re-imports the caller's main module, which re-runs a script that calls `run_sweep`
    without an ``if __name__ == "__main__"`` guard.
    """

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="sweeps-plots-")
        self._proc: subprocess.Popen | None = None
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "sweeps.report.outputs"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, start_new_session=True)
        except OSError as error:                     # no process to be had: draw here
            log.warning("plots will be drawn in the driver: %s", error)

    def draw(self, out_dir: Path, frame: pd.DataFrame, summary: pd.DataFrame,
             curves: pd.DataFrame, predictions: dict[str, pd.DataFrame],
             rungs: pd.DataFrame | None = None) -> bool:
        """Hand the helper every plot to draw into out_dir; False when there is no helper."""
        if self._proc is None or self._proc.poll() is not None:
            return False
        job = Path(self._tmp.name) / "job.pickle"
        with job.open("wb") as file:     # streamed: no second copy of the job in memory
            pickle.dump((Path(out_dir).resolve(), frame, summary, curves, predictions, rungs),
                        file, protocol=5)
        try:
            self._proc.stdin.write(f"{job}\n".encode())
            self._proc.stdin.close()
        except OSError:                              # it died
            return False
        return True

    def result(self) -> list[Path]:
        """The files drawn; raises RuntimeError when the helper failed."""
        out = self._proc.stdout.read()
        self._proc.wait()
        if not out:
            raise RuntimeError(f"the plot helper exited with code {self._proc.returncode}")
        status, value = pickle.loads(out)
        if status != "ok":
            raise RuntimeError(value)
        return value

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout) if self._proc else ():
            if stream and not stream.closed:
                stream.close()
        self._tmp.cleanup()


@dataclass
class Outputs:
    frame: pd.DataFrame
    summary: pd.DataFrame
    curves: pd.DataFrame
    files: list[Path]


def write_outputs(tracker: Any, out_dir: Path, plotter: PlotWorker | None = None,
                  status: RunState = RunState.FINISHED,
                  timings: dict[str, float] | None = None) -> Outputs:
    """Tables, plots and artifacts of every finished variant, then the parent run ended.

    tracker : the sweep's tracker (records, predictions of resumed variants, artifacts).
    plotter : the helper process started with the sweep (None: draw here).
    status : the parent run's final status.
    timings : where each step's seconds go, when given ("outputs.<step>").
    """
    from sweeps.report import results, rung_plot, ties

    clock = _Clock(timings)
    records = tracker.records()      # every finished variant, this run's and earlier ones'
    sweep = getattr(tracker, "sweep", None)
    # ranked on the metric the file searched on (the default ranking when it names none)
    frame = results.frame_from_records(
        records, ranking_metric=getattr(sweep, "ranking_metric", None))
    summary = ties.mark_ties(frame, results.summarize(frame))
    summary.attrs["objectives"] = search_objectives(sweep)
    curves = results.curves_from_records(records)
    drawn = curves[curves["run_id"].isin(plots.curves_wanted(frame, summary))]
    rungs = rung_plot.group_curves(frame, summary, curves)
    predictions = {run_id: results.predictions_frame(held) for run_id, held in
                   tracker.predictions(plots.predictions_wanted(frame, summary)).items()}
    drawing = plotter is not None and plotter.draw(out_dir, frame, summary, drawn, predictions,
                                                   rungs)
    clock.lap("frames")
    # The configuration runs (the longest write: every configuration's mean and spread
    # curves) go to the store while this thread writes the tables, waits for the plots and
    # puts the files on the parent; the parent's own metrics and its end come after them.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="configurations") as writer:
        configurations = writer.submit(write_configurations, tracker, summary, records)
        files = results.save(out_dir, frame, summary, curves)
        clock.lap("tables")
        files += _plots(plotter if drawing else None, out_dir, frame, summary, drawn,
                        predictions, rungs)
        clock.lap("plots")                  # waiting for the helper, or drawing here
        tracker.log_artifacts(out_dir)
        clock.lap("artifacts")
        configurations.result()
        clock.lap("configurations")         # what remained of their write
    tracker.log_parent_metrics(results.best_metrics(summary))
    tracker.finish(status)
    clock.lap("end")
    return Outputs(frame=frame, summary=summary, curves=curves, files=files)


class _Clock:
    """Seconds between laps into timings["outputs.<lap>"] (nothing without timings)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings, self.last = timings, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[f"outputs.{name}"] = now - self.last
        self.last = now


def write_configurations(tracker: Any, summary: pd.DataFrame, records: list) -> None:
    """The sweep run's configuration runs (replacing older ones) and their views in the UI:
    the configurations, and each one's seeds (linked from its description)."""
    from sweeps.report import configurations, results
    from sweeps.tracking import ui

    if summary.empty or "group_key" not in summary:
        return
    metric = results.ranking_metric(summary)
    ascending = direction(metric) == "min"
    sweep_run = tracker.parent_run_id
    runs = configurations.group_runs(
        summary, records, sweep_run, describe=lambda key: (
            f"[The seeds of this configuration]"
            f"({ui.seeds_link(tracker.experiment_id, sweep_run, key)})"))
    views = {ui.view_key(sweep_run): ui.configurations_view(
        sweep_run, metric, ascending, list(summary.attrs.get("by", [])))}
    views.update({ui.view_key(sweep_run, key): ui.seeds_view(sweep_run, key, metric, ascending)
                  for key in summary["group_key"]})
    tracker.write_groups(runs, {ui.SHARED_VIEW_TAG + key: view for key, view in views.items()})


def search_objectives(sweep: Any) -> list[tuple[str, str]]:
    """(metric, mode) of each metric a sweep searched on when it lists several, else []."""
    search = getattr(getattr(sweep, "config", None), "search", None)
    if search is None or isinstance(search.metric, str):
        return []
    from sweeps.methods.validation import objectives
    return objectives(search.metric, search.mode)


def _plots(plotter: PlotWorker | None, out_dir, frame, summary, curves, predictions,
           rungs) -> list[Path]:
    if plotter is not None:
        try:
            return [Path(out_dir) / path.name for path in plotter.result()]
        except RuntimeError as error:   # the helper died or failed: draw here instead
            log.warning("plots will be drawn in the driver: %s", error)
    return _draw(out_dir, frame, summary, curves, predictions, rungs)


if __name__ == "__main__":
    _serve()
