"""Sweeps: a grid of training runs (method x setting x seed), resumable, through a small executor.

The grid file and its expansion into runs are ``atslib.study.grid``.

Resumable: a run with a ``summary.json`` is skipped; a run killed half-way restarts from its
checkpoint (``Run(resume=True)``); every file is written atomically. A finished run with the very
same config in a sibling grid (another folder under ``{results}``) is reused - its record files are
copied and the row says ``reused_from`` - so grids sharing a cell do not train it twice.
``summary.csv`` (one row per run) and ``cells.csv`` (per cell and method: mean and 95% CI over
seeds) are rewritten after every run.

Executors: ``local`` (sequential, in this process), ``process`` (a local process pool),
``population`` (the grid's compatible runs - the same cell and method, different seeds - trained
in lockstep as populations in this process, ``atslib.population``; made for one GPU) and ``ray``
(each run a Ray task with ``num_cpus``/``num_gpus``; ``address`` = an existing cluster, none = a
fresh local Ray; see ``atslib.study.cluster``). ``workers`` means the same under each: the most runs at
once (local: 1 only; process: default 1; population: runs per population, default all compatible
runs; ray: default as many as the cluster's resources fit). A Ray
worker that does not share the driver's file system sends its checkpoints and the run's record files
back to the driver, which writes them, so a cluster needs no shared file system and loses no work.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd

from . import cluster
from ..config import Config, ConfigError
from .grid import (  # noqa: F401
    FIRST,
    GridError,
    RunSpec,
    expand,
    is_done,
    load_grid,
    select,
    select_seeds,
    status,
)
from ..loop import Run
from ..metrics import t_ci95
from ..population import group, train_population
from ..store import BEST, CONFIG, FAILED, RECORD_FILES, REUSED_FROM, SUMMARY, atomic_write
from . import EXECUTORS
ROW_KEYS = ("test_mean", "test_ci95", "best_val", "best_step", "noise_auc", "clean_share", "clean_share_late",
            "noisy_mass_late", "r2_mean", "r2_median", "r2_gt_03", "wall_seconds", "steps_done", "start_val")


# -- one run (runs in a worker) --------------------------------------------------------------
def _die_with_parent() -> None:
    """A process-executor worker ends when its sweep does (Linux): a sweep killed by a signal would
    otherwise leave its workers training, unseen, beside the next sweep."""
    if sys.platform.startswith("linux"):
        import ctypes
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
        except OSError:
            pass


def _quiet_env() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")


def train_one(config: dict, out: str, ship: bool = False) -> dict:
    """Train (or resume) one run into ``out``; return its summary (and its record files if ``ship``)."""
    _quiet_env()
    run = Run(Config.from_dict(config), out, resume=True)
    run.train()
    res = {"summary": run.summary}
    if ship:
        res["files"] = {f: (Path(out) / f).read_bytes() for f in RECORD_FILES if (Path(out) / f).is_file()}
    return res


def train_specs_together(specs: list[RunSpec]) -> list[tuple]:
    """Train (or resume) compatible runs as one population; (spec, result or None, error or None) each."""
    _quiet_env()
    try:
        members = train_population([Config.from_dict(s.config) for s in specs], [str(s.dir) for s in specs],
                                   resume=True)
    except Exception as e:  # noqa: BLE001 - one failed population must not stop the sweep
        return [(s, None, f"{type(e).__name__}: {e}") for s in specs]
    return [(s, {"summary": m.run.summary}, None) if m.ok else (s, None, f"{type(m.error).__name__}: {m.error}")
            for s, m in zip(specs, members)]


def check_same_config(spec: RunSpec) -> None:
    """A finished run must have been trained with the spec's options (another --scale, an edited grid)."""
    try:
        saved = json.loads((spec.dir / CONFIG).read_text())["config"]
        same = _canon(saved) == _canon(spec.config)
    except (OSError, ValueError, KeyError, ConfigError):
        saved, same = {}, False
    if not same:
        diff = sorted(k for k in spec.config if saved.get(k) != spec.config[k])
        raise GridError(f"run {spec.name} in {spec.dir.parent.parent}: finished with other options {diff}; allowed: "
                        f"the grid as it was run, or another --out for another scale or grid")


def _canon(config: dict) -> str:
    return json.dumps(Config.from_saved(config).to_dict(), sort_keys=True)


def finished_index(results: Path, exclude: Path) -> dict[str, Path]:
    """Finished runs under ``results`` (any grid but ``exclude``), keyed by their canonical config."""
    index = {}
    for s in sorted(results.glob(f"*/*/*/{SUMMARY}")):
        d = s.parent
        if exclude in d.parents:
            continue
        try:
            meta = json.loads((d / CONFIG).read_text())
            index.setdefault(_canon(meta["config"]), d)
        except (OSError, ValueError, KeyError, ConfigError):
            continue
    return index


