"""Golden records: per-step numbers of short runs of every method, to refactor the core behind.

For every method, on images (5-way 1-shot, noise 0.6) and on molecules (noise scale 4; gcp is
images only), a 20-step CPU run is recorded step by step: the meta-training loss and accuracy, the
scheduler's reward and advantage where there is one, the drawn pool indices, the pool's sampling
probabilities, and the L2 norm of theta after the step. ``tests/test_golden.py`` retrains each run
and compares: identical drawn indices, numbers to 1e-5 relative.

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


def record(method: str, dataset: str) -> dict:
    """Train the case and return its per-step record."""
    import torch

    from atslib import meta_train
    norms = []

    def theta_norm(rec, run):
        with torch.no_grad():
            norms.append(float(torch.sqrt(sum((p.double() ** 2).sum() for p in run.model.parameters()))))

    torch.set_num_threads(1)
    run = meta_train(config(method, dataset), callbacks=[theta_norm])
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
    return {"method": method, "dataset": dataset, "steps": steps, "best_val": float(run.summary["best_val"])}


def path(method: str, dataset: str) -> Path:
    return GOLDEN / f"{dataset}-{method}.json"


def compare(got: dict, want: dict, rtol: float = 1e-5) -> list[str]:
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
                if not (math.isclose(x, y, rel_tol=rtol, abs_tol=1e-8) or (math.isnan(x) and math.isnan(y))):
                    bad.append(f"step {w['step']}: {k} {x!r} vs {y!r}")
                    break
    if not math.isclose(got["best_val"], want["best_val"], rel_tol=rtol):
        bad.append(f"best_val {got['best_val']} vs {want['best_val']}")
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="(re)write tests/golden/*.json")
    ap.add_argument("--only", nargs="+", default=None, metavar="METHOD",
                    help="these methods only (e.g. a method whose numbers changed on purpose)")
    args = ap.parse_args(argv)
    GOLDEN.mkdir(exist_ok=True)
    failed = 0
    for method, dataset in cases():
        if args.only and method not in args.only:
            continue
        rec = record(method, dataset)
        if args.write:
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
