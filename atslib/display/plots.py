"""Plots: functions that take data (tensors, DataFrames) and return ``(fig, ax)``; ``savefig`` owns paths.

Nothing here trains or reads run directories; notebooks load data with ``atslib`` and pass it in.

Where figures go: ``savefig(fig, name, fig_dir)`` writes into ``fig_dir`` when given, else into
``$FIG_DIR`` when that environment variable is set, else into ``build/figures/`` - so a notebook run
in JupyterLab never overwrites the committed gallery; only ``make figures`` passes
``FIG_DIR=<repo>/figures`` (papermill ``-p``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics import t_ci95
from ..paths import BUILD_FIG_DIR, FIGURES_DIR, ROOT

GALLERY_DIR = FIGURES_DIR          # the committed gallery: written by `make figures` only
METHOD_COLORS = {"uniform": "#7f7f7f", "ats": "#d62728", "rank-sim-loss": "#1f77b4", "ats-random-phi": "#bcbd22",
                 "ats-loss-only": "#ff7f0e", "ats-sim-only": "#2ca02c", "ats-reweight": "#9467bd",
                 "ats-cheap": "#e377c2", "uniform-val": "#8c564b", "spl": "#17becf", "focal": "#aec7e8",
                 "gcp": "#98df8a", "daml": "#c5b0d5", "paml": "#ffbb78"}


def _plt():
    import matplotlib.pyplot as plt
    return plt


def figure_dir(explicit: str | Path | None = None) -> Path:
    """The figure directory: ``explicit``, else ``$FIG_DIR``, else ``build/figures/`` (never the gallery
    unless asked: ``make figures`` passes it)."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit)
    env = os.environ.get("FIG_DIR")
    return Path(env) if env else BUILD_FIG_DIR


class Saved(list):
    """The paths ``savefig`` / ``save_table`` wrote; shown in a notebook as one short line, not a list
    of ``PosixPath`` reprs."""

    def __repr__(self) -> str:
        if not self:
            return "nothing saved"
        d = self[0].parent
        try:
            d = d.resolve().relative_to(ROOT)
        except ValueError:
            pass
        return f"saved to {d}/: " + ", ".join(p.name for p in self)

    def _repr_pretty_(self, printer, cycle):
        printer.text(repr(self))


def savefig(fig, name: str, fig_dir: str | Path | None = None, formats=("png", "pdf")) -> Saved:
    """Write ``fig`` as ``<dir>/<name>.<fmt>`` for each format (``dir`` from ``figure_dir``); returns the paths."""
    d = figure_dir(fig_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = Saved()
    for fmt in formats:
        p = d / f"{name}.{fmt}"
        fig.savefig(p, dpi=120, bbox_inches="tight", metadata={"CreationDate": None} if fmt == "pdf" else None)
        paths.append(p)
    _embed(fig, paths)
    return paths


def _embed(fig, paths) -> None:
    """Under a non-interactive backend in a kernel (papermill's headless runs: MPLBACKEND=Agg), show
    the saved PNG in the cell's output, so an executed notebook carries its figures; with the inline
    backend (JupyterLab) the figure shows itself and nothing is added."""
    import sys
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    png = [p for p in paths if p.suffix == ".png"]
    if not shell or getattr(shell, "kernel", None) is None or not png or "inline" in _plt().get_backend().lower():
        return
    from IPython.display import Image, display
    display(Image(filename=str(png[0])))


def save_table(df: pd.DataFrame, name: str, fig_dir: str | Path | None = None) -> Saved:
    """Write a table next to the figures as ``<name>.csv`` and ``<name>.md``."""
    d = figure_dir(fig_dir)
    d.mkdir(parents=True, exist_ok=True)
    df.to_csv(d / f"{name}.csv", index=False)
    (d / f"{name}.md").write_text(df.to_markdown(index=False) if _has_tabulate() else df.to_string(index=False))
    return Saved([d / f"{name}.csv", d / f"{name}.md"])


def legend_outside(ax, **kw):
    """A legend right of the axes, off the data."""
    kw.setdefault("fontsize", 7)
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False, **kw)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
        return True
    except ImportError:
        return False


