"""Sweeps: a grid of training runs (method x setting x seed), resumable, through a small executor.

A grid is a YAML file (see ``experiments/``)::

    name: noisy
    description: one line on what the grid tests
    scale:                       # presets picked with --scale (default "cpu"); "gpu" = the paper's settings
      cpu: {steps: 150, eval_every: 25}
      gpu: {steps: 10000, eval_every: 500}
    cells:
      - name: 1shot              # one setting; its runs live in OUT/1shot/METHOD-sSEED
        config: {shots: 1, noise_ratio: 0.6, init: "{results}/pretrain/1shot-s{seed}"}
        methods: [uniform, ats, spl]
        seeds: [0, 1, 2]
        seeds_by_method: {spl: [0, 1]}     # optional: fewer (or more) seeds for some methods
        scale: {cpu: {...}, gpu: {...}}    # optional: this cell's presets replace the grid's

A run's config is ``Config()`` <- scale preset <- cell config <- {method, seed}; strings may name
``{seed}``, ``{shots}`` (any config field) and ``{results}`` (the folder holding OUT). Runs are
ordered uniform and ATS first (every cell, every seed), then the rest.

Resumable: a run with a ``summary.json`` is skipped; a run killed half-way restarts from its
checkpoint (``Run(resume=True)``); every file is written atomically. A finished run with the very
same config in a sibling grid (another folder under ``{results}``) is reused - its record files are
copied and the row says ``reused_from`` - so grids sharing a cell do not train it twice.
``summary.csv`` (one row per run) and ``cells.csv`` (per cell and method: mean and 95% CI over
seeds) are rewritten after every run.

Executors: ``local`` (sequential, in this process), ``process`` (a local process pool) and ``ray``
(each run a Ray task with ``num_cpus``/``num_gpus``; ``address`` = an existing cluster, none = a
fresh local Ray; see ``atslib.cluster``). ``workers`` means the same under each: the most runs at
once (local: 1 only; process: default 1; ray: default as many as the cluster's resources fit). A Ray
worker that does not share the driver's file system sends its checkpoints and the run's record files
back to the driver, which writes them, so a cluster needs no shared file system and loses no work.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .config import METHODS, Config, ConfigError
from .runs import atomic_write, write_csv

# summary.json last: a run counts as finished once it exists, so it is written after everything else
FAILED = "FAILED"   # a run whose last attempt raised: the error message, kept until a later attempt succeeds
RECORD_FILES = ("config.json", "history.csv", "test_scores.csv", "pool.csv.gz", "best.pt", "summary.json")
FIRST = ("uniform", "ats")                     # run these first in every cell
ROW_KEYS = ("test_mean", "test_ci95", "best_val", "best_step", "noise_auc", "clean_share", "clean_share_late",
            "noisy_mass_late", "r2_mean", "r2_median", "r2_gt_03", "wall_seconds", "steps_done", "start_val")


@dataclass
class RunSpec:
    """One run of a grid: where it goes and its full config."""
    cell: str
    method: str
    seed: int
    config: dict
    dir: Path
    order: tuple = field(default=(), repr=False)

    @property
    def name(self) -> str:
        return f"{self.cell}/{self.method}-s{self.seed}"


class GridError(ConfigError):
    """A grid file that cannot be run as written (one clear line, exit 2)."""


def _need(ok, message: str) -> None:
    if not ok:
        raise GridError(message)


def _fill(value, names: dict):
    if isinstance(value, str):
        try:
            return value.format(**names)
        except (KeyError, IndexError, ValueError) as e:
            raise GridError(f"grid value {value!r}: unknown placeholder {e}; allowed: {{results}} and "
                            f"config fields such as {{seed}}, {{shots}}") from None
    return value


def load_grid(path) -> dict:
    import yaml
    path = Path(path)
    if not path.is_file():
        raise GridError(f"grid {str(path)!r}: no such file; allowed: a YAML grid such as experiments/noisy.yaml")
    try:
        grid = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise GridError(f"grid {str(path)!r}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(grid, dict) or not isinstance(grid.get("cells"), list) or not grid["cells"]:
        raise GridError(f"grid {str(path)!r}: needs a non-empty list 'cells'")
    return grid


def expand(grid: dict, out, scale: str = "cpu") -> list[RunSpec]:
    """The grid's runs, in execution order (uniform and ATS first), with validated configs."""
    out = Path(out)
    presets = grid.get("scale") or {}
    _need(isinstance(presets, dict) and all(isinstance(v, dict) for v in presets.values()),
          f"grid 'scale' {presets!r} must map preset names to option dicts")
    if scale not in (presets or {"cpu": None}):
        raise GridError(f"--scale {scale!r}: allowed: {', '.join(map(str, presets))}")
    base = dict(presets.get(scale) or {})
    specs, seen = [], set()
    for ci, cell in enumerate(grid["cells"]):
        _need(isinstance(cell, dict), f"cell {ci}: {cell!r} must be a mapping with name, methods, seeds")
        name = cell.get("name")
        if not isinstance(name, str) or not name or "/" in name:
            raise GridError(f"cell {ci}: 'name' {name!r} must be a non-empty string without '/'")
        if name in seen:
            raise GridError(f"cell {name!r}: duplicate name; allowed: unique cell names")
        seen.add(name)
        methods = cell.get("methods")
        ok = isinstance(methods, list) and methods and all(isinstance(m, str) and m in METHODS for m in methods)
        _need(ok, f"cell {name!r}: methods {methods!r}; allowed: a list of {', '.join(METHODS)}")
        by_method = cell.get("seeds_by_method") or {}
        _need(isinstance(by_method, dict), f"cell {name!r}: seeds_by_method {by_method!r} must map methods to seeds")
        _need(set(by_method) <= set(methods), f"cell {name!r}: seeds_by_method names {sorted(set(by_method) - set(methods))}"
                                             f", not among the cell's methods {methods}")
        for key in ("config", "scale"):
            _need(isinstance(cell.get(key) or {}, dict), f"cell {name!r}: {key} {cell.get(key)!r} must be a mapping")
        cell_scale = cell.get("scale") or {}
        _need(all(isinstance(v, dict) for v in cell_scale.values()), f"cell {name!r}: scale presets must be mappings")
        for mi, method in enumerate(methods):
            seeds = by_method.get(method, cell.get("seeds", [0]))
            _need(isinstance(seeds, list) and seeds and all(type(x) is int and x >= 0 for x in seeds),
                  f"cell {name!r}, {method}: seeds {seeds!r}; allowed: a list of integers >= 0")
            for seed in seeds:
                preset = cell_scale.get(scale, base)              # a cell may replace the grid's preset
                d = {**preset, **(cell.get("config") or {}), "method": method, "seed": int(seed)}
                names = {**Config().to_dict(), **d, "results": out.parent.as_posix()}
                d = {k: _fill(v, names) for k, v in d.items()}
                try:
                    cfg = Config.from_dict(d)
                except ConfigError as e:
                    raise GridError(f"cell {name!r}, {method} seed {seed}: {e}") from None
                tier = 0 if method in FIRST else 1
                specs.append(RunSpec(name, method, int(seed), cfg.to_dict(), out / name / f"{method}-s{seed}",
                                     (tier, int(seed), ci, mi)))
    return sorted(specs, key=lambda s: s.order)


