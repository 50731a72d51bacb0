"""The noise-ratio race's model: what races, what it records, and the committed noise-ratio sweep's
numbers. Plain classes and functions that return data; nothing here draws or imports a widget
(``display.race`` is the view built on them).

Every racer starts from the same committed clean-pretrained model
(``results/pretrain/1shot/uniform-s0``, 300 uniform steps) and trains for a small budget of steps
on the same task stream at the chosen noise ratio and flip probability; only the way each one picks
its 2 training tasks from the pool of 10 differs. To finish in about two minutes on two CPU cores
the race is smaller than the reproduction grids, the same for every racer: 5 query examples per
class (grids: 10) and validation on 50 fixed meta-val tasks every tenth of the budget (grids: 100);
the final test uses the same 600 fixed meta-test tasks as every run. Its numbers are a
demonstration, not a result: one seed, short training; ``07_results`` holds the study.

``Race`` trains the racers in threads (one torch thread each, so four racers share two cores
without oversubscribing them) and exposes ``snapshot()`` (per method: the per-step history, the
latest pool record, the summary once tested, the state); ``stop()`` ends every racer after its
current step, without a final test. ``load_race`` reads a committed race as a finished snapshot.
``NoiseRatioGrid`` holds the committed noise-ratio sweep (``results/noise-ratio``) as tables.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Config
from ..metrics import t_ci95
from ..paths import RESULTS_DIR
from ..runs import load_run
from ..store import SUMMARY
from ..study import reproduction as R
from .live import LiveRun

METHODS = ("uniform", "spl", "rank-sim-loss", "ats")
INIT = RESULTS_DIR / "pretrain" / "1shot" / "uniform-s0"
RACE_DIR = RESULTS_DIR / "race"
STEPS = 100
STATES = ("waiting", "training", "validating", "testing", "done", "stopped", "failed")


def race_config(method: str, noise_ratio: float = 0.6, flip_prob: float = 0.8, steps: int = STEPS, seed: int = 0,
                init: str | Path = INIT, **kw) -> Config:
    """One racer's config: the race's reduced sizes (module docstring), the same for every method."""
    base = dict(method=method, shots=1, queries=5, noise_ratio=float(noise_ratio), flip_prob=float(flip_prob),
                steps=int(steps), seed=seed, init=str(init), eval_every=max(1, int(steps) // 10), n_val_tasks=50,
                n_test_tasks=600, pool_log_every=1, checkpoint_every=max(1, int(steps)))
    base.update(kw)
    return Config(**base)


class _Stopped(Exception):
    """Raised from a racer's callback: ends its training at once, with no final test."""