def episode_grid(tasks, task: int = 0, class_names=None, max_query: int = 2):
    """Support images (top) and a few queries per class (below) of one task, labels in titles.

    Support titles show the label the learner sees; a corrupted label is drawn in red with the
    true one in brackets.
    """
    plt = _plt()
    ways = tasks.ways
    shots = tasks.y_s.shape[1] // ways
    nq = tasks.y_q.shape[1] // ways
    rows = shots + min(max_query, nq)
    fig, axes = plt.subplots(rows, ways, figsize=(1.5 * ways, 1.55 * rows), squeeze=False)
    for w in range(ways):
        for r in range(rows):
            ax = axes[r, w]
            if r < shots:
                i = w * shots + r
                img, shown, true = tasks.x_s[task, i], int(tasks.y_s[task, i]), int(tasks.y_s_clean[task, i])
                bad = shown != true
                ax.set_title(f"S: {shown}" + (f" ({true})" if bad else ""), fontsize=8, color="red" if bad else "black")
            else:
                i = w * nq + (r - shots)
                img = tasks.x_q[task, i]
                ax.set_title(f"Q: {int(tasks.y_q[task, i])}", fontsize=8)
            arr = img.detach().cpu().numpy()
            ax.imshow(arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
        if class_names is not None:
            axes[-1, w].set_xlabel(class_names[int(tasks.classes[task, w])], fontsize=8)
    fig.suptitle(f"task {task}: {ways}-way {shots}-shot" + (" - noisy labels" if bool(tasks.noisy[task]) else ""),
                 fontsize=10)
    fig.tight_layout()
    return fig, axes


def label_matrix(y_true, y_shown, ways: int, ax=None, title="support labels: true vs shown"):
    """Counts of (true, shown) support labels, e.g. over the noisy tasks of a pool."""
    plt = _plt()
    m = np.zeros((ways, ways), dtype=int)
    np.add.at(m, (np.asarray(y_true).ravel(), np.asarray(y_shown).ravel()), 1)
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.4, 3))
    else:
        fig = ax.figure
    im = ax.imshow(m, cmap="Blues", vmin=0)
    top = max(int(m.max()), 1)
    for i in range(ways):
        for j in range(ways):   # white on dark cells, black on light ones
            ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7 if ways <= 6 else 6,
                    color="white" if m[i, j] > 0.55 * top else "black")
    ax.set_xticks(range(ways)), ax.set_yticks(range(ways))
    ax.set_xlabel("label shown to the learner"), ax.set_ylabel("true label"), ax.set_title(title, fontsize=9)
    cb = fig.colorbar(im, ax=ax, fraction=0.046)
    from matplotlib.ticker import MaxNLocator
    cb.locator = MaxNLocator(integer=True)
    cb.update_ticks()
    return fig, ax


def noise_rates(df: pd.DataFrame, ax=None):
    """Realised vs requested noise: df columns requested, realised_tasks, realised_labels."""
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 3.2))
    else:
        fig = ax.figure
    ax.plot([0, 1], [0, 1], ":", color="grey", label="requested")
    ax.plot(df["requested"], df["realised_tasks"], "o-", label="noisy tasks")
    ax.plot(df["requested"], df["realised_labels"], "s-", label="corrupted support labels")
    ax.set_xlabel("requested noise ratio"), ax.set_ylabel("realised rate"), ax.legend(fontsize=8)
    return fig, ax


def learning_curves(history: pd.DataFrame, label: str | None = None, axes=None, smooth: int = 25):
    """Train query loss (smoothed) and validation accuracy against steps."""
    plt = _plt()
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    fig = axes[0].figure
    h = history
    if "train_loss" in h and h["train_loss"].notna().any():
        axes[0].plot(h["step"], h["train_loss"].rolling(smooth, min_periods=1).mean(), label=label)
    if "val_acc" in h:
        v = h.dropna(subset=["val_acc"])
        axes[1].plot(v["step"], v["val_acc"], "o-", label=label, ms=3)
    axes[0].set_xlabel("step"), axes[0].set_ylabel("train query loss (smoothed)")
    axes[1].set_xlabel("step"), axes[1].set_ylabel("validation accuracy")
    if label:
        legend_outside(axes[1])
    fig.tight_layout()
    return fig, axes


def method_bars(table: pd.DataFrame, value="test_mean", err="test_ci95", ax=None, reference: float | None = None):
    """Bar per method (table columns method, value, err), optional reference line."""
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(1 + 0.8 * len(table), 3.4))
    else:
        fig = ax.figure
    colors = [METHOD_COLORS.get(m, "#333333") for m in table["method"]]
    ax.bar(range(len(table)), table[value] * 100, yerr=table[err] * 100, color=colors, capsize=3)
    ax.set_xticks(range(len(table)), table["method"], rotation=30, ha="right")
    ax.set_ylabel("test accuracy (%)")
    lo = (table[value] - table[err]).min() * 100
    ax.set_ylim(max(0, lo - 5), (table[value] + table[err]).max() * 100 + 2)
    if reference is not None:
        ax.axhline(reference * 100, ls=":", color="grey")
    fig.tight_layout()
    return fig, ax


