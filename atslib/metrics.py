"""Pure metric functions over arrays (rliable-style): CIs, AUC, R^2, significance tests.

Significance in this project is decided over *seeds*: each seed is an independent training run
(its own initial weights and task stream), and every method with the same seed sees the same pool
stream, so seed-level differences are paired. A test over the meta-test tasks of fixed trained
models (``paired_t``) ignores training variance; it is kept only as a secondary number,
conditional on the trained models.
"""
from __future__ import annotations

import math

import numpy as np


def mean_ci95(x) -> tuple[float, float]:
    """Mean and 1.96 * std / sqrt(n) (the few-shot convention; std with ddof=0 as in the paper's code)."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(1.96 * x.std() / math.sqrt(x.size))


def t_ci95(x) -> float:
    """Half-width of the 95% Student-t interval of the mean of a few values (e.g. seeds); NaN for n < 2."""
    from scipy import stats
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


def auc(score, positive) -> float:
    """P(score of a random positive > score of a random negative), ties counted 1/2; NaN if one class is empty."""
    score, positive = np.asarray(score, dtype=float), np.asarray(positive, dtype=bool)
    pos, neg = score[positive], score[~positive]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def r2_pearson(pred, truth) -> float:
    """Squared Pearson correlation (the paper's R^2); 0 when either side is constant."""
    pred, truth = np.asarray(pred, dtype=float), np.asarray(truth, dtype=float)
    a, b = pred - pred.mean(), truth - truth.mean()
    den = math.sqrt((a * a).sum() * (b * b).sum())
    return 0.0 if den < 1e-12 else float(((a * b).sum() / den) ** 2)


def paired_t(a, b) -> tuple[float, float]:
    """Paired t-test of a - b over the same tasks: (mean difference, two-sided p-value)."""
    from scipy import stats
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    res = stats.ttest_rel(a, b)
    return float((a - b).mean()), float(res.pvalue)


def seed_paired_t(a, b) -> tuple[float, float]:
    """Paired t-test over seeds: ``a[i]``, ``b[i]`` are two methods' test means with seed i.

    Returns (mean difference, two-sided p); p is NaN with fewer than two seeds or no spread.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"seed_paired_t: shapes {a.shape} and {b.shape}; allowed: two equal 1-d arrays")
    d = a - b
    if d.size < 2 or np.allclose(d, d[0]):
        return (float(d.mean()) if d.size else float("nan")), float("nan")
    return paired_t(a, b)


def hierarchical_bootstrap_ci(a, b, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Bootstrap CI of mean(a - b) resampling seeds, then tasks within each drawn seed.

    ``a``, ``b``: (seeds, tasks) scores of two methods, paired by seed and by task. The two-level
    resampling carries both sources of variance: training (seeds) and evaluation (tasks).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"hierarchical_bootstrap_ci: shapes {a.shape} and {b.shape}; allowed: two equal (seeds, tasks)")
    d = a - b
    S, T = d.shape
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for i in range(n_boot):
        s = rng.integers(0, S, S)
        t = rng.integers(0, T, (S, T))
        out[i] = d[s[:, None], t].mean()
    lo, hi = np.quantile(out, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def detectable_difference(sd: float, n: int, alpha: float = 0.01, power: float = 0.8) -> float:
    """Smallest true mean difference a two-sided paired t-test over ``n`` seeds detects with this
    power at level ``alpha``, when seed-level differences have standard deviation ``sd``."""
    from scipy import stats
    if n < 2 or not np.isfinite(sd):
        return float("nan")
    df = n - 1
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * sd / math.sqrt(n))


def holm(p) -> np.ndarray:
    """Holm-adjusted p-values of a family of tests (NaN entries are left out of the family and kept NaN).

    The k-th smallest of m p-values becomes max over j <= k of min(1, (m - j + 1) p_(j)): rejecting
    where the adjusted p is below the level controls the family-wise error at that level.
    """
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out
