"""The run-directory contract: which files a finished run leaves and which keys its summary holds.

Sweeps, ``eval``, ``load_run`` and the notebooks rely on these names; ``check_run`` lists what a
run directory lacks (an empty list: the run keeps the contract). Scheduler diagnostics are required
where they mean something: a scheduled method on a pool where some tasks are noisy and some clean.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..config import SCHEDULED
from ..store import CONFIG, HISTORY, POOLS, SUMMARY, TEST_SCORES

FILES = (CONFIG, HISTORY, SUMMARY)
EVERY_RUN = ("format_version", "atslib_version", "torch_version", "method", "dataset", "steps", "seed", "device",
             "wall_seconds", "best_val")
IMAGE_RUN = ("ways", "shots", "queries", "noise_ratio", "flip_prob", "budget_classes", "test_mean", "test_ci95",
             "n_test_tasks")
MOLECULE_RUN = ("noise_scale", "r2_mean", "r2_median", "r2_gt_03", "real_r2")
DIAGNOSTICS = ("noise_auc", "clean_share")


def check_run(run_dir) -> list[str]:
    """What ``run_dir`` lacks against the contract, one readable line each."""
    run_dir = Path(run_dir)
    gaps = [f"missing {f}" for f in FILES if not (run_dir / f).is_file()]
    try:
        summary = json.loads((run_dir / SUMMARY).read_text())
    except (OSError, ValueError) as e:
        return gaps + ([] if f"missing {SUMMARY}" in gaps else [f"{SUMMARY} unreadable ({e})"])
    molecules = summary.get("dataset") == "molecules"
    need = EVERY_RUN + (MOLECULE_RUN if molecules else IMAGE_RUN)
    bad = float(summary.get("noise_ratio") or 0) + (0.0 if molecules else float(summary.get("ood_ratio") or 0))
    if summary.get("method") in SCHEDULED and 0 < bad < 1:
        need += DIAGNOSTICS
    gaps += [f"{SUMMARY} lacks {k}" for k in need if k not in summary]
    if not molecules and not (run_dir / TEST_SCORES).is_file():
        gaps.append(f"missing {TEST_SCORES}")
    if summary.get("method") in SCHEDULED and not (run_dir / POOLS).is_file():
        gaps.append(f"missing {POOLS} (a scheduled method's pool records)")
    return gaps
