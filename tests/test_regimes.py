"""Task regimes beyond the paper's noise: query-side noise, hard-but-clean tasks, shifted domains.

Invariants: the rates of each kind, which labels are touched, that validation and test tasks stay
clean, that the pool stays a function of (seed, step), and that the default stream is unchanged.
"""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from atslib.config import Config, ConfigError
from atslib.data import load_images
from atslib.datasets import build_setup
from atslib.loop import meta_train
from atslib.tasks import KINDS, EpisodeSampler, confusion, shift_images, stream

WAYS, SHOTS, QUERIES = 5, 1, 4


@pytest.fixture(scope="module")
def data():
    return load_images(None)


def sampler(data, **kw):
    return EpisodeSampler(data, "train", WAYS, SHOTS, QUERIES, **kw)


def clean_labels(n_per_class):
    return torch.arange(WAYS).repeat_interleave(n_per_class)


def same(a, b):
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("x_s", "x_q", "noisy", "classes", "y_s_clean"))


def test_query_noise_touches_only_query_labels_of_noisy_tasks(data):
    g = lambda: stream(3, 7, "pool")
    sup = sampler(data, noise_ratio=0.5, flip_prob=0.8).sample(400, g())
    qry = sampler(data, noise_ratio=0.5, flip_prob=0.8, noise_on="query").sample(400, g())
    both = sampler(data, noise_ratio=0.5, flip_prob=0.8, noise_on="both").sample(400, g())
    assert same(sup, qry) and same(sup, both)                 # same tasks, same noisy flags
    clean_q = clean_labels(QUERIES).expand_as(sup.y_q)
    assert torch.equal(sup.y_q, clean_q)                      # the paper's placement: queries clean
    assert torch.equal(qry.y_s, qry.y_s_clean)                # query placement: supports clean
    assert torch.equal(both.y_s, sup.y_s)                     # both: the support flips of "support"
    for b in (qry, both):
        changed = b.y_q != clean_q
        assert not changed[~b.noisy].any()                    # clean tasks untouched
        rate = changed[b.noisy].float().mean().item()
        assert abs(rate - 0.8) < 0.03, rate                   # each query label flips with flip_prob
        assert ((b.y_q >= 0) & (b.y_q < WAYS)).all()
    assert 0.4 < sup.noisy.float().mean() < 0.6


def test_kinds_rates_exclusive_and_clean(data):
    s = sampler(data, noise_ratio=0.4, hard_ratio=0.3, ood_ratio=0.2, noise_on="both")
    b = s.sample(3000, stream(0, 0, "pool"))
    share = torch.bincount(b.kind, minlength=4).double() / len(b)
    for code, want in ((0, 0.1), (1, 0.4), (2, 0.3), (3, 0.2)):
        assert abs(share[code].item() - want) < 4 * np.sqrt(want * (1 - want) / len(b)), (KINDS[code], share)
    assert torch.equal(b.noisy, b.kind == 1)                  # only noisy tasks carry label noise
    good = b.kind != 1
    assert torch.equal(b.y_s[good], b.y_s_clean[good])
    assert torch.equal(b.y_q[good], clean_labels(QUERIES).expand_as(b.y_q)[good])
    assert torch.equal(b.bad, (b.kind == 1) | (b.kind == 3))


def test_hard_tasks_are_confusable(data):
    train = data.classes("train")
    conf = confusion(data, train)
    assert conf.shape == (len(train), len(train))
    assert torch.allclose(conf, conf.T) and (conf.diagonal() == 0).all()
    assert torch.equal(confusion(data, train), conf)          # deterministic, cached
    b = sampler(data, hard_ratio=0.5).sample(400, stream(1, 2, "pool"))
    local = {int(c): i for i, c in enumerate(train)}

    def within(row):
        idx = [local[int(c)] for c in row]
        return conf[idx][:, idx].sum().item() / (WAYS * (WAYS - 1))
    w = torch.tensor([within(r) for r in b.classes])
    hard = b.kind == 2
    assert w[hard].mean() > 1.4 * w[~hard].mean()
    assert all(len(set(r.tolist())) == WAYS for r in b.classes)  # N distinct classes in every task


def test_shifted_tasks_are_transformed_images_of_their_classes(data):
    for shift in ("rot90", "invert", "thicken"):
        plain = sampler(data)
        ood = sampler(data, ood_ratio=0.5, ood_shift=shift)
        g1, g2 = stream(5, 1, "pool"), stream(5, 1, "pool")
        b = ood.sample(50, g1)
        shifted = b.kind == 3
        assert 0 < shifted.sum() < 50
        # replay the same draws without the shift: identical except the shifted tasks' images
        pick = torch.stack([torch.randperm(len(plain.classes), generator=g2)[:WAYS] for _ in range(50)])
        torch.rand(50, generator=g2)
        ref = plain.from_classes(plain.classes[pick], g2, torch.zeros(50, dtype=torch.bool))
        assert torch.equal(b.x_s[~shifted], ref.x_s[~shifted])
        assert torch.equal(b.x_s[shifted], shift_images(ref.x_s[shifted], shift))
        assert torch.equal(b.x_q[shifted], shift_images(ref.x_q[shifted], shift))
        assert not torch.equal(b.x_s[shifted], ref.x_s[shifted])


