"""The molecular track: few-shot drug-activity regression (the paper's second domain, Drug / Drug-noisy).

Data: ``data/molecules.npz`` (built by ``data/build_molecules.py``; schema in its docstring):
4,100 / 76 / 100 semi-synthetic meta-train / meta-val / meta-test assays over real molecules
(no molecule in two splits) and three real held-out assays. Inputs are ECFP4 1,024-bit
fingerprints, unpacked to float32 once at load; labels are pIC50-like floats (mean ~6, std ~1).

Tasks: one assay = one task. Its molecules are shuffled (seeded) and split into a support set of
half of them, at most ``Config.max_support`` (50), and a query set of the rest, at most
``Config.max_query`` (100). Assays differ in size (20-300), so a batch is zero-padded to its
largest support / query set with float masks ``m_s`` / ``m_q`` (``TaskBatch``); every loss,
gradient and score is a masked mean per task, so padding changes no number
(``tests/test_molecules.py``).

Noise (Drug-noisy): the *support* labels of meta-training tasks become ``y + noise_scale * N(0, 1)``
- in every training task when ``noise_ratio`` is 0, in a random fraction ``noise_ratio`` of them
otherwise (so that the scheduler's noise AUC is defined). Query sets, validation, test and real
assays stay clean.

Model: ANIL on an MLP 1024 -> 500 -> 500 -> 1 (``Config.width`` left at its image default of 32
means the paper's 500; any other width is used as given), MSE loss; the reward, the validation
score (checkpoint choice) and ``best_val`` are -MSE on clean meta-val tasks. Inner lr: the
``Config`` default 0.1, not the authors' 0.005. Uniform, clean, 300 steps, seed 0 (R^2 mean over
the 100 test assays / val MSE): 0.005 -> 0.142 / 1.61, 0.02 -> 0.127 / 0.76, 0.05 -> 0.116 / 0.58,
0.1 -> 0.156 / 0.49; at 0.005 five steps cannot even fit an assay's offset. ATS: pass
``--lookahead-lr 0.01`` (the authors' alpha). With the default 0.1, an SGD look-ahead on noisy
(eta = 4) tasks at initialisation overshoots (rewards down to -1e7..-5e9) and the reward baseline
stays broken for hundreds of steps.

Test (``molecule_results``): R^2 = squared Pearson correlation of prediction and truth on each
task's query set (``metrics.r2_pearson``). Synthetic: one task per meta-test assay (the first
``n_test_tasks`` of the 100), reported as mean, median and count above 0.3. Real assays: each is
scored over ``REAL_EPISODES`` seeded episodes of ``REAL_SHOTS`` random support molecules, the rest
of the assay (at most ``REAL_QUERY_CAP``) as query; the same three statistics over episodes.
Every test split and real episode comes from ``cfg.test_seed`` (the same for every run).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import maml
from .config import Config
from .data import DataError, read_npz, sha256
from .metrics import mean_ci95, r2_pearson
from .paths import DATA_DIR
from .tasks import TaskBatch, stream

DEFAULT_MOLECULES = DATA_DIR / "molecules.npz"
KEYS = {"fp": "u", "assay_ptr": "i", "assay_mol": "i", "assay_y": "f", "assay_split": "i",
        "real_names": "U", "real_ptr": "i", "real_mol": "i", "real_y": "f"}
SPLITS = {"train": 0, "val": 1, "test": 2}
PAPER_HIDDEN = 500                                   # MLP 1024 -> 500 -> 500 -> 1
REAL_SHOTS, REAL_EPISODES, REAL_QUERY_CAP = 20, 100, 500
R2_THRESHOLD = 0.3


@dataclass
class MoleculeData:
    """Fingerprints as float32 rows and assays as (ptr, rows, labels) ragged arrays."""
    x: torch.Tensor            # (M, 1024) float32 0/1
    assay_ptr: np.ndarray      # (A+1,) int64
    assay_mol: torch.Tensor    # (sum sizes,) int64 rows of x
    assay_y: torch.Tensor      # (sum sizes,) float32
    assay_split: np.ndarray    # (A,) int8: 0 train, 1 val, 2 test
    real_names: list[str]
    real_ptr: np.ndarray
    real_mol: torch.Tensor
    real_y: torch.Tensor
    path: Path
    sha256: str

    def assays(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.assay_split == SPLITS[split])

    def assay(self, a: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, e = int(self.assay_ptr[a]), int(self.assay_ptr[a + 1])
        return self.assay_mol[s:e], self.assay_y[s:e]

    def real(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, e = int(self.real_ptr[i]), int(self.real_ptr[i + 1])
        return self.real_mol[s:e], self.real_y[s:e]


def load_molecules(path=None) -> MoleculeData:
    """Load and check a molecules npz; ``DataError`` with a one-line reason otherwise."""
    p, arr = read_npz(path, DEFAULT_MOLECULES)
    missing = sorted(set(KEYS) - set(arr))
    if missing:
        raise DataError(f"--data {p}: lacks keys {missing}; a molecules npz has {sorted(KEYS)} "
                        f"(see data/build_molecules.py)")
    bad = [k for k, kind in KEYS.items() if arr[k].dtype.kind != kind]
    if bad or arr["fp"].ndim != 2 or arr["fp"].shape[1] != 128:
        raise DataError(f"--data {p}: keys {bad or ['fp']} have the wrong dtype or shape; expected "
                        f"fp uint8 [M,128] (packed 1024-bit ECFP4), see data/build_molecules.py")
    m = len(arr["fp"])
    for ptr, mol in (("assay_ptr", "assay_mol"), ("real_ptr", "real_mol")):
        if arr[ptr][-1] != len(arr[mol]) or (len(arr[mol]) and not 0 <= arr[mol].min() <= arr[mol].max() < m):
            raise DataError(f"--data {p}: {ptr}/{mol} do not index the {m} fingerprint rows")
    real = torch.get_default_dtype()                  # float32 (float64 in the equivalence tests)
    x = torch.from_numpy(np.unpackbits(arr["fp"], axis=1).astype(np.float32)).to(real)
    t = lambda k, dt: torch.from_numpy(arr[k].astype(dt))  # noqa: E731
    return MoleculeData(x, arr["assay_ptr"].astype(np.int64), t("assay_mol", np.int64), t("assay_y", np.float32).to(real),
                        arr["assay_split"], [str(n) for n in arr["real_names"]], arr["real_ptr"].astype(np.int64),
                        t("real_mol", np.int64), t("real_y", np.float32).to(real), p, sha256(p))


def pad_tasks(x: torch.Tensor, parts: list, assay_ids) -> TaskBatch:
    """Padded TaskBatch from ``parts`` = [(s_rows, s_y, q_rows, q_y)] (clean labels, no noisy task)."""
    T = len(parts)
    ns, nq = max(len(pt[0]) for pt in parts), max(len(pt[2]) for pt in parts)
    out = {}
    for key, n, (ri, yi) in (("s", ns, (0, 1)), ("q", nq, (2, 3))):
        rows, y, m = torch.zeros(T, n, dtype=torch.long), torch.zeros(T, n), torch.zeros(T, n)
        for t, pt in enumerate(parts):
            k = len(pt[ri])
            rows[t, :k], y[t, :k], m[t, :k] = pt[ri], pt[yi], 1.0
        out[key] = (x[rows] * m.unsqueeze(-1), y, m)                       # padded rows are zeros
    (x_s, y_s, m_s), (x_q, y_q, m_q) = out["s"], out["q"]
    return TaskBatch(x_s, y_s, x_q, y_q, torch.zeros(T, dtype=torch.bool), y_s.clone(),
                     torch.as_tensor(np.asarray(assay_ids), dtype=torch.long).view(T, 1), m_s, m_q)


class AssaySampler:
    """Tasks from the assays of one split; ``.sample(n, g) -> TaskBatch`` (padded, with masks).

    ``noise_scale`` > 0 makes the support labels of noisy tasks ``y + noise_scale * N(0, 1)``;
    noisy tasks are all of them (``noise_ratio`` 0) or a random fraction ``noise_ratio``.
    """

    def __init__(self, data: MoleculeData, split: str, max_support: int, max_query: int,
                 noise_scale: float = 0.0, noise_ratio: float = 0.0):
        self.data, self.split, self.ids = data, split, data.assays(split)
        self.max_support, self.max_query = max_support, max_query
        self.noise_scale, self.noise_ratio = noise_scale, noise_ratio

    def split_assay(self, a: int, g: torch.Generator) -> tuple:
        """Shuffle assay ``a``: support = half (at most max_support), query = the rest (at most max_query)."""
        rows, y = self.data.assay(a)
        perm = torch.randperm(len(rows), generator=g)
        k = min(len(rows) // 2, self.max_support)
        s, q = perm[:k], perm[k: k + self.max_query]
        return rows[s], y[s], rows[q], y[q]

    def pick(self, n: int, g: torch.Generator) -> np.ndarray:
        """``n`` assays: a random permutation of the split, repeated (fresh order) when n exceeds it."""
        order = torch.cat([torch.randperm(len(self.ids), generator=g) for _ in range(-(-n // len(self.ids)))])
        return self.ids[order[:n].numpy()]

    def sample(self, n: int, g: torch.Generator) -> TaskBatch:
        """Assays, then their support/query splits, then which tasks are noisy, then the noise."""
        ids = self.pick(n, g)
        tasks = pad_tasks(self.data.x, [self.split_assay(int(a), g) for a in ids], ids)
        if self.noise_scale > 0:
            noisy = (torch.rand(n, generator=g) < self.noise_ratio) if self.noise_ratio > 0 else torch.ones(n, dtype=torch.bool)
            eps = torch.randn(tasks.y_s.shape, generator=g) * self.noise_scale
            tasks.y_s = tasks.y_s_clean + eps * tasks.m_s * noisy[:, None]
            tasks.noisy = noisy
        return tasks


def hidden_width(cfg) -> int:
    """The paper's 500 hidden units unless ``--width`` was set to something other than its default."""
    return PAPER_HIDDEN if cfg.width == Config.__dataclass_fields__["width"].default else cfg.width