def reuse(spec: RunSpec, src: Path) -> None:
    for f in RECORD_FILES:
        if (src / f).is_file():
            atomic_write(spec.dir / f, (src / f).read_bytes())
    atomic_write(spec.dir / REUSED_FROM, src.as_posix() + "\n")


def summary_rows(specs: list[RunSpec], grid_name: str) -> pd.DataFrame:
    rows = []
    for s in specs:
        row = {"grid": grid_name, "cell": s.cell, "method": s.method, "seed": s.seed, "run": s.name,
               "status": status(s)}
        for k in ("shots", "noise_ratio", "flip_prob", "budget_classes", "noise_scale", "dataset", "steps"):
            row[k] = s.config.get(k)
        if is_done(s):
            summ = json.loads((s.dir / SUMMARY).read_text())
            row.update({k: summ.get(k) for k in ROW_KEYS})
            src = s.dir / REUSED_FROM
            row["reused_from"] = src.read_text().strip() if src.is_file() else ""
        rows.append(row)
    return pd.DataFrame(rows)


def cell_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, method): n seeds, mean and 95% CI (t over seeds) of the run's headline score."""
    done = df[df["status"] == "done"]
    if done.empty:
        return pd.DataFrame(columns=["cell", "method", "n", "metric", "mean", "ci95"])
    out = []
    for (cell, method), g in done.groupby(["cell", "method"], sort=False):
        v = g["test_mean"].astype(float)                   # accuracy; mean R^2 on molecules
        out.append({"cell": cell, "method": method, "n": len(v),
                    "metric": "r2_mean" if (g["dataset"] == "molecules").all() else "test_acc",
                    "mean": float(v.mean()), "ci95": t_ci95(v),
                    "noise_auc": float(g["noise_auc"].astype(float).mean()) if "noise_auc" in g else float("nan")})
    return pd.DataFrame(out)

def write_tables(specs, out: Path, grid_name: str) -> pd.DataFrame:
    df = summary_rows(specs, grid_name)
    atomic_write(out / "summary.csv", df.to_csv(index=False))
    atomic_write(out / "cells.csv", cell_table(df).to_csv(index=False))
    return df


# -- executors -------------------------------------------------------------------------------
def _check_inits(specs: list[RunSpec]) -> None:
    for s in specs:
        init = s.config.get("init")
        if init and not (Path(init) / BEST).is_file():
            raise GridError(f"run {s.name}: --init {init}: no {BEST} there; allowed: a finished run directory "
                            f"(run its grid first, e.g. python -m atslib sweep experiments/pretrain.yaml "
                            f"--out {Path(init).parent})")


def run_sweep(grid_path, out, executor: str = "local", address: str | None = None, workers: int | None = None,
              scale: str = "cpu", num_cpus: float = 1, num_gpus: float = 0, limit: int | None = None,
              only: list[str] | None = None, progress: bool = True, seeds: list[int] | None = None,
              shared_fs: bool = True, populations: bool = False) -> int:
    """Run every unfinished run of the grid; returns 0 when all are done (the CLI's exit code).

    ``workers``: the most runs at once (None: local and process 1, ray as many as fit the cluster).
    ``shared_fs=False`` (ray): workers never use the driver's folders, as on a cluster without a
    shared file system (checkpoints travel through the driver). ``populations`` (ray): one Ray task
    per population of compatible runs instead of one per run."""
    ray_conn: list = []            # the Ray connection this sweep opened (closed whatever happens)
    try:
        return _run_sweep(grid_path, out, executor, address, workers, scale, num_cpus, num_gpus, limit, only,
                          progress, seeds, shared_fs, ray_conn, populations)
    finally:
        for conn in ray_conn:
            conn.close()


