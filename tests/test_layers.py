"""The package's layout as ARCHITECTURE.md states it: the core (the modules directly in ``atslib/``)
and its wings (the subpackages ``ingest``, ``population``, ``study``, ``display``). Every module is
placed in a layer; a module imports only from its own layer or a lower one; the core never imports
a wing; there is no import cycle and no import of the package hidden inside a function."""
import ast
import re

from helpers import ROOT

PKG = ROOT / "atslib"
WINGS = ("ingest", "population", "study", "display")
ENTRY = {"__init__", "__main__"}          # the public names and the command line: above every layer


def name_of(path) -> str:
    """Dotted module name inside atslib: ``maml``, ``study.sweep``, ``population`` (a package's __init__)."""
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, object]:
    return {name_of(p): p for p in PKG.rglob("*.py")}


def layers() -> dict[str, int]:
    table = {}
    for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines():
        m = re.match(r"^\| (\d) [^|]+\| ([^|]+) \|", line)
        if m:
            for name in re.findall(r"`([\w_.]+)`", m.group(2)):
                table[name] = int(m.group(1))
    return table


def imports(path, known) -> list[tuple[str, bool]]:
    """(imported module of the package, inside a function?) for each relative import of ``path``,
    resolved against the package tree (``known``: the dotted names that exist)."""
    here = name_of(path).split(".") if path.name != "__init__.py" else name_of(path).split(".") + ["_"]
    if path.parent == PKG:
        here = [path.stem]
    out = []
    tree = ast.parse(path.read_text())
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f)}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ImportFrom) and node.level >= 1):
            continue
        base = here[:len(here) - node.level]
        mod = base + (node.module.split(".") if node.module else [])
        for alias in node.names:
            sub = ".".join(mod + [alias.name])
            target = sub if sub in known else ".".join(mod)
            if target in known:
                out.append((target, id(node) in nested))
    return out


def test_every_module_has_a_layer():
    mods, table = set(modules()) - ENTRY, layers()
    assert mods - set(table) == set(), "modules missing from ARCHITECTURE.md's layer table"
    assert set(table) - mods == set(), "ARCHITECTURE.md names modules that do not exist"


def is_core(name: str) -> bool:
    return name.split(".")[0] not in WINGS and name != "__main__"


def test_imports_go_down_the_layers_without_cycles():
    table, mods = layers(), modules()
    graph = {}
    for name, p in mods.items():
        deps = imports(p, set(mods))
        hidden = [m for m, inner in deps if inner]
        assert not hidden or name == "__main__", f"{name} imports {hidden} inside a function"   # the CLI: each command its wings
        if name not in ENTRY:
            up = [m for m, _ in deps if m not in ENTRY and table[m] > table[name]]
            assert not up, f"{name} (layer {table[name]}) imports {up} from a higher layer"
        if is_core(name):
            wing = [m for m, _ in deps if not is_core(m)]
            assert not wing, f"the core module {name} imports the wing module(s) {wing}"
        graph[name] = {m for m, _ in deps}
    done, active = set(), []

    def visit(u):
        assert u not in active, f"import cycle: {' -> '.join(active[active.index(u):] + [u])}"
        if u in done:
            return
        active.append(u)
        for v in sorted(graph[u]):
            visit(v)
        active.pop()
        done.add(u)
    for u in sorted(graph):
        visit(u)


def test_the_layer_check_resolves_and_catches_a_hidden_upward_import(tmp_path):
    f = PKG / "study" / "_probe_layers.py"       # resolved as a study module, removed at once
    try:
        f.write_text("from ..config import Config\nfrom . import grid\nfrom .. import maml\n\n"
                     "def f():\n    from ..population import train_population\n")
        known = set(modules())
        assert imports(f, known) == [("config", False), ("study.grid", False), ("maml", False), ("population", True)]
    finally:
        f.unlink()


