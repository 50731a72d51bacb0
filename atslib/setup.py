"""``Setup``: what a run builds once - data, task samplers, the model, fixed evaluation tasks.

A ``Setup`` is built by its dataset (``atslib.datasets``); the helpers here only use it: the
fixed validation and test tasks (their seed is independent of the run seed, so every run is scored
on the same tasks), evaluation of the current parameters, starting from another run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import maml
from .config import Config, ConfigError
from .store import BEST, check_version, load_torch
from .tasks import fixed_tasks


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device 'cuda': no CUDA device is available here; allowed: auto, cpu")
    return torch.device(name)


@dataclass
class Setup:
    """Everything a run builds once: data, episode samplers, model, fixed evaluation tasks."""
    cfg: Config
    device: torch.device
    data: object
    model: torch.nn.Module
    train_sampler: object                 # draws meta-training pools (noisy/hard/shifted as configured)
    val_sampler: object                   # clean meta-val tasks
    test_sampler: object                  # clean meta-test tasks
    train_classes: np.ndarray
    val_fixed: list | None = None
    hard_test_sampler: object = None      # hard meta-test tasks (image runs with hard_ratio > 0)
    dataset: object = None                # the ``datasets`` object that built it (test, diagnostics)


def val_tasks(setup: Setup) -> list:
    if setup.val_fixed is None:
        setup.val_fixed = [t.to(setup.device) for t in
                           fixed_tasks(setup.val_sampler, setup.cfg.n_val_tasks, setup.cfg.test_seed, "val")]
    return setup.val_fixed


def test_tasks(setup: Setup, hard: bool = False) -> list:
    """The fixed meta-test tasks (``hard``: the hard ones, from mutually confusable meta-test classes)."""
    if hard:
        return fixed_tasks(setup.hard_test_sampler, setup.cfg.n_test_tasks, setup.cfg.test_seed, "test-hard")
    return fixed_tasks(setup.test_sampler, setup.cfg.n_test_tasks, setup.cfg.test_seed, "test")


def evaluate_params(setup: Setup, tasks, steps: int | None = None):
    """Per-task (loss, score) of the model's current parameters after ``steps`` inner steps."""
    cfg = setup.cfg
    p = dict(setup.model.named_parameters())
    chunks = [t.to(setup.device) for t in tasks]
    return maml.evaluate(setup.model, p, chunks, steps or cfg.test_inner_steps, cfg.inner_lr, cfg.inner)


def init_from(setup: Setup, run_dir) -> None:
    """Start theta from another run's best checkpoint (``--init``)."""
    check_version(Path(run_dir))
    setup.model.load_state_dict(load_torch(Path(run_dir) / BEST)["model"])


def copy_params(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


__all__ = ["Setup", "resolve_device", "val_tasks", "test_tasks", "evaluate_params", "init_from", "copy_params"]
