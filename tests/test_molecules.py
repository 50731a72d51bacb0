"""The molecular track: R^2 metric, Drug-noisy label noise, split hygiene, padding masks, smoke runs."""
import json

import numpy as np
import pytest
import torch
from helpers import tiny_config

from atslib import maml
from atslib.data import DataError
from atslib.features import pool_factors
from atslib.metrics import r2_pearson
from atslib.models import build_model
from atslib.molecules import (
    AssaySampler,
    load_molecules,
    meta_test_parts,
    pad_tasks,
    real_episodes,
)
from atslib.tasks import stream


@pytest.fixture(scope="module")
def mol():
    return load_molecules()


# -- metric -----------------------------------------------------------------------------------

def test_r2_pearson_exact():
    assert r2_pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.64, abs=1e-15)  # r = 4 / 5
    assert r2_pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0, abs=1e-15)
    assert r2_pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(1.0, abs=1e-15)           # squared: sign-free
    assert r2_pearson([5, 5, 5], [1, 2, 3]) == 0.0 and r2_pearson([1, 2, 3], [7, 7, 7]) == 0.0
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.normal(size=17), rng.normal(size=17)
        assert r2_pearson(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1] ** 2, rel=1e-12)


# -- noise ------------------------------------------------------------------------------------

def test_support_noise_on_every_training_task(mol):
    eta, n = 2.0, 200
    noisy = AssaySampler(mol, "train", 50, 100, noise_scale=eta).sample(n, stream(0, 0, "t"))
    clean = AssaySampler(mol, "train", 50, 100).sample(n, stream(0, 0, "t"))     # same draws before the noise
    assert noisy.noisy.all() and not clean.noisy.any()
    for k in ("x_s", "x_q", "y_q", "y_s_clean", "m_s", "m_q", "classes"):
        assert torch.equal(getattr(noisy, k), getattr(clean, k)), k               # query untouched
    assert torch.equal(clean.y_s, clean.y_s_clean)
    m = noisy.m_s.bool()
    z = ((noisy.y_s - noisy.y_s_clean) / eta)[m].double()
    assert z.numel() > 5000 and abs(z.mean()) < 0.05 and abs(z.std() - 1.0) < 0.05
    assert torch.all(noisy.y_s[~m] == 0)                                           # padding stays zero


def test_noise_ratio_fraction(mol):
    t = AssaySampler(mol, "train", 50, 100, noise_scale=4.0, noise_ratio=0.6).sample(600, stream(1, 0, "t"))
    assert abs(t.noisy.float().mean().item() - 0.6) < 0.06
    changed = ((t.y_s - t.y_s_clean).abs() * t.m_s).sum(1) > 0
    assert torch.equal(changed, t.noisy)


def test_eval_tasks_are_clean(tmp_path):
    from atslib.datasets import build_setup
    from atslib.setup import val_tasks
    cfg = tiny_config(dataset="molecules", noise_scale=4.0, n_val_tasks=8)
    setup = build_setup(cfg)
    assert setup.train_sampler.noise_scale == 4.0
    for t in val_tasks(setup) + [setup.val_sampler.sample(5, stream(0, 1, "r")), setup.test_sampler.sample(5, stream(0, 2, "x"))]:
        assert not t.noisy.any() and torch.equal(t.y_s, t.y_s_clean)
    ids, parts = meta_test_parts(setup)       # the meta-test tasks: labels straight from the file
    for a, (_, ys, _, yq) in zip(ids, parts):
        y = setup.data.assay(int(a))[1]
        assert set(ys.tolist()) | set(yq.tolist()) <= set(y.tolist())


def test_test_tasks_depend_on_test_seed_only():
    from atslib.datasets import build_setup
    a = build_setup(tiny_config(dataset="molecules", seed=0))
    b = build_setup(tiny_config(dataset="molecules", seed=5))
    pa, pb = meta_test_parts(a)[1], meta_test_parts(b)[1]
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[2], y[2]) for x, y in zip(pa, pb))
    e1, e2 = real_episodes(a.data, 0, 2021, episodes=3), real_episodes(a.data, 0, 2021, episodes=3)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(e1, e2)) and len(e1[0][0]) == 20
    assert not torch.equal(e1[0][0], real_episodes(a.data, 0, 7, episodes=1)[0][0])


# -- split hygiene ----------------------------------------------------------------------------

def _fp_set(x: torch.Tensor) -> set:
    return {r.tobytes() for r in np.packbits(x.numpy().astype(np.uint8), axis=1)}


def test_no_val_or_test_molecule_in_train_tasks(mol):
    held = torch.cat([mol.assay(int(a))[0] for s in ("val", "test") for a in mol.assays(s)])
    held_fp = _fp_set(mol.x[held])
    t = AssaySampler(mol, "train", 50, 100).sample(300, stream(2, 0, "t"))
    assert (mol.assay_split[t.classes[:, 0].numpy()] == 0).all()
    seen = _fp_set(t.x_s[t.m_s.bool()]) | _fp_set(t.x_q[t.m_q.bool()])
    assert len(seen) > 1000 and not (seen & held_fp)


