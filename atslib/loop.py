"""``Run``: one training run with its directory - resume, checkpoints, validation, test, summary.

All randomness is a function of (seed, step) (see ``tasks.stream``), so a checkpoint needs no RNG
state: model, Adam, the method's state (scheduler network, its Adam, reward baseline, potentials),
the step, the best parameters and the records so far. A run resumed from any checkpoint finishes
with the same numbers as an uninterrupted one (CPU).
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from .config import Config
from .datasets import build_setup
from .methods import make_method
from .setup import copy_params, evaluate_params, init_from, val_tasks
from .step import State, meta_step
from .store import (
    BEST,
    CHECKPOINT,
    CONFIG,
    FORMAT_VERSION,
    HISTORY,
    POOLS,
    START_VAL,
    START_VAL_KEYS,
    SUMMARY,
    RunError,
    check_version,
    load_torch,
    save_torch,
    rows_of,
    upgrade_checkpoint,
    write_rows,
    write_json,
)
from .version import __version__

_START_VAL: dict = {}      # (start's cache file, key) -> validation of that start, shared by the runs of one process


def start_validation(run: "Run") -> float:
    """Validation accuracy of the starting model (step 0), a checkpoint candidate for every method.

    Runs that start from the same ``--init`` checkpoint on the same validation tasks share this
    number, so it is computed once per process and kept in ``start_val.json`` next to that
    checkpoint (keyed by the data's sha256 and the settings it depends on, ``store.START_VAL_KEYS``;
    git ignores it under ``results/``, where it is only a cache); a run from scratch validates its own start.
    """
    cfg = run.cfg
    if not cfg.init:
        return run.validate()
    key = json.dumps({"data": run.setup.data.sha256, **{k: getattr(cfg, k) for k in START_VAL_KEYS}}, sort_keys=True)
    cache = Path(cfg.init) / START_VAL
    here = (str(cache.resolve()), key)      # the process's cache is per start too, like the file
    if here not in _START_VAL:
        saved = json.loads(cache.read_text()) if cache.is_file() else {}
        if key not in saved:
            saved = {**saved, key: run.validate()}
            with contextlib.suppress(OSError):          # a read-only start still works, uncached
                write_json(cache, saved)
        _START_VAL[here] = float(saved[key])
    return _START_VAL[here]


class Run:
    def __init__(self, cfg: Config, out=None, resume: bool = False, overwrite: bool = False):
        self.cfg, self.out = cfg, (Path(out) if out is not None else None)
        if self.out is not None and self.out.exists() and any(self.out.iterdir()) and not (resume or overwrite):
            raise RunError(f"--out {self.out}: already exists; allowed: a new directory, or --resume / --overwrite")
        self.setup = build_setup(cfg)
        if cfg.init:
            init_from(self.setup, cfg.init)
        self.model = self.setup.model
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.outer_lr)
        self.method = make_method(cfg, self.setup)
        self.state = State(self.model, self.opt, self.method)       # theta, its Adam, the method and its own state
        self.step, self.history, self.pools = 0, [], []
        self.best_val, self.best_step, self.best_state = -math.inf, -1, copy_params(self.model)
        self.wall = 0.0
        self.start_val = None
        self.summary = None
        self.after_checkpoint = []     # hooks hook(run), called after every checkpoint written (study.cluster ships it)
        if self.out is not None:
            if resume and (self.out / CHECKPOINT).is_file():
                self._resume()
            elif overwrite and self.out.exists():
                shutil.rmtree(self.out)

    # -- persistence ---------------------------------------------------------------------
    def meta(self) -> dict:
        return {"format_version": FORMAT_VERSION, "atslib_version": __version__, "torch_version": torch.__version__,
                "config": self.cfg.to_dict(), "data_path": str(self.setup.data.path),
                "data_sha256": self.setup.data.sha256, "device": str(self.setup.device)}

    def _resume(self) -> None:
        meta = check_version(self.out)
        if meta["data_sha256"] != self.setup.data.sha256:
            raise RunError(f"--data {self.setup.data.path}: sha256 {self.setup.data.sha256[:12]}... differs from "
                           f"{meta['data_sha256'][:12]}... recorded in {self.out}/{CONFIG}; allowed: the same file")
        saved = Config.from_saved(meta["config"]).to_dict()   # fields added since take their defaults
        if saved != self.cfg.to_dict():
            diff = sorted(k for k in saved if saved[k] != self.cfg.to_dict().get(k))
            raise RunError(f"--resume {self.out}: options {diff} differ from the saved config; allowed: the same options")
        ck = upgrade_checkpoint(load_torch(self.out / CHECKPOINT))
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["opt"])
        self.method.load_state_dict(ck["method"])
        self.step, self.history, self.pools = int(ck["step"]), list(ck["history"]), list(ck["pools"])
        self.best_val, self.best_step, self.best_state = float(ck["best_val"]), int(ck["best_step"]), ck["best"]
        self.wall = float(ck["wall"])
        self.start_val = ck["start_val"]

    def checkpoint(self) -> None:
        if self.out is None:
            return
        if not (self.out / CONFIG).is_file():
            write_json(self.out / CONFIG, self.meta())
        save_torch(self.out / CHECKPOINT, {
            "model": self.model.state_dict(), "opt": self.opt.state_dict(), "method": self.method.state_dict(),
            "step": self.step, "history": self.history, "pools": self.pools, "best_val": self.best_val,
            "best_step": self.best_step, "best": self.best_state, "wall": self.wall, "start_val": self.start_val})
        self.write_records()
        for hook in self.after_checkpoint:
            hook(self)

    def write_records(self) -> None:
        write_rows(self.out / HISTORY, self.history)
        if self.pools:
            write_rows(self.out / POOLS, [r for p in self.pools for r in rows_of(p)])

    def history_frame(self):
        """The history as a pandas DataFrame (pandas: the study and display extras; the core itself
        never needs it)."""
        import pandas as pd
        return pd.DataFrame(self.history)

    def pool_frame(self):
        """Every logged pool as one pandas DataFrame (see ``history_frame``)."""
        import pandas as pd
        return pd.concat([pd.DataFrame(p) for p in self.pools], ignore_index=True) if self.pools else pd.DataFrame()

    # -- training --------------------------------------------------------------------------
    def validate(self) -> float:
        return float(evaluate_params(self.setup, val_tasks(self.setup))[1].mean())

    def train(self, callbacks=(), stop=None) -> "Run":
        cfg = self.cfg
        if self.out is not None and self.step == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(self.out / CONFIG, self.meta())
        if self.step == 0 and cfg.validate_start and self.start_val is None:
            self.start_val = start_validation(self)
            self.best_val, self.best_step, self.best_state = self.start_val, 0, copy_params(self.model)
        stopped = False
        while self.step < cfg.steps and not stopped:
            t0 = time.perf_counter()
            rec, pool_rec = meta_step(self.setup, self.state, self.step)
            self.step += 1
            if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                rec["val_acc"] = self.validate()
                if rec["val_acc"] > self.best_val:
                    self.best_val, self.best_step, self.best_state = rec["val_acc"], self.step, copy_params(self.model)
            self.wall += time.perf_counter() - t0
            rec["wall"] = self.wall
            self.history.append(rec)
            if pool_rec is not None:
                self.pools.append(pool_rec)
            for cb in callbacks:
                stopped = bool(cb(rec, self)) or stopped
            stopped = stopped or (stop is not None and stop.is_set())
            if self.step % cfg.checkpoint_every == 0 or stopped:
                self.checkpoint()
        if self.step < cfg.steps and "val_acc" not in self.history[-1]:   # stopped early: validate now
            v = self.validate()
            self.history[-1]["val_acc"] = v
            if v > self.best_val:
                self.best_val, self.best_step, self.best_state = v, self.step, copy_params(self.model)
        self.finish()
        return self

    def finish(self) -> dict:
        """Test the best (validation-chosen) parameters and write the summary."""
        cfg = self.cfg
        self.checkpoint()
        self.model.load_state_dict(self.best_state)
        t0 = time.perf_counter()
        extra, score_files = self.setup.dataset.test(self.setup)
        self.summary = {
            "format_version": FORMAT_VERSION, "atslib_version": __version__, "torch_version": torch.__version__,
            "method": cfg.method, "dataset": cfg.dataset, "steps": cfg.steps, "steps_done": self.step,
            "seed": cfg.seed, "device": str(self.setup.device), "wall_seconds": round(self.wall, 2),
            "test_seconds": round(time.perf_counter() - t0, 2), "best_val": self.best_val, "best_step": self.best_step,
            "start_val": self.start_val, "inner": cfg.inner, **extra,
        }
        self.summary.update(self.diagnostics())
        if self.out is not None:
            save_torch(self.out / BEST, {"model": self.best_state, "step": self.best_step})
            for name, columns in score_files.items():
                write_rows(self.out / name, rows_of(columns))
            write_json(self.out / SUMMARY, self.summary)
        return self.summary

    def diagnostics(self) -> dict:
        """noise_auc (2nd half of training), clean_share, mean entropy - where some tasks are noisy, some clean."""
        if not 0 < self.cfg.bad_ratio < 1 or not self.history:
            return {}
        h = self.history
        late = [r for r in h if r["step"] >= self.cfg.steps // 2] or h

        def mean(rows, key):           # the mean over the rows that have a finite value (NaN if none)
            v = np.array([r[key] for r in rows if key in r and r[key] is not None], dtype=float)
            v = v[~np.isnan(v)]
            return float(v.mean()) if len(v) else float("nan")
        out = {"noise_auc": mean(late, "auc"), "clean_share": mean(h, "clean_share"),
               "clean_share_late": mean(late, "clean_share"), "noisy_mass_late": mean(late, "noisy_mass")}
        if any("entropy" in r for r in h):
            out["entropy_late"] = mean(late, "entropy")
        return out

def meta_train(cfg: Config, callbacks=(), out=None, resume: bool = False, overwrite: bool = False, stop=None) -> Run:
    """Train with ``cfg.method``; write a run directory when ``out`` is given; return the ``Run``.

    ``callbacks``: callables ``cb(record, run)`` called after every step (a dashboard); one that
    returns True, or a set ``stop`` (``threading.Event``), ends training cleanly: the run is
    checkpointed, tested with its best parameters and its summary written.
    """
    return Run(cfg, out, resume=resume, overwrite=overwrite).train(callbacks, stop)
