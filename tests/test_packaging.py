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


def test_the_built_wheel_works_outside_the_repository(tmp_path):
    """What a researcher gets from ``pip install``: a wheel with every subpackage, the code only. Installed
    into a folder and run from elsewhere, it says in one line that the default data need --data, and
    trains and re-tests on a file it is given."""
    import os
    wheel = tmp_path / "wheel"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(wheel), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                        *map(str, wheel.glob("atslib-*.whl"))], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    found = {p.relative_to(site).parent.as_posix() for p in (site / "atslib").rglob("*.py")}
    assert found == {p.relative_to(ROOT).parent.as_posix() for p in (ROOT / "atslib").rglob("*.py")}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ATSLIB_DATA_DIR")}
    env["PYTHONPATH"] = str(site)
    away = tmp_path / "elsewhere"
    away.mkdir()
    cli = [sys.executable, "-m", "atslib", "train", "--steps", "2", "--eval-every", "2", "--n-val-tasks", "2",
           "--n-test-tasks", "3", "--pool-size", "3", "--queries", "2", "--width", "4", "--quiet"]
    r = subprocess.run([*cli, "--out", "r0"], capture_output=True, text=True, env=env, cwd=away)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--data PATH" in r.stderr and not (away / "r0").exists()
    data = ROOT / "data" / "quickdraw100.npz"
    r = subprocess.run([*cli, "--method", "ats", "--data", str(data), "--out", "r1"], capture_output=True, text=True,
                       env=env, cwd=away)
    assert r.returncode == 0, r.stderr[-2000:]
    code = "import atslib, json; r = atslib.load_run('r1'); print(atslib.__file__, r['summary']['method'])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=away)
    assert r.returncode == 0 and r.stdout.split() == [str(site / "atslib" / "__init__.py"), "ats"], r.stderr
