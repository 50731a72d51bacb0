"""Populations: R runs in lockstep give, run by run, the records and summaries of R single runs.

The equivalence runs in float64 (the default dtype set for the test), where the batched kernels'
rounding is far below 1e-5 and no accuracy flips on a tie; drawn indices must be identical.
"""
import json
import re
import subprocess
import sys
import threading
import time
import warnings

import pandas as pd
import pytest
import torch
from conftest import tiny_config
from helpers import ROOT

SKIP = ("seconds", "wall")


def compare_runs(single, member, rtol=1e-5):
    """Differences between a single run and the same run trained in a population."""
    diffs = []
    a, b = single.history_frame(), member.history_frame()
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for col in a.columns:
        if col in SKIP:
            continue
        x, y = a[col].to_numpy(float), b[col].to_numpy(float)
        bad = ~((abs(x - y) <= rtol * abs(x) + 1e-12) | (pd.isna(x) & pd.isna(y)))
        diffs += [f"history {col} step {int(a['step'][i])}: {x[i]} vs {y[i]}" for i in bad.nonzero()[0]]
    pa, pb = single.pool_frame(), member.pool_frame()
    if len(pa):
        assert (pa["drawn"] == pb["drawn"]).all() and (pa["task"] == pb["task"]).all(), "drawn tasks differ"
        for col in ("prob", "loss", "sim_cos", "sim_dot", "score"):
            x, y = pa[col].to_numpy(float), pb[col].to_numpy(float)
            if not ((abs(x - y) <= rtol * abs(x) + 1e-12)).all():
                diffs.append(f"pool {col} differs")
    for k, v in single.summary.items():
        if isinstance(v, float) and k not in ("wall_seconds", "test_seconds") and abs(v - member.summary[k]) > rtol * abs(v) + 1e-12:
            diffs.append(f"summary {k}: {v} vs {member.summary[k]}")
    return diffs


BATCHED = {"uniform": {"update", "evaluate"}, "spl": {"update", "evaluate"}, "gcp": {"update", "evaluate"},
           "ats": {"pool_factors", "task_grad", "evaluate"}}


def population_vs_singles(cfgs):
    from atslib.population.lockstep import Lockstep
    from atslib.loop import meta_train
    from atslib.population import train_population
    lock = Lockstep()
    members = train_population(cfgs, lockstep=lock)
    assert all(m.ok for m in members), [repr(m.error) for m in members]
    assert BATCHED[cfgs[0].method] <= set(lock.batched), (lock.batched, lock.direct)   # the batched paths ran
    for cfg, m in zip(cfgs, members):
        single = meta_train(cfg)
        assert compare_runs(single, m.run) == [], cfg.seed


FOUR = dict(steps=6, eval_every=3, noise_ratio=0.6, pool_size=6, queries=5, n_val_tasks=8, n_test_tasks=8)


@pytest.mark.parametrize("method", ["uniform", "ats", "spl", "gcp"])
def test_a_population_of_four_seeds_equals_four_single_runs(float64, method):
    population_vs_singles([tiny_config(method=method, seed=s, **FOUR) for s in range(4)])


@pytest.mark.parametrize("how", ["grouped", "vmap"])
def test_the_batched_backbones_give_the_same_runs(float64, monkeypatch, how):
    """The GPU paths (one grouped convolution / vmap over runs), run here on the CPU."""
    from atslib.population import batched
    monkeypatch.setattr(batched, "FEATURES", how)
    population_vs_singles([tiny_config(method="ats", seed=s, **FOUR) for s in range(2)])


def test_a_molecule_population_equals_single_runs(float64, monkeypatch):
    from atslib.population import batched
    monkeypatch.setattr(batched, "FEATURES", "vmap")
    population_vs_singles([tiny_config(method="ats", dataset="molecules", noise_scale=4.0, noise_ratio=0.5, seed=s,
                                       steps=4, eval_every=2, n_val_tasks=4, n_test_tasks=4, width=16,
                                       lookahead_lr=0.01) for s in range(2)])


