"""Sweeps on Ray (atslib.study.cluster), as a cluster user meets them: a fresh local Ray that never joins
another one, a two-node cluster on this machine without a shared working folder where a node and
then the driver are killed mid-run and the runs resume from their checkpoints, and one-line errors
(exit 2, bounded time) for a wrong address and for runs that no node can hold.

The test cluster is started with ``ray start --block`` in its own temporary folder and on its own
ports, and stopped by its process groups (``ray stop`` would stop every Ray on the machine)."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import ROOT

ray = pytest.importorskip("ray")
RAY = str(Path(sys.executable).with_name("ray"))
TINY = dict(steps=4, eval_every=2, n_val_tasks=6, n_test_tasks=10, pool_size=4, meta_batch=2, val_tasks=2,
            queries=5, width=8, checkpoint_every=1, pool_log_every=1)
NUMBERS = ("test_mean", "test_ci95", "best_val", "best_step", "steps_done")


def write_grid(path, cells, scale=None):
    import yaml
    path.write_text(yaml.safe_dump({"name": path.stem, "scale": {"cpu": scale or TINY}, "cells": cells}))
    return path


def summaries(out):
    return {str(p.parent.relative_to(out)): json.loads(p.read_text()) for p in sorted(out.glob("*/*/summary.json"))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(p: subprocess.Popen, kill: bool = False, wait: float = 20) -> None:
    """Stop a `ray start --block` we started (SIGTERM: it stops its node's processes) and then whatever
    is left of its process group; ``kill``: SIGKILL the whole node at once (a node that dies)."""
    if p.poll() is None and not kill:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    p.wait(10)


def _start_node(args, log: Path, env) -> subprocess.Popen:
    p = subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args], stdout=log.open("w"),
                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline and p.poll() is None and "Ray runtime started" not in log.read_text():
        time.sleep(0.3)
    if "Ray runtime started" not in log.read_text():
        _stop(p)
        pytest.fail(f"ray start {' '.join(args)} did not start:\n{log.read_text()[-2000:]}")
    return p


@pytest.fixture(scope="module")
def cluster():
    """A head node and a worker node on this machine, one CPU each, on ports of their own."""
    tmp = tempfile.mkdtemp(prefix="atsray", dir="/tmp")          # short: Ray's socket paths must fit
    work = Path(tmp) / "w"                     # the workers' temporary folders (a killed run leaves its own)
    work.mkdir()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TMPDIR": str(work)}
    if (Path.home() / ".ray" / "auth_token").is_file() or os.environ.get("RAY_AUTH_TOKEN"):
        env["RAY_AUTH_MODE"] = "token"         # what `ray start --head` turns on once a token exists
    port = free_port()
    nodes = {}
    try:
        nodes["head"] = _start_node(["--head", "--port", str(port), "--temp-dir", tmp, "--num-cpus", "1",
                                     "--include-dashboard", "false", "--dashboard-port", str(free_port()),
                                     "--dashboard-agent-listen-port", str(free_port())], Path(tmp) / "head.log", env)
        nodes["worker"] = _start_node(["--address", f"127.0.0.1:{port}", "--num-cpus", "1",
                                       "--dashboard-agent-listen-port", str(free_port())],
                                      Path(tmp) / "worker.log", env)
        yield {"address": f"127.0.0.1:{port}", "nodes": nodes, "env": env, "tmp": tmp}
    finally:
        for p in reversed(list(nodes.values())):
            _stop(p)
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


def sweep_cmd(grid, out, *extra):
    return [sys.executable, "-m", "atslib", "sweep", str(grid), "--out", str(out), "--executor", "ray", "--quiet",
            *extra]


def run_cli(args, timeout=120, env=None):
    t0 = time.time()
    r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                       env={**os.environ, "TQDM_DISABLE": "1", **(env or {})})
    return r, time.time() - t0


class Reader:
    """A driver started in the background; its stderr lines collected as they come."""

    def __init__(self, args):
        self.lines: list[str] = []
        self.p = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "TQDM_DISABLE": "1"})
        self.t = threading.Thread(target=lambda: self.lines.extend(iter(self.p.stderr.readline, "")), daemon=True)
        self.t.start()

    def wait_for(self, pred, what, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline and self.p.poll() is None:
            if pred():
                return
            time.sleep(0.05)
        if not pred():
            self.p.kill()
            pytest.fail(f"{what}: not seen within {timeout} s; driver said:\n" + "".join(self.lines)[-3000:])


# -- errors: one line, exit 2, bounded time --------------------------------------------------------
def test_a_wrong_address_is_one_line_and_exit_2_within_the_bound(tmp_path):
    g = write_grid(tmp_path / "g.yaml", [{"name": "c", "methods": ["uniform"]}])
    port = free_port()                                        # nothing listens there once freed
    r, dt = run_cli(sweep_cmd(g, tmp_path / "o", "--address", f"127.0.0.1:{port}"), timeout=60)
    assert r.returncode == 2, r.stderr
    assert f"--address 127.0.0.1:{port}" in r.stderr and "allowed:" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert dt < 30 and not (tmp_path / "o").exists()
    # something listens but is not Ray: Ray itself would retry for minutes; the sweep gives up in time
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen(8)
        port = s.getsockname()[1]
        r, dt = run_cli(sweep_cmd(g, tmp_path / "o", "--address", f"127.0.0.1:{port}"), timeout=60,
                        env={"ATSLIB_RAY_CONNECT_TIMEOUT": "6"})
    assert r.returncode == 2, r.stderr
    assert "no Ray answered within 6 s" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert dt < 30


@pytest.mark.parametrize("args, fragment", [
    (["--num-cpus", "4096"], "--num-cpus 4096"),
    (["--address", "nohost"], "--address 'nohost': not HOST:PORT"),
    (["--workers", "0"], "--workers 0"),
])
def test_requests_that_cannot_run_are_refused_at_once(tmp_path, args, fragment):
    g = write_grid(tmp_path / "g.yaml", [{"name": "c", "methods": ["uniform"]}])
    r, dt = run_cli(sweep_cmd(g, tmp_path / "o", *args), timeout=60)
    assert r.returncode == 2 and fragment in r.stderr and "allowed" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and dt < 20 and not (tmp_path / "o").exists()


def test_workers_means_the_most_runs_at_once_or_a_clear_error(tmp_path):
    from atslib.study.sweep import GridError, run_sweep
    g = write_grid(tmp_path / "g.yaml", [{"name": "c", "methods": ["uniform"]}])
    with pytest.raises(GridError, match="--workers 2: the local executor runs one run at a time"):
        run_sweep(g, tmp_path / "o", workers=2, progress=False)
    with pytest.raises(GridError, match="--address: only for --executor ray"):
        run_sweep(g, tmp_path / "o", executor="process", address="auto", progress=False)
    assert not (tmp_path / "o").exists()


# -- a local Ray (while another Ray runs on the machine) -------------------------------------------
@pytest.fixture
def ray_tmpdir(monkeypatch):
    """A local Ray's session folder of its own (short: Ray's socket paths must fit), removed after."""
    import shutil
    short = tempfile.mkdtemp(prefix="atsray", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", short)
    yield Path(short)
    shutil.rmtree(short, ignore_errors=True)


def test_local_ray_is_fresh_even_beside_another_cluster_and_matches_local(tmp_path, cluster, capfd, ray_tmpdir):
    """No --address: a Ray of its own (address="local"), not the test cluster that runs meanwhile;
    --workers 1 runs one at a time; results equal --executor local's; a run that raises is reported
    with its own error, not Ray's wrapper."""
    from atslib.study.sweep import run_sweep
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "best.pt").write_text("not a checkpoint")
    bad = {"name": "b", "methods": ["uniform"], "config": {"init": str(tmp_path / "bad")}}
    g = write_grid(tmp_path / "g.yaml", [{"name": "c", "methods": ["uniform", "ats"], "seeds": [0]}, bad])
    auth_mode = os.environ.get("RAY_AUTH_MODE")
    assert run_sweep(g, tmp_path / "r" / "g", executor="ray", workers=1, progress=False) == 1
    failed = (tmp_path / "r" / "g" / "b" / "uniform-s0" / "FAILED").read_text()
    assert failed.startswith("RunError: ") and "not a run directory" in failed and "ray::" not in failed, failed
    err = capfd.readouterr().err
    assert "ray: a local Ray started for this sweep: 1 node," in err
    assert "up to 1 at once (--workers)" in err and "at most 1 run ran at once" in err
    assert not ray.is_initialized() and os.environ.get("RAY_AUTH_MODE") == auth_mode    # the sweep cleaned up
    status = pd.read_csv(tmp_path / "r" / "g" / "summary.csv").set_index("run")["status"].to_dict()
    assert status == {"c/uniform-s0": "done", "c/ats-s0": "done", "b/uniform-s0": "failed"}
    assert list(ray_tmpdir.glob("ray/session_*"))                   # the local Ray lived in the test's folder
    assert run_sweep(g, tmp_path / "l" / "g", progress=False) == 1
    a, b = summaries(tmp_path / "r" / "g"), summaries(tmp_path / "l" / "g")
    assert a.keys() == b.keys() and len(a) == 2
    for k in a:
        assert {n: a[k][n] for n in NUMBERS} == {n: b[k][n] for n in NUMBERS}