def _run_sweep(grid_path, out, executor, address, workers, scale, num_cpus, num_gpus, limit, only, progress, seeds,
               shared_fs, ray_conn, populations=False) -> int:
    if executor not in EXECUTORS:
        raise GridError(f"--executor {executor!r}: allowed: {', '.join(EXECUTORS)}")
    if workers is not None and (type(workers) is not int or workers < 1):
        raise GridError(f"--workers {workers!r}: allowed: an integer >= 1 (the most runs at once)")
    if executor == "local" and workers not in (None, 1):
        raise GridError(f"--workers {workers}: the local executor runs one run at a time; allowed: --workers 1, "
                        f"or --executor process / ray for {workers} at once")
    if executor != "ray" and (address is not None or not shared_fs or populations):
        opt = "--address" if address is not None else ("--no-shared-fs" if not shared_fs else "--populations")
        raise GridError(f"{opt}: only for --executor ray; allowed: --executor ray {opt} ...")
    if executor == "ray":
        for opt, v, lo in (("--num-cpus", num_cpus, 0), ("--num-gpus", num_gpus, 0)):
            if not isinstance(v, (int, float)) or v != v or v < lo or (opt == "--num-cpus" and v == 0 and not num_gpus):
                raise GridError(f"{opt} {v!r}: allowed: a number >= 0 (and --num-cpus > 0 unless --num-gpus > 0)")
    elif (num_cpus, num_gpus) != (1, 0):
        raise GridError("--num-cpus/--num-gpus: per-run Ray resources, only for --executor ray; allowed: "
                        "--executor ray, or neither option")
    grid = load_grid(grid_path)
    out = Path(out)
    every = expand(grid, out, scale)            # the tables always cover the whole grid
    specs = select(every, only) if only else every
    specs = select_seeds(specs, seeds) if seeds else specs
    name = grid.get("name", Path(grid_path).stem)
    if executor == "ray":                       # connect (or fail in one line) before anything is written
        import importlib.util
        if importlib.util.find_spec("ray") is None:
            raise GridError("--executor 'ray': ray is not installed; allowed: pip install 'atslib[ray]', "
                            "or --executor local/process") from None
        ray_conn.append(cluster.open_cluster(address, num_cpus, num_gpus))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GridError(f"--out {out}: cannot create it ({e.strerror}); allowed: a writable directory") from None
    atomic_write(out / "grid.yaml", Path(grid_path).read_text())
    index = finished_index(out.parent, out)
    todo = []
    for s in every:
        if is_done(s):
            check_same_config(s)
    for s in specs:
        if is_done(s):
            continue
        src = index.get(_canon(s.config))
        if src is not None:
            reuse(s, src)
        else:
            todo.append(s)
    if limit is not None:
        todo = todo[:limit]
    _check_inits(todo)
    write_tables(every, out, name)
    from tqdm.auto import tqdm
    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc=f"sweep {name}", unit="run",
               disable=not progress)
    failures = []

    def done(spec, result=None, error=None):
        if error is not None:
            failures.append((spec.name, error))
            print(f"sweep {name}: run {spec.name} failed: {error}", file=sys.stderr)
            atomic_write(spec.dir / FAILED, error.rstrip() + "\n")
        else:
            if result is not None and "files" in result:
                for f in RECORD_FILES:                  # SUMMARY last
                    if f in result["files"]:
                        atomic_write(spec.dir / f, result["files"][f])
            (spec.dir / FAILED).unlink(missing_ok=True)
        write_tables(every, out, name)
        bar.update(1)
        bar.set_postfix_str(spec.name, refresh=True)

    t0 = time.perf_counter()
    if executor == "local":
        for s in todo:
            try:
                done(s, train_one(s.config, str(s.dir)))
            except Exception as e:  # noqa: BLE001 - one failed run must not stop the sweep
                done(s, error=f"{type(e).__name__}: {e}")
    elif executor == "population":
        for ids in group([Config.from_dict(s.config) for s in todo], workers):
            for s, result, error in train_specs_together([todo[i] for i in ids]):
                done(s, result, error)
    elif executor == "process":
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed
        with ProcessPoolExecutor(workers or 1, mp_context=mp.get_context("spawn"),
                                 initializer=_die_with_parent) as pool:
            futs = {pool.submit(train_one, s.config, str(s.dir)): s for s in todo}
            for fut in as_completed(futs):
                try:
                    done(futs[fut], fut.result())
                except Exception as e:  # noqa: BLE001
                    done(futs[fut], error=f"{type(e).__name__}: {e}")
    else:

        def say(line):
            (bar.write(line, file=sys.stderr) if progress else print(line, file=sys.stderr, flush=True))

        cluster.run_ray(ray_conn[0], todo, out, done, bar if progress else None, workers=workers, num_cpus=num_cpus,
                num_gpus=num_gpus, shared_fs=shared_fs, say=say, label=f"sweep {name}", populations=populations)
    bar.close()
    df = write_tables(every, out, name)
    n_done = int((df["status"] == "done").sum())
    print(f"sweep {name}: {n_done}/{len(df)} runs done ({len(todo) - len(failures)} trained now in "
          f"{time.perf_counter() - t0:.0f} s, {len(failures)} failed); tables in {out}/summary.csv, {out}/cells.csv")
    return 1 if failures else 0


__all__ = ["RunSpec", "GridError", "load_grid", "expand", "run_sweep", "train_one", "summary_rows", "cell_table"]