def test_the_core_needs_only_torch_and_numpy():
    """Third-party imports at the top of every core module: torch and numpy, nothing else."""
    import sys
    allowed = {"torch", "numpy"} | set(sys.stdlib_module_names)
    for name, p in modules().items():
        if not is_core(name) or name in ENTRY - {"__init__"}:
            continue
        tree = ast.parse(p.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        found = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
        found |= {n.module.split(".")[0] for n in top if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module}
        assert found - allowed - {"__future__"} == set(), f"the core module {name} imports {sorted(found - allowed)}"


CONCURRENCY = {"threading", "contextvars", "concurrent", "multiprocessing", "queue", "asyncio", "_thread"}


def test_the_core_carries_no_concurrency_machinery():
    """The population engine is a wing (``population.lockstep``): no core module imports a
    threading or context module, or carries a population mark on its functions."""
    for name, p in modules().items():
        if not is_core(name) or name in ENTRY - {"__init__"}:
            continue
        tree = ast.parse(p.read_text())
        found = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        found |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0
                  and n.module}
        assert not found & CONCURRENCY, f"the core module {name} imports {sorted(found & CONCURRENCY)}"
        marks = [d for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for d in f.decorator_list if "batchable" in ast.unparse(d) or "lockstep" in ast.unparse(d)]
        assert not marks, f"the core module {name} marks functions with {[ast.unparse(d) for d in marks]}"


BLOCKED = ("pandas", "scipy", "matplotlib", "seaborn", "tqdm", "yaml", "tabulate", "PIL", "ipywidgets", "ray")


def test_a_run_trains_and_loads_with_the_wings_dependencies_missing(tmp_path):
    """Behaviour, not just imports: with every wing's third-party package made unimportable, a tiny
    ATS run trains (``meta_train`` and the CLI's ``train``, progress lines included), reloads
    (tables as numpy columns) and the scheduler drops into a plain loop (``examples/ats_anil.py``)."""
    import subprocess
    import sys
    block = f"import sys\nfor m in {BLOCKED!r}: sys.modules[m] = None\n"
    code = block + (
        "import atslib, runpy\n"
        f"cfg = atslib.Config(method='ats', steps=2, pool_size=4, width=8, queries=3, n_val_tasks=2, n_test_tasks=4,"
        " eval_every=2)\n"
        f"atslib.meta_train(cfg, out={str(tmp_path / 'a')!r})\n"
        f"r = atslib.load_run({str(tmp_path / 'a')!r})\n"
        "assert list(r['history']['step']) == [0.0, 1.0] and 0 <= r['summary']['test_mean'] <= 1\n"
        "assert r['summary']['n_test_tasks'] == 4 == len(r['test_scores']['acc'])\n"
        "sys.argv = ['atslib', 'train', '--method', 'ats', '--steps', '2', '--pool-size', '4', '--width', '8',"
        f" '--queries', '3', '--n-val-tasks', '2', '--n-test-tasks', '4', '--eval-every', '2', '--out', {str(tmp_path / 'b')!r}]\n"
        "from atslib.__main__ import main\n"
        "assert main() == 0\n"
        f"sys.argv = ['ats_anil', '--steps', '1', '--width', '4', '--queries', '2', '--pool', '4', '--val-tasks', '1']\n"
        f"runpy.run_path({str(ROOT / 'examples' / 'ats_anil.py')!r}, run_name='__main__')\n"
        "print('heavy:', sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{BLOCKED!r} and sys.modules[m] is not None))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "heavy: []" in r.stdout and '"method": "ats"' in r.stdout and "train loss" in r.stdout
    assert "meta-train: 2/2" in r.stderr                     # the progress lines that stand in for tqdm


def test_the_thin_table_reader_agrees_with_pandas():
    """``store.read_columns`` (load_run without pandas) reads a committed run's tables as pandas does."""
    import numpy as np
    import pandas as pd
    from atslib.store import read_columns
    run = ROOT / "results" / "budget-binding" / "b16" / "ats-s0"
    for name in ("history.csv", "pool.csv.gz", "test_scores.csv"):
        want, got = pd.read_csv(run / name), read_columns(run / name)
        assert list(got) == list(want.columns), name
        for c in want.columns:
            if want[c].dtype.kind in "fiub":
                np.testing.assert_array_equal(got[c], want[c].to_numpy(dtype=float), err_msg=f"{name}: {c}")
            else:
                assert list(got[c]) == list(want[c].fillna("")), f"{name}: {c}"
