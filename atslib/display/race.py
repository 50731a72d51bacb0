"""A noise-ratio race: uniform, SPL, rank-sim-loss and ATS trained side by side, live.

Every racer starts from the same committed clean-pretrained model
(``results/pretrain/1shot/uniform-s0``, 300 uniform steps) and trains for a small budget of steps
on the same task stream at the chosen noise ratio and flip probability; only the way each one picks
its 2 training tasks from the pool of 10 differs. To finish in about two minutes on two CPU cores
the race is smaller than the reproduction grids, the same for every racer: 5 query examples per
class (grids: 10) and validation on 50 fixed meta-val tasks every tenth of the budget (grids: 100);
the final test uses the same 600 fixed meta-test tasks as every run. Its numbers are a
demonstration, not a result: one seed, short training; ``07_results`` holds the study.

``Race`` trains the racers in threads (one torch thread each, so four racers share two cores
without oversubscribing them) and exposes ``snapshot()`` for a display; ``stop()`` ends every racer
after its current step, without a final test. ``race_figure`` draws a snapshot; ``RaceView`` is the
JupyterLab widget (sliders, Race, Stop, live figure) and shows the committed race in
``results/race/`` until Race is pressed, which is also all it does under papermill.

``python -m atslib.display.race --out results/race/r0.6`` (re)makes a committed race.
"""
from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import plots, widgets
from ..study import reproduction as R
from ..config import Config
from .live import LiveRun
from ..paths import RESULTS_DIR
from ..runs import load_run
from ..store import BEST, CHECKPOINT, SUMMARY

METHODS = ("uniform", "spl", "rank-sim-loss", "ats")
INIT = RESULTS_DIR / "pretrain" / "1shot" / "uniform-s0"
RACE_DIR = RESULTS_DIR / "race"
STEPS = 100


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