def test_populations_as_ray_tasks_without_a_shared_folder_match_local(tmp_path, cluster, capfd):
    """--populations: one Ray task per population of compatible runs (here 2: the four uniform runs
    of both cells, whose configs differ only in --init, and the two ats runs), trained in lockstep in
    worker folders of their own; the same summaries as --executor local; the runs that cannot start
    (a bad --init) fail alone, with their own error."""
    from atslib.study.sweep import run_sweep
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "best.pt").write_text("not a checkpoint")
    bad = {"name": "b", "methods": ["uniform"], "seeds": [0, 1], "config": {"init": str(tmp_path / "bad")}}
    g = write_grid(tmp_path / "g.yaml", [{"name": "c", "methods": ["uniform", "ats"], "seeds": [0, 1]}, bad])
    out = tmp_path / "r" / "g"
    assert run_sweep(g, out, executor="ray", address=cluster["address"], populations=True, shared_fs=False,
                     progress=False) == 1
    assert "each population (6 runs in 2)" in capfd.readouterr().err
    failed = (out / "b" / "uniform-s1" / "FAILED").read_text()
    assert failed.startswith("RunError: ") and "ray::" not in failed, failed
    status = pd.read_csv(out / "summary.csv").set_index("run")["status"].to_dict()
    assert [k for k, v in status.items() if v != "done"] == ["b/uniform-s0", "b/uniform-s1"]
    run_sweep(g, tmp_path / "l" / "g", progress=False)
    a, b = summaries(out), summaries(tmp_path / "l" / "g")
    assert a.keys() == b.keys() and len(a) == 4
    for k in a:
        assert {n: a[k][n] for n in NUMBERS} == pytest.approx({n: b[k][n] for n in NUMBERS}, rel=1e-5), k
    with pytest.raises(Exception, match="--populations: only for --executor ray"):
        run_sweep(g, tmp_path / "x" / "g", populations=True, progress=False)


