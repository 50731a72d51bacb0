"""The package's layers as ARCHITECTURE.md states them: every module placed, imports only from
the same or a lower layer, no import cycle, no import of the package hidden inside a function."""
import ast
import re

from helpers import ROOT

PKG = ROOT / "atslib"


def layers() -> dict[str, int]:
    table = {}
    for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines():
        m = re.match(r"^\| (\d) [^|]+\| ([^|]+) \|", line)
        if m:
            for name in re.findall(r"`([\w_]+)`", m.group(2)):
                table[name] = int(m.group(1))
    return table


def imports(path) -> list[tuple[str, bool]]:
    """(imported module of the package, inside a function?) for each relative import of ``path``."""
    out = []
    tree = ast.parse(path.read_text())
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            out += [(n, id(node) in nested) for n in names if (PKG / f"{n}.py").is_file()]
    return out


def test_every_module_has_a_layer():
    mods = {p.stem for p in PKG.glob("*.py")}
    table = layers()
    assert mods - set(table) == set(), "modules missing from ARCHITECTURE.md's layer table"
    assert set(table) - mods == set(), "ARCHITECTURE.md names modules that do not exist"


def test_imports_go_down_the_layers_without_cycles():
    table = layers()
    graph = {}
    for p in PKG.glob("*.py"):
        deps = imports(p)
        hidden = [m for m, inner in deps if inner]
        assert not hidden, f"{p.name} imports {hidden} inside a function"
        up = [m for m, _ in deps if table[m] > table[p.stem]]
        assert not up, f"{p.name} (layer {table[p.stem]}) imports {up} from a higher layer"
        graph[p.stem] = {m for m, _ in deps}
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


def test_the_layer_check_catches_a_hidden_upward_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from .config import Config\n\ndef f():\n    from .sweep import run_sweep\n")
    assert imports(f) == [("config", False), ("sweep", True)]
