"""Which configurations the seeds cannot tell apart from the best: a paired t-test over seeds.

The test (README, "Ties"): for a configuration c and the best configuration b (rank 1), the
differences d_s = m_c(s) - m_b(s) of the ranking metric over the seeds s that both trained
without diverging; two-sided paired t-test of mean(d) = 0 at level `ALPHA`:
t = mean(d) / (std(d, ddof=1) / sqrt(n)), p = P(|T_{n-1}| >= |t|). c is ``tied`` with the best
when p >= ALPHA (the data cannot reject equal means). Pairing needs the same seeds in every
configuration; where they differ (or fewer than `MIN_PAIRS` pairs remain, or under
successive halving a configuration stopped at another rung than the best) nothing is
marked (NA). No correction for the many comparisons: a mark says "not shown different",
never "shown equal".

NumPy and pandas only (SciPy is not a dependency): the t distribution's tail is the
regularized incomplete beta function, I_x(v/2, 1/2) with x = v / (v + t^2), by its
continued fraction.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sweeps.vocabulary import Status

ALPHA = 0.05
MIN_PAIRS = 2


def paired_t_pvalue(differences: np.ndarray) -> float:
    """Two-sided p-value of a paired t-test that the mean of `differences` (n,) is 0.

    NaN with fewer than `MIN_PAIRS` values. All differences equal: 1.0 when they are 0,
    else 0.0 (no spread: any nonzero mean is certain).
    """
    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    n = len(d)
    if n < MIN_PAIRS:
        return math.nan
    mean = float(d.mean())
    std = float(d.std(ddof=1))
    if std == 0.0 or not math.isfinite(std):
        return 1.0 if mean == 0.0 else 0.0
    t = mean / (std / math.sqrt(n))
    dof = n - 1
    return float(min(1.0, _betainc(dof / 2.0, 0.5, dof / (dof + t * t))))


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), 0 <= x <= 1 (Lentz's continued
    fraction, as in Numerical Recipes' betai; relative error ~1e-12)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def mark_ties(frame: pd.DataFrame, summary: pd.DataFrame, over: str = "seed") -> pd.DataFrame:
    """The summary with ``p_vs_best`` (float) and ``tied`` (boolean, NA where untested).

    frame : the per-variant table (`results.frame_from_records`), with ``group_key``,
        ``status``, the `over` column and the ranking metric.
    summary : `results.summarize(frame)` over seeds, best first (rank 1 first row).
    The best is ``tied`` (with itself), p NaN. Returns a new frame; attrs kept.
    """
    from sweeps.report.results import ranking_metric

    out = summary.copy()
    out.attrs.update(summary.attrs)
    out["p_vs_best"] = np.full(len(out), np.nan)
    out["tied"] = pd.array([pd.NA] * len(out), dtype="boolean")
    if out.empty or "group_key" not in out or over not in frame.columns:
        return out
    metric = ranking_metric(summary)
    values = frame[metric].to_numpy(dtype=np.float64, na_value=np.nan).copy()
    values[(frame["status"] == Status.DIVERGED).to_numpy()] = np.nan
    table = pd.DataFrame({"group": frame["group_key"].to_numpy(), "over": frame[over].tolist(),
                          "value": values})
    seeds = table.groupby("group")["over"].agg(lambda s: frozenset(s.tolist()))
    if seeds.nunique() != 1 or len(next(iter(seeds))) < MIN_PAIRS:
        return out                                  # not the same seeds everywhere: no pairs
    wide = table.pivot_table(index="over", columns="group", values="value", aggfunc="first",
                             dropna=False)          # (n_seeds, n_groups)
    best = out["group_key"].iloc[0]
    same_rung = (out["rung"] == out["rung"].iloc[0]).fillna(False).to_numpy() \
        if "rung" in out else np.ones(len(out), dtype=bool)
    p = np.full(len(out), np.nan)
    tied: list = [pd.NA] * len(out)
    tied[0] = True
    for i, group in enumerate(out["group_key"].tolist()[1:], start=1):
        if not same_rung[i] or group not in wide:
            continue
        p[i] = paired_t_pvalue((wide[group] - wide[best]).to_numpy())
        tied[i] = pd.NA if math.isnan(p[i]) else bool(p[i] >= ALPHA)
    out["p_vs_best"] = p
    out["tied"] = pd.array(tied, dtype="boolean")
    return out
