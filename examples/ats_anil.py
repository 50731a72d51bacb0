"""ANIL trained with ATS's adaptive task scheduler, in one plain PyTorch loop (read top to bottom).

No Config, no run directory: a conv net written as a function of a parameter dict, few-shot tasks
cut from plain tensors, and two pieces of ``atslib``: ``task_factors`` (each pool task's loss and
gradient similarity) and ``TaskScheduler`` (phi: the draw and its REINFORCE update). Each step:
  1. sample a pool of P tasks (a share with random support labels) and V clean validation tasks;
  2. score the pool at theta and draw B tasks twice; for each draw a look-ahead theta~ = theta -
     lr * meta-gradient and the paired reward R = L_val(theta) - L_val(theta~) on the same tasks;
  3. REINFORCE on phi (the two draws are each other's baseline); draw the real batch with the
     updated phi and take theta's Adam step on it.
Run: python examples/ats_anil.py --steps 20    (``--data``: any image npz of atslib's schema)
"""
import argparse
import sys

import torch
import torch.nn.functional as F

from atslib.data import DataError, load_images
from atslib.features import task_factors
from atslib.scheduler import TaskScheduler

HEAD = ("head.weight", "head.bias")          # ANIL: only the head adapts in the inner loop


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="image npz (default: atslib's committed QuickDraw subset)")
    for name, default in (("steps", 20), ("seed", 0), ("ways", 5), ("shots", 1), ("queries", 5), ("width", 8),
                          ("pool", 10), ("batch", 2), ("val-tasks", 4), ("inner-steps", 5), ("log-every", 5)):
        p.add_argument(f"--{name}", type=int, default=default)     # pool: P, batch: B, val-tasks: V; width: channels
    p.add_argument("--noise", type=float, default=0.5, help="share of pool tasks with random support labels")
    for name, default in (("inner-lr", 0.1), ("outer-lr", 1e-3), ("lookahead-lr", 0.1)):
        p.add_argument(f"--{name}", type=float, default=default)
    p.add_argument("--max-norm", type=float, default=10.0, help="clip the look-ahead's meta-gradient norm")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args(argv)


