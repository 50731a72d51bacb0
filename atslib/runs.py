"""``load_run``: a run directory as Python objects (config, records, summary, best model).

The files of a run directory and how they are written are described in ``atslib.store``.
"""
from __future__ import annotations

import json
from pathlib import Path

from .config import Config
from .datasets import build_setup
from .store import BEST, HISTORY, POOLS, SUMMARY, TEST_SCORES, check_version, load_torch, read_columns


def load_run(run_dir: str | Path, with_model: bool = True) -> dict:
    """Config, history, summary, pool records, test scores and (optionally) the best model of a run.

    The tables (history, test_scores, pools) come back as pandas DataFrames; where pandas is not
    installed (the core's dependencies alone: torch, numpy) as {column: numpy array}
    (``store.read_columns``)."""
    try:
        from pandas import read_csv
    except ImportError:
        read_csv = read_columns
    run_dir = Path(run_dir)
    meta = check_version(run_dir)
    out = {"config": Config.from_saved(meta["config"]), "meta": meta, "dir": run_dir}
    for key, name in (("history", HISTORY), ("test_scores", TEST_SCORES), ("pools", POOLS)):
        f = run_dir / name
        out[key] = read_csv(f) if f.is_file() else None
    f = run_dir / SUMMARY
    out["summary"] = json.loads(f.read_text()) if f.is_file() else None
    if with_model and (run_dir / BEST).is_file():
        setup = build_setup(out["config"].replace(device="cpu"), check_data=False)
        setup.model.load_state_dict(load_torch(run_dir / BEST)["model"])
        out["model"] = setup.model
    return out
