"""Random argument combinations never produce a traceback; extreme inputs give clear errors."""
import io
from contextlib import redirect_stderr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atslib import Config, ConfigError
from atslib.__main__ import build_parser, config_from_args

VALUES = st.one_of(st.integers(-5, 100), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                   st.sampled_from(["uniform", "ats", "bogus", "anil", "maml", "cuda", "cpu", "", "-1", "0.5"]))
OPTIONS = ["--ways", "--shots", "--queries", "--noise-ratio", "--flip-prob", "--steps", "--budget-classes",
           "--pool-size", "--meta-batch", "--method", "--inner", "--device", "--temperature", "--warmup",
           "--inner-lr", "--reward", "--reward-paired", "--dataset"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(OPTIONS), VALUES), max_size=6))
def test_parser_and_config_never_raise_anything_else(pairs):
    argv = ["train", "--out", "/nonexistent/never-written"]
    for opt, val in pairs:
        argv += [opt, str(val)]
    err = io.StringIO()
    try:
        with redirect_stderr(err):
            args = build_parser().parse_args(argv)
    except SystemExit as e:
        assert e.code == 2
        assert len(err.getvalue().strip().splitlines()) == 1
        return
    try:
        config_from_args(args)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e).startswith("--")


@pytest.mark.parametrize("kw", [dict(ways=1), dict(noise_ratio=float("nan")), dict(steps=-3), dict(warmup=10, steps=5),
                                dict(pool_size=1, meta_batch=2), dict(method="gcp", dataset="molecules"),
                                dict(temperature=0.0), dict(shots=True)])
def test_config_errors_name_the_option(kw):
    with pytest.raises(ConfigError) as e:
        Config(**kw).validate()
    assert e.value.args[0].startswith("--" + next(iter(kw)).replace("_", "-")) or "method" in e.value.args[0]


def test_nan_loss_stops_with_a_clear_error_or_is_skipped(monkeypatch, tmp_path):
    import torch
    from helpers import tiny_config

    from atslib import maml, meta_train
    from atslib.guards import NonFiniteError

    real = maml.task_losses

    def poisoned(model, p, tasks, *a, **k):
        losses, scores = real(model, p, tasks, *a, **k)
        if torch.is_grad_enabled() and losses.requires_grad and poisoned.calls == 2:
            losses = losses * float("nan")
        poisoned.calls += 1
        return losses, scores

    poisoned.calls = 0
    monkeypatch.setattr("atslib.step.maml.task_losses", poisoned)
    with pytest.raises(NonFiniteError, match=r"step 2: meta-training query loss is not finite"):
        meta_train(tiny_config(method="uniform", checkpoint_every=1), out=tmp_path / "a")
    assert (tmp_path / "a" / "checkpoint.pt").is_file()      # the last good checkpoint (step 2) is kept
    poisoned.calls = 0
    run = meta_train(tiny_config(method="uniform", on_nonfinite="skip"), out=tmp_path / "b")
    h = run.history_frame()
    assert h["skipped"].fillna(0).sum() == 1 and run.summary["steps_done"] == 4
    assert all(torch.isfinite(p).all() for p in run.model.parameters())


def test_resume_or_eval_refuses_a_changed_data_file(tmp_path):
    import shutil

    import numpy as np
    from helpers import ROOT, tiny_config

    from atslib import meta_train
    from atslib.data import DataError
    from atslib.evaluate import evaluate_run
    from atslib.loop import Run
    from atslib.store import RunError

    data = tmp_path / "qd.npz"
    shutil.copy(ROOT / "data" / "quickdraw100.npz", data)
    cfg = tiny_config(data=str(data), steps=2, eval_every=1, checkpoint_every=1)
    meta_train(cfg, out=tmp_path / "run")
    with np.load(data) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["x"] = arrays["x"].copy()
    arrays["x"][0, 0, 0] ^= 1
    np.savez(data, **arrays)
    with pytest.raises(RunError, match="sha256"):
        Run(cfg, tmp_path / "run", resume=True)
    with pytest.raises(DataError, match="sha256"):
        evaluate_run(tmp_path / "run")


ANY = st.one_of(VALUES, st.none(), st.lists(VALUES, max_size=2), st.dictionaries(st.text(max_size=2), VALUES, max_size=2))
SEEDS = st.one_of(st.lists(st.one_of(st.integers(-2, 3), st.floats(0, 2), st.text(max_size=2)), max_size=3), ANY)
CELL = st.one_of(ANY, st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.just("a"), st.text(max_size=4), st.integers(), st.none(), st.just("a/b")),
    "methods": st.one_of(st.just(["uniform"]), st.lists(st.sampled_from(["uniform", "ats", "bogus", 3]), max_size=3),
                         ANY),
    "seeds": SEEDS,
    "seeds_by_method": st.one_of(st.dictionaries(st.sampled_from(["uniform", "ats"]), SEEDS, max_size=2), ANY),
    "scale": st.one_of(st.dictionaries(st.sampled_from(["cpu", "gpu"]), ANY, max_size=2), ANY),
    "config": st.one_of(st.dictionaries(st.sampled_from(["ways", "shots", "steps", "noise_ratio", "nope", "init",
                                                         "data"]), st.one_of(VALUES, st.just("{seed}{nope}")),
                                        max_size=3), ANY)}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(cells=st.one_of(st.lists(CELL, max_size=3), ANY))
def test_random_grids_never_traceback(cells, tmp_path_factory):
    """A grid file of any shape: the sweep command expands it (trains nothing: --limit 0) or exits 2
    with one line; never a traceback."""
    import yaml

    from atslib.__main__ import main
    d = tmp_path_factory.mktemp("grid")
    (d / "g.yaml").write_text(yaml.safe_dump({"name": "g", "cells": cells}))
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["sweep", str(d / "g.yaml"), "--out", str(d / "res" / "g"), "--limit", "0", "--quiet"])
    assert code in (0, 2)
    if code == 2:
        assert len(err.getvalue().strip().splitlines()) == 1, err.getvalue()