# ---------------------------------------------------------------------------------------------
# Test: R^2 on the synthetic meta-test assays and on episodes of the real assays

def meta_test_parts(setup) -> tuple[np.ndarray, list]:
    """One task per meta-test assay (the first ``n_test_tasks``), split with ``test_seed`` only."""
    cfg, s = setup.cfg, setup.test_sampler
    ids = s.ids[: cfg.n_test_tasks]
    g = stream(cfg.test_seed, 0, "molecules/test-split")
    return ids, [s.split_assay(int(a), g) for a in ids]


def real_episodes(data: MoleculeData, i: int, seed: int, shots: int = REAL_SHOTS, episodes: int = REAL_EPISODES,
                  query_cap: int = REAL_QUERY_CAP) -> list[tuple]:
    """Seeded episodes of real assay ``i``: ``shots`` random support molecules, the rest (capped) as query."""
    rows, y = data.real(i)
    g = stream(seed, i, f"molecules/real/{data.real_names[i]}")
    out = []
    for _ in range(episodes):
        perm = torch.randperm(len(rows), generator=g)
        s, q = perm[:shots], perm[shots: shots + query_cap]
        out.append((rows[s], y[s], rows[q], y[q]))
    return out


def predict(setup, tasks: TaskBatch, steps: int | None = None) -> torch.Tensor:
    """Query predictions (T, n_q) after ``steps`` inner steps (test_inner_steps), no graph to theta."""
    cfg, model = setup.cfg, setup.model
    p = {k: v.detach() for k, v in model.named_parameters()}
    tasks = tasks.to(setup.device)
    steps = steps or cfg.test_inner_steps
    if cfg.inner == "anil":
        with torch.no_grad():
            out = maml.anil_outputs(model, p, tasks, steps, cfg.inner_lr, first_order=True)
    else:
        out = maml.maml_outputs_loop(model, p, tasks, steps, cfg.inner_lr, first_order=True).detach()
    return out.squeeze(-1).cpu()


