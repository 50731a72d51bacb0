"""``python -m atslib bench``: seconds per meta-iteration and peak memory of ``uniform``, ``ats``,
``ats-cheap`` and ``ats-reference``, the parts of one ATS iteration, a floor, and the factor paths
(``features.pool_factors`` loop vs batched). Each runs in its own subprocess (``python -m
atslib.study.bench --worker NAME --settings JSON``, one JSON line out): a process's peak RSS never falls
(CUDA: ``torch.cuda.max_memory_allocated`` after setup). Time = median of ``repeats`` iterations
after ``warmup`` of the real ``step.meta_step``; for ats-cheap a repeat is ``cheap_every`` steps.

**Floor** = one uniform step + one forward/backward over all pool images (the cheaper of one batch
and one batch per task) + one look-ahead + one validation forward. ATS as configured does more:
``draws_per_step`` = k look-aheads and k validation passes (the leave-one-out baseline needs no
paired reference pass; the look-aheads and the real update share per-task meta-gradients), so
``ats_over_floor_configured`` divides by uniform step + forward/backward + k look-aheads + k
validations, the least work of the algorithm as configured.

**ats-reference** re-creates, from a description of the authors' released loop (not their code),
one ATS iteration: a Python loop over pool tasks; both factors computed twice per iteration (for
the training draw and again for the real draw); the whole network re-run at every inner step
although ANIL adapts only the head; second-order graphs (``create_graph=True``) built in the factor
and validation passes where nothing uses them; validation with graphs (no ``torch.no_grad``). It
shares with ``ats`` the model, device settings, data, scheduler and its REINFORCE step
(``ATS.train_scheduler``), so reference/ats measures the loop structure alone.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from .. import maml
from ..ats import ATS
from ..config import Config, ConfigError
from ..data import check_task_shape, load_images
from ..datasets import build_setup
from ..features import pool_factors
from ..methods import make_method
from ..models import build_model
from ..paths import ROOT
from ..scheduler import draw
from ..setup import resolve_device
from ..step import State, TaskGrads, bounded, lookahead, meta_step, params, step_inputs
from ..tasks import EpisodeSampler, stream

DEFAULTS = dict(pool_size=10, meta_batch=2, image_size=28, ways=5, shots=1, queries=15, width=32,
                repeats=5, warmup=2, inner="anil", draws_per_step=2, threads=None, data=None, max_pools=3)
METHODS = ("uniform", "ats", "ats-cheap", "ats-reference")
WORKERS = METHODS + ("factors-loop", "factors-batched")
FLOOR = ("uniform_step", "pool_forward_backward", "lookahead", "validation")
TARGETS = {"cpu": [("ats_over_floor", "<=", 1.25), ("reference_over_ats", ">=", 2.0),
                   ("ats_cheap_over_uniform", "<=", 2.0)],
           "cuda": [("reference_over_ats", ">=", 10.0), ("ats_cheap_over_uniform", "<=", 2.0),
                    ("factors_batched_over_loop", "<", 1.0)]}


# -- setup, timing, memory -------------------------------------------------------------------
def make_config(s: dict, name: str) -> Config:
    return Config(method=name if name in ("uniform", "ats-cheap") else "ats", device=s["device"], ways=s["ways"],
                  shots=s["shots"], queries=s["queries"], width=s["width"], pool_size=s["pool_size"],
                  meta_batch=s["meta_batch"], inner=s["inner"], draws_per_step=s["draws_per_step"],
                  data=s.get("data"), max_pools=s.get("max_pools", 3), steps=100_000, seed=0).validate()


def make_setup(cfg: Config, size: int):
    """``datasets.build_setup``, with the images resized (bilinear) to ``size`` px when they are not."""
    setup = build_setup(cfg)
    if tuple(setup.data.x.shape[-2:]) == (size, size):
        return setup
    x = torch.cat([F.interpolate(c.float(), size=(size, size), mode="bilinear", align_corners=False)
                   .round_().clamp_(0, 255).to(torch.uint8) for c in setup.data.x.split(1000)])
    data = dataclasses.replace(setup.data, x=x)
    sampler = lambda split, *a: EpisodeSampler(data, split, cfg.ways, cfg.shots, cfg.queries, *a)
    return dataclasses.replace(
        setup, data=data, train_sampler=sampler("train", cfg.noise_ratio, cfg.flip_prob, setup.train_classes),
        val_sampler=sampler("val"), test_sampler=sampler("test"),
        model=build_model(tuple(x.shape[1:]), cfg.ways, cfg.width, cfg.max_pools,
                          generator=stream(cfg.seed, 0, "model-init")).to(setup.device))


def timed(dev, fn, *a):
    """(fn(*a), seconds), with the device synchronised on both sides."""
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    out = fn(*a)
    sync()
    return out, time.perf_counter() - t


def _mem_mb(dev, peak=True) -> float:
    if dev.type == "cuda":
        return (torch.cuda.max_memory_allocated() if peak else torch.cuda.memory_allocated()) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024           # Linux: KiB


# -- the reference re-creation ---------------------------------------------------------------
def _ref_query(model, p, tasks, t, steps, lr, inner, create_graph):
    """Task t's inner loop as released: the whole network re-run at every step; (query loss, accuracy)."""
    fast, keys = dict(p), list(model.head_keys) if inner == "anil" else list(p)
    for _ in range(steps):
        loss = F.cross_entropy(model.head(fast, model.features(fast, tasks.x_s[t])), tasks.y_s[t])
        grads = torch.autograd.grad(loss, [fast[k] for k in keys], create_graph=create_graph)
        fast.update({k: fast[k] - lr * g for k, g in zip(keys, grads)})
    out = model.head(fast, model.features(fast, tasks.x_q[t]))
    return F.cross_entropy(out, tasks.y_q[t]), (out.argmax(-1) == tasks.y_q[t]).float().mean()