def test_pool_is_a_function_of_seed_and_step(data):
    s = sampler(data, noise_ratio=0.3, hard_ratio=0.3, ood_ratio=0.2, noise_on="query")
    a, b = s.sample(20, stream(4, 9, "pool")), s.sample(20, stream(4, 9, "pool"))
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("x_s", "y_s", "x_q", "y_q", "kind"))
    c = s.sample(20, stream(4, 10, "pool"))
    assert not torch.equal(a.x_s, c.x_s)


def test_evaluation_tasks_stay_clean():
    cfg = Config(method="uniform", shots=1, queries=QUERIES, noise_ratio=0.3, hard_ratio=0.3, ood_ratio=0.2,
                 noise_on="both", device="cpu")
    setup = build_setup(cfg)
    for s in (setup.val_sampler, setup.test_sampler):
        b = s.sample(200, stream(0, 0, "x"))
        assert not b.noisy.any() and (b.kind == 0).all()
    hard = setup.hard_test_sampler.sample(200, stream(0, 0, "x"))
    assert (hard.kind == 2).all() and not hard.noisy.any()
    assert set(hard.classes.flatten().tolist()) <= set(setup.data.classes("test").tolist())
    assert build_setup(cfg.replace(hard_ratio=0.0)).hard_test_sampler is None


@pytest.mark.parametrize("kw, needle", [
    (dict(noise_on="labels"), "--noise-on 'labels': allowed: support, query, both"),
    (dict(ood_shift="blur"), "--ood-shift 'blur'"),
    (dict(hard_ratio=1.5), "--hard-ratio 1.5: must be in [0, 1]"),
    (dict(noise_ratio=0.6, hard_ratio=0.3, ood_ratio=0.2), "--ood-ratio 0.2 the three sum to 1.1: must be <= 1"),
    (dict(method="gcp", hard_ratio=0.3), "gcp composes its own tasks"),
    (dict(dataset="molecules", ood_ratio=0.3), "image regimes"),
    (dict(dataset="molecules", noise_on="query"), "molecules corrupt support labels only"),
])
def test_bad_regime_options_are_clear_errors(kw, needle):
    with pytest.raises(ConfigError, match=None) as e:
        Config(**kw).validate()
    assert needle in str(e.value), str(e.value)


def test_regime_run_records_kinds_and_hard_test(tmp_path):
    cfg = Config(method="rank-sim-loss", shots=1, queries=QUERIES, noise_ratio=0.3, hard_ratio=0.3, ood_ratio=0.2,
                 steps=3, eval_every=3, n_val_tasks=10, n_test_tasks=20, pool_log_every=1, device="cpu",
                 validate_start=False)
    run = meta_train(cfg, out=tmp_path / "r")
    s = run.summary
    assert {"test_hard_mean", "test_hard_ci95", "hard_ratio", "ood_ratio"} <= set(s)
    assert "noise_on" not in s                              # only options that differ from the default
    assert (tmp_path / "r" / "test_scores_hard.csv").is_file()
    pools = run.pool_frame()
    assert set(pools["kind"]) <= {0, 1, 2, 3}
    assert (pools["noisy"] == pools["kind"].isin([1, 3])).all()   # records score against bad = noisy or shifted
    assert "noise_auc" in s


