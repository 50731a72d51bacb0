"""The run-directory contract (``atslib.study.contract``): real runs keep it, and the check sees gaps."""
import json
import os
import shutil
import stat

import pytest
from helpers import ROOT, tiny_config

from atslib import meta_train
from atslib.study.contract import check_run


@pytest.mark.parametrize("method", ["uniform", "ats"])
def test_a_fresh_image_run_keeps_the_contract(tmp_path, method):
    meta_train(tiny_config(method=method, noise_ratio=0.5), out=tmp_path / method)
    assert check_run(tmp_path / method) == []


def test_run_files_are_as_readable_as_the_users_other_files(tmp_path):
    """Written whole through a temporary file, yet with the mode the umask gives (a colleague on a
    shared disk reads them), not the temporary file's owner-only mode."""
    old = os.umask(0o022)
    try:
        meta_train(tiny_config(method="ats", noise_ratio=0.5), out=tmp_path / "r")
    finally:
        os.umask(old)
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in (tmp_path / "r").iterdir()}
    assert modes and all(m == 0o644 for m in modes.values()), modes


def test_committed_runs_keep_the_contract():
    runs = sorted(p.parent for p in (ROOT / "results").glob("*/*/*/summary.json"))
    if not runs:
        pytest.skip("no committed runs")
    bad = {str(r.relative_to(ROOT)): check_run(r) for r in runs[:: max(1, len(runs) // 60)]}
    assert not any(bad.values()), {k: v for k, v in bad.items() if v}


def test_the_check_reports_each_gap(tmp_path):
    run = tmp_path / "r"
    meta_train(tiny_config(method="ats", noise_ratio=0.5), out=run)
    s = json.loads((run / "summary.json").read_text())
    for k in ("noise_auc", "test_ci95", "seed"):
        del s[k]
    (run / "summary.json").write_text(json.dumps(s))
    (run / "test_scores.csv").unlink()
    (run / "pool.csv.gz").unlink()
    gaps = check_run(run)
    assert {"summary.json lacks noise_auc", "summary.json lacks test_ci95", "summary.json lacks seed",
            "missing test_scores.csv"} <= set(gaps) and any("pool.csv.gz" in g for g in gaps)
    shutil.rmtree(run)
    assert "missing summary.json" in check_run(run)
