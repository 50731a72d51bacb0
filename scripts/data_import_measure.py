"""Measure ``python -m atslib data import`` on synthetic data (nothing here is downloaded):

1. every layout's importer summary on its miniature (``tests/miniatures.py``), and 2 training steps on
   the result through ``python -m atslib train --data``;
2. the peak memory of a training run on a memory-mapped import much larger than the run needs
   (default 20,000 images of 84x84x3, about 423 MB) against the same images as an npz loaded in full;
3. seconds per iteration of uniform and ATS at 84 px (conv-4, 32 filters, 4 max-pools) against
   QuickDraw's 28 px (3 max-pools), from ``atslib.study.bench``'s worker (one process each).

    .venv/bin/python scripts/data_import_measure.py --json build/data-import.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}


def sh(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=ENV, cwd=ROOT)


def layouts(tmp: Path) -> dict:
    import miniatures as M
    out = {}
    for kind in sorted(M.WRITERS):
        src = tmp / kind
        src.mkdir()
        M.WRITERS[kind](src)
        data = tmp / f"{kind}.npz"
        r = sh("-m", "atslib", "data", "import", src, "--out", data, "--shots", 1, "--queries", 2)
        pools = 2 if kind in ("omniglot", "cifar-fs", "cifar-fs-pickle", "fc100") else 4
        t = sh("-m", "atslib", "train", "--data", data, "--out", tmp / f"run-{kind}", "--ways", 2, "--shots", 1,
               "--queries", 2, "--steps", 2, "--eval-every", 2, "--n-val-tasks", 2, "--n-test-tasks", 3,
               "--pool-size", 3, "--method", "ats", "--max-pools", pools, "--quiet")
        out[kind] = {"import_rc": r.returncode, "summary": r.stdout.strip() or r.stderr.strip(),
                     "train_rc": t.returncode, "train": t.stdout.strip().splitlines()[-1:] or t.stderr.strip()}
        print(f"== {kind}\n{out[kind]['summary']}\ntrain (ats, 2 steps): {out[kind]['train']}\n", flush=True)
    return out


def big(tmp: Path, n_images: int, steps: int) -> dict:
    from atslib.ingest.importers import ClassImages, write
    classes, per = 100, n_images // 100
    rng = np.random.default_rng(0)
    split = [0] * 64 + [1] * 16 + [2] * 20
    cls = [ClassImages(s, f"c{i:03d}", per, lambda: rng.integers(0, 256, (per, 84, 84, 3), dtype=np.uint8))
           for i, s in enumerate(split)]
    folder, npz = tmp / "big", tmp / "big.npz"
    write(cls, folder, progress=False)
    rng = np.random.default_rng(0)
    write(cls, npz, progress=False)
    code = f"""
import resource, json, torch
torch.set_num_threads(1)
from atslib import Config
from atslib.loop import Run
# a small episode footprint (5 queries, few evaluation tasks), so that what differs is how the data is held
cfg = Config(data=DATA, method="uniform", steps={steps}, eval_every={steps}, n_val_tasks=4, n_test_tasks=4,
             max_pools=4, queries=5, checkpoint_every={steps})
run = Run(cfg, OUT, overwrite=True)
run.train()
hwm = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024   # ru_maxrss survives exec
print(json.dumps({{"peak_mb": round(hwm, 1),
                  "test_mean": run.summary["test_mean"]}}))
"""
    load = """
import json
from atslib import Config
from atslib.datasets import build_setup
rss = lambda k: int(open("/proc/self/status").read().split(k + ":")[1].split()[0]) / 1024
before = rss("VmRSS")
build_setup(Config(data=DATA, max_pools=4, queries=5, n_val_tasks=4, n_test_tasks=4))
print(json.dumps({"peak_mb": round(rss("VmHWM"), 1), "before_mb": round(before, 1), "anon_mb": round(rss("RssAnon"), 1),
                  "file_mb": round(rss("RssFile"), 1)}))
"""
    res = {"images": n_images, "x_mb": round(n_images * 84 * 84 * 3 / 2 ** 20, 1), "steps": steps}
    for name, data in (("memory-mapped folder", folder), ("npz loaded in full", npz)):
        out = {}
        for what, c in (("load and set up", load), (f"train {steps} steps", code)):
            r = sh("-c", c.replace("DATA", repr(str(data))).replace("OUT", repr(str(tmp / f"run-{data.name}"))))
            out[what] = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else r.stderr[-400:]
        res[name] = out
        print(f"{name}: {out}", flush=True)
    return res


def speed(tmp: Path, repeats: int) -> dict:
    from atslib.study import bench
    from atslib.ingest.importers import ClassImages, write
    rng = np.random.default_rng(1)
    split = [0] * 64 + [1] * 16 + [2] * 20
    cls = [ClassImages(s, f"c{i:03d}", 40, lambda: rng.integers(0, 256, (40, 84, 84, 3), dtype=np.uint8))
           for i, s in enumerate(split)]
    write(cls, tmp / "mini84.npz", progress=False)
    out = {}
    for label, extra in (("28 px (QuickDraw, 3 max-pools)", {}),
                         ("84 px (84x84x3, 4 max-pools)", {"data": str(tmp / "mini84.npz"), "image_size": 84,
                                                           "max_pools": 4})):
        s = {**bench.DEFAULTS, "device": "cpu", "threads": 1, "repeats": repeats, **extra}
        out[label] = {m: bench.run_worker(m, s).get("seconds_per_iter") for m in ("uniform", "ats")}
        print(f"{label}: {out[label]}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", nargs="+", default=("layouts", "memory", "speed"))
    a = ap.parse_args()
    res = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "layouts" in a.only:
            res["layouts"] = layouts(tmp)
        if "memory" in a.only:
            res["memory"] = big(tmp, a.images, a.steps)
        if "speed" in a.only:
            res["speed"] = speed(tmp, a.repeats)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