def select(specs: list[RunSpec], only: list[str]) -> list[RunSpec]:
    """Keep runs whose cell and method are named (a kind not named at all is not filtered)."""
    cells, methods = {s.cell for s in specs}, {s.method for s in specs}
    bad = [o for o in only if o not in cells and o not in methods]
    if bad:
        raise GridError(f"--only {bad}: not a cell or method of this grid; allowed: {', '.join(sorted(cells | methods))}")
    want_c, want_m = set(only) & cells, set(only) & methods
    return [s for s in specs if (not want_c or s.cell in want_c) and (not want_m or s.method in want_m)]


def select_seeds(specs: list[RunSpec], seeds: list[int]) -> list[RunSpec]:
    """Keep runs whose seed is named (e.g. the first 5 seeds of every method before more seeds)."""
    have = sorted({s.seed for s in specs})
    bad = [x for x in seeds if x not in have]
    if bad:
        raise GridError(f"--seeds {bad}: no run of the selected cells has these seeds; allowed: "
                        f"{', '.join(map(str, have))}")
    return [s for s in specs if s.seed in set(seeds)]


# -- one run (runs in a worker) --------------------------------------------------------------
def _die_with_parent() -> None:
    """A process-executor worker ends when its sweep does (Linux): a sweep killed by a signal would
    otherwise leave its workers training, unseen, beside the next sweep."""
    import signal
    import sys
    if sys.platform.startswith("linux"):
        import ctypes
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
        except OSError:
            pass


