"""Few-shot tasks as plain tensors with a leading task axis, label noise, budgets, task streams.

A ``TaskBatch`` holds T tasks: support ``x_s`` (T, N*K, C, H, W) / ``y_s`` (T, N*K), query ``x_q``
(T, N*Q, ...) / ``y_q`` (T, N*Q) and a boolean ``noisy`` (T,) mask. The mask is for diagnostics
only: no method may read it. ``y_s_clean`` keeps the uncorrupted support labels for display.
Tasks of unequal sizes (molecular assays, ``atslib.molecules``) are zero-padded to the largest
task of the batch, with float masks ``m_s``/``m_q`` (1 = real row); every per-task loss is then a
masked mean. Image tasks have no masks (None).

Noise follows the paper: a fraction ``noise_ratio`` of meta-training tasks is noisy (each task
independently); in a noisy task every *support* label is replaced, with probability
``flip_prob``, by a uniformly drawn *other* class. Query sets, validation and test tasks are clean.

Streams: all randomness comes from explicit ``torch.Generator``s. ``stream(seed, step, name)``
derives an independent generator from (seed, step, name), so the pool at step t is a function of
(seed, t) alone - the same for every method - and a resumed run sees exactly the same tasks.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields

import numpy as np
import torch

from .data import ImageData


def stream(seed: int, step: int, name: str) -> torch.Generator:
    """A CPU generator seeded by a stable hash of (seed, step, name)."""
    digest = hashlib.blake2b(f"{seed}/{step}/{name}".encode(), digest_size=8).digest()
    g = torch.Generator()
    g.manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))
    return g


@dataclass
class TaskBatch:
    x_s: torch.Tensor          # (T, N*K, ...) float
    y_s: torch.Tensor          # (T, N*K) int64 (possibly corrupted)
    x_q: torch.Tensor          # (T, N*Q, ...) float
    y_q: torch.Tensor          # (T, N*Q) int64 (always clean)
    noisy: torch.Tensor        # (T,) bool, diagnostics only
    y_s_clean: torch.Tensor    # (T, N*K) int64, the labels before corruption
    classes: torch.Tensor      # (T, N) int64, dataset class of each task label (molecules: (T, 1) assay id)
    m_s: torch.Tensor | None = None  # (T, n_s) float 1/0 mask of real (unpadded) support rows; None = all real
    m_q: torch.Tensor | None = None  # (T, n_q) float mask of the query rows (variable-size tasks, molecules)

    def __len__(self) -> int:
        return self.x_s.shape[0]

    def _map(self, fn) -> "TaskBatch":
        return TaskBatch(**{f.name: (None if getattr(self, f.name) is None else fn(getattr(self, f.name)))
                            for f in fields(self)})

    def __getitem__(self, idx) -> "TaskBatch":
        if isinstance(idx, int):
            idx = [idx]
        return self._map(lambda v: v[idx])

    def to(self, device) -> "TaskBatch":
        return self._map(lambda v: v.to(device))

    @staticmethod
    def cat(batches: list["TaskBatch"]) -> "TaskBatch":
        """Concatenate along the task axis (masked batches must share their padded sizes)."""
        return TaskBatch(**{f.name: (None if getattr(batches[0], f.name) is None
                                     else torch.cat([getattr(b, f.name) for b in batches]))
                            for f in fields(TaskBatch)})

    @property
    def ways(self) -> int:
        return self.classes.shape[1]


def corrupt(y: torch.Tensor, ways: int, flip_prob: float, g: torch.Generator) -> torch.Tensor:
    """Replace each label with prob ``flip_prob`` by a uniformly drawn *other* class."""
    flip = torch.rand(y.shape, generator=g) < flip_prob
    shift = torch.randint(1, ways, y.shape, generator=g)
    return torch.where(flip, (y + shift) % ways, y)


class EpisodeSampler:
    """N-way K-shot episodes with Q queries per class from one split of an ``ImageData``.

    ``classes`` restricts the split (a limited budget); ``noise_ratio``/``flip_prob`` corrupt
    support labels of a random fraction of tasks (use 0 for validation and test).
    """

    def __init__(self, data: ImageData, split: str, ways: int, shots: int, queries: int,
                 noise_ratio: float = 0.0, flip_prob: float = 0.8, classes=None):
        self.data, self.ways, self.shots, self.queries = data, ways, shots, queries
        self.noise_ratio, self.flip_prob = noise_ratio, flip_prob
        self.classes = torch.as_tensor(np.asarray(data.classes(split) if classes is None else classes))
        self.rows = data.rows_by_class()

    def sample(self, n: int, g: torch.Generator) -> TaskBatch:
        """Draw ``n`` tasks: classes, then examples, then which tasks are noisy and their flips."""
        pick = torch.stack([torch.randperm(len(self.classes), generator=g)[: self.ways] for _ in range(n)])
        return self.from_classes(self.classes[pick], g)

    def from_classes(self, classes: torch.Tensor, g: torch.Generator, noisy: torch.Tensor | None = None) -> TaskBatch:
        """Build tasks from given classes (T, N) (used by ``gcp``, which chooses its own classes)."""
        n, k, q = classes.shape[0], self.shots, self.queries
        rows = torch.empty(n, self.ways, k + q, dtype=torch.long)
        for t in range(n):
            for w in range(self.ways):
                r = self.rows[int(classes[t, w])]
                rows[t, w] = r[torch.randperm(len(r), generator=g)[: k + q]]
        x = self.data.x[rows].float().div_(255.0)                          # (T, N, K+Q, C, H, W)
        labels = torch.arange(self.ways).view(1, self.ways, 1).expand(n, self.ways, k + q)
        x_s, x_q = x[:, :, :k].flatten(1, 2), x[:, :, k:].flatten(1, 2)
        y_s, y_q = labels[:, :, :k].flatten(1), labels[:, :, k:].flatten(1)
        if noisy is None:
            noisy = torch.rand(n, generator=g) < self.noise_ratio
        y_s_noisy = corrupt(y_s, self.ways, self.flip_prob, g)
        y_s_out = torch.where(noisy[:, None], y_s_noisy, y_s)
        return TaskBatch(x_s, y_s_out, x_q, y_q.clone(), noisy.clone(), y_s.clone(), classes.clone())


def budget_classes(data: ImageData, budget: int | None, seed: int = 0) -> np.ndarray:
    """The meta-train classes kept under a limited budget (a seeded fixed subset)."""
    train = data.classes("train")
    if budget is None or budget >= len(train):
        return train
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(train, size=budget, replace=False))


def fixed_tasks(sampler: EpisodeSampler, n: int, seed: int, name: str, chunk: int = 100) -> list[TaskBatch]:
    """A fixed list of task chunks (validation / test sets), identical for every run."""
    out, done = [], 0
    while done < n:
        m = min(chunk, n - done)
        out.append(sampler.sample(m, stream(seed, done, name)))
        done += m
    return out
