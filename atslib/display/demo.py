"""The small committed demo runs that notebook 03_factors reads by default.

``python -m atslib.display.demo [--steps S] [--only NAME ...]`` (re)trains them into ``results/demo/``
(records only are committed: config, history, summary, test scores, pool records). Finished runs
are skipped; an interrupted one resumes from its checkpoint.

Setting (one CPU scale for every method): QuickDraw 5-way 1-shot, 15 queries, noise ratio 0.6
(flip 0.8), pool 10, meta-batch 2, 4 reward tasks, ANIL conv-4 (288-d), seed 0. The
limited-budget run (16 meta-train classes, clean tasks) feeds the second scatter of notebook 03.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..config import Config
from .live import LiveRun, phase_bars
from ..paths import RESULTS_DIR
from .progress import progress_callback
from ..store import BEST, CHECKPOINT, SUMMARY

DEMO_DIR = RESULTS_DIR / "demo"
ABLATIONS = ("uniform", "ats", "ats-random-phi", "rank-sim-loss", "ats-loss-only", "ats-sim-only", "ats-reweight")
ORDER = ("uniform", "ats", "rank-sim-loss", "ats-budget16", "uniform-budget16", "ats-loss-only", "ats-sim-only",
         "ats-random-phi", "ats-reweight")
STEPS = 400


def demo_configs(steps: int = STEPS, seed: int = 0) -> dict[str, Config]:
    common = dict(steps=steps, seed=seed, shots=1, eval_every=max(1, steps // 8), pool_log_every=5)
    out = {m: Config(method=m, noise_ratio=0.6, **common) for m in ABLATIONS}
    out["ats-budget16"] = Config(method="ats", budget_classes=16, **common)
    out["uniform-budget16"] = Config(method="uniform", budget_classes=16, **common)
    return out


def train_demo(names=None, steps: int = STEPS, root: Path = DEMO_DIR, keep_checkpoints: bool = False) -> None:
    configs = demo_configs(steps)
    for name in ORDER:
        cfg = configs[name]
        if names and name not in names:
            continue
        out = Path(root) / name
        if (out / SUMMARY).is_file():
            print(f"{name}: done, skipped")
            continue
        out.mkdir(parents=True, exist_ok=True)
        try:   # two demo processes may share the list: each run is trained by one of them
            lock = os.open(out / ".running", os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            print(f"{name}: being trained by another process (remove {out}/.running if it died), skipped")
            continue
        os.close(lock)
        try:
            run = LiveRun(cfg, out, resume=True, on_phase=phase_bars(f"{name}: "))   # bars for steps, val, test
            run.train([progress_callback(cfg.steps, run.step, desc=f"{name}: meta-train")])
        finally:
            (out / ".running").unlink(missing_ok=True)
        if not keep_checkpoints:
            for f in (CHECKPOINT, BEST):
                (out / f).unlink(missing_ok=True)
        s = run.summary
        print(f"{name}: test {s['test_mean']:.4f} ± {s['test_ci95']:.4f}, auc {s.get('noise_auc')}, "
              f"{s['wall_seconds']:.0f} s", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--only", nargs="*", default=None)
    p.add_argument("--out", default=str(DEMO_DIR))
    args = p.parse_args(argv)
    train_demo(args.only, args.steps, Path(args.out))


if __name__ == "__main__":
    main()
