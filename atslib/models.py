"""Backbones with a linear head, written as pure functions of a parameter dict.

``ConvNet`` is the conv-4 of few-shot learning: four blocks of [3x3 conv, GroupNorm, ReLU, 2x2
max-pool] (``pools`` of them pool). GroupNorm normalises each example on its own, so a batch of
many tasks run through the backbone at once gives exactly what each task would give alone - no
running statistics to mutate under ``torch.func`` and no information shared across query
examples (per-batch BatchNorm would be transductive). ``MLP`` serves vector inputs (molecular
fingerprints: 1024 -> 500 -> 500 -> 1 in the paper).

Every model exposes ``features(p, x)``, ``head(p, f)`` and ``head_keys`` (the names of the
parameters ANIL adapts). ``p`` is a ``{name: tensor}`` dict such as ``dict(model.named_parameters())``
or a look-ahead copy of it. ``feature_hooks``: callables ``hook(f)`` told of every batch of features
``features`` returns (empty unless someone listens: ``display.live.LiveRun`` counts the examples of
an evaluation); they change no number.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def max_pool2_nograd(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pool (stride 2, odd edges dropped) as two elementwise maxima: the same values as
    ``F.max_pool2d(x, 2)``, several times faster on CPU, where max_pool2d also computes the argmax
    indices that only its backward needs. Used where no gradient flows (evaluation, scoring)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    x = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
    return torch.maximum(x[..., 0::2], x[..., 1::2])


def _told(model, f: torch.Tensor) -> torch.Tensor:
    """``f``, after telling the model's ``feature_hooks`` of it."""
    for hook in model.feature_hooks:
        hook(f)
    return f


class ConvNet(nn.Module):
    """conv-4 + linear head. ``in_shape`` = (C, H, W) of the inputs."""

    head_keys = ("head.weight", "head.bias")

    def __init__(self, in_shape: tuple[int, int, int], out_dim: int, width: int = 32, pools: int = 4,
                 groups: int = 8):
        super().__init__()
        self.feature_hooks = []
        c, h, w = in_shape
        self.pools, self.groups = pools, min(groups, width)
        for i in range(4):
            conv = nn.Conv2d(c if i == 0 else width, width, 3, padding=1)
            self.add_module(f"conv{i}", conv)
            self.add_module(f"norm{i}", nn.GroupNorm(self.groups, width))
        for i in range(pools):
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"images of {in_shape[1]}x{in_shape[2]} px are too small for {pools} pools")
        self.embed_dim = width * h * w
        self.head = nn.Linear(self.embed_dim, out_dim)

    def features(self, p: dict, x: torch.Tensor, runs: int = 1) -> torch.Tensor:
        """(n, C, H, W) -> (n, embed_dim). ``runs`` = R > 1: R networks side by side, their channels
        in R blocks (x (n, R*C, H, W), p's tensors those of the R runs concatenated along the
        output channels): grouped convolutions keep the blocks apart and GroupNorm with R x G groups
        normalises each run's groups as the run alone would; -> (n, R*embed_dim), run-major."""
        for i in range(4):
            x = F.conv2d(x, p[f"conv{i}.weight"], p[f"conv{i}.bias"], padding=1, groups=runs)
            x = F.group_norm(x, self.groups * runs, p[f"norm{i}.weight"], p[f"norm{i}.bias"])
            x = F.relu(x)
            if i < self.pools:
                x = F.max_pool2d(x, 2) if x.requires_grad else max_pool2_nograd(x)
        return _told(self, x.flatten(1))

    def head(self, p: dict, f: torch.Tensor) -> torch.Tensor:
        return F.linear(f, p["head.weight"], p["head.bias"])

    def forward(self, x):
        p = dict(self.named_parameters())
        return self.head(p, self.features(p, x))


class MLP(nn.Module):
    """Fully connected ReLU network + linear head (vector inputs)."""

    head_keys = ("head.weight", "head.bias")

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...] = (500, 500)):
        super().__init__()
        self.feature_hooks = []
        dims = (in_dim, *hidden)
        for i in range(len(hidden)):
            self.add_module(f"fc{i}", nn.Linear(dims[i], dims[i + 1]))
        self.n_hidden = len(hidden)
        self.embed_dim = dims[-1]
        self.head = nn.Linear(self.embed_dim, out_dim)

    def features(self, p: dict, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.n_hidden):
            x = F.relu(F.linear(x, p[f"fc{i}.weight"], p[f"fc{i}.bias"]))
        return _told(self, x)

    def head(self, p: dict, f: torch.Tensor) -> torch.Tensor:
        return F.linear(f, p["head.weight"], p["head.bias"])

    def forward(self, x):
        p = dict(self.named_parameters())
        return self.head(p, self.features(p, x))


def layer_of(name: str) -> str:
    """Group a parameter name into its layer for per-layer gradient cosines (conv0+norm0 -> block0)."""
    stem = name.split(".")[0]
    for prefix, label in (("conv", "block"), ("norm", "block"), ("fc", "fc")):
        if stem.startswith(prefix) and stem[len(prefix):].isdigit():
            return f"{label}{stem[len(prefix):]}"
    return stem


def build_model(in_shape, out_dim: int, width: int = 32, pools: int = 4, generator: torch.Generator | None = None):
    """A ConvNet for image shapes (C, H, W), an MLP for vector shapes (D,); seeded init."""
    model = ConvNet(in_shape, out_dim, width, pools) if len(in_shape) == 3 else MLP(in_shape[0], out_dim, (width, width))
    if generator is not None:
        with torch.no_grad():
            for name, prm in model.named_parameters():
                if prm.ndim > 1:   # kaiming-uniform like torch's default, from our generator
                    fan_in = prm[0].numel()
                    bound = math.sqrt(1.0 / fan_in) * math.sqrt(3.0)
                    prm.copy_(torch.rand(prm.shape, generator=generator) * 2 * bound - bound)
                elif "norm" in name and name.endswith("weight"):
                    prm.fill_(1.0)
                else:
                    prm.zero_()
    return model