# -- the analysis (atslib.study.regimes) on synthetic records ------------------------------------------
def synthetic_pools(seed=0):
    """Pools where the loss flags noisy tasks but also (wrongly) hard ones, the similarity tells
    hard from noisy, and the probability follows the similarity."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(2):
        for step in range(0, 100, 10):
            kind = rng.integers(0, 4, 10)
            loss = np.where((kind == 1) | (kind == 2), 2.0, 1.0) + rng.normal(0, 0.1, 10)
            sim = np.where(kind == 1, -0.5, np.where(kind == 3, -0.4, 0.5)) + rng.normal(0, 0.1, 10)
            prob = np.exp(3 * sim) / np.exp(3 * sim).sum()
            rows.append(pd.DataFrame({"seed": s, "step": step, "kind": kind, "loss": loss, "sim_cos": sim,
                                      "prob": prob, "noisy": np.isin(kind, [1, 3])}))
    return pd.concat(rows, ignore_index=True)


def test_auc_row_scores_bad_tasks_and_hard_vs_noisy():
    from atslib.study.regimes import auc_row
    a = auc_row(synthetic_pools())
    assert a["auc_sim"] > 0.95 and a["auc_prob"] > 0.95          # similarity separates bad from good
    assert 0.3 < a["auc_loss"] < 0.8                             # the loss confuses hard with noisy
    assert a["hard_vs_noisy_loss"] == pytest.approx(0.5, abs=0.2)
    assert a["hard_vs_noisy_sim"] > 0.95
    assert a["pools"] == 10                                      # late half: steps 50..90 of 2 seeds
    assert np.isnan(auc_row(pd.DataFrame())["auc_loss"])


def test_verdicts_follow_seed_level_test(tmp_path):
    from atslib.study import regimes as RG
    rows = []
    rng = np.random.default_rng(1)
    for regime in RG.REGIMES:
        for m in RG.METHODS:
            for seed in range(5):
                gain = {"ats": 0.05 if regime == "ood" else 0.0, "rank-sim-loss": 0.01}.get(m, 0.0)
                d = tmp_path / "regimes" / regime / f"{m}-s{seed}"
                d.mkdir(parents=True)
                acc = 0.5 + gain + 0.002 * seed + rng.normal(0, 0.002)
                summary = {"test_mean": acc, **({"test_hard_mean": acc - 0.1} if regime == "hard-mix" else {})}
                (d / "summary.json").write_text(json.dumps(summary))
                rows.append({"grid": "regimes", "cell": regime, "method": m, "seed": seed, "run": f"{regime}/{m}-s{seed}",
                             "status": "done", "test_mean": acc, "best_val": 0.5 + gain, "steps": 300})
    pd.DataFrame(rows).to_csv(tmp_path / "regimes" / "summary.csv", index=False)
    df = RG.load(tmp_path)
    assert len(df) == 4 * 6 * 5 and df["test_hard_mean"].notna().sum() == 30
    v = RG.verdicts(df).set_index(["regime", "test", "method"])
    assert v.loc[("ood", "random", "ats"), "beats_all"]
    assert v.loc[("ood", "random", "ats"), "best_fixed"] == "rank-sim-loss"   # chosen by validation
    assert v.loc[("ood", "random", "ats"), "diff"] == pytest.approx(4.0, abs=0.5)
    assert not v.loc[("support", "random", "ats"), "beats_all"]
    assert ("hard-mix", "hard", "ats") in v.index
    t = RG.results_table(df)
    assert set(t.test) == {"random", "hard"} and (t.seeds == 5).all()
    d = RG.differences(df).set_index(["regime", "test", "method"])
    assert "uniform" not in d.index.get_level_values("method")
    assert d.loc[("ood", "random", "ats"), "diff"] == pytest.approx(5.0, abs=0.5)
    assert d.loc[("ood", "random", "ats"), "p"] < 0.01 and (d["seeds"] == 5).all()


def test_page_switcher_switches_prerendered_pages():
    pytest.importorskip("ipywidgets")
    from atslib.display.widgets import page_switcher
    box = page_switcher({"a": ["text a", pd.DataFrame({"x": [1]})], "b": [b"\x89PNG fake"]}, description="regime")
    dd, out = box.children
    assert out.outputs[0]["text"] == "text a\n" and "text/html" in out.outputs[1]["data"]
    dd.value = "b"
    assert list(out.outputs[0]["data"]) == ["image/png", "text/plain"]


def test_wide_table_strings():
    from atslib.study.regimes import wide_table
    t = pd.DataFrame([{"regime": "hard-mix", "test": "random", "method": "ats", "seeds": 3, "mean": 55.5, "ci95": 1.25},
                      {"regime": "hard-mix", "test": "hard", "method": "ats", "seeds": 1, "mean": 42.0, "ci95": np.nan},
                      {"regime": "ood", "test": "random", "method": "uniform", "seeds": 2, "mean": 50.0, "ci95": 2.0}])
    w = wide_table(t).set_index("method")
    assert w.loc["ats", "hard-mix"] == "55.50 ± 1.25 (3)" and w.loc["ats", "hard-mix (hard test)"] == "42.00 (1)"
    assert w.loc["ats", "ood"] == "–" and list(w.index) == ["uniform", "ats"]


def test_sampler_rejects_bad_options(data):
    for kw, needle in ((dict(noise_on="Query"), "noise_on 'Query'; allowed: support, query, both"),
                       (dict(ood_shift="blur", ood_ratio=0.1), "ood_shift 'blur'"),
                       (dict(noise_ratio=0.6, hard_ratio=0.5), "must sum to <= 1")):
        with pytest.raises(ValueError, match=None) as e:
            sampler(data, **kw)
        assert needle in str(e.value)


def test_gcp_sees_its_composed_tasks_without_their_mask():
    from atslib.datasets import build_setup
    from atslib.step import step_inputs
    setup = build_setup(Config(method="gcp", shots=1, queries=QUERIES, noise_ratio=0.5, device="cpu"))
    x, _ = step_inputs(setup, 0)
    tasks = x.compose(setup.train_sampler.classes[:10].view(2, 5))
    assert tasks.noisy is None and tasks.kind is None and x.composed_truth.noisy.shape == (2,)
