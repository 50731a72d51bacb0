"""Pure metric functions over arrays (rliable-style): CIs, AUC, R^2, significance tests."""
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


def welch_t(a, b) -> tuple[float, float]:
    """Welch's t-test between two samples (e.g. seeds): (mean difference, two-sided p-value)."""
    from scipy import stats
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    res = stats.ttest_ind(a, b, equal_var=False)
    return float(a.mean() - b.mean()), float(res.pvalue)
