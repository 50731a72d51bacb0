#!/usr/bin/env python3
"""One prepared check for a CUDA machine (``make gpu-check``), at most ~4 minutes in all.

    PYTHONPATH=. python3 scripts/gpu_check.py --out DIR [--device cuda|cpu]

Needs only torch, numpy, pandas (scipy, matplotlib) and this repository on PYTHONPATH; no Jupyter,
pytest optional. Three stages, each logged to DIR:
1. equivalence checks on the device in float64 (``checks.json``, ``checks.log``): MAML meta-losses
   and meta-gradients, vmap (batched) path vs per-task loop, second and first order; ANIL on the
   device vs on the CPU; ``pool_factors`` loop vs batched; ``pool_factors`` vs the bench's re-creation
   of the authors' loop. When pytest is importable, the test functions of ``tests/test_maml.py`` and
   ``tests/test_features.py`` are also run with their tiny models and tasks moved to the device.
   A population of 4 seeds on the device equals the 4 single runs (uniform, ats, spl, gcp; float64).
2. the benchmark (``python -m atslib bench``): ``bench.json``, ``bench.log``; then populations of
   R = 1, 4, 16, 64 runs against single runs (``bench --population``): ``population.json``, ``.log``;
3. a short ATS training run (100 steps, small validation/test sets): ``ats-run/``, ``train.log``.
Then ``summary.txt`` / ``summary.json`` with the GPU name, versions, check results, the bench table
and the run's summary. Without CUDA it says "no CUDA device" and exits 0; ``--device cpu`` runs the
same stages on the CPU with tiny settings (to try the script itself). Exit 1 when a check fails or
a stage crashes or times out.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import io
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

BUDGET_S = {"bench": 140, "train": 75, "population": 150}


def own_checks(dev) -> dict:
    """The key equivalences, self-contained (no pytest): name -> None on success, raises otherwise."""
    from atslib import maml
    from atslib.study.bench import reference_factors
    from atslib.data import load_images
    from atslib.features import pool_factors
    from atslib.models import build_model
    from atslib.tasks import EpisodeSampler, stream
    images = load_images()
    tasks = EpisodeSampler(images, "train", 3, 2, 3, noise_ratio=0.5).sample(4, stream(0, 0, "gpu-check"))
    tasks.x_s, tasks.x_q = tasks.x_s.double(), tasks.x_q.double()
    model_cpu = build_model(tuple(images.x.shape[1:]), 3, 8, 4, generator=stream(0, 0, "m")).double()
    model, t = build_model(tuple(images.x.shape[1:]), 3, 8, 4, generator=stream(0, 0, "m")).double().to(dev), tasks.to(dev)
    p = dict(model.named_parameters())
    close = functools.partial(torch.testing.assert_close, check_device=False)

    def meta(mdl, tk, inner, first_order, batched):
        prm = dict(mdl.named_parameters())
        losses, _ = maml.task_losses(mdl, prm, tk, 2, 0.3, inner, first_order, batched=batched)
        return losses, torch.autograd.grad(losses.mean(), list(prm.values()))

    def same_meta(x, y):
        (la, ga), (lb, gb) = x, y
        close(la, lb, rtol=1e-7, atol=1e-9)
        for a, b in zip(ga, gb):
            close(a, b, rtol=1e-6, atol=1e-8)

    def maml_vmap_vs_loop():
        for fo in (False, True):
            same_meta(meta(model, t, "maml", fo, True), meta(model, t, "maml", fo, False))

    def anil_device_vs_cpu():
        for fo in (False, True):
            same_meta(meta(model, t, "anil", fo, None), meta(model_cpu, tasks, "anil", fo, None))

    def factors_loop_vs_batched():
        for inner in ("anil", "maml"):
            a, b = (pool_factors(model, p, t, 3, 0.2, inner, path=path) for path in ("loop", "batched"))
            for k in ("loss", "score", "sim_dot", "sim_cos", "layer_cos"):
                close(getattr(a, k), getattr(b, k), rtol=1e-5, atol=1e-6)

    def factors_vs_reference_loop():
        f = pool_factors(model, p, t, 3, 0.2, "anil", path="batched")
        loss, dot, cos = reference_factors(model, p, t, 3, 0.2, "anil")
        close(loss, f.loss.double(), rtol=1e-6, atol=1e-8)
        close(dot, f.sim_dot.double(), rtol=1e-5, atol=1e-7)
        close(cos, f.sim_cos.double(), rtol=1e-5, atol=1e-6)

    return {fn.__name__: fn for fn in (maml_vmap_vs_loop, anil_device_vs_cpu, factors_loop_vs_batched,
                                       factors_vs_reference_loop)}


def pytest_checks(dev) -> dict:
    """The test functions of tests/test_maml.py and tests/test_features.py, tiny models moved to ``dev``."""
    try:
        import pytest  # noqa: F401  (the test modules import it)
    except ImportError:
        return {}
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest                                                 # registers the "helpers" module
    import test_features
    import test_maml
    from atslib.data import load_images
    images = load_images()
    model_on = lambda *a, **k: conftest.tiny_model(*a, **k).to(dev)
    tasks_on = lambda *a, **k: conftest.tiny_tasks(*a, **k).to(dev)
    out = {}
    for mod in (test_maml, test_features):
        mod.tiny_model, mod.tiny_tasks = model_on, tasks_on
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if not name.startswith("test_") or fn.__module__ != mod.__name__:
                continue
            cases = [{}]
            for mark in getattr(fn, "pytestmark", []):
                if mark.name == "parametrize":
                    names = [s.strip() for s in mark.args[0].split(",")]
                    cases = [{**c, **dict(zip(names, v if len(names) > 1 else (v,)))} for c in cases
                             for v in mark.args[1]]
            for case in cases:
                label = f"{mod.__name__}::{name}" + (f"[{','.join(map(str, case.values()))}]" if case else "")
                fixture = {"images": images} if "images" in inspect.signature(fn).parameters else {}
                out[label] = functools.partial(fn, **fixture, **case)
    return out


def population_checks(dev) -> dict:
    """A population of 4 seeds on the device equals the 4 single runs (float64; uniform, ats, spl,
    gcp with the device's batched backbone; ats with the other two backbones)."""
    try:
        import pytest  # noqa: F401  (the test module imports it)
    except ImportError:
        return {}
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest
    import test_population as tp
    from atslib.population import batched

    def check(method, how, runs):
        def fn():
            old, old_how = torch.get_default_dtype(), batched.FEATURES
            torch.set_default_dtype(torch.float64)
            batched.FEATURES = how
            try:
                tp.population_vs_singles([conftest.tiny_config(method=method, seed=s, device=dev.type, **tp.FOUR)
                                          for s in range(runs)])
            finally:
                torch.set_default_dtype(old)
                batched.FEATURES = old_how
        return fn

    out = {f"population[{m}]": check(m, None, 4) for m in ("uniform", "ats", "spl", "gcp")}
    out.update({f"population[ats,{h}]": check("ats", h, 2) for h in ("vmap", "loop")})
    return out


def run_checks(dev, log) -> dict:
    results = {}
    checks = own_checks(dev)
    checks.update(pytest_checks(dev))
    checks.update(population_checks(dev))
    orig = torch.testing.assert_close           # the tests compare a cpu Factors with device tensors
    torch.testing.assert_close = functools.partial(orig, check_device=False)
    try:
        for name, fn in checks.items():
            t0 = time.perf_counter()
            try:
                fn()
                results[name] = "pass"
            except Exception as e:                # noqa: BLE001 - every failure is reported, none stops the script
                results[name] = f"FAIL: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                log.write(traceback.format_exc())
            log.write(f"{results[name]:<6} {time.perf_counter() - t0:6.2f}s {name}\n")
            log.flush()
    finally:
        torch.testing.assert_close = orig
    return results


def stage(cmd, log_path: Path, timeout: int, **extra_env) -> dict:
    env = dict(os.environ, TQDM_DISABLE="1", MPLBACKEND="Agg", **extra_env,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(map(str, cmd)) + "\n")
        log.flush()
        try:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    return {"rc": rc, "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--out", required=True, help="directory for logs, JSON and the summary")
    a.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: try this script without a GPU")
    args = a.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {"python": platform.python_version(), "torch": torch.__version__, "device": args.device,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    if args.device == "cuda" and not torch.cuda.is_available():
        msg = f"gpu_check: no CUDA device (torch {torch.__version__}); nothing checked."
        print(msg)
        (out / "summary.txt").write_text(msg + "\n")
        return 0
    dev = torch.device(args.device)
    dry = args.device == "cpu"                  # a dry run of this script: one thread, tiny settings
    if dry:
        torch.set_num_threads(1)
    one_thread = {"OMP_NUM_THREADS": "1"} if dry else {}
    info["gpu"] = torch.cuda.get_device_name() if args.device == "cuda" else "none (cpu dry run)"
    t_start = time.perf_counter()
    print(f"gpu_check: {info['gpu']}, torch {info['torch']}, python {info['python']} -> {out}", flush=True)

    with open(out / "checks.log", "w") as log:
        checks = run_checks(dev, log)
    n_fail = sum(v != "pass" for v in checks.values())
    (out / "checks.json").write_text(json.dumps(checks, indent=2) + "\n")
    print(f"checks: {len(checks) - n_fail}/{len(checks)} pass", flush=True)

    tiny = ["--pool-size", "3", "--queries", "2", "--width", "8", "--repeats", "1", "--warmup", "0"] if dry else []
    bench = stage([sys.executable, "-m", "atslib", "bench", "--device", args.device, "--json", out / "bench.json",
                   *tiny], out / "bench.log", BUDGET_S["bench"], **one_thread)
    print(f"bench: {bench}", flush=True)

    sizes = "1,2" if dry else "1,4,16,64"
    popbench = stage([sys.executable, "-m", "atslib", "bench", "--population", sizes, "--device", args.device,
                      "--json", out / "population.json", *(["--repeats", "2", "--warmup", "1"] if dry else [])],
                     out / "population.log", BUDGET_S["population"], **one_thread)
    print(f"population bench: {popbench}", flush=True)

    tiny = ["--steps", "4", "--queries", "5", "--width", "8", "--n-test-tasks", "10"] if dry else ["--steps", "100"]
    train = stage([sys.executable, "-m", "atslib", "train", "--method", "ats", "--noise-ratio", "0.6", "--n-val-tasks",
                   "20", "--n-test-tasks", "100", "--eval-every", "50", "--checkpoint-every", "50", *tiny, "--device",
                   args.device, "--seed", "0", "--out", out / "ats-run", "--overwrite", "--quiet"],
                  out / "train.log", BUDGET_S["train"], **one_thread)
    print(f"train: {train}", flush=True)

    run_summary = {}
    with contextlib.suppress(OSError, ValueError):
        run_summary = json.loads((out / "ats-run" / "summary.json").read_text())
    bench_table = (out / "bench.log").read_text().splitlines()
    bench_table = [line for line in bench_table if not line.startswith(("bench: ", "$ "))]
    pop_table = [line for line in (out / "population.log").read_text().splitlines() if not line.startswith("$ ")]
    summary = {**info, "checks": checks, "bench": bench, "population_bench": popbench, "train": train, "total_seconds":
               round(time.perf_counter() - t_start, 1),
               "run": {k: run_summary.get(k) for k in ("method", "steps", "device", "wall_seconds", "best_val",
                                                       "test_mean", "test_ci95", "noise_auc", "clean_share")}}
    ok = n_fail == 0 and bench["rc"] == 0 and train["rc"] == 0 and popbench["rc"] == 0
    summary["ok"] = ok
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = io.StringIO()
    text.write(f"gpu_check {info['date']}: {info['gpu']} | torch {info['torch']} | python {info['python']}\n")
    text.write(f"overall: {'OK' if ok else 'PROBLEMS'} in {summary['total_seconds']} s\n\n")
    text.write(f"checks ({len(checks) - n_fail}/{len(checks)} pass):\n")
    text.writelines(f"  {v:<6} {k}\n" for k, v in checks.items())
    text.write(f"\nbench (exit {bench['rc']}, {bench['seconds']} s):\n" + "\n".join(bench_table) + "\n")
    text.write(f"\npopulations (exit {popbench['rc']}, {popbench['seconds']} s):\n" + "\n".join(pop_table) + "\n")
    text.write(f"\nATS run (exit {train['rc']}, {train['seconds']} s): {json.dumps(summary['run'])}\n")
    (out / "summary.txt").write_text(text.getvalue())
    print(text.getvalue())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
