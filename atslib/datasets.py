"""One object per kind of data: how a run's ``Setup`` is built and how its model is tested.

- ``ImageTasks`` ("quickdraw", or any image npz of that schema): N-way K-shot episodes, accuracy on
  600 fixed meta-test tasks (and on hard meta-test tasks when the run has hard tasks);
- ``MoleculeTasks`` ("molecules"): regression assays, R^2 on meta-test assays and on episodes of
  the real held-out assays (``atslib.molecules``).

``build_setup(cfg)`` picks the object by ``cfg.dataset``; the loop, ``eval`` and the displays ask
it instead of branching on the dataset's name.
"""
from __future__ import annotations

import numpy as np

from . import molecules
from .config import Config, ConfigError
from .data import check_task_shape, load_images
from .metrics import mean_ci95
from .models import build_model
from .setup import Setup, evaluate_params, resolve_device, test_tasks
from .store import TEST_SCORES, TEST_SCORES_HARD
from .tasks import EpisodeSampler, budget_classes, stream

REGIME_FIELDS = ("noise_on", "hard_ratio", "ood_ratio", "ood_shift")   # reported where not at their defaults


class ImageTasks:
    name = "quickdraw"
    eval_keys = ("test_mean", "test_ci95", "n_test_tasks", "test_hard_mean", "test_hard_ci95")

    def load(self, path):
        return load_images(path)

    def build(self, cfg: Config, check_data: bool = True) -> Setup:
        data = load_images(cfg.data)
        if check_data:
            check_task_shape(data, cfg.ways, cfg.shots, cfg.queries, cfg.budget_classes)
        device = resolve_device(cfg.device)
        classes = budget_classes(data, cfg.budget_classes, cfg.budget_seed)
        train = EpisodeSampler(data, "train", cfg.ways, cfg.shots, cfg.queries, cfg.noise_ratio, cfg.flip_prob, classes,
                               noise_on=cfg.noise_on, hard_ratio=cfg.hard_ratio, ood_ratio=cfg.ood_ratio,
                               ood_shift=cfg.ood_shift)
        val = EpisodeSampler(data, "val", cfg.ways, cfg.shots, cfg.queries)
        test = EpisodeSampler(data, "test", cfg.ways, cfg.shots, cfg.queries)
        hard_test = EpisodeSampler(data, "test", cfg.ways, cfg.shots, cfg.queries, hard_ratio=1.0) if cfg.hard_ratio else None
        model = build_model(tuple(data.x.shape[1:]), cfg.ways, cfg.width, cfg.max_pools,
                            generator=stream(cfg.seed, 0, "model-init")).to(device)
        return Setup(cfg, device, data, model, train, val, test, classes, hard_test_sampler=hard_test, dataset=self)

    def test(self, setup: Setup) -> tuple[dict, dict]:
        """(summary entries, {file name: per-task columns}) for the model's current parameters."""
        cfg = setup.cfg

        def scored(hard: bool) -> tuple[float, float, dict]:
            loss, acc = evaluate_params(setup, test_tasks(setup, hard=hard))
            acc = acc.cpu().numpy()
            return (*mean_ci95(acc), {"task": np.arange(len(acc)), "acc": acc, "loss": loss.cpu().numpy()})

        mean, ci, frame = scored(hard=False)
        extra = {"ways": cfg.ways, "shots": cfg.shots, "queries": cfg.queries, "noise_ratio": cfg.noise_ratio,
                 "flip_prob": cfg.flip_prob, "budget_classes": cfg.budget_classes or len(setup.train_classes),
                 "test_mean": mean, "test_ci95": ci, "n_test_tasks": len(frame["task"])}
        files = {TEST_SCORES: frame}
        extra.update({k: getattr(cfg, k) for k in REGIME_FIELDS if getattr(cfg, k) != getattr(Config, k)})
        if cfg.hard_ratio:                        # the hard meta-test distribution
            extra["test_hard_mean"], extra["test_hard_ci95"], files[TEST_SCORES_HARD] = scored(hard=True)
        return extra, files

    def examples_per_task(self, cfg: Config) -> int | None:
        return cfg.ways * (cfg.shots + cfg.queries)


class MoleculeTasks:
    name = "molecules"
    eval_keys = ("r2_mean", "r2_median", "r2_gt_03", "real_r2", "test_mean", "test_ci95", "n_test_tasks")

    def load(self, path):
        return molecules.load_molecules(path)

    def build(self, cfg: Config, check_data: bool = True) -> Setup:
        """Data, samplers (train noisy, val/test clean) and the seeded MLP."""
        if cfg.noise_ratio > 0 and cfg.noise_scale == 0:
            raise ConfigError(f"--noise-ratio {cfg.noise_ratio!r}: molecules add noise only with --noise-scale > 0; "
                              f"allowed: --noise-ratio 0, or a --noise-scale")
        data = molecules.load_molecules(cfg.data)
        device = resolve_device(cfg.device)
        train = molecules.AssaySampler(data, "train", cfg.max_support, cfg.max_query, cfg.noise_scale, cfg.noise_ratio)
        val = molecules.AssaySampler(data, "val", cfg.max_support, cfg.max_query)
        test = molecules.AssaySampler(data, "test", cfg.max_support, cfg.max_query)
        model = build_model((data.x.shape[1],), 1, molecules.hidden_width(cfg),
                            generator=stream(cfg.seed, 0, "model-init")).to(device)
        return Setup(cfg, device, data, model, train, val, test, np.array([], dtype=np.int64), dataset=self)

    def test(self, setup: Setup) -> tuple[dict, dict]:
        """R^2 on the meta-test assays and on real-assay episodes."""
        extra, scores = molecules.molecule_results(setup)
        return extra, {TEST_SCORES: scores}

    def examples_per_task(self, cfg: Config) -> int | None:
        return None                               # assays differ in size


DATASETS = {d.name: d for d in (ImageTasks(), MoleculeTasks())}


def dataset_of(cfg: Config):
    return DATASETS[cfg.dataset]


def build_setup(cfg: Config, check_data: bool = True) -> Setup:
    return dataset_of(cfg).build(cfg, check_data)


__all__ = ["ImageTasks", "MoleculeTasks", "DATASETS", "dataset_of", "build_setup"]
