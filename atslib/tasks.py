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
``noise_on`` moves the corruption to the query labels ("query", as the authors' released ATS loader
does) or to both sets ("both"); validation and test tasks stay clean either way.

Regimes beyond the paper's noise (each task independently draws one kind, ``KINDS``):
- *hard* (``hard_ratio``): clean tasks whose classes are mutually confusable (``confusion``: how
  often a nearest-class-mean classifier in pixel space confuses two classes of the split);
- *shifted* (``ood_ratio``): clean tasks whose images come from a shifted domain (``SHIFTS``:
  drawings rotated by 90 degrees, inverted, or with thickened strokes);
- *noisy* (``noise_ratio``) and *ordinary* (the rest).
With any of hard/shifted in play the three ratios are fractions of all tasks and exclusive (a hard
or shifted task is never noisy). ``TaskBatch.kind`` records each task's kind and ``bad`` (noisy
or shifted) is the flag diagnostics score against; like ``noisy``, no method may read them.

Streams: all randomness comes from explicit ``torch.Generator``s. ``stream(seed, step, name)``
derives an independent generator from (seed, step, name), so the pool at step t is a function of
(seed, t) alone - the same for every method - and a resumed run sees exactly the same tasks.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from .config import NOISE_ON, SHIFTS
from .data import ImageData

KINDS = ("ordinary", "noisy", "hard", "shifted")      # TaskBatch.kind codes 0, 1, 2, 3


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
    y_q: torch.Tensor          # (T, N*Q) int64 (clean unless noise_on is "query" or "both")
    noisy: torch.Tensor        # (T,) bool: labels corrupted, diagnostics only
    y_s_clean: torch.Tensor    # (T, N*K) int64, the labels before corruption
    classes: torch.Tensor      # (T, N) int64, dataset class of each task label (molecules: (T, 1) assay id)
    m_s: torch.Tensor | None = None  # (T, n_s) float 1/0 mask of real (unpadded) support rows; None = all real
    m_q: torch.Tensor | None = None  # (T, n_q) float mask of the query rows (variable-size tasks, molecules)
    kind: torch.Tensor | None = None  # (T,) int64 code of KINDS, diagnostics only; None = from ``noisy``

    def hidden(self) -> "TaskBatch":
        """The same tasks without what a method must not see (noisy mask, kinds, clean labels)."""
        return dataclasses.replace(self, noisy=None, kind=None, y_s_clean=None)

    def diagnostics(self) -> "TaskBatch":
        """Only what the records score against: the noisy mask and the kinds (no images)."""
        return TaskBatch(*(None,) * 4, noisy=self.noisy, y_s_clean=None, classes=self.classes, kind=self.kind)

    @property
    def bad(self) -> torch.Tensor:
        """(T,) bool: the tasks a scheduler should avoid - label-noisy or domain-shifted."""
        return self.noisy if self.kind is None else self.noisy | (self.kind == KINDS.index("shifted"))

    def __len__(self) -> int:
        return (self.x_s if self.x_s is not None else self.classes).shape[0]

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


def shift_images(x: torch.Tensor, shift: str) -> torch.Tensor:
    """Images (..., C, H, W) in [0, 1] moved to a shifted domain (strokes are bright on dark)."""
    if shift == "rot90":
        return torch.rot90(x, 1, dims=(-2, -1))
    if shift == "invert":
        return 1.0 - x
    if shift == "thicken":          # a 3x3 dilation: strokes about 2 px thicker than any test drawing's
        flat = x.reshape(-1, *x.shape[-3:])
        return F.max_pool2d(flat, 3, stride=1, padding=1).reshape(x.shape)
    raise ValueError(f"shift {shift!r}; allowed: {', '.join(SHIFTS)}")


_CONFUSION: dict = {}        # (data sha256, classes) -> matrix: computed once per process


def confusion(data: ImageData, classes) -> torch.Tensor:
    """Pairwise confusability (n, n) of the given classes, symmetric, zero diagonal.

    Entry (i, j) averages, over both directions, the fraction of class-i images (L2-normalised
    pixels) that lie closer to class j's mean image than to their own class's mean: the pairwise
    error of a nearest-class-mean classifier in pixel space. It needs no model and no randomness, so
    it is defined once per data file; it is computed on one split's classes only (meta-train tasks
    never look at meta-test classes, and the hard test tasks use meta-test classes).
    """
    classes = tuple(int(c) for c in classes)
    key = (data.sha256, classes)
    if key not in _CONFUSION:
        x = F.normalize(data.x.flatten(1).float(), dim=1)
        rows = data.rows_by_class()
        means = torch.stack([x[rows[c]].mean(0) for c in classes])                  # (n, D)
        conf = torch.zeros(len(classes), len(classes), dtype=torch.float64)
        for i, c in enumerate(classes):
            d = torch.cdist(x[rows[c]], means)                                       # (m, n)
            conf[i] = (d < d[:, i: i + 1]).double().mean(0)                          # P(closer to mean j than own)
        _CONFUSION[key] = 0.5 * (conf + conf.T)
    return _CONFUSION[key]


