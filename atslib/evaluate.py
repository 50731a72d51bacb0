"""Re-test a saved run: ``python -m atslib eval RUN_DIR [--data PATH]``."""
from __future__ import annotations

from pathlib import Path

from .data import DataError, load_images
from .metrics import mean_ci95
from .runs import check_version, load_torch


def evaluate_run(run_dir, data: str | None = None, n_test_tasks: int | None = None) -> dict:
    """Test the run's best parameters on the meta-test split of its data file (or of ``data``).

    Without ``data`` the recorded file must still have the sha256 stored in the run's config.
    """
    from .config import Config
    from .train import build_setup, evaluate_params, test_tasks
    run_dir = Path(run_dir)
    meta = check_version(run_dir)
    cfg = Config.from_saved(meta["config"])
    loader = load_images
    if cfg.dataset == "molecules":
        from .molecules import load_molecules as loader
    if data is None:
        path = meta["data_path"]
        current = loader(path).sha256
        if current != meta["data_sha256"]:
            raise DataError(f"--data {path}: sha256 {current[:12]}... differs from {meta['data_sha256'][:12]}... "
                            f"recorded in {run_dir}/config.json; allowed: the file the run was trained on, "
                            f"or pass --data explicitly")
        data = path
    cfg = cfg.replace(data=str(data), **({"n_test_tasks": n_test_tasks} if n_test_tasks else {}))
    setup = build_setup(cfg)
    setup.model.load_state_dict(load_torch(run_dir / "best.pt")["model"])
    if cfg.dataset == "molecules":
        from .molecules import molecule_results
        summary, _ = molecule_results(setup)
        keep = ("r2_mean", "r2_median", "r2_gt_03", "real_r2", "test_mean", "test_ci95", "n_test_tasks")
        return {"run": str(run_dir), "data": str(setup.data.path), "data_sha256": setup.data.sha256,
                **{k: summary[k] for k in keep}}
    _, acc = evaluate_params(setup, test_tasks(setup))
    mean, ci = mean_ci95(acc.cpu().numpy())
    return {"run": str(run_dir), "data": str(setup.data.path), "data_sha256": setup.data.sha256,
            "test_mean": mean, "test_ci95": ci, "n_test_tasks": int(len(acc))}
