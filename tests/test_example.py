"""``examples/ats_anil.py`` against the library, and ``features.task_factors`` against ``pool_factors``.

The example writes ATS out by hand around ``task_factors`` and ``TaskScheduler``; ``reference``
replays its first steps with the library's own pieces - ``pool_factors`` (the factors), the
library's ANIL (``maml.task_losses``: per-task meta-gradients, averaged as ``TaskGrads`` does),
``step.bounded`` (the clipped look-ahead), ``maml.evaluate`` (the paired reward) and a scheduler
of its own fed ``TaskScheduler.draw_inputs``, theta's update from the averaged per-task gradients
as ``step.update_from_grads``. Only the example's model and task sampler are shared: they are its
data, not its maths. Draws and real batches must be identical, numbers equal to float64 rounding.
"""
import importlib.util
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from helpers import ROOT, tiny_model, tiny_tasks

from atslib import maml
from atslib.data import load_images
from atslib.features import pool_factors, task_factors
from atslib.scheduler import TaskScheduler
from atslib.step import bounded
from atslib.tasks import TaskBatch

EXAMPLE = ROOT / "examples" / "ats_anil.py"
TINY = ["--steps", "4", "--ways", "3", "--queries", "3", "--pool", "5", "--val-tasks", "2", "--width", "4",
        "--inner-steps", "2", "--max-norm", "0.5", "--log-every", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("ats_anil_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def batch(tasks) -> TaskBatch:
    """The example's (x_s, y_s, x_q, y_q) as a library TaskBatch."""
    return TaskBatch(*tasks, noisy=None, y_s_clean=None, classes=None)


def meta_grads(model, theta, pool: TaskBatch, idx, a) -> list[torch.Tensor]:
    """Mean of the drawn tasks' second-order ANIL meta-gradients, one task at a time (``step.TaskGrads``)."""
    per = []
    for i in idx:
        loss, _ = maml.task_losses(model, theta, pool[[i]], a.inner_steps, a.inner_lr, "anil", first_order=False)
        per.append(torch.autograd.grad(loss.sum(), list(theta.values())))
    return [torch.stack(gs).mean(0) for gs in zip(*per)]


def reference(ex, argv, steps: int) -> list[dict]:
    """The example's first ``steps`` steps recomputed with the library's pieces."""
    a = ex.parse_args(argv)
    data = load_images(a.data)
    x = data.x.to(torch.get_default_dtype()) / 255.0
    train, val = ({int(c): torch.nonzero(data.y == c).flatten() for c in data.classes(s)} for s in ("train", "val"))
    g = torch.Generator().manual_seed(a.seed)
    theta = {k: v.requires_grad_(True) for k, v in ex.init_params(x.shape[1], x.shape[2], a.ways, a.width, g).items()}
    opt = torch.optim.Adam(theta.values(), lr=a.outer_lr)
    sched = TaskScheduler(generator=torch.Generator().manual_seed(a.seed))
    model = SimpleNamespace(features=ex.features, head=ex.head)       # what the library's ANIL calls
    out = []
    for t in range(steps):
        pool, val_tasks = batch(ex.sample_tasks(x, train, a.pool, a, a.noise, g)[0]), batch(
            ex.sample_tasks(x, val, a.val_tasks, a, 0.0, g)[0])
        f = pool_factors(model, theta, pool, a.inner_steps, a.inner_lr, "anil", path="loop")
        feats = sched.inputs(f.loss, f.sim_cos)
        draws = sched.draw_inputs(feats, a.batch, t / a.steps, 1.0, n=2)

        def score(p):
            return -float(maml.evaluate(model, p, val_tasks, a.inner_steps, a.inner_lr, "anil")[0].mean())
        rewards, norms = [], []
        for d in draws:
            gb, norm = bounded(meta_grads(model, theta, pool, d.indices.tolist(), a), a.max_norm)
            norms.append(float(norm))
            rewards.append(score({k: v.detach() - a.lookahead_lr * gk for (k, v), gk in zip(theta.items(), gb)})
                           - score(theta))
        up = sched.update(draws, rewards)
        with torch.no_grad():
            real = sched.draw_inputs(feats, a.batch, t / a.steps, sched.temperature(t))
        opt.zero_grad()
        for prm, gk in zip(theta.values(), meta_grads(model, theta, pool, real.indices.tolist(), a)):
            prm.grad = gk.clone()
        opt.step()
        out.append(dict(loss=f.loss.tolist(), sim=f.sim_cos.tolist(), drawn=[d.indices.tolist() for d in draws],
                        log_probs=[float(d.log_prob.detach()) for d in draws], rewards=rewards,
                        advantages=up["advantages"], batch=real.indices.tolist(), probs=real.probs.tolist(), norms=norms,
                        theta_norm=float(torch.cat([v.detach().flatten() for v in theta.values()]).norm())))
    return out


def test_example_matches_the_library_step_by_step(example, float64, capsys):
    got = example.main(TINY)
    want = reference(example, TINY, 3)
    assert len(got) == 4 and "step    4" in capsys.readouterr().out
    close = dict(rtol=1e-9, atol=1e-12)
    for t, (g, w) in enumerate(zip(got, want)):
        assert g["drawn"] == w["drawn"] and g["batch"] == w["batch"], f"step {t}"
        for key in ("loss", "sim", "log_probs", "rewards", "advantages", "probs"):
            torch.testing.assert_close(torch.tensor(g[key]), torch.tensor(w[key]), **close, msg=f"step {t}: {key}")
        torch.testing.assert_close(g["theta_norm"], w["theta_norm"], **close)
    assert any(a != 0 for w in want for a in w["advantages"])        # phi did learn: the check is not vacuous
    assert len({tuple(d) for w in want for d in w["drawn"]}) > 1
    assert any(n > 0.5 for w in want for n in w["norms"])              # ... and the look-ahead's clip was active


def test_example_runs_from_the_command_line():
    r = subprocess.run([sys.executable, str(EXAMPLE), *TINY[:-4], "--steps", "2", "--log-every", "1"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("train loss") == 2 and "noisy share" in r.stdout
    bad = subprocess.run([sys.executable, str(EXAMPLE), "--data", "no/such.npz"], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no/such.npz: no such file" in bad.stderr, bad.stderr


@pytest.mark.parametrize("inner", ["anil", "maml"])
def test_task_factors_equal_pool_factors_on_the_librarys_model(images, inner):
    model, tasks = tiny_model(images), tiny_tasks(images, n=4, noise_ratio=0.5)
    p = dict(model.named_parameters())
    f = pool_factors(model, p, tasks, 3, 0.2, inner)
    loss, sim = task_factors(lambda q, x: model.head(q, model.features(q, x)), p, (tasks.x_s, tasks.y_s),
                             (tasks.x_q, tasks.y_q), 3, 0.2, adapt=model.head_keys if inner == "anil" else None)
    torch.testing.assert_close(loss, f.loss, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sim, f.sim_cos, rtol=1e-6, atol=1e-7)
    assert loss.device.type == "cpu" and not loss.requires_grad and sim.shape == (4,)
    with pytest.raises(ValueError, match="not parameters"):
        task_factors(model, p, (tasks.x_s, tasks.y_s), (tasks.x_q, tasks.y_q), 1, 0.1, adapt=("nope",))