class EpisodeSampler:
    """N-way K-shot episodes with Q queries per class from one split of an ``ImageData``.

    ``classes`` restricts the split (a limited budget); ``noise_ratio``/``flip_prob`` corrupt
    labels of a random fraction of tasks (use 0 for validation and test), on the sets ``noise_on``
    names; ``hard_ratio`` and ``ood_ratio`` add hard-clean and shifted-domain tasks (see the module
    docstring). A sampler with ``hard_ratio=1`` draws only hard tasks (the hard meta-test set).
    """

    def __init__(self, data: ImageData, split: str, ways: int, shots: int, queries: int,
                 noise_ratio: float = 0.0, flip_prob: float = 0.8, classes=None, noise_on: str = "support",
                 hard_ratio: float = 0.0, ood_ratio: float = 0.0, ood_shift: str = "rot90"):
        if noise_on not in NOISE_ON:
            raise ValueError(f"noise_on {noise_on!r}; allowed: {', '.join(NOISE_ON)}")
        if ood_shift not in SHIFTS:
            raise ValueError(f"ood_shift {ood_shift!r}; allowed: {', '.join(SHIFTS)}")
        if (hard_ratio or ood_ratio) and noise_ratio + hard_ratio + ood_ratio > 1 + 1e-9:
            raise ValueError(f"noise_ratio {noise_ratio!r} + hard_ratio {hard_ratio!r} + ood_ratio {ood_ratio!r}: "
                             "must sum to <= 1")
        self.data, self.ways, self.shots, self.queries = data, ways, shots, queries
        self.noise_ratio, self.flip_prob, self.noise_on = noise_ratio, flip_prob, noise_on
        self.hard_ratio, self.ood_ratio, self.ood_shift = hard_ratio, ood_ratio, ood_shift
        self.classes = torch.as_tensor(np.asarray(data.classes(split) if classes is None else classes))
        self.rows = data.rows_by_class()
        self._conf = None                  # the split's confusion matrix, looked up on the first hard task

    def hard_classes(self, g: torch.Generator) -> torch.Tensor:
        """N mutually confusable classes: a random first class, then each next one drawn uniformly
        among the N most confusable remaining classes (mean confusion with those already chosen)."""
        if self._conf is None:
            self._conf = confusion(self.data, self.classes.tolist())
        conf = self._conf
        chosen = [int(torch.randint(len(self.classes), (1,), generator=g))]
        while len(chosen) < self.ways:
            score = conf[chosen].mean(0)
            score[chosen] = -1.0
            top = torch.topk(score, min(self.ways, len(self.classes) - len(chosen))).indices
            chosen.append(int(top[torch.randint(len(top), (1,), generator=g)]))
        return self.classes[torch.tensor(chosen)]

    def sample(self, n: int, g: torch.Generator) -> TaskBatch:
        """Draw ``n`` tasks: classes, then (with hard/shifted tasks in play) each task's kind and
        the hard tasks' classes, then examples, then which tasks are noisy and their flips."""
        pick = torch.stack([torch.randperm(len(self.classes), generator=g)[: self.ways] for _ in range(n)])
        classes = self.classes[pick]
        if not (self.hard_ratio or self.ood_ratio):       # the paper's noise alone: the original stream
            return self.from_classes(classes, g)
        u = torch.rand(n, generator=g)
        cut = np.cumsum([self.hard_ratio, self.noise_ratio, self.ood_ratio])
        hard, shifted = u < cut[0], (u >= cut[1]) & (u < cut[2])
        noisy = (u >= cut[0]) & (u < cut[1])
        for t in torch.nonzero(hard).flatten().tolist():
            classes[t] = self.hard_classes(g)
        return self.from_classes(classes, g, noisy, hard=hard, shifted=shifted)

    def from_classes(self, classes: torch.Tensor, g: torch.Generator, noisy: torch.Tensor | None = None,
                     hard: torch.Tensor | None = None, shifted: torch.Tensor | None = None) -> TaskBatch:
        """Build tasks from given classes (T, N) (``gcp`` chooses its own classes); ``noisy``,
        ``hard`` and ``shifted`` (T,) bool are drawn here when not given (noisy) or all False."""
        n, k, q = classes.shape[0], self.shots, self.queries
        rows = torch.empty(n, self.ways, k + q, dtype=torch.long)
        for t in range(n):
            for w in range(self.ways):
                r = self.rows[int(classes[t, w])]
                rows[t, w] = r[torch.randperm(len(r), generator=g)[: k + q]]
        x = self.data.x[rows].contiguous().to(torch.get_default_dtype()).div_(255.0)                        # (T, N, K+Q, C, H, W)
        if shifted is not None and shifted.any():
            x[shifted] = shift_images(x[shifted], self.ood_shift)
        labels = torch.arange(self.ways).view(1, self.ways, 1).expand(n, self.ways, k + q)
        x_s, x_q = x[:, :, :k].flatten(1, 2), x[:, :, k:].flatten(1, 2)
        y_s, y_q = labels[:, :, :k].flatten(1), labels[:, :, k:].flatten(1)
        if noisy is None:
            noisy = torch.rand(n, generator=g) < self.noise_ratio
        y_s_noisy = corrupt(y_s, self.ways, self.flip_prob, g)
        y_s_out = torch.where(noisy[:, None], y_s_noisy, y_s) if self.noise_on != "query" else y_s.clone()
        y_q_out = y_q.clone()
        if self.noise_on != "support":                  # drawn after the support flips: "support" keeps its stream
            y_q_out = torch.where(noisy[:, None], corrupt(y_q, self.ways, self.flip_prob, g), y_q)
        kind = torch.zeros(n, dtype=torch.long)
        for code, mask in ((1, noisy), (2, hard), (3, shifted)):
            if mask is not None:
                kind[mask] = code
        return TaskBatch(x_s, y_s_out, x_q, y_q_out, noisy.clone(), y_s.clone(), classes.clone(), kind=kind)


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