def test_runs_may_differ_in_numeric_settings_and_resume(float64, tmp_path):
    """Different noise ratios and learning rates in one population; a population resumed from its
    checkpoints finishes with the numbers of an uninterrupted one."""
    from atslib.population import train_population
    cfgs = [tiny_config(method="ats", seed=s, outer_lr=lr, **{**FOUR, "noise_ratio": nr})
            for s, nr, lr in ((0, 0.2, 1e-3), (1, 0.8, 3e-3))]
    whole = train_population(cfgs, [tmp_path / "a0", tmp_path / "a1"])
    half = [c.replace(steps=3) for c in cfgs]
    outs = [tmp_path / "b0", tmp_path / "b1"]
    train_population(half, outs)
    for o, c in zip(outs, cfgs):           # lengthen the saved runs, as a resumed longer run would be
        meta = json.loads((o / "config.json").read_text())
        meta["config"]["steps"] = c.steps
        (o / "config.json").write_text(json.dumps(meta))
        (o / "summary.json").unlink()
    resumed = train_population(cfgs, outs, resume=True)
    for w, r in zip(whole, resumed):
        assert r.ok and w.run.summary["test_mean"] == pytest.approx(r.run.summary["test_mean"], rel=1e-9)
        assert w.run.summary["best_val"] == pytest.approx(r.run.summary["best_val"], rel=1e-9)


def test_runs_of_different_shapes_cannot_share_a_population():
    from atslib.config import ConfigError
    from atslib.population import group, train_population
    a, b, c = tiny_config(seed=0), tiny_config(seed=1), tiny_config(seed=0, shots=2)
    assert group([a, b, c]) == [[0, 1], [2]]
    assert group([a, b, c], max_size=1) == [[0], [1], [2]]
    with pytest.raises(ConfigError, match="shots"):
        train_population([a, c])


def test_a_failing_run_stops_alone(request):
    """Lockstep: a job that raises ends alone; the others' batched calls go on and get their own results."""
    from atslib.population.lockstep import BATCHED, Lockstep, batchable, register

    @batchable("test-square")
    def square(x):
        return x * x

    calls = []

    def batched_square(reqs):
        calls.append(len(reqs))
        return [r.args[0] ** 2 for r in reqs]

    register("test-square", lambda req: "k", batched_square)
    request.addfinalizer(lambda: BATCHED.pop("test-square", None))
    seen = {i: [] for i in range(3)}

    def job(i):
        def go():
            for step in range(4):
                if i == 1 and step == 2:
                    raise FloatingPointError("run 1 diverged")
                seen[i].append(square(10 * i + step))
            return threading.current_thread().name
        return go

    results = Lockstep().run([job(i) for i in range(3)])
    assert [ok for ok, _ in results] == [True, False, True]
    assert isinstance(results[1][1], FloatingPointError)
    assert seen[0] == [0, 1, 4, 9] and seen[2] == [400, 441, 484, 529] and seen[1] == [100, 121]
    assert calls == [3, 3, 2, 2]              # the failed run leaves the batch; the others keep batching
    assert square(3) == 9                     # outside a population: a plain call


def test_run_features_paths_agree(float64, images):
    from atslib.population.batched import run_features, stacked
    from conftest import tiny_model
    models = [tiny_model(images, seed=s) for s in range(3)]
    P = stacked([dict(m.named_parameters()) for m in models])
    x = torch.rand(3, 7, 1, 28, 28)
    want = torch.stack([m.features(dict(m.named_parameters()), x[r]) for r, m in enumerate(models)])
    for how in ("loop", "grouped", "vmap"):
        got = run_features(models[0], P, x, how)
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12), how
        g = torch.autograd.grad(got.square().sum(), [P["conv0.weight"]])[0]
        g_want = torch.autograd.grad(models[1].features(dict(models[1].named_parameters()), x[1]).square().sum(),
                                     [models[1].conv0.weight])[0]
        assert torch.allclose(g[1], g_want, rtol=1e-8, atol=1e-12), how
    with pytest.raises(ValueError, match="allowed"):
        run_features(models[0], P, x, "magic")