def reference_factors(model, p, tasks, steps, lr, inner="anil"):
    """Both factors, one task at a time, every graph kept: (loss, sim_dot, sim_cos), each (P,) float64."""
    p = {k: v if v.requires_grad else v.detach().requires_grad_(True) for k, v in p.items()}
    rows = []
    for t in range(len(tasks)):
        lq, _ = _ref_query(model, p, tasks, t, steps, lr, inner, True)
        g = [torch.autograd.grad(F.cross_entropy(model.head(p, model.features(p, x[t])), y[t]), list(p.values()),
                                 create_graph=True) for x, y in ((tasks.x_s, tasks.y_s), (tasks.x_q, tasks.y_q))]
        dot = sum((a * b).sum() for a, b in zip(*g))
        ns, nq = (sum(a.pow(2).sum() for a in gi) for gi in g)
        rows.append((lq.item(), dot.item(), (dot / (ns.sqrt() * nq.sqrt())).item()))
    return torch.tensor(rows, dtype=torch.float64).unbind(1)


def _ref_mean_loss(model, p, tasks, cfg, create_graph):
    return torch.stack([_ref_query(model, p, tasks, t, cfg.inner_steps, cfg.inner_lr, cfg.inner, create_graph)[0]
                        for t in range(len(tasks))]).mean()


class ReferenceATS(ATS):
    """ATS with factors, look-ahead and reward as released; the step as released is ``reference_step``."""

    def factors(self, state, x):                               # nothing reused: recomputed on every call
        c = self.cfg
        loss, dot, cos = reference_factors(state.model, params(state.model), x.pool, c.inner_steps, c.inner_lr, c.inner)
        return SimpleNamespace(loss=loss.float(), sim_dot=dot.float(), sim_cos=cos.float())

    def lookahead(self, state, grads, indices):
        c, p = self.cfg, params(state.model)
        g = torch.autograd.grad(_ref_mean_loss(state.model, p, grads.pool[indices], c, not c.first_order),
                                list(p.values()))
        return {k: v.detach() - c.lookahead_lr * gk for (k, v), gk in zip(p.items(), g)}, torch.zeros(())

    def score(self, state, theta, tasks):                      # a model copy, graphs built, no torch.no_grad
        c = self.cfg
        theta = {k: v.detach().requires_grad_(True) for k, v in theta.items()}
        res = [[m.item() for m in _ref_query(state.model, theta, tasks, t, c.inner_steps, c.inner_lr, c.inner, True)]
               for t in range(len(tasks))]
        return -statistics.mean(r[0] for r in res) if c.reward == "loss" else statistics.mean(r[1] for r in res)