class Race:
    """Trains ``methods`` side by side in threads; ``snapshot()`` reads their progress at any time."""

    def __init__(self, noise_ratio=0.6, flip_prob=0.8, steps=STEPS, methods=METHODS, seed=0, out=None, **kw):
        self.cfgs = {m: race_config(m, noise_ratio, flip_prob, steps, seed, **kw) for m in methods}
        self.noise_ratio, self.flip_prob, self.steps, self.seed = float(noise_ratio), float(flip_prob), int(steps), seed
        self.out = Path(out) if out is not None else None
        self.abort = threading.Event()
        self.runs, self.state, self.errors = {}, {m: "waiting" for m in methods}, {}
        self.progress = {m: "" for m in methods}
        self.threads, self.t0, self.t_end = [], None, None
        self._threads_before = None

    # -- training ------------------------------------------------------------------------
    def _racer(self, method: str) -> None:

        def on_phase(phase, done, total):
            if self.abort.is_set():   # Stop during a validation or the test: end it there
                raise _Stopped
            self.state[method] = phase
            self.progress[method] = f"{done}/{total}" if total else ""

        def cb(rec, run):
            if self.abort.is_set():
                raise _Stopped
            self.state[method] = "training"
            return False
        try:
            out = self.out / method if self.out is not None else None
            run = LiveRun(self.cfgs[method], out, overwrite=True, on_phase=on_phase)
            self.runs[method] = run
            self.state[method] = "training"
            run.train([cb])
            self.state[method] = "done"
        except _Stopped:
            self.state[method] = "stopped"
        except Exception as e:  # noqa: BLE001 - one failed racer must not take the others down
            self.state[method], self.errors[method] = "failed", f"{type(e).__name__}: {e}"

    def start(self) -> "Race":
        import torch
        self._threads_before = torch.get_num_threads()
        torch.set_num_threads(1)
        self.t0 = time.perf_counter()
        self.threads = [threading.Thread(target=self._racer, args=(m,), daemon=True, name=f"race-{m}")
                        for m in self.cfgs]
        for t in self.threads:
            t.start()
        threading.Thread(target=self._finisher, daemon=True).start()
        return self

    def _finisher(self) -> None:
        for t in self.threads:
            t.join()
        self.t_end = time.perf_counter()
        import torch
        if self._threads_before:
            torch.set_num_threads(self._threads_before)

    def stop(self) -> None:
        self.abort.set()

    def wait(self, timeout: float | None = None) -> bool:
        for t in self.threads:
            t.join(timeout)
        while self.t_end is None and not any(t.is_alive() for t in self.threads):
            time.sleep(0.01)
        return self.finished

    @property
    def finished(self) -> bool:
        return bool(self.threads) and not any(t.is_alive() for t in self.threads)

    @property
    def wall(self) -> float:
        if self.t0 is None:
            return 0.0
        return (self.t_end or time.perf_counter()) - self.t0

    # -- reading -------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """Per method: history (DataFrame), the latest pool record, the summary when tested, state."""
        snap = {"noise_ratio": self.noise_ratio, "flip_prob": self.flip_prob, "steps": self.steps,
                "seed": self.seed, "wall": self.wall, "methods": {}}
        for m in self.cfgs:
            run = self.runs.get(m)
            hist = pd.DataFrame(list(run.history)) if run is not None else pd.DataFrame()
            pools = list(run.pools) if run is not None else []
            snap["methods"][m] = {"history": hist, "pool": pd.DataFrame(pools[-1]) if pools else None,
                                  "summary": run.summary if run is not None and self.state[m] == "done" else None,
                                  "state": self.state[m], "progress": self.progress[m],
                                  "step": run.step if run is not None else 0, "error": self.errors.get(m)}
        return snap

    def stopped_at(self) -> str:
        """'uniform 12, ats 11': the step each racer had reached."""
        return ", ".join(f"{m} {d['step']}" for m, d in self.snapshot()["methods"].items())


def load_race(path: str | Path) -> dict:
    """A committed race (``results/race/<name>/<method>/`` run directories) as a finished snapshot."""
    path = Path(path)
    snap = {"methods": {}, "wall": 0.0}
    for m in METHODS:
        d = path / m
        if not (d / SUMMARY).is_file():
            continue
        r = load_run(d, with_model=False)
        pools = r["pools"]
        last = pools[pools["step"] == pools["step"].max()] if pools is not None and len(pools) else None
        s = r["summary"]
        snap["methods"][m] = {"history": r["history"], "pool": last, "summary": s, "state": "done", "progress": "",
                              "step": s["steps_done"], "error": None}
        snap.update(noise_ratio=r["config"].noise_ratio, flip_prob=r["config"].flip_prob, steps=r["config"].steps,
                    seed=r["config"].seed)
        snap["wall"] = max(snap["wall"], float(s["wall_seconds"]) + float(s["test_seconds"]))
    return snap


def finals(snap: dict) -> pd.DataFrame:
    """One row per racer: its last validation, test accuracy (NaN until tested), noisy mass over the
    last fifth of its steps and the steps it ran."""
    rows = []
    for m, d in snap["methods"].items():
        h, s = d["history"], d["summary"]
        val = h["val_acc"].dropna() if h is not None and "val_acc" in h else pd.Series(dtype=float)
        late = h[h["step"] > 0.8 * h["step"].max()] if h is not None and len(h) and "noisy_mass" in h else None
        rows.append({"method": m, "steps": int(d["step"]), "state": d["state"],
                     "last_val": float(val.iloc[-1]) if len(val) else np.nan,
                     "test_mean": float(s["test_mean"]) if s is not None else np.nan,
                     "test_ci95": float(s["test_ci95"]) if s is not None else np.nan,
                     "noisy_mass_late": float(late["noisy_mass"].mean()) if late is not None and len(late) else np.nan})
    return pd.DataFrame(rows)


