"""Re-test a saved run: ``python -m atslib eval RUN_DIR [--data PATH]``."""
from __future__ import annotations

from pathlib import Path

from .config import Config
from .data import DataError
from .datasets import dataset_of
from .store import BEST, CONFIG, check_version, load_torch


def evaluate_run(run_dir, data: str | None = None, n_test_tasks: int | None = None) -> dict:
    """Test the run's best parameters on the meta-test split of its data file (or of ``data``).

    Without ``data`` the recorded file must still have the sha256 stored in the run's config.
    """
    run_dir = Path(run_dir)
    meta = check_version(run_dir)
    cfg = Config.from_saved(meta["config"])
    dataset = dataset_of(cfg)
    if data is None:
        path = meta["data_path"]
        current = dataset.load(path).sha256
        if current != meta["data_sha256"]:
            raise DataError(f"--data {path}: sha256 {current[:12]}... differs from {meta['data_sha256'][:12]}... "
                            f"recorded in {run_dir}/{CONFIG}; allowed: the file the run was trained on, "
                            f"or pass --data explicitly")
        data = path
    cfg = cfg.replace(data=str(data), **({"n_test_tasks": n_test_tasks} if n_test_tasks else {}))
    setup = dataset.build(cfg)
    setup.model.load_state_dict(load_torch(run_dir / BEST)["model"])
    summary, _ = dataset.test(setup)
    return {"run": str(run_dir), "data": str(setup.data.path), "data_sha256": setup.data.sha256,
            **{k: summary[k] for k in dataset.eval_keys if k in summary}}
