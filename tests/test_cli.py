"""The command line: bad input is one clear line and exit 2; runs resume to identical numbers."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from helpers import ROOT

SMALL = ["--steps", "4", "--eval-every", "2", "--n-val-tasks", "6", "--n-test-tasks", "10", "--pool-size", "4",
         "--val-tasks", "2", "--queries", "5", "--width", "8", "--checkpoint-every", "1"]


def cli(*args, timeout=300):
    env = dict(os.environ, TQDM_DISABLE="1")
    return subprocess.run([sys.executable, "-m", "atslib", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=env)


@pytest.mark.parametrize("args, needle", [
    (["--ways", "1"], "--ways 1"),
    (["--ways", "17"], "--ways 17"),
    (["--shots", "90", "--queries", "15"], "shots + queries"),
    (["--noise-ratio", "1.5"], "--noise-ratio 1.5"),
    (["--flip-prob", "-0.1"], "--flip-prob -0.1"),
    (["--steps", "0"], "--steps 0"),
    (["--budget-classes", "3"], "--budget-classes 3"),
    (["--budget-classes", "65"], "--budget-classes 65"),
    (["--pool-size", "1", "--meta-batch", "2"], "--pool-size 1"),
    (["--method", "bogus"], "invalid choice"),
    (["--dataset", "mnist"], "--dataset 'mnist'"),
    (["--data", "no/such.npz"], "no such file"),
    (["--steps", "ten"], "invalid int value"),
])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, args, needle):
    out = tmp_path / "run"
    r = cli("train", *args, "--out", str(out))
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_existing_out_needs_resume_or_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "x").write_text("keep me")
    r = cli("train", *SMALL, "--out", str(out))
    assert r.returncode == 2 and "already exists" in r.stderr
    assert (out / "x").read_text() == "keep me"


def test_train_eval_and_resume_give_identical_numbers(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["--method", "ats", "--noise-ratio", "0.5", "--seed", "3"]
    r = cli("train", *SMALL, *args, "--out", str(a), "--quiet")
    assert r.returncode == 0, r.stderr
    from atslib.study.contract import check_run
    assert check_run(a) == []
    r = cli("train", *SMALL, *args, "--out", str(b), "--quiet")
    assert r.returncode == 0
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for k in ("test_mean", "best_val", "noise_auc", "clean_share"):
        assert sa[k] == sb[k], k                 # determinism: same seed, same numbers
    e = cli("eval", str(a), "--n-test-tasks", "10")
    assert e.returncode == 0 and json.loads(e.stdout)["test_mean"] == pytest.approx(sa["test_mean"])


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    """Kill a run (SIGKILL) after its checkpoint at step 2, resume, compare with an uninterrupted run."""
    import signal
    import time
    full, cut = tmp_path / "full", tmp_path / "cut"
    args = [*SMALL, "--steps", "6", "--method", "ats", "--noise-ratio", "0.5", "--quiet"]
    assert cli("train", *args, "--out", str(full)).returncode == 0
    env = dict(os.environ, TQDM_DISABLE="1")
    p = subprocess.Popen([sys.executable, "-m", "atslib", "train", *args, "--out", str(cut)], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not (cut / "checkpoint.pt").exists():
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = cli("train", *args, "--out", str(cut), "--resume")
    assert r.returncode == 0, r.stderr
    sf, sc = (json.loads((d / "summary.json").read_text()) for d in (full, cut))
    for k in ("test_mean", "best_val", "noise_auc", "clean_share", "best_step"):
        assert sf[k] == sc[k], k
    hf, hc = pd.read_csv(full / "history.csv"), pd.read_csv(cut / "history.csv")
    assert list(hf["step"]) == list(hc["step"])
    pd.testing.assert_series_equal(hf["train_loss"], hc["train_loss"])


def test_resume_with_other_options_is_refused(tmp_path):
    out = tmp_path / "r"
    assert cli("train", *SMALL, "--out", str(out), "--quiet").returncode == 0
    r = cli("train", *SMALL, "--seed", "5", "--out", str(out), "--resume")
    assert r.returncode == 2 and "differ from the saved config" in r.stderr
