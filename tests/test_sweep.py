"""Sweeps: grid expansion, resumability (finished runs skipped, a killed sweep resumes), reuse across
grids, the tables, and the process executor - on a tiny scale (the Ray executor: test_ray.py)."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from helpers import ROOT

TINY = dict(steps=4, eval_every=2, n_val_tasks=6, n_test_tasks=10, pool_size=4, meta_batch=2, val_tasks=2,
            queries=5, width=8, checkpoint_every=1, pool_log_every=1)


def write_grid(path, cells, scale=None):
    import yaml
    path.write_text(yaml.safe_dump({"name": path.stem, "scale": {"cpu": scale or TINY}, "cells": cells}))
    return path


def summaries(out):
    return {str(p.parent.relative_to(out)): json.loads(p.read_text()) for p in sorted(out.glob("*/*/summary.json"))}


NUMBERS = ("test_mean", "test_ci95", "best_val", "best_step")


def test_expand_orders_uniform_and_ats_first_and_fills_placeholders(tmp_path):
    from atslib.study.sweep import expand, load_grid
    g = write_grid(tmp_path / "g.yaml", [
        {"name": "a", "config": {"init": "{results}/pre/{shots}shot-s{seed}"}, "methods": ["spl", "ats", "uniform"],
         "seeds": [0, 1], "seeds_by_method": {"spl": [0]}}])
    specs = expand(load_grid(g), tmp_path / "res" / "g")
    assert [s.name for s in specs] == ["a/ats-s0", "a/uniform-s0", "a/ats-s1", "a/uniform-s1", "a/spl-s0"]
    assert specs[0].config["init"] == f"{(tmp_path / 'res').as_posix()}/pre/1shot-s0"
    assert specs[0].config["steps"] == 4 and specs[0].dir == tmp_path / "res" / "g" / "a" / "ats-s0"


@pytest.mark.parametrize("cells, fragment", [
    ([{"name": "a", "methods": ["nope"]}], "methods ['nope']"),
    ([{"name": "a", "methods": ["uniform"], "config": {"ways": 1}}], "--ways 1"),
    ([{"name": "a", "methods": ["uniform"], "config": {"init": "{nope}"}}], "unknown placeholder"),
    ([{"name": "a", "methods": ["uniform"]}, {"name": "a", "methods": ["ats"]}], "duplicate name"),
])
def test_bad_grids_give_one_line_and_exit_2(tmp_path, cells, fragment):
    g = write_grid(tmp_path / "g.yaml", cells)
    r = subprocess.run([sys.executable, "-m", "atslib", "sweep", str(g), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert fragment in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_grid_file_and_bad_only(tmp_path):
    from atslib.__main__ import main
    assert main(["sweep", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "o")]) == 2
    g = write_grid(tmp_path / "g.yaml", [{"name": "a", "methods": ["uniform"]}])
    assert main(["sweep", str(g), "--out", str(tmp_path / "o"), "--only", "zzz"]) == 2


def test_sweep_runs_skips_finished_runs_and_reuses_sibling_grids(tmp_path):
    from atslib.study.sweep import GridError, run_sweep
    g = write_grid(tmp_path / "g.yaml", [{"name": "c", "methods": ["uniform", "ats"], "seeds": [0, 1]}])
    out = tmp_path / "res" / "g"
    assert run_sweep(g, out, progress=False) == 0
    df = pd.read_csv(out / "summary.csv")
    assert len(df) == 4 and (df["status"] == "done").all() and df["test_mean"].between(0, 1).all()
    cells = pd.read_csv(out / "cells.csv")
    assert set(cells["method"]) == {"uniform", "ats"} and (cells["n"] == 2).all()
    mean_u = df[df.method == "uniform"]["test_mean"].mean()
    assert cells.set_index("method").loc["uniform", "mean"] == pytest.approx(mean_u)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/*/summary.json")}
    assert run_sweep(g, out, progress=False) == 0                   # nothing left to do
    assert run_sweep(g, out, progress=False, only=["ats"]) == 0     # --only: the tables still cover the grid
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/summary.json")} == mtimes
    assert len(pd.read_csv(out / "summary.csv")) == 4
    # the same folder with other options (another scale, an edited grid) is refused, not mixed
    g_other = write_grid(tmp_path / "g.yaml", [{"name": "c", "methods": ["uniform", "ats"], "seeds": [0, 1]}],
                         {**TINY, "steps": 5})
    with pytest.raises(GridError, match="finished with other options \\['steps'\\]"):
        run_sweep(g_other, out, progress=False)
    write_grid(tmp_path / "g.yaml", [{"name": "c", "methods": ["uniform", "ats"], "seeds": [0, 1]}])
    # a second grid sharing a cell copies the finished runs instead of training them again
    g2 = write_grid(tmp_path / "g2.yaml", [{"name": "d", "methods": ["uniform"], "seeds": [1]}])
    assert run_sweep(g2, tmp_path / "res" / "g2", progress=False) == 0
    reused = tmp_path / "res" / "g2" / "d" / "uniform-s1"
    assert (reused / "REUSED_FROM").read_text().strip().endswith("g/c/uniform-s1")
    assert json.loads((reused / "summary.json").read_text()) == json.loads(
        (out / "c" / "uniform-s1" / "summary.json").read_text())


def test_a_failed_run_is_recorded_counted_and_retried(tmp_path, monkeypatch):
    import atslib.study.sweep as sw
    from atslib.study.claims import progress_table
    (tmp_path / "exp").mkdir()
    g = write_grid(tmp_path / "exp" / "g.yaml", [{"name": "c", "methods": ["uniform", "ats"], "seeds": [0]}])
    out = tmp_path / "res" / "g"
    real = sw.train_one

    def flaky(config, run_dir):
        if config["method"] == "ats":
            raise FloatingPointError("non-finite validation loss at step 3")
        return real(config, run_dir)

    monkeypatch.setattr(sw, "train_one", flaky)
    assert sw.run_sweep(g, out, progress=False) == 1                # the other run still trains
    df = pd.read_csv(out / "summary.csv").set_index("method")
    assert df.loc["uniform", "status"] == "done" and df.loc["ats", "status"] == "failed"
    assert "non-finite validation loss at step 3" in (out / "c" / "ats-s0" / "FAILED").read_text()
    prog = progress_table(tmp_path / "exp", tmp_path / "res").loc["g"]
    assert (prog["runs"], prog["done"], prog["failed"], prog["pending"]) == (2, 1, 1, 0)
    monkeypatch.setattr(sw, "train_one", real)                     # the next sweep retries it
    assert sw.run_sweep(g, out, progress=False) == 0
    assert not (out / "c" / "ats-s0" / "FAILED").exists()
    assert (pd.read_csv(out / "summary.csv")["status"] == "done").all()


def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path):
    """SIGKILL a sweep in its second run; the restarted sweep keeps the first run untouched, resumes the
    second from its checkpoint, and ends with the numbers of an uninterrupted sweep."""
    cells = [{"name": "c", "methods": ["uniform"], "seeds": [0, 1]}]
    scale = {**TINY, "steps": 30, "eval_every": 5}
    g = write_grid(tmp_path / "g.yaml", cells, scale)
    from atslib.study.sweep import run_sweep
    run_sweep(g, tmp_path / "ref" / "g", progress=False)
    ref = summaries(tmp_path / "ref" / "g")
    out = tmp_path / "res" / "g"
    cmd = [sys.executable, "-m", "atslib", "sweep", str(g), "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = out / "c" / "uniform-s1" / "checkpoint.pt"
    deadline = time.time() + 300
    while not second.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    first = out / "c" / "uniform-s0" / "summary.json"
    assert first.is_file() and not (out / "c" / "uniform-s1" / "summary.json").exists()
    t_first = first.stat().st_mtime_ns
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert first.stat().st_mtime_ns == t_first
    got = summaries(out)
    assert got.keys() == ref.keys()
    for k in ref:
        assert {n: got[k][n] for n in NUMBERS} == {n: ref[k][n] for n in NUMBERS}


def test_process_executor(tmp_path):
    from atslib.study.sweep import run_sweep
    g = write_grid(tmp_path / "g.yaml", [{"name": "c", "methods": ["uniform", "spl"], "seeds": [0]}])
    assert run_sweep(g, tmp_path / "p" / "g", executor="process", workers=2, progress=False) == 0
    run_sweep(g, tmp_path / "l" / "g", progress=False)
    a, b = summaries(tmp_path / "p" / "g"), summaries(tmp_path / "l" / "g")
    assert a.keys() == b.keys() and len(a) == 2
    for k in a:
        assert a[k]["test_mean"] == b[k]["test_mean"]


@pytest.mark.parametrize("scale", ["cpu", "gpu"])
def test_committed_grids_expand_to_valid_configs(scale):
    """Every grid in experiments/ expands at both scales; cells shared between grids have identical
    configs (so a sweep reuses them instead of training twice); every method shares one scale."""
    from atslib.study.sweep import _canon, expand, load_grid
    grids = {p.stem: expand(load_grid(p), ROOT / "results" / p.stem, scale)
             for p in sorted((ROOT / "experiments").glob("*.yaml"))}
    assert {"pretrain", "noisy", "noise-ratio", "budget", "ablations", "molecules", "beyond"} <= set(grids)
    canon = {g: {_canon(s.config) for s in specs} for g, specs in grids.items()}
    noisy_06 = {c for c in canon["noise-ratio"] if '"noise_ratio": 0.6' in c and '"flip_prob": 0.8' in c}
    assert noisy_06 and noisy_06 <= canon["noisy"]                    # ratio 0.6 reuses the noisy grid
    shared = {_canon(s.config) for s in grids["ablations"] if s.method in ("ats", "rank-sim-loss") and "drug" not in s.cell}
    assert shared <= canon["noisy"]
    drug = {_canon(s.config) for s in grids["ablations"] if s.method == "ats" and s.cell == "drug-eta4"}
    assert drug <= canon["molecules"]
    for g, specs in grids.items():                                   # one scale per cell for every method
        for cell in {s.cell for s in specs}:
            keys = {(s.config["steps"], s.config["pool_size"], s.config["meta_batch"], s.config["queries"],
                     s.config["val_tasks"], s.config["init"] is None) for s in specs if s.cell == cell}
            assert len(keys) == 1, (g, cell, keys)
    n = sum(len(v) for v in canon.values()) - len(set().union(*canon.values()))
    assert n > 0


def test_only_filters_cells_and_methods_together(tmp_path):
    from atslib.study.sweep import GridError, expand, load_grid, select
    g = write_grid(tmp_path / "g.yaml", [{"name": "a", "methods": ["uniform", "ats", "spl"]},
                                         {"name": "b", "methods": ["uniform", "ats"]}])
    specs = expand(load_grid(g), tmp_path / "o")
    assert {s.name for s in select(specs, ["ats"])} == {"a/ats-s0", "b/ats-s0"}
    assert {s.name for s in select(specs, ["a"])} == {"a/uniform-s0", "a/ats-s0", "a/spl-s0"}
    assert {s.name for s in select(specs, ["b", "ats", "spl"])} == {"b/ats-s0"}
    with pytest.raises(GridError, match="allowed: a, ats, b, spl, uniform"):
        select(specs, ["c"])


def test_seeds_filter_runs_the_first_seeds_of_every_method_first(tmp_path):
    from atslib.study.sweep import GridError, expand, load_grid, select_seeds
    g = write_grid(tmp_path / "g.yaml", [{"name": "a", "methods": ["uniform", "ats", "spl"], "seeds": [0, 1],
                                          "seeds_by_method": {"uniform": [0, 1, 2, 3], "ats": [0, 1, 2, 3]}}])
    specs = expand(load_grid(g), tmp_path / "o")
    assert len(specs) == 10
    first = select_seeds(specs, [0, 1])
    assert sorted(s.name for s in first) == sorted(f"a/{m}-s{i}" for m in ("uniform", "ats", "spl") for i in (0, 1))
    with pytest.raises(GridError, match=r"--seeds \[7\].*allowed: 0, 1, 2, 3"):
        select_seeds(specs, [7])
    r = subprocess.run([sys.executable, "-m", "atslib", "sweep", str(g), "--out", str(tmp_path / "o"), "--seeds", "9",
                        "--quiet"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--seeds [9]" in r.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_killed_process_sweep_leaves_no_worker_training(tmp_path):
    """SIGKILL a process-executor sweep mid-run: its workers end with it (none keeps training unseen)."""
    g = write_grid(tmp_path / "g.yaml", [{"name": "c", "methods": ["uniform", "spl"], "seeds": [0]}],
                   scale={**TINY, "steps": 400, "checkpoint_every": 50})
    p = subprocess.Popen([sys.executable, "-m", "atslib", "sweep", str(g), "--out", str(tmp_path / "o"),
                          "--executor", "process", "--workers", "2", "--quiet"], cwd=ROOT,
                         env={**os.environ, "TQDM_DISABLE": "1"})
    workers: set[int] = set()
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "o").glob("c/*/checkpoint.pt")):
        time.sleep(0.5)
    out = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
    workers = {int(x) for x in out}
    assert workers, "no worker process seen"
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(os.path.exists(f"/proc/{w}") and
                                         "Z" not in open(f"/proc/{w}/stat").read().split()[2] for w in workers):
        time.sleep(0.3)
    alive = [w for w in workers if os.path.exists(f"/proc/{w}") and "Z" not in open(f"/proc/{w}/stat").read().split()[2]]
    assert not alive, f"workers {alive} still running after their sweep was killed"