def status_line(snap: dict) -> str:
    parts = []
    for m, d in snap["methods"].items():
        s = d["summary"]
        if s is not None:
            parts.append(f"{m} {s['test_mean'] * 100:.1f} ± {s['test_ci95'] * 100:.1f}%")
        else:
            extra = f" {d['progress']}" if d["state"] in ("validating", "testing") and d["progress"] else ""
            parts.append(f"{m} {d['step']}/{snap['steps']} {d['state']}{extra}" if d["state"] != "done" else m)
    return " · ".join(parts)


class NoiseRatioGrid:
    """The committed noise-ratio sweep (grid ``noise-ratio`` of ``results/``) as tables, no training.

    ``seeds``: one row per (ratio, method, seed) - test accuracy (%), its difference from uniform's
    run on the same seed (the same clean-pretrained start, so the start's own level cancels), the
    share of the tasks it trained on that were clean, and whether validation kept the start (never
    beaten, so the test scores the start itself). ``BNS`` is the best non-adaptive scheduler at that
    ratio, chosen on validation (``picked`` names it). ``table``: their means per (ratio, method)."""

    def __init__(self, results: str | Path = RESULTS_DIR, methods=("uniform", "ats", "rank-sim-loss"),
                 grid: str = "noise-ratio"):
        self.df, self.grid, self.methods = R.load_results(results), grid, tuple(methods)
        cells = self.df[self.df.grid == grid]["cell"].unique()
        self.ratios = sorted(float(c[1:]) for c in cells)
        rows = []
        for r in self.ratios:
            cell = self.cell(r)
            picked = R.bns(self.df, grid, cell)
            base = R.runs(self.df, grid, cell, "uniform").set_index("seed")["test_mean"].astype(float)
            for m in (*self.methods, "BNS"):
                src = picked if m == "BNS" else m
                if src is None:
                    continue
                for x in R.runs(self.df, grid, cell, src).itertuples():
                    test = float(x.test_mean) * 100
                    rows.append({"ratio": r, "method": m, "picked": src, "seed": int(x.seed), "test": test,
                                 "vs_uniform": test - base[x.seed] * 100 if x.seed in base.index else np.nan,
                                 "clean_share": float(x.clean_share), "kept_start": bool(x.kept_start)})
        self.seeds = pd.DataFrame(rows, columns=["ratio", "method", "picked", "seed", "test", "vs_uniform",
                                                 "clean_share", "kept_start"])
        g = self.seeds.groupby(["ratio", "method"], sort=False)
        self.table = g.agg(picked=("picked", "first"), n=("seed", "size"), mean=("test", "mean"),
                           vs_uniform=("vs_uniform", "mean"), clean_share=("clean_share", "mean"),
                           kept_start=("kept_start", "sum")).reset_index()
        self.table["ci95"] = g["test"].apply(lambda v: t_ci95(v.to_numpy()) if len(v) > 1 else np.nan).to_numpy()

    @staticmethod
    def cell(ratio: float) -> str:
        return f"r{float(ratio)}"

    def at(self, ratio: float) -> pd.DataFrame:
        """The table's rows at one ratio, one per method."""
        return self.table[np.isclose(self.table["ratio"], float(ratio))].reset_index(drop=True)

    def pool(self, ratio: float, method: str = "ats") -> pd.DataFrame:
        """``method``'s last logged pool at ``ratio``, lowest seed (empty when none was logged)."""
        pools = R.pool_records(self.df, self.grid, self.cell(ratio), method)
        if not len(pools):
            return pools
        pools = pools[pools["seed"] == pools["seed"].min()]
        return pools[pools["step"] == pools["step"].max()]
