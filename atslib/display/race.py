"""The noise-ratio race's view: the figure of a race, the JupyterLab widget that runs one, and the
instant view of the committed noise-ratio sweep.

The model - what races, its per-step records, stop handling, the committed race and sweep as data -
is ``display.race_model`` (no widgets, no matplotlib); its public names are re-exported here, so
``race.Race``, ``race.load_race``, ``race.INIT`` keep working. ``race_figure`` draws a snapshot;
``RaceView`` is the JupyterLab widget (sliders, Race, Stop, live figure) and shows the committed race
in ``results/race/`` until Race is pressed, which is also all it does under papermill;
``noise_ratio_figure`` / ``noise_ratio_view`` draw the committed sweep at one ratio / with a slider.

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
from ..paths import RESULTS_DIR
from ..store import BEST, CHECKPOINT
from .race_model import (INIT, METHODS, RACE_DIR, STEPS, NoiseRatioGrid, Race, finals, load_race,  # noqa: F401
                         race_config, status_line)


def race_figure(snap: dict):
    """Validation accuracy, probability mass on noisy tasks, ATS's current pool, final test accuracies
    (two rows of two panels, so the figure fits a notebook's width)."""
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(2, 2, figsize=(10.5, 7.0))
    axes = axs.ravel()
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
                 f"start,\none seed ({snap.get('seed', 0)}) per method: a demonstration", fontsize=10, y=0.995)
    fig.tight_layout(rect=(0, 0, 1, 0.915))
    from matplotlib.lines import Line2D
    fig.legend(handles=[Line2D([], [], color=plots.METHOD_COLORS.get(m), lw=2, label=m) for m in ms],
               loc="upper center", bbox_to_anchor=(0.5, 0.95), ncol=len(ms), fontsize=8, frameon=False)
    return fig


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
        self._say(f"stopped after {race.wall:.0f} s at step {race.stopped_at()} of {race.steps} (no final test)")

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
            self._say(f"stopped after {race.wall:.0f} s at step {race.stopped_at()} of {race.steps} (no final test)")
        else:
            err = f" · failed: {race.errors}" if race.errors else ""
            self._say(f"done in {race.wall:.0f} s · test accuracy: {status_line(snap)}{err}")
        self.go.disabled, self.halt.disabled = False, True


SWEEP_COLORS = {"BNS": "black"}


def noise_ratio_figure(grid: NoiseRatioGrid, ratio: float):
    """The committed sweep at ``ratio``: each method's test accuracy minus uniform's on the same seed
    (one dot per seed, hollow where validation kept the start), the share of clean tasks each trained
    on, and ATS's last pool at ``ratio``."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(11.0, 3.7), gridspec_kw={"width_ratios": [1, 1, 1.15]})
    s, t = grid.seeds, grid.table
    others = [m for m in t["method"].unique() if m != "uniform"]
    for k, m in enumerate(others):
        color = SWEEP_COLORS.get(m, plots.METHOD_COLORS.get(m, "black"))
        g, d = t[t.method == m], s[s.method == m]
        axes[0].plot(g["ratio"], g["vs_uniform"], "-" if m != "BNS" else "--", color=color, label=m, lw=1.5)
        x = d["ratio"] + (k - (len(others) - 1) / 2) * 0.018
        kept = d["kept_start"].to_numpy()
        axes[0].scatter(x[~kept], d["vs_uniform"][~kept], color=color, s=16, zorder=3)
        axes[0].scatter(x[kept], d["vs_uniform"][kept], facecolors="white", edgecolors=color, s=16, zorder=3)
    axes[0].axhline(0, color=plots.METHOD_COLORS["uniform"], lw=1, ls=":")
    axes[0].set_ylabel("test acc. − uniform's, same seed (pts)")
    axes[0].set_title("dots: seeds; hollow: validation kept the start", fontsize=8)
    for m, g in t.groupby("method", sort=False):
        color = SWEEP_COLORS.get(m, plots.METHOD_COLORS.get(m, "black"))
        axes[1].plot(g["ratio"], g["clean_share"] * 100, "o-" if m != "BNS" else "o--", ms=4, color=color, label=m)
    axes[1].set_ylabel("clean share of trained tasks (%)")
    axes[1].set_ylim(-2, 102), axes[1].set_title("uniform's share is 1 − noise ratio", fontsize=8)
    for ax in axes[:2]:
        ax.axvline(ratio, color="grey", lw=8, alpha=0.2)
        ax.set_xlabel("noise ratio"), ax.set_xticks(grid.ratios)
    axes[1].legend(fontsize=7, frameon=False, loc="lower left")
    pool = grid.pool(ratio, "ats")
    if len(pool):
        step = int(pool["step"].iloc[0])
        plots.loss_sim_scatter(pool, [step], axes=[axes[2]], title=f"ATS's pool, noise {ratio:g}, seed "
                               f"{int(pool['seed'].iloc[0])},", colorbar=False)
        fig.colorbar(axes[2].collections[-1], ax=axes[2], fraction=0.05, label="ATS probability")
    else:
        axes[2].text(0.5, 0.5, "no pool logged", ha="center", va="center", transform=axes[2].transAxes)
    fig.suptitle(f"committed noise-ratio sweep: 150 steps from the clean-pretrained start; grey band: ratio {ratio:g}",
                 fontsize=9)
    fig.tight_layout()
    return fig


def readout(grid: NoiseRatioGrid, ratio: float) -> str:
    """One line per ratio: each method's test accuracy, its difference from uniform, clean share."""
    parts = []
    for x in grid.at(ratio).itertuples():
        name = f"{x.method} ({x.picked})" if x.method == "BNS" else x.method
        diff = "" if x.method == "uniform" else f", {x.vs_uniform:+.1f} vs uniform"
        parts.append(f"{name} {x.mean:.1f} ± {x.ci95:.1f}%{diff}, {x.clean_share * 100:.0f}% clean, "
                     f"{x.kept_start}/{x.n} kept the start")
    return f"noise ratio {ratio:g}: " + " · ".join(parts)


def noise_ratio_view(results: str | Path = RESULTS_DIR, methods=("uniform", "ats", "rank-sim-loss")):
    """The instant view: a slider over the committed noise-ratio sweep redrawing ``noise_ratio_figure``
    and the readout at the chosen ratio, all read from ``results/`` (no training)."""
    w = widgets._w()
    grid = NoiseRatioGrid(results, methods)
    ratios = grid.ratios
    slider = w.SelectionSlider(options=ratios, value=0.6 if 0.6 in ratios else ratios[0], description="noise ratio",
                               continuous_update=False)
    out = w.Output()
    note = w.HTML()

    def redraw(*_):
        widgets._show(out, noise_ratio_figure(grid, slider.value), "noise-ratio sweep")
        note.value = f"<span class='atslib-grid-readout'>{readout(grid, slider.value)}</span>"

    slider.observe(redraw, names="value")
    redraw()
    return w.VBox([slider, note, out])


if __name__ == "__main__":
    main()