# -- the model: two conv blocks and a linear head, a function of a parameter dict ----------------
def init_params(channels: int, side: int, ways: int, width: int, g: torch.Generator) -> dict:
    def uniform(*shape):
        bound = (3.0 / (torch.Size(shape[1:]).numel())) ** 0.5
        return (torch.rand(shape, generator=g) * 2 - 1) * bound
    return {"conv0.weight": uniform(width, channels, 3, 3), "conv0.bias": torch.zeros(width),
            "conv1.weight": uniform(width, width, 3, 3), "conv1.bias": torch.zeros(width),
            "head.weight": uniform(ways, width * (side // 4) ** 2), "head.bias": torch.zeros(ways)}


def features(p: dict, x: torch.Tensor) -> torch.Tensor:
    for i in range(2):
        x = F.max_pool2d(F.relu(F.conv2d(x, p[f"conv{i}.weight"], p[f"conv{i}.bias"], padding=1)), 2)
    return x.flatten(1)


def head(p: dict, f: torch.Tensor) -> torch.Tensor:
    return F.linear(f, p["head.weight"], p["head.bias"])


def forward(p: dict, x: torch.Tensor) -> torch.Tensor:
    return head(p, features(p, x))


# -- tasks: (x_s, y_s, x_q, y_q) with a leading task axis ----------------------------------------
def sample_tasks(x, rows: dict, n: int, args, noise: float, g: torch.Generator):
    """``n`` N-way K-shot tasks from the classes of ``rows`` ({class: row indices of x}); a share
    ``noise`` of them gets random support labels. Returns (tasks, noisy mask (n,))."""
    classes, s, k = list(rows), args.shots, args.shots + args.queries
    out, noisy = [], torch.rand(n, generator=g) < noise
    for t in range(n):
        pick = [classes[i] for i in torch.randperm(len(classes), generator=g)[:args.ways].tolist()]
        idx = torch.stack([rows[c][torch.randperm(len(rows[c]), generator=g)[:k]] for c in pick])   # (N, K+Q)
        y = torch.arange(args.ways).unsqueeze(1).expand(-1, k)                                      # (N, K+Q)
        y_s = torch.randint(args.ways, (args.ways * s,), generator=g) if noisy[t] else y[:, :s].flatten()
        out.append((x[idx[:, :s]].flatten(0, 1), y_s, x[idx[:, s:]].flatten(0, 1), y[:, s:].flatten()))
    return tuple(torch.stack(z).to(args.device) for z in zip(*out)), noisy


# -- ANIL ----------------------------------------------------------------------------------------
def query_loss(p: dict, task, args, graph: bool = True) -> torch.Tensor:
    """One task's query loss after adapting the head on its support set (second order by default).
    The backbone does not adapt, so its features are computed once."""
    x_s, y_s, x_q, y_q = task
    f_s, f_q, fast = features(p, x_s), features(p, x_q), dict(p)
    for _ in range(args.inner_steps):
        g = torch.autograd.grad(F.cross_entropy(head(fast, f_s), y_s), [fast[k] for k in HEAD], create_graph=graph)
        fast.update({k: fast[k] - args.inner_lr * gk for k, gk in zip(HEAD, g)})
    return F.cross_entropy(head(fast, f_q), y_q)


def mean_query_loss(p: dict, tasks, idx, args) -> torch.Tensor:
    return torch.stack([query_loss(p, tuple(z[i] for z in tasks), args) for i in idx]).mean()


def val_loss(p: dict, tasks, args) -> float:
    """Mean query loss of parameters ``p`` on the validation tasks, no graph (first order)."""
    q = {k: v.detach().requires_grad_(True) for k, v in p.items()}
    return float(torch.stack([query_loss(q, tuple(z[i] for z in tasks), args, False).detach()
                              for i in range(len(tasks[0]))]).mean())


def look_ahead(theta: dict, pool, idx, args) -> dict:
    """theta~ = theta - lookahead_lr * (the drawn tasks' meta-gradient, its norm clipped to max_norm)."""
    grads = torch.autograd.grad(mean_query_loss(theta, pool, idx, args), list(theta.values()))
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    scale = float(torch.clamp(args.max_norm / (norm + 1e-12), max=1.0))
    return {k: v.detach() - args.lookahead_lr * scale * g for (k, v), g in zip(theta.items(), grads)}


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    data = load_images(args.data)
    x = data.x.to(torch.get_default_dtype()) / 255.0                       # (N, C, H, W) in [0, 1]
    train, val = ({int(c): torch.nonzero(data.y == c).flatten() for c in data.classes(s)} for s in ("train", "val"))
    g = torch.Generator().manual_seed(args.seed)                           # theta's init, then the tasks
    theta = {k: v.to(args.device).requires_grad_(True)
             for k, v in init_params(x.shape[1], x.shape[2], args.ways, args.width, g).items()}
    opt = torch.optim.Adam(theta.values(), lr=args.outer_lr)
    sched = TaskScheduler(generator=torch.Generator().manual_seed(args.seed))   # phi (ATS's defaults), its draws
    history = []
    for t in range(args.steps):
        pool, noisy = sample_tasks(x, train, args.pool, args, args.noise, g)    # pool[:2] = support, pool[2:] = query
        val_tasks, _ = sample_tasks(x, val, args.val_tasks, args, 0.0, g)
        loss, sim = task_factors(forward, theta, pool[:2], pool[2:], args.inner_steps, args.inner_lr, adapt=HEAD)
        draws = sched.draw(loss, sim, args.batch, progress=t / args.steps, n=2)    # two draws, one pass of phi
        base = val_loss(theta, val_tasks, args)
        rewards = [base - val_loss(look_ahead(theta, pool, d.indices.tolist(), args), val_tasks, args) for d in draws]
        info = sched.update(draws, rewards)                                  # REINFORCE: leave-one-out baseline
        with torch.no_grad():                                                # the real batch, with the updated phi
            real = sched.draw(loss, sim, args.batch, t / args.steps, sched.temperature(t))
        batch = real.indices.tolist()
        opt.zero_grad()
        train_loss = mean_query_loss(theta, pool, batch, args)
        train_loss.backward()
        opt.step()
        history.append(dict(step=t, loss=loss.tolist(), sim=sim.tolist(), drawn=[d.indices.tolist() for d in draws],
                            log_probs=[float(d.log_prob.detach()) for d in draws], rewards=rewards,
                            advantages=info["advantages"], batch=batch, probs=real.probs.tolist(), noisy=float(noisy[batch].float().mean()),
                            train_loss=float(train_loss.detach()),
                            theta_norm=float(torch.cat([v.detach().flatten() for v in theta.values()]).norm())))
        if (t + 1) % args.log_every == 0 or t + 1 == args.steps:
            late = history[-args.log_every:]
            mean = {k: sum(h[k] for h in late) / len(late) for k in ("train_loss", "noisy")}
            reward = sum(sum(h["rewards"]) / len(h["rewards"]) for h in late) / len(late)
            print(f"step {t + 1:4d}  train loss {mean['train_loss']:.3f}  reward {reward:+.4f}  "
                  f"noisy share of trained tasks {mean['noisy']:.2f} (of the pool: {args.noise:.2f})", flush=True)
    return history


if __name__ == "__main__":
    try:
        main()
    except DataError as err:                      # a bad --data: one line, exit 2
        print(f"ats_anil.py: error: {err}", file=sys.stderr)
        sys.exit(2)