# -- two nodes without a shared folder: a node dies, then the driver -----------------------------------
def test_two_nodes_without_shared_folder_resume_after_a_node_and_the_driver_die(tmp_path, cluster):
    """Workers train in folders of their own (--no-shared-fs) and send checkpoints to the driver.
    Kill the worker node mid-run: its run resumes on the head from the board's checkpoint. Kill the
    driver mid-run: the next sweep resumes from the checkpoint in --out. The summaries equal those of
    an uninterrupted sweep."""
    from atslib.store import load_torch
    from atslib.study.sweep import run_sweep
    # long enough that the resumed run cannot finish between the "resumed" line and the driver's kill
    # on a loaded machine (at 300 steps it once did: the test then has nothing left to resume)
    scale = {**TINY, "steps": 1200, "eval_every": 400, "checkpoint_every": 10}
    g = write_grid(tmp_path / "g.yaml", [{"name": "c", "methods": ["uniform"], "seeds": [0, 1]}], scale)
    out = tmp_path / "res" / "g"
    runs = [out / "c" / "uniform-s0", out / "c" / "uniform-s1"]
    cmd = sweep_cmd(g, out, "--address", cluster["address"], "--no-shared-fs")
    d1 = Reader(cmd)
    d1.wait_for(lambda: all((r / "checkpoint.pt").is_file() for r in runs), "a checkpoint of both runs in --out")
    assert any("ray: the Ray cluster at" in ln and "2 nodes, 2 CPUs" in ln for ln in d1.lines), d1.lines
    assert not any((r / "summary.json").exists() for r in runs)
    _stop(cluster["nodes"]["worker"], kill=True)                       # a node dies mid-run
    d1.wait_for(lambda: any("resumed at step" in ln for ln in d1.lines), "the lost run resumed on the head")
    line = next(ln for ln in d1.lines if "resumed at step" in ln)
    assert "(checkpoint from the board)" in line and int(line.split("resumed at step ")[1].split()[0]) > 0, line
    lost = next(r for r in runs if r.name in line)
    d1.p.send_signal(signal.SIGKILL)                                   # and then the driver dies
    d1.p.wait(30)
    assert not (lost / "summary.json").exists()
    step = int(load_torch(lost / "checkpoint.pt")["step"])
    assert 0 < step < scale["steps"]
    r, _ = run_cli(cmd, timeout=240)
    assert r.returncode == 0, r.stderr
    assert f"run c/{lost.name} resumed at step {step} (checkpoint from the driver's --out)" in r.stderr, r.stderr
    run_sweep(g, tmp_path / "ref" / "g", progress=False)              # uninterrupted, in this process
    got, ref = summaries(out), summaries(tmp_path / "ref" / "g")
    assert got.keys() == ref.keys() and len(got) == 2
    for k in ref:
        assert {n: got[k][n] for n in NUMBERS} == {n: ref[k][n] for n in NUMBERS}, k


