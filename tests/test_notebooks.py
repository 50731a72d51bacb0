"""Every notebook runs headless under papermill with SMOKE parameters; hygiene of the stored files."""
import json

import pytest

from helpers import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def test_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01_tasks", "02_training", "03_ablations", "04_scatter"} <= names


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs_with_parameters_cell(nb):
    d = json.loads(nb.read_text())
    code = [c for c in d["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "has outputs"
    assert "parameters" in code[0]["metadata"].get("tags", [])
    assert "SMOKE" in "".join(code[0]["source"])
    assert d["cells"][0]["cell_type"] == "markdown"
    assert d["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_paired_py_percent_in_sync(nb):
    jupytext = pytest.importorskip("jupytext")
    py = nb.with_suffix(".py")
    assert py.is_file(), f"{py.name} missing (pair with: jupytext --set-formats ipynb,py:percent)"
    a, b = jupytext.read(nb), jupytext.read(py)
    src = lambda n: [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in n.cells]
    assert src(a) == src(b), f"{nb.name} and {py.name} differ: run jupytext --sync"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_headless_with_smoke_parameters(nb, tmp_path):
    papermill = pytest.importorskip("papermill")
    params = {"SMOKE": True, "FIG_DIR": str(tmp_path / "figures")}
    if nb.stem == "02_training":
        params["RUN_DIR"] = str(tmp_path / "run")
    if nb.stem == "06_molecules":
        params["RUN_ROOT"] = str(tmp_path / "runs")
    papermill.execute_notebook(str(nb), str(tmp_path / nb.name), parameters=params, kernel_name="python3",
                               cwd=str(ROOT / "notebooks"), progress_bar=False)
    figs = list((tmp_path / "figures").glob("*.png"))
    assert figs, "the notebook saved no figure"
    assert all(f.stat().st_size > 1000 for f in figs)
