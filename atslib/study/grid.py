"""Grids of runs: the YAML file, its expansion into runs (``RunSpec``) and each run's status.

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
``{seed}``, ``{shots}`` (any config field) and ``{results}`` (the folder holding OUT); a value that is one
placeholder alone, e.g. ``budget_seed: "{seed}"``, keeps the field's type. Runs are
ordered uniform and ATS first (every cell, every seed), then the rest. ``atslib.study.sweep`` trains them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config import METHODS, Config, ConfigError
from ..store import FAILED, RECORD_FILES, SUMMARY  # noqa: F401 - RECORD_FILES (SUMMARY last): re-exported

FIRST = ("uniform", "ats")                     # run these first in every cell


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
        whole = re.fullmatch(r"\{(\w+)\}", value)
        if whole and whole.group(1) in names:       # "{seed}" alone keeps the field's type (an int)
            return names[whole.group(1)]
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


def is_done(spec: RunSpec) -> bool:
    return (spec.dir / SUMMARY).is_file()


def status(spec: RunSpec) -> str:
    """done, failed (its last attempt raised: the error is in FAILED; the next sweep retries it) or pending."""
    if is_done(spec):
        return "done"
    return "failed" if (spec.dir / FAILED).is_file() else "pending"
