"""Tables for notebooks and reports: data summaries, realised noise, runs side by side."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics import mean_ci95
from ..store import SUMMARY
from ..tasks import EpisodeSampler, fixed_tasks, stream

SPLIT_NAMES = {0: "meta-train", 1: "meta-val", 2: "meta-test"}


def split_table(data) -> pd.DataFrame:
    """One row per split: classes, drawings, a few class names."""
    rows = []
    for s, name in SPLIT_NAMES.items():
        cls = data.classes(s)
        rows.append({"split": name, "classes": len(cls),
                     "drawings": int(sum(len(data.rows_by_class()[c]) for c in cls)),
                     "examples": ", ".join(data.names[c] for c in cls[:6]) + (", ..." if len(cls) > 6 else "")})
    return pd.DataFrame(rows)


def noise_rates(data, ratios, flip_prob=0.8, ways=5, shots=1, n_tasks=500, seed=0, classes=None) -> pd.DataFrame:
    """Realised fraction of noisy tasks and of corrupted support labels for each requested ratio."""
    rows = []
    for r in ratios:
        s = EpisodeSampler(data, "train", ways, shots, 1, noise_ratio=float(r), flip_prob=flip_prob, classes=classes)
        t = s.sample(n_tasks, stream(seed, 0, f"noise-report/{r}"))
        rows.append({"requested": float(r), "flip_prob": flip_prob,
                     "realised_tasks": float(t.noisy.float().mean()),
                     "realised_labels": float((t.y_s != t.y_s_clean).float().mean()),
                     "expected_labels": float(r) * flip_prob})
    return pd.DataFrame(rows)


def summaries(run_dirs) -> pd.DataFrame:
    """summary.json of each run directory, one row each (``run`` = directory name)."""
    rows = []
    for d in run_dirs:
        f = Path(d) / SUMMARY
        if f.is_file():
            rows.append({"run": Path(d).name, **json.loads(f.read_text())})
    return pd.DataFrame(rows)


def method_table(df: pd.DataFrame, order=None) -> pd.DataFrame:
    """Per method: test accuracy mean ± CI (over test tasks, seeds pooled by mean), noise AUC, clean share."""
    cols = [c for c in ("test_mean", "test_ci95", "noise_auc", "clean_share", "best_val", "wall_seconds", "steps")
            if c in df]
    t = df.groupby("method", sort=False)[cols].mean().reset_index()
    t["seeds"] = df.groupby("method", sort=False).size().values
    if order is not None:
        t["_o"] = t["method"].map({m: i for i, m in enumerate(order)}).fillna(len(order))
        t = t.sort_values("_o").drop(columns="_o")
    return t.reset_index(drop=True)


def formatted(t: pd.DataFrame) -> pd.DataFrame:
    """Human-readable copy: accuracy as 'mean ± ci' in percent."""
    out = t.copy()
    if "test_mean" in out:
        out["test accuracy (%)"] = [f"{m * 100:.2f} ± {c * 100:.2f}" for m, c in zip(out["test_mean"], out["test_ci95"])]
        out = out.drop(columns=["test_mean", "test_ci95"])
    for c in ("noise_auc", "clean_share", "best_val"):
        if c in out:
            out[c] = out[c].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    return out


def nearest_mean_baseline(data, ways=5, shots=1, queries=15, n_tasks=600, seed=2021) -> tuple[float, float]:
    """Nearest class mean on raw pixels over meta-test episodes: the floor a meta-learner must beat."""
    s = EpisodeSampler(data, "test", ways, shots, queries)
    accs = []
    for t in fixed_tasks(s, n_tasks, seed, "test"):
        xs, xq = t.x_s.flatten(2), t.x_q.flatten(2)
        proto = np.stack([xs[:, t.y_s[0] == c].mean(1).numpy() for c in range(ways)], 1)   # (T, N, D)
        d = ((xq.numpy()[:, :, None, :] - proto[:, None]) ** 2).sum(-1)
        accs.append((d.argmin(-1) == t.y_q.numpy()).mean(1))
    return mean_ci95(np.concatenate(accs))