def test_split_sizes(mol):
    s = AssaySampler(mol, "train", 50, 100)
    sizes = np.diff(mol.assay_ptr)
    g = stream(0, 0, "sizes")
    for a in [int(np.argmin(sizes)), int(np.argmax(sizes)), 7]:
        rs, _, rq, _ = s.split_assay(a, g)
        n = sizes[a]
        assert len(rs) == min(n // 2, 50) and len(rq) == min(n - len(rs), 100)
        assert not set(rs.tolist()) & set(rq.tolist())


# -- padding masks ----------------------------------------------------------------------------

def test_padded_equals_unpadded(mol):
    """Each task of a padded batch gives the numbers of the same task alone with no mask."""
    s = AssaySampler(mol, "val", 50, 100)
    sizes = np.diff(mol.assay_ptr)
    ids = s.ids[np.argsort(sizes[s.ids])[[0, 30, -1]]]                    # small, medium, large assays
    g = stream(0, 0, "mask")
    parts = [s.split_assay(int(a), g) for a in ids]
    batch = pad_tasks(mol.x, parts, ids)
    assert (batch.m_s.sum(1) < batch.m_s.shape[1]).any()                    # some padding
    for k in ("x_s", "x_q", "y_s", "y_q", "y_s_clean"):
        setattr(batch, k, getattr(batch, k).double())
    batch.m_s, batch.m_q = batch.m_s.double(), batch.m_q.double()
    model = build_model((1024,), 1, 12, generator=stream(0, 0, "m")).double()
    p = dict(model.named_parameters())

    def alone(t):
        one = pad_tasks(mol.x, [parts[t]], ids[t:t + 1])
        one.m_s = one.m_q = None
        for k in ("x_s", "x_q", "y_s", "y_q"):
            setattr(one, k, getattr(one, k).double())
        return one

    close = dict(rtol=1e-10, atol=1e-12)
    for inner, batched in (("anil", None), ("maml", False), ("maml", True)):
        lb, sb = maml.task_losses(model, p, batch, 2, 0.05, inner, batched=batched)
        gb = torch.autograd.grad(lb.sum(), list(p.values()))
        for t in range(len(ids)):
            lt, st = maml.task_losses(model, p, alone(t), 2, 0.05, inner, batched=batched)
            torch.testing.assert_close(lb[t], lt[0], **close)
            torch.testing.assert_close(sb[t], st[0], **close)
            gt = torch.autograd.grad(lt.sum(), list(p.values()))
            if t == 0:
                acc = list(gt)
            else:
                acc = [a + b for a, b in zip(acc, gt)]
        for a, b in zip(gb, acc):
            torch.testing.assert_close(a, b, **close)
    for path in ("loop", "batched"):
        fb = pool_factors(model, p, batch, 2, 0.05, path=path)
        for t in range(len(ids)):
            ft = pool_factors(model, p, alone(t), 2, 0.05, path=path)
            for k in ("loss", "score", "sim_cos", "layer_cos"):
                torch.testing.assert_close(getattr(fb, k)[t].double(), getattr(ft, k)[0].double(), rtol=1e-5, atol=1e-7)


# -- runs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["uniform", "ats"])
def test_smoke_run(tmp_path, method):
    from atslib import meta_train
    cfg = tiny_config(dataset="molecules", method=method, noise_scale=4.0, noise_ratio=0.5, n_test_tasks=6)
    meta_train(cfg, out=tmp_path / method)
    from atslib.study.contract import check_run
    assert check_run(tmp_path / method) == []
    s = json.loads((tmp_path / method / "summary.json").read_text())
    assert s["dataset"] == "molecules" and s["noise_scale"] == 4.0 and s["n_test_tasks"] == 6
    for k in ("r2_mean", "r2_median", "r2_gt_03", "best_val", "wall_seconds"):
        assert k in s and np.isfinite(s[k])
    assert set(s["real_r2"]) == {"CHEMBL2321810_pIC50", "solubility_logS", "freesolv_dG"}
    for v in s["real_r2"].values():
        assert {"r2_mean", "r2_median", "r2_gt_03"} <= set(v) and 0 <= v["r2_mean"] <= 1
    import pandas as pd
    rows = pd.read_csv(tmp_path / method / "test_scores.csv")
    assert len(rows) == 6 and rows["r2"].between(0, 1).all()
    if method == "ats":
        assert "noise_auc" in s


def test_bad_molecule_input(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, fp=np.zeros((3, 128), np.uint8))
    with pytest.raises(DataError, match="lacks keys"):
        load_molecules(bad)
    from atslib.__main__ import main
    assert main(["train", "--dataset", "molecules", "--noise-ratio", "0.5", "--out", str(tmp_path / "r")]) == 2
    assert main(["train", "--dataset", "molecules", "--data", str(bad), "--out", str(tmp_path / "r2")]) == 2
    assert not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()