def reference_step(setup, state, step):
    cfg, ats, model = setup.cfg, state.method, state.model
    x, _ = step_inputs(setup, step)
    ats.train_scheduler(state, x, ats.scheduler_inputs(ats.factors(state, x)), TaskGrads(model, x.pool, cfg))  # factors #1
    feats = ats.scheduler_inputs(ats.factors(state, x))                                                       # factors #2
    with torch.no_grad():
        d = draw(ats.net(feats, x.progress), cfg.meta_batch, x.gen, ats.temperature(step))
    state.opt.zero_grad(set_to_none=True)
    _ref_mean_loss(model, params(model), x.pool[d.indices], cfg, not cfg.first_order).backward()
    state.opt.step()


# -- parts of one ATS iteration and the floor ------------------------------------------------
def ats_parts(setup, state, step) -> dict:
    """Seconds of one ATS step by part: the pool, the factors, the look-aheads, the validation passes,
    theta's update and the scheduler (the rest), timing ATS's own pieces while its step runs
    (through its ``part_hook``)."""
    clock, ats, dev = defaultdict(float), state.method, setup.device
    (x, _), clock["pool"] = timed(dev, step_inputs, setup, step)

    def timer(part, fn, *a):
        out, dt = timed(dev, fn, *a)
        clock[part] += dt
        return out
    ats.part_hook = timer
    try:
        _, total = timed(dev, ats.step, state, x)
    finally:
        ats.part_hook = None
    clock["scheduler"] = total - sum(clock[p] for p in ("factors", "lookahead", "validation", "update"))
    return dict(clock)


def floor_parts(setup, uniform_state, step) -> dict:
    cfg, model, dev = setup.cfg, setup.model, setup.device
    out = {"uniform_step": timed(dev, meta_step, setup, uniform_state, step)[1]}
    x, _ = step_inputs(setup, step)
    pool, val, p = x.pool, x.reward_tasks(), params(model)

    def pool_fb(per_task):                # every support and query image of the pool, forward + backward
        xy = [(torch.cat([pool.x_s[t], pool.x_q[t]]), torch.cat([pool.y_s[t], pool.y_q[t]])) for t in range(len(pool))]
        for xb, yb in (xy if per_task else [[torch.cat(v) for v in zip(*xy)]]):
            torch.autograd.grad(F.cross_entropy(model.head(p, model.features(p, xb)), yb), list(p.values()))

    def one_lookahead():
        g, _ = bounded(TaskGrads(model, pool, cfg).mean(torch.arange(cfg.meta_batch, device=dev)), cfg.lookahead_max_norm)
        return lookahead(model, g, cfg.lookahead_lr)

    out["pool_fb_one_batch"], out["pool_fb_per_task"] = (timed(dev, pool_fb, b)[1] for b in (False, True))
    out["pool_forward_backward"] = min(out["pool_fb_one_batch"], out["pool_fb_per_task"])
    out["lookahead"] = timed(dev, one_lookahead)[1]
    out["validation"] = timed(dev, maml.evaluate, model, p, val, cfg.inner_steps, cfg.inner_lr, cfg.inner)[1]
    return out


def _medians(rows: list[dict], keys=None) -> dict:
    m = {k: statistics.median(r.get(k, 0.0) for r in rows) for k in rows[0]}
    return {**m, "total": sum(m[k] for k in (keys or m))}


# -- worker ----------------------------------------------------------------------------------
def worker(name: str, s: dict) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(s["threads"])
    cfg = make_config(s, name)
    setup = make_setup(cfg, s["image_size"])
    dev, model = setup.device, setup.model
    opt = torch.optim.Adam(model.parameters(), lr=cfg.outer_lr)
    setup_mb = _mem_mb(dev, peak=False)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if name.startswith("factors-"):
        pool, path = step_inputs(setup, 0)[0].pool, name.split("-", 1)[1]
        step = lambda i: pool_factors(model, params(model), pool, cfg.inner_steps, cfg.inner_lr, cfg.inner, path)
    elif name == "ats-reference":
        state = State(model, opt, ReferenceATS(cfg, setup))
        step = lambda i: reference_step(setup, state, i)
    else:
        state = State(model, opt, make_method(cfg, setup))
        step = lambda i: meta_step(setup, state, i)
    block = cfg.cheap_every if name == "ats-cheap" else 1
    times = [sum(timed(dev, step, r * block + j)[1] for j in range(block)) / block
             for r in range(s["warmup"] + s["repeats"])][s["warmup"]:]
    out = {"seconds_per_iter": statistics.median(times), "peak_mb": _mem_mb(dev), "setup_mb": setup_mb,
           "times": times}
    if name == "ats":
        uniform = State(model, opt, make_method(cfg.replace(method="uniform"), setup))
        first = s["warmup"] + s["repeats"]
        parts = [ats_parts(setup, state, first + r) for r in range(s["repeats"])]
        floors = [floor_parts(setup, uniform, first + r) for r in range(s["repeats"])]
        out.update(parts=_medians(parts), floor=_medians(floors, FLOOR))
    return out


