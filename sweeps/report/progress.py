"""Progress over variants: done / total (copied from the store or trained), rate, ETA, the best
value so far of the metric the sweep ranks on, diverged and failed counts.

A live bar on a terminal; on a pipe or in CI, a plain line every few seconds instead of
escape codes.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Mapping, Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from sweeps.vocabulary import default_ranking, direction

PLAIN_EVERY_SECONDS = 5.0


class SweepProgress:
    """Report trained variants as packs finish. Use as a context manager.

    metric : the metric whose best value is shown (`Sweep.ranking_metric`, better as
        `sweeps.vocabulary.direction` says); None: `vocabulary.default_ranking` of the first
        trained variant's metrics, as the outputs rank without a search metric.
    """

    def __init__(self, total: int, description: str, enabled: bool = True,
                 metric: str | None = None) -> None:
        self.total = total
        self.done = 0
        self.reused = 0
        self.diverged = 0
        self.failed = 0
        self.metric = metric
        self.best: float | None = None      # of `metric`, over the trained variants
        self.description = description
        self.enabled = enabled and total > 0
        self._console = Console(stderr=True)
        self._live = self.enabled and self._console.is_terminal
        self._started = time.perf_counter()
        self._last_line = 0.0
        self._printed = 0  # variants done at the last plain line
        self._bar: Progress | None = None
        self._task = None

    def __enter__(self) -> "SweepProgress":
        if self._live:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[split]}"),
                TextColumn("{task.fields[rate]} variants/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("best {task.fields[best]}  diverged {task.fields[diverged]}"
                           "{task.fields[failed]}"),
                console=self._console,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, **self._fields())
        return self

    def __exit__(self, *exc_info) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self.enabled and self._printed != self.done:
            self._print_line()

    def _fields(self) -> dict[str, str]:
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        best = "-" if self.best is None else f"{self.metric} {self.best:.4g}"
        failed = f"  failed {self.failed}" if self.failed else ""
        return {"rate": f"{self.done / elapsed:.1f}", "best": best, "diverged": str(self.diverged),
                "failed": failed, "split": self.split()}

    def split(self) -> str:
        """"480 reused, 12 trained": how the variants done so far came; "" while none was
        reused (every line of a sweep that reuses nothing said "0 reused")."""
        if not self.reused:
            return ""
        trained = self.done - self.reused - self.failed
        return f"{self.reused} reused" + (f", {trained} trained" if trained else "")

    def _print_line(self) -> None:
        self._printed = self.done
        fields = self._fields()
        elapsed = time.perf_counter() - self._started
        rate = self.done / max(elapsed, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        eta_text = "?" if math.isinf(eta) else f"{eta:.0f}s"
        print(
            f"{self.description}: {self.done}/{self.total} variants"
            f"{': ' + fields['split'] if fields['split'] else ''}, {fields['rate']}/s, "
            f"ETA {eta_text}, best {fields['best']}, diverged {fields['diverged']}"
            f"{fields['failed'].replace('  ', ', ')}",
            file=sys.stderr, flush=True,
        )

    def advance_reused(self, count: int) -> None:
        """Count `count` variants copied from the store (`sweeps.tracking.reuse`) as done."""
        self.reused += count
        self.advance([], reused=count)

    def advance(self, trained: Sequence[Mapping[str, float]], diverged: int = 0,
                failed: int = 0, reused: int = 0) -> None:
        """Count variants done: trained ones (`trained`: each one's final metrics, of which
        `diverged` diverged), `failed` ones (their pack's task failed) and `reused` ones."""
        self.done += len(trained) + failed + reused
        self.diverged += diverged
        self.failed += failed
        if trained and self.metric is None:
            self.metric = default_ranking(trained[0])
        values = [v for v in (metrics.get(self.metric, math.nan) for metrics in trained)
                  if math.isfinite(v)]
        if values:
            better = max if direction(self.metric) == "max" else min
            self.best = better(values if self.best is None else [self.best, *values])
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, **self._fields())
        elif time.perf_counter() - self._last_line >= PLAIN_EVERY_SECONDS:
            self._last_line = time.perf_counter()
            self._print_line()
