"""pyproject.toml is the one dependency list; environment.yml mirrors it; import needs no Jupyter."""
import subprocess
import sys

import tomllib
import yaml
from helpers import ROOT


def test_environment_yml_mirrors_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-e .[dev]" in pip and "torch==2.13.0" in pip
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    def name(d):
        return d.split(">")[0].split("=")[0].split("[")[0].strip()
    assert {name(d) for d in proj["dependencies"]} == {"torch", "numpy"}        # the thin core
    extras = proj["optional-dependencies"]
    assert {"jupyterlab", "ipywidgets", "papermill", "ipykernel", "nbformat", "nbclient"} <= set(extras["notebooks"])

    def reach(extra, seen=()):             # the packages an extra brings, following atslib[...] references
        out = set()
        for d in extras[extra]:
            if d.startswith("atslib["):
                for e in d[len("atslib["):-1].split(","):
                    out |= reach(e.strip(), seen + (extra,)) if e.strip() not in seen else set()
            else:
                out.add(name(d))
        return out
    assert {"pandas", "scipy", "pyyaml", "tabulate"} <= reach("study")
    assert {"matplotlib", "seaborn", "tqdm", "pandas"} <= reach("display")
    assert {"pillow"} <= reach("ingest") and {"ray"} <= reach("ray")
    assert reach("all") | {"pytest", "jupytext"} <= reach("dev")              # make installs everything
    assert set().union(*(reach(e) for e in extras if e not in ("chem", "dev"))) <= reach("dev")
    # nothing in environment.yml's pip list besides torch and the project itself
    assert set(pip) == {"torch==2.13.0", "-e .[dev]"}


def test_import_without_jupyter():
    code = ("import sys, builtins; real = builtins.__import__\n"
            "def guard(name, *a, **k):\n"
            "    if name.split('.')[0] in ('ipywidgets', 'IPython', 'papermill', 'jupyterlab'): raise ImportError(name)\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = guard\n"
            "import atslib, atslib.step, atslib.loop, atslib.display.plots, atslib.study.reports, atslib.ats\n"
            "print(atslib.__version__)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
