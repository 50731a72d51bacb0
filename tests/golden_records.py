"""Golden records: per-step numbers of short runs of every method, to refactor the core behind.

For every method, on images (5-way 1-shot, noise 0.6) and on molecules (noise scale 4; gcp is
images only), a 20-step CPU run is recorded step by step: the meta-training loss and accuracy, the
scheduler's reward and advantage where there is one, the drawn pool indices, the pool's sampling
probabilities, and the L2 norm of theta after the step. The runs are recorded in float64, where
torch's CPU kernel paths (AVX-512, AVX2, SSE; MKL and oneDNN variants: other CPUs) agree to ~1e-12
relative, so the records hold on any CPU; in float32 they drift ~1e-4 relative across paths.
``tests/test_golden.py`` retrains each run and compares: identical drawn indices, numbers to
``RTOL`` relative (see there for the measurement behind it).

Write (or rewrite, only on purpose) the records with ``python tests/golden_records.py --write``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
STEPS = 20
SCALARS = ("train_loss", "train_acc", "reward", "advantage", "val_acc")
DTYPE = "float64"
# Tolerances of the float64 records, from the drift measurement (scripts/golden_drift.py, REPRODUCTION.md
# "Golden records across CPUs"): between torch's kernel paths the largest relative difference of any
# recorded number over 20 steps is ~1e-12 in float64 (~1e-4 in float32); RTOL sits well above the first
# and far below one float32 ulp (6e-8), so a change of the maths at the float32-ulp level is still caught.
RTOL = 1e-9
ATOL = 1e-12


def config(method: str, dataset: str):
    from atslib import Config
    common = dict(method=method, steps=STEPS, seed=3, eval_every=10, n_val_tasks=20, n_test_tasks=20,
                  checkpoint_every=1000, pool_log_every=1, device="cpu")
    if dataset == "molecules":
        return Config(dataset="molecules", noise_scale=4.0, lookahead_lr=0.01, **common)
    return Config(shots=1, queries=10, noise_ratio=0.6, **common)


def cases():
    from atslib import METHODS
    return [(m, d) for d in ("quickdraw", "molecules") for m in METHODS if not (m == "gcp" and d == "molecules")]


def record(method: str, dataset: str, dtype: str = DTYPE) -> dict:
    """Train the case in ``dtype`` (float64 by default) and return its per-step record."""
    import torch

    from atslib import meta_train
    norms = []
    old = torch.get_default_dtype()

    def theta_norm(rec, run):
        with torch.no_grad():
            norms.append(float(torch.sqrt(sum((p.double() ** 2).sum() for p in run.model.parameters()))))

    torch.set_num_threads(1)
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        run = meta_train(config(method, dataset), callbacks=[theta_norm])
    finally:
        torch.set_default_dtype(old)
    pools = run.pool_frame()
    steps = []
    for rec, norm in zip(run.history, norms):
        row = {"step": rec["step"], "theta_norm": norm}
        row.update({k: float(rec[k]) for k in SCALARS if k in rec and rec[k] is not None})
        p = pools[pools["step"] == rec["step"]] if len(pools) else pools
        if len(p):
            row["drawn"] = [int(t) for t in p.loc[p["drawn"].astype(bool), "task"]]
            row["probs"] = [float(x) for x in p["prob"]]
        steps.append(row)
    return {"method": method, "dataset": dataset, "dtype": dtype, "steps": steps,
            "best_val": float(run.summary["best_val"])}


def path(method: str, dataset: str) -> Path:
    return GOLDEN / f"{dataset}-{method}.json"


def compare(got: dict, want: dict, rtol: float = RTOL, atol: float = ATOL) -> list[str]:
    """Differences between two records, as readable lines (empty: equal)."""
    bad = []
    if len(got["steps"]) != len(want["steps"]):
        return [f"{len(got['steps'])} steps recorded, {len(want['steps'])} in the golden record"]
    for g, w in zip(got["steps"], want["steps"]):
        if set(g) != set(w):
            bad.append(f"step {w['step']}: keys {sorted(g)} vs {sorted(w)}")
            continue
        if g.get("drawn") != w.get("drawn"):
            bad.append(f"step {w['step']}: drawn {g.get('drawn')} vs {w.get('drawn')}")
        for k in w:
            if k in ("step", "drawn"):
                continue
            a, b = (g[k], w[k]) if k == "probs" else ([g[k]], [w[k]])
            for x, y in zip(a, b):
                if not (math.isclose(x, y, rel_tol=rtol, abs_tol=atol) or (math.isnan(x) and math.isnan(y))):
                    bad.append(f"step {w['step']}: {k} {x!r} vs {y!r}")
                    break
    if not math.isclose(got["best_val"], want["best_val"], rel_tol=rtol, abs_tol=atol):
        bad.append(f"best_val {got['best_val']} vs {want['best_val']}")
    return bad


def drift(got: dict, want: dict) -> dict:
    """How far two records of one case are apart: the largest relative difference of any recorded
    number (absolute where the reference is below 1e-6), the same for theta's norm and the training
    loss alone (well-scaled numbers), and whether every drawn index agrees."""
    worst, core, drawn_equal = 0.0, 0.0, len(got["steps"]) == len(want["steps"])
    for g, w in zip(got["steps"], want["steps"]):
        drawn_equal &= g.get("drawn") == w.get("drawn")
        for k in set(g) & set(w) - {"step", "drawn"}:
            a, b = (g[k], w[k]) if k == "probs" else ([g[k]], [w[k]])
            for x, y in zip(a, b):
                if not (math.isnan(x) and math.isnan(y)):
                    worst = max(worst, abs(x - y) / (abs(y) if abs(y) > 1e-6 else 1.0))
                    if k in ("theta_norm", "train_loss"):
                        core = max(core, abs(x - y) / (abs(y) if abs(y) > 1e-6 else 1.0))
    worst = max(worst, abs(got["best_val"] - want["best_val"]) / max(abs(want["best_val"]), 1e-6))
    return {"max_rel": worst, "max_rel_theta_loss": core, "drawn_equal": bool(drawn_equal)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="(re)write tests/golden/*.json")
    ap.add_argument("--only", nargs="+", default=None, metavar="METHOD",
                    help="these methods only (e.g. a method whose numbers changed on purpose)")
    ap.add_argument("--dump", metavar="DIR", help="write this machine's records to DIR (for scripts/golden_drift.py)")
    ap.add_argument("--dtype", default=DTYPE, choices=("float32", "float64"))
    args = ap.parse_args(argv)
    import torch
    print(f"cpu capability: {torch.backends.cpu.get_cpu_capability()}", flush=True)
    GOLDEN.mkdir(exist_ok=True)
    failed = 0
    for method, dataset in cases():
        if args.only and method not in args.only:
            continue
        rec = record(method, dataset, args.dtype)
        if args.dump:
            Path(args.dump).mkdir(parents=True, exist_ok=True)
            (Path(args.dump) / path(method, dataset).name).write_text(json.dumps(rec, indent=1) + "\n")
            print(f"{dataset}-{method}: dumped")
        elif args.write:
            path(method, dataset).write_text(json.dumps(rec, indent=1) + "\n")
            print(f"wrote {path(method, dataset).name}")
        else:
            bad = compare(rec, json.loads(path(method, dataset).read_text()))
            failed += bool(bad)
            print(f"{dataset}-{method}: " + ("ok" if not bad else "; ".join(bad[:3])))
    return int(failed > 0)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())