def _quiet_env() -> None:
    import os
    os.environ.setdefault("TQDM_DISABLE", "1")


def train_one(config: dict, out: str, ship: bool = False) -> dict:
    """Train (or resume) one run into ``out``; return its summary (and its record files if ``ship``)."""
    _quiet_env()
    from .loop import Run
    run = Run(Config.from_dict(config), out, resume=True)
    run.train()
    res = {"summary": run.summary}
    if ship:
        res["files"] = {f: (Path(out) / f).read_bytes() for f in RECORD_FILES if (Path(out) / f).is_file()}
    return res


# -- bookkeeping ---------------------------------------------------------------------------
def is_done(spec: RunSpec) -> bool:
    return (spec.dir / "summary.json").is_file()


def status(spec: RunSpec) -> str:
    """done, failed (its last attempt raised: the error is in FAILED; the next sweep retries it) or pending."""
    if is_done(spec):
        return "done"
    return "failed" if (spec.dir / FAILED).is_file() else "pending"


def check_same_config(spec: RunSpec) -> None:
    """A finished run must have been trained with the spec's options (another --scale, an edited grid)."""
    try:
        saved = json.loads((spec.dir / "config.json").read_text())["config"]
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
    for s in sorted(results.glob("*/*/*/summary.json")):
        d = s.parent
        if exclude in d.parents:
            continue
        try:
            meta = json.loads((d / "config.json").read_text())
            index.setdefault(_canon(meta["config"]), d)
        except (OSError, ValueError, KeyError, ConfigError):
            continue
    return index


def reuse(spec: RunSpec, src: Path) -> None:
    for f in RECORD_FILES:
        if (src / f).is_file():
            atomic_write(spec.dir / f, (src / f).read_bytes())
    atomic_write(spec.dir / "REUSED_FROM", src.as_posix() + "\n")


def summary_rows(specs: list[RunSpec], grid_name: str) -> pd.DataFrame:
    rows = []
    for s in specs:
        row = {"grid": grid_name, "cell": s.cell, "method": s.method, "seed": s.seed, "run": s.name,
               "status": status(s)}
        for k in ("shots", "noise_ratio", "flip_prob", "budget_classes", "noise_scale", "dataset", "steps"):
            row[k] = s.config.get(k)
        if is_done(s):
            summ = json.loads((s.dir / "summary.json").read_text())
            row.update({k: summ.get(k) for k in ROW_KEYS})
            src = s.dir / "REUSED_FROM"
            row["reused_from"] = src.read_text().strip() if src.is_file() else ""
        rows.append(row)
    return pd.DataFrame(rows)


def cell_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, method): n seeds, mean and 95% CI (t over seeds) of the run's headline score."""
    done = df[df["status"] == "done"]
    if done.empty:
        return pd.DataFrame(columns=["cell", "method", "n", "metric", "mean", "ci95"])
    from .metrics import t_ci95
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
    write_csv(out / "summary.csv", df)
    write_csv(out / "cells.csv", cell_table(df))
    return df


