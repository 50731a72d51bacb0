"""Every notebook runs headless under papermill with SMOKE parameters; hygiene of the stored files."""
import json

import pytest
from helpers import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def test_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01_tasks", "02_training", "06_ablations", "03_factors"} <= names


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
    if nb.stem == "08_molecules":   # the training path (the default reads committed runs)
        params.update(RUN_ROOT=str(tmp_path / "runs"), TRAIN=True)
    papermill.execute_notebook(str(nb), str(tmp_path / nb.name), parameters=params, kernel_name="python3",
                               cwd=str(ROOT / "notebooks"), progress_bar=False)
    figs = list((tmp_path / "figures").glob("*.png"))
    assert figs, "the notebook saved no figure"
    assert all(f.stat().st_size > 1000 for f in figs)


def test_02_gallery_draws_the_committed_start_without_training(tmp_path):
    papermill = pytest.importorskip("papermill")
    nb = ROOT / "notebooks" / "02_training.ipynb"
    params = {"FIG_DIR": str(tmp_path / "figures"), "COMMITTED": "../results/pretrain/1shot/uniform-s0",
              "RUN_DIR": str(tmp_path / "run")}
    papermill.execute_notebook(str(nb), str(tmp_path / nb.name), parameters=params, kernel_name="python3",
                               cwd=str(ROOT / "notebooks"), progress_bar=False)
    text = (tmp_path / nb.name).read_text()
    assert "test accuracy 54.88" in text and "after 300 steps" in text
    assert not (tmp_path / "run").exists()                 # nothing trained
    assert (tmp_path / "figures" / "02_learning_curves.png").stat().st_size > 1000


def test_seed_differences_plot():
    """One dot per seed and one mean-with-interval per comparison; the mean is the seeds' mean."""
    import numpy as np
    import matplotlib
    matplotlib.use("Agg")
    from atslib.display import plots
    d = {"a": [1.0, 2.0, 3.0], "b": [-1.0, 0.5]}
    fig, ax = plots.seed_differences(d, title="t")
    dots = [c for c in ax.collections if c.get_offsets().shape[0] in (2, 3) and c.get_offsets().ndim == 2]
    assert sorted(c.get_offsets().shape[0] for c in dots) == [2, 3]
    assert sorted(np.round(c.get_offsets()[:, 1], 6).tolist() for c in dots) == [[-1.0, 0.5], [1.0, 2.0, 3.0]]
    means = sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_marker() == "D")
    assert means == pytest.approx([-0.25, 2.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"] and ax.get_title() == "t"


def test_figures_go_to_build_unless_asked(monkeypatch, tmp_path):
    """Only `make figures` writes the committed gallery: the default is build/figures/, $FIG_DIR overrides."""
    from atslib.display import plots
    monkeypatch.delenv("FIG_DIR", raising=False)
    assert plots.figure_dir() == ROOT / "build" / "figures"
    monkeypatch.setenv("FIG_DIR", str(tmp_path))
    assert plots.figure_dir() == tmp_path and plots.figure_dir("x") == __import__("pathlib").Path("x")
    assert "PosixPath" not in repr(plots.Saved([tmp_path / "a.png", tmp_path / "a.pdf"]))


def test_makefile_headless_only_where_needed():
    """MPLBACKEND=Agg for test and figures, never for the Lab; make figures passes the gallery's parameters."""
    import shutil
    import subprocess
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make")
    dry = lambda t: subprocess.run([make, "-n", "-o", ".venv/.installed", t], cwd=ROOT, capture_output=True,
                                   text=True, check=True).stdout
    text = (ROOT / "Makefile").read_text()
    assert "export MPLBACKEND" not in text
    lab = dry("lab")
    assert "jupyter lab" in lab and "env -u MPLBACKEND" in lab and "MPLBACKEND=Agg" not in lab
    figs = [line for line in dry("figures").splitlines() if "papermill" in line and ".ipynb" in line
            and not line.startswith("echo")]
    assert len(figs) == len(NOTEBOOKS)
    assert all("MPLBACKEND=Agg" in line and f"-p FIG_DIR {ROOT}/figures" in line for line in figs)
    # the gallery trains nothing: 02 draws the committed pretrained start, 06 its committed runs
    assert any("02_training" in line and "-p COMMITTED ../results/pretrain/1shot/uniform-s0" in line for line in figs)
    assert not any(("-p TRAIN True" in line or "-p STEPS" in line) for line in figs)
    assert not any("REPORT" in line for line in figs)              # no notebook writes REPRODUCTION.md
    recipe = [line for line in dry("figures").splitlines() if line.strip() and not line.startswith("make")]
    assert recipe[-1].endswith("-m atslib report")                  # (under make, make[1] adds its own lines)
    assert "MPLBACKEND=Agg" in dry("test")
