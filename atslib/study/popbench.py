"""``python -m atslib bench --population 1,4,16``: throughput of populations against single runs.

For each method and population size R, R runs (seeds 0..R-1, the bench's settings) take
``warmup`` untimed meta-iterations in lockstep, then ``repeats`` timed ones; the time of one
lockstep iteration of all R runs, divided by R, is the cost per run-iteration. A single run
(``step.meta_step`` with no population around it) gives the reference, and ``speedup`` = single /
per-run cost: how many times more run-iterations per second the device delivers. Also printed:
the share of each kind of model-maths call that the population served batched.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..population import batched  # noqa: F401 - registers the batched implementations
from .bench import make_config, settings_from
from ..population.lockstep import Lockstep
from ..loop import Run
from ..step import meta_step


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _runs(s: dict, method: str, R: int, device: str) -> list[Run]:
    return [Run(make_config(s, method).replace(seed=seed, device=device)) for seed in range(R)]


def _steps(run: Run, start: int, n: int):
    def go():
        for t in range(start, start + n):
            meta_step(run.setup, run.state, t)
    return go


def time_population(s: dict, method: str, R: int, device: str) -> dict:
    runs = _runs(s, method, R, device)
    dev = runs[0].setup.device
    if not all(ok for ok, _ in Lockstep().run([_steps(r, 0, s["warmup"]) for r in runs])):
        raise RuntimeError("bench --population: a run failed in the warm-up")
    _sync(dev)
    lock = Lockstep()
    t0 = time.perf_counter()
    outcome = lock.run([_steps(r, s["warmup"], s["repeats"]) for r in runs])
    _sync(dev)
    failed = [repr(v) for ok, v in outcome if not ok]
    if failed:
        raise RuntimeError(f"bench --population: {len(failed)} of {R} runs failed: {failed[0]}")
    per_iter = (time.perf_counter() - t0) / s["repeats"]
    calls = sum(lock.batched.values()) + sum(lock.direct.values())
    return {"R": R, "seconds_per_iter": per_iter, "seconds_per_run_iter": per_iter / R,
            "batched_share": sum(lock.batched.values()) / max(calls, 1)}


def time_single(s: dict, method: str, device: str) -> float:
    run = _runs(s, method, 1, device)[0]
    _steps(run, 0, s["warmup"])()
    _sync(run.setup.device)
    t0 = time.perf_counter()
    _steps(run, s["warmup"], s["repeats"])()
    _sync(run.setup.device)
    return (time.perf_counter() - t0) / s["repeats"]


def population_bench(s: dict, sizes: list[int], methods=("uniform", "ats"), device: str = "cpu") -> dict:
    if s.get("threads"):
        torch.set_num_threads(s["threads"])
    out = {"device": device, "settings": s, "sizes": sizes, "methods": {}}
    for m in methods:
        single = time_single(s, m, device)
        rows = []
        for R in sizes:
            row = time_population(s, m, R, device)
            row["speedup"] = single / row["seconds_per_run_iter"]
            rows.append(row)
        out["methods"][m] = {"single_seconds_per_iter": single, "populations": rows}
    return out


def table(rep: dict) -> str:
    lines = [f"populations on {rep['device']} (seconds per iteration; speedup = single / per-run cost)",
             "method   R    s/iter(all)  s/iter/run  speedup  batched"]
    for m, d in rep["methods"].items():
        lines.append(f"{m:<8} single {d['single_seconds_per_iter']:.4f}")
        for r in d["populations"]:
            lines.append(f"{m:<8} {r['R']:<4} {r['seconds_per_iter']:>10.4f}  {r['seconds_per_run_iter']:>10.4f}  "
                         f"{r['speedup']:>6.2f}x  {r['batched_share']:.0%}")
    return "\n".join(lines)


def main(args) -> int:
    sizes = [int(x) for x in args.population.split(",")]
    s = settings_from(args)
    rep = population_bench(s, sizes, tuple((args.methods or "uniform,ats").split(",")), args.device)
    print(table(rep))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rep, indent=2) + "\n")
    return 0


__all__ = ["population_bench", "time_population", "time_single", "table"]