# -- executors -------------------------------------------------------------------------------
def _check_inits(specs: list[RunSpec]) -> None:
    for s in specs:
        init = s.config.get("init")
        if init and not (Path(init) / "best.pt").is_file():
            raise GridError(f"run {s.name}: --init {init}: no best.pt there; allowed: a finished run directory "
                            f"(run its grid first, e.g. python -m atslib sweep experiments/pretrain.yaml "
                            f"--out {Path(init).parent})")


def run_sweep(grid_path, out, executor: str = "local", address: str | None = None, workers: int | None = None,
              scale: str = "cpu", num_cpus: float = 1, num_gpus: float = 0, limit: int | None = None,
              only: list[str] | None = None, progress: bool = True, seeds: list[int] | None = None,
              shared_fs: bool = True) -> int:
    """Run every unfinished run of the grid; returns 0 when all are done (the CLI's exit code).

    ``workers``: the most runs at once (None: local and process 1, ray as many as fit the cluster).
    ``shared_fs=False`` (ray): workers never use the driver's folders, as on a cluster without a
    shared file system (checkpoints travel through the driver)."""
    ray_conn: list = []            # the Ray connection this sweep opened (closed whatever happens)
    try:
        return _run_sweep(grid_path, out, executor, address, workers, scale, num_cpus, num_gpus, limit, only,
                          progress, seeds, shared_fs, ray_conn)
    finally:
        for conn in ray_conn:
            conn.close()


def _run_sweep(grid_path, out, executor, address, workers, scale, num_cpus, num_gpus, limit, only, progress, seeds,
               shared_fs, ray_conn) -> int:
    if executor not in ("local", "process", "ray"):
        raise GridError(f"--executor {executor!r}: allowed: local, process, ray")
    if workers is not None and (type(workers) is not int or workers < 1):
        raise GridError(f"--workers {workers!r}: allowed: an integer >= 1 (the most runs at once)")
    if executor == "local" and workers not in (None, 1):
        raise GridError(f"--workers {workers}: the local executor runs one run at a time; allowed: --workers 1, "
                        f"or --executor process / ray for {workers} at once")
    if executor != "ray" and (address is not None or not shared_fs):
        opt = "--address" if address is not None else "--no-shared-fs"
        raise GridError(f"{opt}: only for --executor ray; allowed: --executor ray {opt} ...")
    if executor == "ray":
        for opt, v, lo in (("--num-cpus", num_cpus, 0), ("--num-gpus", num_gpus, 0)):
            if not isinstance(v, (int, float)) or v != v or v < lo or (opt == "--num-cpus" and v == 0 and not num_gpus):
                raise GridError(f"{opt} {v!r}: allowed: a number >= 0 (and --num-cpus > 0 unless --num-gpus > 0)")
    elif (num_cpus, num_gpus) != (1, 0):
        raise GridError(f"--num-cpus/--num-gpus: per-run Ray resources, only for --executor ray; allowed: "
                        f"--executor ray, or neither option")
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
        from .cluster import open_cluster
        ray_conn.append(open_cluster(address, num_cpus, num_gpus))
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
                for f in RECORD_FILES:                  # summary.json last
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
        from .cluster import run_ray

        def say(line):
            (bar.write(line, file=sys.stderr) if progress else print(line, file=sys.stderr, flush=True))

        run_ray(ray_conn[0], todo, out, done, bar if progress else None, workers=workers, num_cpus=num_cpus,
                num_gpus=num_gpus, shared_fs=shared_fs, say=say, label=f"sweep {name}")
    bar.close()
    df = write_tables(every, out, name)
    n_done = int((df["status"] == "done").sum())
    print(f"sweep {name}: {n_done}/{len(df)} runs done ({len(todo) - len(failures)} trained now in "
          f"{time.perf_counter() - t0:.0f} s, {len(failures)} failed); tables in {out}/summary.csv, {out}/cells.csv")
    return 1 if failures else 0


__all__ = ["RunSpec", "GridError", "load_grid", "expand", "run_sweep", "train_one", "summary_rows", "cell_table"]