def test_train_seeds_writes_ordinary_run_directories(tmp_path):
    from atslib.study.contract import check_run
    out = tmp_path / "pop"
    args = ["--method", "ats", "--steps", "3", "--eval-every", "3", "--n-val-tasks", "4", "--n-test-tasks", "6",
            "--pool-size", "4", "--queries", "5", "--width", "8", "--noise-ratio", "0.5", "--pool-log-every", "1"]
    r = subprocess.run([sys.executable, "-m", "atslib", "train", *args, "--seeds", "0,1", "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert [row["seed"] for row in rows] == [0, 1]
    for s in (0, 1):
        d = out / f"ats-s{s}"
        assert check_run(d) == []
        assert json.loads((d / "summary.json").read_text())["seed"] == s
    bad = subprocess.run([sys.executable, "-m", "atslib", "train", *args, "--seeds", "0,0", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "--seeds '0,0'" in bad.stderr and not (tmp_path / "x").exists()
    no_init = subprocess.run([sys.executable, "-m", "atslib", "train", *args, "--seeds", "0,1", "--init",
                              str(out / "ats-s{seed}x"), "--out", str(out), "--overwrite"],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert no_init.returncode == 2 and "ats-s0x: no best.pt" in no_init.stderr
    assert check_run(out / "ats-s0") == []          # --overwrite deleted nothing before the check


def test_sweep_population_executor_matches_the_local_one(tmp_path):
    from test_sweep import summaries, write_grid

    from atslib.study.sweep import run_sweep
    g = write_grid(tmp_path / "g.yaml", [{"name": "c", "config": {"noise_ratio": 0.5}, "methods": ["uniform", "ats"],
                                          "seeds": [0, 1]}])
    assert run_sweep(g, tmp_path / "p" / "g", executor="population", progress=False) == 0
    run_sweep(g, tmp_path / "l" / "g", progress=False)
    a, b = summaries(tmp_path / "p" / "g"), summaries(tmp_path / "l" / "g")
    assert a.keys() == b.keys() and len(a) == 4
    for k in a:
        assert a[k]["test_mean"] == pytest.approx(b[k]["test_mean"], abs=0.02), k


def test_a_failing_batched_path_falls_back_and_an_abort_stops_every_run(request):
    """A batched implementation that raises (or returns too few results) is replaced by the plain
    calls; a key that raises sends its call alone; an exception in the main thread (Ctrl-C) stops
    every run's thread instead of leaving it waiting."""
    from atslib.population.lockstep import BATCHED, Lockstep, PopulationAborted, batchable, register

    @batchable("test-cube")
    def cube(x):
        return x ** 3

    request.addfinalizer(lambda: BATCHED.pop("test-cube", None))
    for key, run, why in ((lambda req: "k", lambda reqs: 1 / 0, "batched path of 'test-cube' failed \\(ZeroDivisionError"),
                          (lambda req: "k", lambda reqs: [0], "batched path of 'test-cube' failed \\(RuntimeError: 1 results for 3 calls"),
                          (lambda req: 1 / 0, lambda reqs: [0] * len(reqs), "batching key of 'test-cube' failed \\(ZeroDivisionError")):
        register("test-cube", key, run)
        lock = Lockstep()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = lock.run([lambda i=i: [cube(i + t) for t in range(3)] for i in range(3)])
        assert [v for _, v in results] == [[(i + t) ** 3 for t in range(3)] for i in range(3)]
        assert sum(lock.direct.values()) == 9 and not lock.batched
        # the fallback is logged, once per kind although it happened at every call
        assert [w.category for w in caught] == [RuntimeWarning], [str(w.message) for w in caught]
        assert re.search(f"{why}.*one run at a time", str(caught[0].message)), str(caught[0].message)
        assert lock.fallbacks["test-cube"] >= 3

    lock = Lockstep()
    lock.execute = lambda batch: (_ for _ in ()).throw(KeyboardInterrupt())     # Ctrl-C while serving
    before = threading.active_count()
    errors = []

    def job(i):
        try:
            return cube(i)
        except PopulationAborted as e:
            errors.append(e)
            raise

    with pytest.raises(KeyboardInterrupt):
        lock.run([lambda i=i: job(i) for i in range(3)])
    assert isinstance(lock.aborted, KeyboardInterrupt) and len(errors) == 3
    assert threading.active_count() <= before          # every run's thread has ended


def test_a_run_that_cannot_be_built_fails_alone(tmp_path):
    """A run directory holding another config's checkpoint fails its own run; the others train."""
    from atslib.population import train_population
    a = tiny_config(seed=0, steps=2, eval_every=2)
    other = tiny_config(seed=1, steps=2, eval_every=2, meta_batch=1)
    train_population([other], [tmp_path / "r1"])
    (tmp_path / "r1" / "summary.json").unlink()
    b = tiny_config(seed=1, steps=2, eval_every=2)
    members = train_population([a, b], [tmp_path / "r0", tmp_path / "r1"], resume=True)
    assert members[0].ok and members[0].run.summary["steps_done"] == 2
    assert not members[1].ok and members[1].run is None and "differ" in str(members[1].error)


def test_a_run_that_diverges_stops_alone_and_the_others_are_unchanged(tmp_path):
    """Two runs from two starts, one of them with a NaN head: that run stops with its own
    NonFiniteError (on_nonfinite="stop"); the other gives the numbers it gives alone."""
    from atslib.guards import NonFiniteError
    from atslib.loop import meta_train
    from atslib.population import train_population
    from atslib.store import load_torch, save_torch
    start = tiny_config(seed=0, steps=1)
    train_population([start], [tmp_path / "good"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_bytes((tmp_path / "good" / "config.json").read_bytes())
    best = load_torch(tmp_path / "good" / "best.pt")
    best["model"]["head.weight"] = torch.full_like(best["model"]["head.weight"], float("nan"))
    save_torch(bad / "best.pt", best)
    cfgs = [tiny_config(method="ats", seed=s, steps=4, noise_ratio=0.5, init=str(d), validate_start=False)
            for s, d in ((0, tmp_path / "good"), (1, bad))]
    members = train_population(cfgs)
    assert members[0].ok and not members[1].ok and isinstance(members[1].error, NonFiniteError)
    alone = meta_train(cfgs[0])
    assert members[0].run.summary["test_mean"] == pytest.approx(alone.summary["test_mean"], rel=1e-5)
    assert list(members[0].run.history_frame()["train_loss"]) == pytest.approx(
        list(alone.history_frame()["train_loss"]), rel=1e-5)


def test_a_stalled_run_or_a_stalled_batch_raises_a_timeout_naming_it(request):
    """Every wait is bounded: the main thread waiting for a run that never reaches its next call
    stops the population with an error naming that run; a run whose call the main thread does not
    serve in time fails with an error naming what the main thread is serving."""
    from atslib.population.lockstep import BATCHED, Lockstep, PopulationAborted, PopulationTimeout, batchable, register

    @batchable("test-slow")
    def slow(x):
        return x

    release = threading.Event()
    request.addfinalizer(release.set)
    request.addfinalizer(lambda: BATCHED.pop("test-slow", None))
    register("test-slow", lambda req: "k", lambda reqs: (release.wait(2.0), [r.args[0] for r in reqs])[1])
    errors = []

    def job(i):
        try:
            if i == 1:
                release.wait(5.0)            # stuck outside the lockstep
            return slow(i)
        except PopulationAborted as e:
            errors.append(e)
            raise

    t0 = time.perf_counter()
    with pytest.raises(PopulationTimeout, match=r"waited 0.5 s for the runs.*runs \[1\] have not reached.*run 0: test-slow"):
        Lockstep(timeout=0.5).run([lambda i=i: job(i) for i in range(2)])
    assert len(errors) == 1 and time.perf_counter() - t0 < 3
    release.set()

    release.clear()                           # now the batched call itself hangs (2 s) past the runs' bound (1 s)
    results = Lockstep(timeout=0.5).run([lambda i=i: slow(i) for i in range(2)])
    assert [ok for ok, _ in results] == [False, False]
    for i, (_, e) in enumerate(results):
        assert isinstance(e, PopulationTimeout)
        assert re.search(rf"run {i}: its test-slow call was not served within 1 s \(the main thread is serving "
                         r"test-slow for runs \[0, 1\]\)", str(e)), str(e)


def test_the_callers_grad_inference_and_autocast_modes_reach_the_batched_path(request):
    """torch's modes are thread-local: the main thread serves a batch under its callers' modes,
    and calls made under different modes are not batched together."""
    from atslib.population.lockstep import BATCHED, Lockstep, batchable, register

    def modes():
        return (torch.is_grad_enabled(), torch.is_inference_mode_enabled(), torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu"))

    @batchable("test-modes")
    def probe(x):
        return modes()

    request.addfinalizer(lambda: BATCHED.pop("test-modes", None))
    register("test-modes", lambda req: "k", lambda reqs: [("batched", modes()) for _ in reqs])

    def job(i):
        out = [probe(i)]
        with torch.inference_mode():
            out.append(probe(i))
        with torch.no_grad():
            out.append(probe(i))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out.append(probe(i))
        if i == 0:                             # different modes in one round: each run alone, in its own thread
            with torch.inference_mode():
                out.append(probe(i))
        else:
            out.append(probe(i))
        return out

    lock = Lockstep()
    results = lock.run([lambda i=i: job(i) for i in range(2)])
    want = [("batched", (True, False, False)), ("batched", (False, True, False)), ("batched", (False, False, False)),
            ("batched", (True, False, torch.bfloat16))]
    assert results[0] == (True, want + [(False, True, False)])
    assert results[1] == (True, want + [(True, False, False)])
    assert lock.batched["test-modes"] == 8 and lock.direct["test-modes"] == 2


def test_each_optimizer_steps_in_its_own_runs_thread():
    """Batched or not, theta's Adam of each run steps only in that run's thread, never in the
    main thread that serves the batches."""
    from atslib.population import train_population
    from atslib.population.lockstep import Lockstep
    steps = {}

    def prepare(i, run):
        run.opt.register_step_pre_hook(lambda opt, args, kw, i=i: steps.setdefault(i, set()).add(threading.get_ident()))
        return ()

    for method in ("uniform", "ats"):
        steps.clear()
        lock = Lockstep()
        members = train_population([tiny_config(method=method, seed=s, steps=3, eval_every=3) for s in range(2)],
                                   lockstep=lock, prepare=prepare)
        assert all(m.ok for m in members)
        assert sorted(steps) == [0, 1] and all(len(t) == 1 for t in steps.values()), steps
        assert threading.get_ident() not in set().union(*steps.values()) and steps[0] != steps[1]
        assert lock.batched["update" if method == "uniform" else "task_grad"] > 0


def test_the_substitution_reaches_every_binding_in_atslib_and_is_undone():
    """The core stays plain: only while a population runs are its model maths (and meta_step)
    replaced, wherever an atslib module binds them; afterwards every binding is the plain function."""
    import atslib.ats
    import atslib.baselines
    import atslib.loop
    from atslib import features, maml, step
    from atslib.population.lockstep import SEAMS, TICK, Lockstep
    plain = {id(getattr(m, n)): getattr(m, n) for m, n in [*SEAMS.values(), TICK]}

    def bindings():
        out = []
        for name, mod in list(sys.modules.items()):
            if mod is not None and name.startswith("atslib") and not name.startswith("atslib.population"):
                out += [(name, k, v) for k, v in vars(mod).items() if getattr(v, "plain", None) is not None
                        or plain.get(id(v)) is v]
        return out

    before = bindings()
    assert before and all(plain.get(id(v)) is v for _, _, v in before)
    inside = Lockstep().run([lambda: bindings()])[0][1]
    assert {(n, k) for n, k, _ in inside} == {(n, k) for n, k, _ in before}
    assert all(getattr(v, "plain", None) is not None and plain.get(id(v.plain)) is v.plain for _, _, v in inside)
    for mod, name in (("atslib.baselines", "update"), ("atslib.ats", "update"), ("atslib.loop", "meta_step"),
                      ("atslib.step", "pool_factors"), ("atslib.step", "task_grad"), ("atslib.maml", "evaluate")):
        assert (mod, name) in {(n, k) for n, k, _ in inside}
    assert bindings() == before and step.update is plain[id(step.update)]
    assert maml.evaluate.__module__ == "atslib.maml" and not hasattr(features.pool_factors, "plain")
