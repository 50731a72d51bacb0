"""Finiteness guards: a NaN or inf in a loss, a factor or a reward stops (or skips) a step.

They run *before* anything moves: the factors are checked before the scheduler sees them, the
rewards before phi steps, the meta-loss before theta steps (``Config.on_nonfinite``).
"""
from __future__ import annotations

import torch


class NonFiniteError(RuntimeError):
    """A NaN or inf appeared in a loss, a factor or a reward."""


def check_finite(step: int, name: str, value) -> None:
    t = torch.as_tensor(value, dtype=torch.float64)
    if not torch.isfinite(t).all():
        raise NonFiniteError(f"step {step}: {name} is not finite ({t.flatten()[:4].tolist()}); the last good "
                             f"checkpoint is kept (--on-nonfinite skip skips such steps instead)")


def check_factors(step: int, f):
    """The pool's factors, after checking that each is finite (raises ``NonFiniteError``)."""
    for name in ("loss", "sim_dot", "sim_cos"):
        check_finite(step, f"factor {name}", getattr(f, name))
    return f


__all__ = ["NonFiniteError", "check_finite", "check_factors"]