def race_figure(snap: dict):
    """Validation accuracy, probability mass on noisy tasks, ATS's current pool, final test accuracies."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 4, figsize=(15.5, 3.9), gridspec_kw={"width_ratios": [1, 1, 1.1, 0.9]})
    ms = snap["methods"]
    for m, d in ms.items():
        h, color = d["history"], plots.METHOD_COLORS.get(m)
        if h is None or not len(h):
            continue
        if "val_acc" in h and h["val_acc"].notna().any():
            v = h.dropna(subset=["val_acc"])
            axes[0].plot(v["step"], v["val_acc"] * 100, "o-", ms=3, color=color, label=m)
        if "noisy_mass" in h:
            axes[1].plot(h["step"], h["noisy_mass"].rolling(5, min_periods=1).mean(), color=color, label=m)
    axes[0].set_xlabel("step"), axes[0].set_ylabel("validation accuracy (%)")
    axes[0].set_title("validation (50 tasks)", fontsize=9)
    axes[1].axhline(snap.get("noise_ratio", np.nan), ls=":", color="grey", lw=1)
    axes[1].set_xlabel("step"), axes[1].set_ylabel("probability mass on noisy tasks")
    axes[1].set_ylim(-0.02, 1.02), axes[1].set_title("dotted: the noise ratio (uniform's mass)", fontsize=9)
    for ax in axes[:2]:
        ax.set_xlim(0, snap.get("steps", 100))
    pool = ms.get("ats", {}).get("pool")
    if pool is not None and len(pool):
        plots.loss_sim_scatter(pool.assign(step=pool["step"].iloc[0]), [int(pool["step"].iloc[0])],
                               axes=[axes[2]], title="ATS's pool at", colorbar=False)
        sc = axes[2].collections[-1] if axes[2].collections else None
        if sc is not None:
            fig.colorbar(sc, ax=axes[2], fraction=0.05, label="ATS probability")
    else:
        axes[2].text(0.5, 0.5, "ATS's pool appears\nafter its first step", ha="center", va="center",
                     transform=axes[2].transAxes, color="grey")
        axes[2].set_xticks([]), axes[2].set_yticks([])
    done = [(m, d["summary"]) for m, d in ms.items() if d["summary"] is not None]
    if done:
        t = pd.DataFrame([{"method": m, "test_mean": s["test_mean"], "test_ci95": s["test_ci95"]} for m, s in done])
        plots.method_bars(t, ax=axes[3])
        n = done[0][1]["n_test_tasks"]
        axes[3].set_title(f"test accuracy, 95% CI over {n} tasks", fontsize=9)
        axes[3].set_ylabel("test accuracy (%)")
    else:
        axes[3].text(0.5, 0.5, "test accuracies appear\nwhen the race ends", ha="center", va="center",
                     transform=axes[3].transAxes, color="grey")
        axes[3].set_xticks([]), axes[3].set_yticks([])
    fig.suptitle(f"noise ratio {snap.get('noise_ratio', float('nan')):.1f}, flip probability "
                 f"{snap.get('flip_prob', float('nan')):.1f}, {snap.get('steps')} steps from the clean-pretrained "
                 f"start, one seed ({snap.get('seed', 0)}) per method: a demonstration", fontsize=10, y=0.99)
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    from matplotlib.lines import Line2D
    fig.legend(handles=[Line2D([], [], color=plots.METHOD_COLORS.get(m), lw=2, label=m) for m in ms],
               loc="upper center", bbox_to_anchor=(0.5, 0.93), ncol=len(ms), fontsize=8, frameon=False)
    return fig


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


def main(argv=None):
    p = argparse.ArgumentParser(description="Run a noise-ratio race and keep its run directories.")
    p.add_argument("--out", required=True)
    p.add_argument("--noise-ratio", type=float, default=0.6)
    p.add_argument("--flip-prob", type=float, default=0.8)
    p.add_argument("--steps", type=int, default=STEPS)
    args = p.parse_args(argv)
    race = Race(args.noise_ratio, args.flip_prob, args.steps, out=args.out).start()
    while not race.finished:
        time.sleep(5)
        print(f"{race.wall:5.0f} s  {status_line(race.snapshot())}", flush=True)
    race.wait()
    for m in METHODS:   # checkpoints are not committed (and best.pt only for the pretrain grid)
        for f in (CHECKPOINT, BEST):
            (Path(args.out) / m / f).unlink(missing_ok=True)
    print(f"race wall time {race.wall:.1f} s; {status_line(race.snapshot())}")
    if race.errors:
        raise SystemExit(f"failed: {race.errors}")


if __name__ == "__main__":
    main()


class RaceView:
    """The race in JupyterLab: noise-ratio and flip-probability sliders, a budget of steps, Race and
    Stop, a live figure and a status line. Until Race is pressed (and always under papermill) it
    shows the committed race ``committed`` without training."""

    def __init__(self, committed: str | Path | None = RACE_DIR / "r0.6", every: float = 2.0, methods=METHODS):
        w = widgets._w()
        self.every, self.methods, self.race, self.updates = every, methods, None, 0
        self.ratio = widgets._slider("FloatSlider", value=0.6, min=0.0, max=1.0, step=0.1, description="noise ratio")
        self.flip = widgets._slider("FloatSlider", value=0.8, min=0.1, max=1.0, step=0.1, description="flip prob")
        self.steps = widgets._slider("IntSlider", value=STEPS, min=20, max=300, step=20, description="steps")
        self.go = w.Button(description="Race", button_style="primary", icon="flag-checkered")
        self.halt = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.status = w.HTML()
        self.out = w.Output()
        self.go.on_click(lambda _: self.start())
        self.halt.on_click(lambda _: self.stop())
        self.box = w.VBox([w.HBox([self.ratio, self.flip, self.steps]), w.HBox([self.go, self.halt]), self.status,
                           self.out])
        snap = load_race(committed) if committed is not None and Path(committed).is_dir() else None
        if snap and snap["methods"]:
            self._draw(snap)
            self._say(f"committed race ({Path(committed).name}): {status_line(snap)}. Move the sliders and press "
                      f"Race to run your own (about 2 minutes for 100 steps).")
        else:
            self._say("press Race: uniform, spl, rank-sim-loss and ats train side by side")

    def _say(self, text: str) -> None:
        self.status.value = f"<span class='atslib-race-status'>{text}</span>"

    def _draw(self, snap) -> None:
        widgets._show(self.out, race_figure(snap), "race")

    def start(self) -> None:
        if self.race is not None and not self.race.finished:
            return
        self.updates = 0
        self.race = Race(self.ratio.value, self.flip.value, self.steps.value, methods=self.methods).start()
        self.go.disabled, self.halt.disabled = True, False
        self._say(f"racing at noise ratio {self.race.noise_ratio:.1f}: starting…")
        threading.Thread(target=self._watch, args=(self.race,), daemon=True).start()

    def stop(self) -> None:
        race = self.race
        if race is None or race.finished:
            return
        race.stop()
        self.halt.disabled = True
        steps = ", ".join(f"{m} {d['step']}" for m, d in race.snapshot()["methods"].items())
        self._say(f"stopped after {race.wall:.0f} s at step {steps} of {race.steps} (no final test)")

    def _watch(self, race: Race) -> None:
        while not race.finished:
            time.sleep(self.every)
            if race.abort.is_set():
                break
            snap = race.snapshot()
            self._draw(snap)
            self.updates += 1
            if not race.abort.is_set():
                self._say(f"racing at noise ratio {race.noise_ratio:.1f}, {race.wall:.0f} s · update {self.updates}"
                          f" · {status_line(snap)}")
        race.wait()
        snap = race.snapshot()
        self._draw(snap)
        if race.abort.is_set():
            steps = ", ".join(f"{m} {d['step']}" for m, d in snap["methods"].items())
            self._say(f"stopped after {race.wall:.0f} s at step {steps} of {race.steps} (no final test)")
        else:
            err = f" · failed: {race.errors}" if race.errors else ""
            self._say(f"done in {race.wall:.0f} s · test accuracy: {status_line(snap)}{err}")
        self.go.disabled, self.halt.disabled = False, True


def noise_ratio_view(results: str | Path = RESULTS_DIR, methods=("uniform", "ats", "rank-sim-loss")):
    """The instant view: a slider over the committed noise-ratio grid; test accuracy against the ratio
    (uniform, ATS, rank-sim-loss and BNS, the best non-adaptive scheduler chosen on validation) and
    ATS's pools at the chosen ratio, all read from ``results/`` (no training)."""
    import matplotlib.pyplot as plt
    w = widgets._w()
    df = R.load_results(results)
    ratios = sorted({float(c[1:]) for c in df[df.grid == "noise-ratio"]["cell"].unique()})
    rows = []
    for r in ratios:
        cell = f"r{r}"
        st = R.cell_stats(df, "noise-ratio", cell).set_index("method")
        b = R.bns(df, "noise-ratio", cell)
        for m in (*methods, "BNS"):
            src = b if m == "BNS" else m
            if src in st.index:
                rows.append({"ratio": r, "method": m, "picked": src, "mean": st.loc[src, "mean"] * 100,
                             "ci95": st.loc[src, "ci95"] * 100})
    table = pd.DataFrame(rows)
    slider = w.SelectionSlider(options=ratios, value=0.6 if 0.6 in ratios else ratios[0], description="noise ratio",
                               continuous_update=False)
    out = w.Output()
    note = w.HTML()

    def redraw(*_):
        r = slider.value
        fig, axes = plt.subplots(1, 2, figsize=(12, 3.4), gridspec_kw={"width_ratios": [1, 1.3]})
        for m, g in table.groupby("method", sort=False):
            axes[0].errorbar(g["ratio"], g["mean"], yerr=g["ci95"], marker="o", capsize=3, label=m,
                             color=plots.METHOD_COLORS.get(m, "black"), ls="--" if m == "BNS" else "-")
        axes[0].axvline(r, color="grey", lw=6, alpha=0.2)
        axes[0].set_xlabel("noise ratio"), axes[0].set_ylabel("test accuracy (%), mean over seeds")
        axes[0].set_title("committed grid: 150 steps from the clean-pretrained start", fontsize=9)
        plots.legend_outside(axes[0])
        pools = R.pool_records(df, "noise-ratio", f"r{r}", "ats")
        if len(pools):
            pools = pools[pools["seed"] == pools["seed"].min()]
            last = int(pools["step"].max())
            plots.loss_sim_scatter(pools[pools["step"] == last], [last], axes=[axes[1]],
                                   title=f"ATS, noise {r}, seed 0,", colorbar=False)
            fig.colorbar(axes[1].collections[-1], ax=axes[1], fraction=0.05, label="ATS probability")
        fig.tight_layout()
        widgets._show(out, fig, "noise-ratio grid")
        here = table[table.ratio == r]
        note.value = ("<span class='atslib-grid-readout'>noise ratio " + f"{r}: " + " · ".join(
            f"{x.method}{' (' + x.picked + ')' if x.method == 'BNS' else ''} {x.mean:.1f} ± {x.ci95:.1f}%"
            for x in here.itertuples()) + "</span>")

    slider.observe(redraw, names="value")
    redraw()
    return w.VBox([slider, note, out])