# -- parent: settings, subprocesses, report ---------------------------------------------------
def settings_from(args) -> dict:
    """Settings from the CLI namespace (absent options take DEFAULTS); bad values raise ConfigError."""
    s = {k: v if getattr(args, k, None) is None else getattr(args, k) for k, v in DEFAULTS.items()}
    s["device"] = resolve_device(getattr(args, "device", None) or "cpu").type
    s["threads"] = s["threads"] or torch.get_num_threads()
    for k, low in (("repeats", 1), ("image_size", 1), ("threads", 1), ("warmup", 0)):
        if s[k] < low:
            raise ConfigError(f"--{k.replace('_', '-')} {s[k]}: must be an integer >= {low}")
    cfg = make_config(s, "ats")
    if s["image_size"] < 2 ** cfg.max_pools:
        raise ConfigError(f"--image-size {s['image_size']}: must be >= {2 ** cfg.max_pools} ({cfg.max_pools} max-pools)")
    check_task_shape(load_images(cfg.data), cfg.ways, cfg.shots, cfg.queries, None)
    return s


def run_worker(name: str, s: dict, root: Path = ROOT) -> dict:
    """One worker in a fresh process, importing atslib from ``root`` (this tree, or a reference one)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    # a reference tree from before the package boundary keeps the benchmark at atslib/bench.py
    module = "atslib.study.bench" if (Path(root) / "atslib" / "study" / "bench.py").exists() else "atslib.bench"
    r = subprocess.run([sys.executable, "-m", module, "--worker", name, "--settings", json.dumps(s)],
                       capture_output=True, text=True, env=env, cwd=root)   # ``-m`` puts cwd first on sys.path
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        return {"error": f"exit {r.returncode}: " + " | ".join(r.stderr.strip().splitlines()[-3:])}
    return json.loads(lines[-1])


def assemble(s: dict, res: dict) -> dict:
    t = {k: r.get("seconds_per_iter") for k, r in res.items()}
    t["floor"] = res["ats"].get("floor", {}).get("total")
    fl, k = res["ats"].get("floor", {}), s["draws_per_step"]
    t["floor_configured"] = (fl["uniform_step"] + fl["pool_forward_backward"] + k * (fl["lookahead"] + fl["validation"])
                             if fl else None)
    ratio = lambda a, b: t[a] / t[b] if t[a] and t[b] else None
    ratios = {"ats_over_uniform": ratio("ats", "uniform"), "ats_over_floor": ratio("ats", "floor"),
              "ats_over_floor_configured": ratio("ats", "floor_configured"),
              "reference_over_ats": ratio("ats-reference", "ats"),
              "ats_cheap_over_uniform": ratio("ats-cheap", "uniform"),
              "factors_batched_over_loop": ratio("factors-batched", "factors-loop")}
    ops, dev = {"<=": float.__le__, ">=": float.__ge__, "<": float.__lt__}, s["device"]
    return {"device": dev, "device_name": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
            "torch_version": torch.__version__, "threads": s["threads"], "date": datetime.date.today().isoformat(),
            "settings": s, **{m: res[m] for m in METHODS},
            "parts": res["ats"].get("parts", {}), "floor": res["ats"].get("floor", {}),
            "factors": {p: res[f"factors-{p}"] for p in ("loop", "batched")}, "ratios": ratios,
            "targets": [{"ratio": k, "op": op, "target": v, "value": ratios[k],
                         "met": None if ratios[k] is None else ops[op](float(ratios[k]), v)}
                        for k, op, v in TARGETS[dev]]}


def table(rep: dict) -> str:
    s = rep["settings"]
    lines = [f"atslib bench on {rep['device_name']} (torch {rep['torch_version']}, {rep['threads']} threads), "
             + ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("device", "threads")),
             f"{'':<16}{'s/iter':>10}{'peak MB':>10}"]
    for m in WORKERS:
        r = rep[m] if m in METHODS else rep["factors"][m.split("-", 1)[1]]
        lines.append(f"{m:<16}" + (f"  error: {r['error']}" if "error" in r else
                                   f"{r['seconds_per_iter']:>10.4f}{r['peak_mb']:>10.0f}"))
    for key in ("parts", "floor"):
        lines.append(f"{key + ' (s)':<16}" + "  ".join(f"{k} {v:.4f}" for k, v in rep[key].items()))
    targets = {t["ratio"]: t for t in rep["targets"]}
    for k, v in rep["ratios"].items():
        t = targets.get(k)
        verdict = "" if t is None else f"target {t['op']} {t['target']:g}: " + (
            "n/a" if t["met"] is None else "met" if t["met"] else "NOT met")
        lines.append(f"{k:<26}{'n/a' if v is None else f'{v:.2f}':>8}   {verdict}")
    return "\n".join(lines)


def reference_tree(ref: str) -> Path:
    """A checkout of commit ``ref`` (a git worktree under build/, made once), or ``ref`` itself if it
    is a directory holding an atslib package."""
    if (Path(ref) / "atslib").is_dir():
        return Path(ref).resolve()
    sha = subprocess.run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=ROOT, capture_output=True, text=True)
    if sha.returncode != 0:
        raise ConfigError(f"--against {ref!r}: not a commit of this repository or a directory with atslib/")
    tree = ROOT / "build" / f"bench-ref-{sha.stdout.strip()[:10]}"
    if not (tree / "atslib").is_dir():
        r = subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha.stdout.strip()], cwd=ROOT,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise ConfigError(f"--against {ref!r}: git worktree add {tree} failed ({r.stderr.strip()[-200:]})")
    return tree


def against(ref: str, s: dict, rounds: int = 3, names=("uniform", "ats")) -> dict:
    """s/iter of ``names`` here and in the reference tree, alternating the order round by round (a
    machine's load drifts), with the ratio of the medians (this / reference; <= 1.05 is the target)."""
    if rounds < 1:
        raise ConfigError(f"--rounds {rounds}: must be an integer >= 1")
    tree = reference_tree(ref)
    out = {"reference": str(tree), "rounds": rounds}
    for name in names:
        times = {"this": [], "reference": []}
        for r in range(rounds):
            order = (("this", ROOT), ("reference", tree)) if r % 2 == 0 else (("reference", tree), ("this", ROOT))
            for side, root in order:
                res = run_worker(name, s, root)
                if "error" in res:
                    raise RuntimeError(f"bench --against: {name} in {root}: {res['error']}")
                times[side].append(res["seconds_per_iter"])
        med = {k: statistics.median(v) for k, v in times.items()}
        out[name] = {"this": med["this"], "reference": med["reference"], "ratio": med["this"] / med["reference"],
                     "all": times}
    return out


def main(args) -> int:
    """Validate the settings, run each worker in its own process, print the table, write --json.

    Targets missed are reported, never an error; the exit code is 1 only when a worker crashed."""
    s = settings_from(args)
    if getattr(args, "against", None):
        rep = {"settings": s, "against": against(args.against, s, 3 if args.rounds is None else args.rounds)}
        for name in ("uniform", "ats"):
            a = rep["against"][name]
            print(f"{name:8s} this {a['this'] * 1e3:8.1f} ms/iter   reference {a['reference'] * 1e3:8.1f} ms/iter   "
                  f"ratio {a['ratio']:.3f}")
        if getattr(args, "json", None):
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(rep, indent=2) + "\n")
        return 0
    res = {}
    for name in WORKERS:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        res[name] = run_worker(name, s)
    rep = assemble(s, res)
    print(table(rep))
    if getattr(args, "json", None):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rep, indent=2) + "\n")
    return 1 if any("error" in r for r in res.values()) else 0


if __name__ == "__main__":                      # the worker: python -m atslib.study.bench --worker NAME --settings JSON
    import argparse
    a = argparse.ArgumentParser(prog="python -m atslib.study.bench")
    a.add_argument("--worker", required=True, choices=WORKERS)
    a.add_argument("--settings", required=True, help="the settings as JSON")
    args = a.parse_args()
    print(json.dumps(worker(args.worker, json.loads(args.settings))), flush=True)