def task_r2(pred: torch.Tensor, tasks: TaskBatch) -> np.ndarray:
    """Per-task squared Pearson correlation on the real (unmasked) query rows."""
    m = tasks.m_q.bool() if tasks.m_q is not None else torch.ones_like(tasks.y_q, dtype=torch.bool)
    return np.array([r2_pearson(pred[t][m[t]].numpy(), tasks.y_q[t][m[t]].numpy()) for t in range(len(tasks))])


def r2_stats(r2) -> dict:
    r2 = np.asarray(r2, dtype=float)
    return {"r2_mean": float(r2.mean()), "r2_median": float(np.median(r2)),
            "r2_gt_03": int((r2 > R2_THRESHOLD).sum()), "n": int(len(r2))}


def score_parts(setup, parts: list, ids, chunk: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(R^2, MSE) per task, building the padded tasks ``chunk`` at a time (bounded memory)."""
    r2, mse = [], []
    for s in range(0, len(parts), chunk):
        tasks = pad_tasks(setup.data.x, parts[s: s + chunk], ids[s: s + chunk])
        pred = predict(setup, tasks)
        r2.append(task_r2(pred, tasks))
        mse.append((-maml.task_score(pred.unsqueeze(-1), tasks.y_q, tasks.m_q)).numpy())
    return np.concatenate(r2), np.concatenate(mse)


def molecule_results(setup) -> tuple[dict, dict]:
    """Summary entries and ``test_scores`` columns of a molecules run (the current model parameters)."""
    cfg, data = setup.cfg, setup.data
    ids, parts = meta_test_parts(setup)
    r2, mse = score_parts(setup, parts, ids)
    stats = r2_stats(r2)
    real = {}
    for i, name in enumerate(data.real_names):
        eps = real_episodes(data, i, cfg.test_seed)
        r2_real, _ = score_parts(setup, eps, [-1 - i] * len(eps))
        real[name] = r2_stats(r2_real)
    mean, ci = mean_ci95(r2)
    summary = {"noise_scale": cfg.noise_scale, "noise_ratio": cfg.noise_ratio, "inner_lr": cfg.inner_lr,
               "hidden": hidden_width(cfg), "max_support": cfg.max_support, "max_query": cfg.max_query,
               "r2_mean": stats["r2_mean"], "r2_median": stats["r2_median"], "r2_gt_03": stats["r2_gt_03"],
               "test_mean": mean, "test_ci95": ci, "test_mse": float(mse.mean()), "n_test_tasks": int(len(r2)),
               "real_r2": real, "real_protocol": {"shots": REAL_SHOTS, "episodes": REAL_EPISODES,
                                                  "query_cap": REAL_QUERY_CAP, "seed": cfg.test_seed}}
    columns = {"task": np.arange(len(r2)), "assay": ids, "n_support": [len(pt[0]) for pt in parts],
               "n_query": [len(pt[2]) for pt in parts], "r2": r2, "mse": mse}
    return summary, columns


__all__ = ["MoleculeData", "load_molecules", "AssaySampler", "pad_tasks", "hidden_width",
           "meta_test_parts", "real_episodes", "predict", "task_r2", "r2_stats", "molecule_results"]