def loss_sim_scatter(pools: pd.DataFrame, steps, sim="sim_cos", axes=None, title="", colorbar=True):
    """Post-adaptation query loss vs gradient similarity for the pools at ``steps``, coloured by
    sampling probability; noisy tasks drawn as crosses (the paper's factor analysis figure). The
    panels share their axes, so positions compare across steps."""
    plt = _plt()
    steps = list(steps)
    if axes is None:
        fig, axes = plt.subplots(1, len(steps), figsize=(3.6 * len(steps), 3.3), squeeze=False, sharex=True,
                                 sharey=True)
        axes = axes[0]
    fig = axes[0].figure
    vmax = pools["prob"].max()
    sc = None
    for ax, s in zip(axes, steps):
        d = pools[pools["step"] == s]
        for noisy, marker in ((False, "o"), (True, "x")):
            e = d[d["noisy"].astype(bool) == noisy]
            sc = ax.scatter(e["loss"], e[sim], c=e["prob"], cmap="viridis", vmin=0, vmax=vmax, marker=marker,
                            s=28, label="noisy" if noisy else "clean")
        ax.set_title(f"{title} step {s}", fontsize=9)
        ax.set_xlabel("query loss after adaptation")
    axes[0].set_ylabel(f"gradient similarity ({sim})")
    axes[0].text(0.0, -0.3, "○ clean task   × noisy task", transform=axes[0].transAxes, fontsize=7, color="#444444",
                 va="top")
    if sc is not None and colorbar:
        fig.colorbar(sc, ax=list(axes), fraction=0.03, label="sampling probability")
    return fig, axes


# samplers whose noisy mass is the pool's noisy share: drawn on top, dashed/dotted, so lines that sit
# on them (ATS with a random phi sits on uniform) stay visible
REFERENCE_STYLES = {"uniform": "--", "ats-random-phi": ":"}


def trajectory(histories: dict, column: str = "noisy_mass", smooth: int = 50, ax=None, ylabel=None):
    """A per-step column (e.g. probability mass on noisy tasks) per method, smoothed."""
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.2))
    else:
        fig = ax.figure
    for name, h in histories.items():
        if column in h:
            ref = REFERENCE_STYLES.get(name)
            ax.plot(h["step"], h[column].rolling(smooth, min_periods=1).mean(), label=name,
                    color=METHOD_COLORS.get(name), **({"ls": ref, "lw": 2.2, "zorder": 10} if ref else {}))
    ax.set_xlabel("step"), ax.set_ylabel(ylabel or column)
    legend_outside(ax)
    return fig, ax


def seed_differences(diffs: dict, ax=None, title: str = "", unit: str = "points"):
    """One column per comparison (``{label: per-seed differences}``): every seed as a dot, the mean
    with its 95% t-interval over seeds as a bar, and zero as a line. This is what the seed-paired
    test sees; a dot per seed shows whether one seed carries a mean."""
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(diffs), 3.2))
    else:
        fig = ax.figure
    jitter = np.random.default_rng(0)                   # fixed: the figure is the same on every run
    for i, (label, d) in enumerate(diffs.items()):
        d = np.asarray(d, dtype=float)
        ax.scatter(i + jitter.uniform(-0.12, 0.12, d.size), d, s=14, color="#444444", alpha=0.7, zorder=3)
        if d.size:
            ci = t_ci95(d)
            ax.errorbar(i + 0.28, d.mean(), yerr=None if np.isnan(ci) else ci, fmt="D", ms=5, capsize=4,
                        color="#d62728", zorder=4)
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_xticks(range(len(diffs)), list(diffs), rotation=30, ha="right")
    ax.set_xlim(-0.6, len(diffs) - 0.4)
    ax.set_ylabel(unit)
    if title:
        ax.set_title(title, fontsize=9)
    return fig, ax


def molecule_grid(data, assay: int, n: int = 6):
    """The first ``n`` molecules of an assay as RDKit drawings with their labels; without RDKit (an
    optional extra) a table of their SMILES and a line that says why nothing is drawn."""
    with np.load(data.path) as z:
        smiles = z["smiles"]
    rows, y = data.assay(assay)
    smi = [str(smiles[r]) for r in rows[:n].tolist()]
    labels = [round(float(v), 2) for v in y[:n].tolist()]
    try:
        from rdkit import Chem
        from rdkit.Chem import Draw
    except ImportError:
        print("Structures not drawn: RDKit is not installed in this environment. It built "
              "data/molecules.npz (fingerprints and SMILES are stored there), but drawing needs it at "
              "run time too; it is an optional extra: pip install -e \".[chem]\". Their SMILES:")
        return pd.DataFrame({"SMILES": smi, "label": labels})
    mols = [Chem.MolFromSmiles(s) for s in smi]
    return Draw.MolsToGridImage(mols, molsPerRow=n, legends=[f"{v:.2f}" for v in labels])
