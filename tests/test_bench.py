"""The benchmark runs end to end on tiny settings and writes the contract's JSON; the reference
re-creation of the authors' loop computes the same factors as ``features.pool_factors``.
No timing is asserted: timings on a shared machine are noise."""
import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, tiny_model, tiny_tasks

from atslib.study.bench import TARGETS, reference_factors
from atslib.features import pool_factors


def test_bench_cli_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "atslib", "bench", "--device", "cpu", "--json", str(out),
                        "--pool-size", "3", "--meta-batch", "2", "--queries", "2", "--width", "8",
                        "--repeats", "1", "--warmup", "0", "--threads", "1"],
                       capture_output=True, text=True, cwd=ROOT, timeout=240, env=dict(os.environ, TQDM_DISABLE="1"))
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["device"] == "cpu" and rep["settings"]["pool_size"] == 3 and rep["settings"]["queries"] == 2
    for m in ("uniform", "ats", "ats-cheap", "ats-reference"):
        assert rep[m]["seconds_per_iter"] > 0 and rep[m]["peak_mb"] > 0, m
    for path in ("loop", "batched"):
        assert rep["factors"][path]["seconds_per_iter"] > 0
    assert {"factors", "lookahead", "validation", "scheduler", "update"} <= set(rep["parts"])
    assert {"uniform_step", "pool_forward_backward", "lookahead", "validation", "total"} <= set(rep["floor"])
    assert all(v >= 0 for v in rep["parts"].values()) and rep["floor"]["total"] > 0
    for k in ("ats_over_uniform", "ats_over_floor", "reference_over_ats", "ats_cheap_over_uniform"):
        assert rep["ratios"][k] > 0, k
    assert [t["ratio"] for t in rep["targets"]] == [k for k, _, _ in TARGETS["cpu"]]
    assert "ats_over_floor" in r.stdout and ("met" in r.stdout)


def test_bench_bad_input_one_line_exit_2(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "atslib", "bench", "--pool-size", "1", "--json", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "--pool-size 1" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()


@pytest.fixture
def one_thread():
    """Tiny float64 ops: one thread is faster, and immune to a machine loaded by other jobs."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("inner", ["anil", "maml"])
def test_reference_factors_equal_pool_factors(images, inner, one_thread):
    model = tiny_model(images)
    tasks = tiny_tasks(images, n=3, noise_ratio=0.5)
    p = dict(model.named_parameters())
    f = pool_factors(model, p, tasks, 2, 0.2, inner, path="loop")
    loss, dot, cos = reference_factors(model, p, tasks, 2, 0.2, inner)
    torch.testing.assert_close(loss, f.loss.double(), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(dot, f.sim_dot.double(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(cos, f.sim_cos.double(), rtol=1e-5, atol=1e-6)
    assert all(prm.grad is None for prm in model.parameters())


def test_bench_against_a_reference_tree(tmp_path):
    """--against DIR times uniform and ats here and in DIR, alternating, and reports the ratio (this
    tree against itself here: the same code, so both sides run and the ratio is a positive number)."""
    out = tmp_path / "against.json"
    r = subprocess.run([sys.executable, "-m", "atslib", "bench", "--device", "cpu", "--json", str(out),
                        "--against", str(ROOT), "--rounds", "2", "--pool-size", "3", "--meta-batch", "2",
                        "--queries", "2", "--width", "8", "--repeats", "1", "--warmup", "0", "--threads", "1"],
                       capture_output=True, text=True, cwd=ROOT, timeout=240, env=dict(os.environ, TQDM_DISABLE="1"))
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())["against"]
    for m in ("uniform", "ats"):
        assert len(rep[m]["all"]["this"]) == len(rep[m]["all"]["reference"]) == 2
        assert rep[m]["ratio"] == pytest.approx(rep[m]["this"] / rep[m]["reference"]) and rep[m]["ratio"] > 0
    bad = subprocess.run([sys.executable, "-m", "atslib", "bench", "--against", "no-such-commit"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "--against 'no-such-commit'" in bad.stderr


def test_bench_against_imports_the_reference_tree(tmp_path):
    """The reference worker runs the reference tree's atslib, not this one: a stub tree whose worker
    reports 1000 s/iter gives exactly that as the reference time."""
    stub = tmp_path / "ref" / "atslib"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    (stub / "bench.py").write_text('print(\'{"seconds_per_iter": 1000.0}\')\n')
    from atslib.study.bench import DEFAULTS, against
    s = dict(DEFAULTS, pool_size=3, queries=2, width=8, repeats=1, warmup=0, threads=1, device="cpu")
    rep = against(str(tmp_path / "ref"), s, rounds=1, names=("uniform",))
    assert rep["uniform"]["reference"] == 1000.0 and rep["uniform"]["this"] < 1000.0
    with pytest.raises(Exception, match="--rounds 0"):
        against(str(tmp_path / "ref"), s, rounds=0)