def test_a_cluster_with_token_auth_and_no_token_is_one_line_fast(tmp_path, cluster):
    """RAY_AUTH_MODE=disabled (no token sent) against a cluster with token auth: refused at once, in one line."""
    if cluster["env"].get("RAY_AUTH_MODE") != "token":
        pytest.skip("the test cluster runs without token auth (no ~/.ray/auth_token when it started)")
    g = write_grid(tmp_path / "g.yaml", [{"name": "c", "methods": ["uniform"]}])
    r, dt = run_cli(sweep_cmd(g, tmp_path / "o", "--address", cluster["address"]), timeout=60,
                    env={"RAY_AUTH_MODE": "disabled"})
    assert r.returncode == 2 and "uses token auth and refused this driver" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and dt < 20 and not (tmp_path / "o").exists()


def test_a_run_no_node_can_hold_is_refused_on_a_cluster(tmp_path, cluster):
    from atslib.study.cluster import ClusterError
    from atslib.study.sweep import run_sweep
    g = write_grid(tmp_path / "g.yaml", [{"name": "c", "methods": ["uniform"]}])
    with pytest.raises(ClusterError, match=r"--num-cpus 2: no node of the Ray cluster at .* has 2 CPUs .*at most 1"):
        run_sweep(g, tmp_path / "o", executor="ray", address=cluster["address"], num_cpus=2, progress=False)
    assert not ray.is_initialized() and not (tmp_path / "o").exists()
