"""JupyterLab in a real browser: the notebooks' widgets respond to a user (Playwright + Debian's Chromium).

A session fixture starts JupyterLab on 127.0.0.1 (free port, no token, temporary config / settings /
runtime / workspace dirs) over a temporary copy of notebooks 01 and 02 whose parameter cells point
FIG_DIR / RUN_DIR into the temp dir, so nothing is written into the repository. Each test opens its
notebook, runs all cells from the Run menu, then plays with the widgets:

* 01_tasks: the noise-ratio slider moves (keyboard on its noUi handle); the realised-noise readout
  follows in the right direction and the episode / label-matrix images are redrawn.
* 02_training: Start trains in the background (status "running: step ..., updates N"), Stop ends
  the run early: status "stopped at step K/N", summary.json with steps_done < steps.

Skipped when Chromium (``apt-get install chromium``) or the ``playwright`` package is missing; never
run ``playwright install``. On failure a screenshot is saved under pytest's tmp_path and its path
printed; after a pass the widget views are saved to /tmp/browser-shots/ for a look.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import ROOT

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path("/tmp/browser-shots")
LIVE_STEPS = 300          # the live run must still be going when Stop is pressed


# -- helpers ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, path: str, method: str = "GET"):
    req = urllib.request.Request(base + path, method=method)
    with urllib.request.urlopen(req, timeout=5) as r:
        body = r.read()
    return json.loads(body) if body else None


def _shutdown_kernels(base: str) -> None:
    with contextlib.suppress(Exception):
        for sess in _api(base, "/api/sessions"):
            with contextlib.suppress(Exception):
                _api(base, f"/api/sessions/{sess['id']}", "DELETE")
        for k in _api(base, "/api/kernels"):
            with contextlib.suppress(Exception):
                _api(base, f"/api/kernels/{k['id']}", "DELETE")


def _set_parameters(nb: Path, **params) -> None:
    """Append assignments to the copy's `parameters` cell (as papermill's injected cell would)."""
    d = json.loads(nb.read_text())
    cell = next(c for c in d["cells"] if "parameters" in c["metadata"].get("tags", []))
    src = "".join(cell["source"]).rstrip("\n") + "\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
    cell["source"] = src.splitlines(keepends=True)
    nb.write_text(json.dumps(d, indent=1))


def _replace_in_source(nb: Path, old: str, new: str) -> None:
    d = json.loads(nb.read_text())
    hits = [c for c in d["cells"] if old in "".join(c["source"])]
    assert len(hits) == 1, f"{nb.name}: expected one cell containing {old!r}"
    hits[0]["source"] = "".join(hits[0]["source"]).replace(old, new).splitlines(keepends=True)
    nb.write_text(json.dumps(d, indent=1))


@contextlib.contextmanager
def _screenshot_on_failure(page, tmp_path: Path, name: str):
    try:
        yield
    except BaseException:
        path = tmp_path / f"{name}-failure.png"
        try:
            page.screenshot(path=str(path), timeout=15_000)
            print(f"\nscreenshot of the failure: {path}")
        except Exception as e:  # noqa: BLE001 - keep the test's own error
            print(f"\nno screenshot of the failure ({type(e).__name__}: {e})")
        raise


def _wait_until(fn, timeout: float, what: str, every: float = 0.25):
    t0, last = time.monotonic(), None
    while time.monotonic() - t0 < timeout:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """JupyterLab over a temp copy of notebooks 01 and 02; yields (base_url, temp_dir)."""
    if not Path(CHROMIUM).is_file():
        pytest.skip("Chromium not installed: apt-get install chromium")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed: pip install playwright "
                        "(its driver ships in the wheel; do not run `playwright install`)")
    pytest.importorskip("jupyterlab")
    tmp = tmp_path_factory.mktemp("lab")
    nbdir = tmp / "notebooks"
    nbdir.mkdir()
    for name in ("01_tasks", "02_training"):
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", nbdir)
    _set_parameters(nbdir / "01_tasks.ipynb", SMOKE=True, FIG_DIR=str(tmp / "figures"))
    # a short synchronous run (SMOKE), then a live run long enough to be stopped half-way
    _set_parameters(nbdir / "02_training.ipynb", SMOKE=True, FIG_DIR=str(tmp / "figures"),
                    RUN_DIR=str(tmp / "runs" / "02_training"))
    _replace_in_source(nbdir / "02_training.ipynb", "live.controls(cfg,",
                       f"live.controls(cfg.replace(steps={LIVE_STEPS}, eval_every=50),")

    settings = tmp / "settings"
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
               TQDM_DISABLE="1", PYTHONHASHSEED="0")
    env.pop("MPLBACKEND", None)   # the kernel must use the inline backend so figures display as images
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--allow-root",
         "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={nbdir}"],
        env=env, cwd=nbdir, stdout=log, stderr=subprocess.STDOUT)

    def up():
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}; see {tmp / 'jupyterlab.log'}")
        with contextlib.suppress(Exception):
            return _api(base, "/api/status") is not None
        return False
    try:
        _wait_until(up, 60, f"JupyterLab on {base} (log: {tmp / 'jupyterlab.log'})", every=0.5)
        yield base, tmp
    finally:
        _shutdown_kernels(base)
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def browser(lab):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(lab, browser):
    base, _ = lab
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    try:
        yield pg
    finally:
        ctx.close()
        _shutdown_kernels(base)   # a failed test must not leave a training kernel behind


def open_and_run_all(page, base: str, name: str) -> None:
    # a workspace of its own: JupyterLab would otherwise restore the previous test's tabs
    page.goto(f"{base}/lab/workspaces/{name}/tree/{name}.ipynb")
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    assert page.locator(".jp-NotebookPanel").count() == 1
    # kernel python3 (from the notebook's metadata) connected and idle: "Run All" before that would
    # open the Select Kernel dialog
    wait_kernel_idle(page, 60)
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()
    # fail fast if nothing was queued (a dialog, a missed click)
    page.locator(".jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]")).first.wait_for(timeout=30_000)


def wait_kernel_idle(page, timeout: float = 30) -> None:
    page.wait_for_function(
        """() => {
            const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const name = p && p.querySelector('.jp-KernelName');
            const ind = p && p.querySelector('.jp-Notebook-ExecutionIndicator');
            return name && /Python 3/.test(name.textContent) && ind && ind.dataset.status === 'idle';
        }""", timeout=timeout * 1000)


def last_cell(page):
    """The notebook's last cell, scrolled into view (the widgets live in it)."""
    cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").last
    cell.scroll_into_view_if_needed()
    return cell


# -- tests ------------------------------------------------------------------------------------
READOUT = re.compile(r"realised noise: ([0-9.]+) of tasks noisy \(requested ([0-9.]+)\)")


def test_task_explorer_slider_redraws(lab, page, tmp_path):
    base, tmp = lab
    with _screenshot_on_failure(page, tmp_path, "01_tasks"):
        t0 = time.monotonic()
        open_and_run_all(page, base, "01_tasks")
        page.locator(".widget-slider").first.wait_for(timeout=120_000)
        explorer = page.locator(".widget-vbox:has(.widget-slider)").last
        explorer.scroll_into_view_if_needed()
        readout = explorer.locator("b.atslib-readout")
        images = explorer.locator(".widget-output img")

        def state():
            m = READOUT.search(readout.inner_text())
            srcs = [images.nth(i).get_attribute("src") for i in range(images.count())]
            return (float(m.group(1)), float(m.group(2))), srcs

        _wait_until(lambda: images.count() == 2, 60, "the episode and label-matrix images")
        (real0, req0), srcs0 = state()
        assert req0 == pytest.approx(0.6) and all(s and s.startswith("data:image/png") for s in srcs0)

        def move(key: str, times: int, expect: float):
            handle = explorer.locator(".widget-slider").filter(has_text="noise ratio").locator(".noUi-handle")
            handle.focus()
            for _ in range(times):
                handle.press(key)
                time.sleep(0.2)
            _wait_until(lambda: f"(requested {expect:.2f})" in readout.inner_text(), 60, f"requested {expect:.2f}")
            # both images redrawn for the final value, and nothing more on its way
            wait_kernel_idle(page)
            prev = [None]

            def settled():
                cur = state()
                ok = cur == prev[0]
                prev[0] = cur
                return ok and cur
            return _wait_until(settled, 30, "the redraw to settle", every=1.0)

        (real1, req1), srcs1 = move("ArrowRight", 3, 0.9)
        assert req1 > req0 and real1 > real0, (req0, real0, req1, real1)
        assert srcs1[0] != srcs0[0], "the episode image was not redrawn"
        assert srcs1[1] != srcs0[1], "the label-matrix image was not redrawn"
        (real2, req2), srcs2 = move("ArrowLeft", 6, 0.3)
        assert req2 < req1 and real2 < real1, (req1, real1, req2, real2)
        assert srcs2[0] != srcs1[0] and srcs2[1] != srcs1[1], "images not redrawn after ArrowLeft"
        assert 0.2 < real2 < 0.4 and 0.8 < real1 < 1.0, (real1, real2)
        assert list((tmp / "figures").glob("01_*.png")), "FIG_DIR of the copy was not used"
        SHOTS.mkdir(parents=True, exist_ok=True)
        explorer.screenshot(path=str(SHOTS / "01_tasks.png"))
        print(f"01_tasks in the browser: {time.monotonic() - t0:.1f} s")


STATUS_RUNNING = re.compile(r"running: step (\d+)/(\d+) · updates (\d+)")
STATUS_STOPPED = re.compile(r"stopped at step (\d+)/(\d+)")


def test_training_dashboard_start_stop(lab, page, tmp_path):
    base, tmp = lab
    live_dir = tmp / "runs" / "02_training-live"
    with _screenshot_on_failure(page, tmp_path, "02_training"):
        t0 = time.monotonic()
        open_and_run_all(page, base, "02_training")
        # two dashboards: the synchronous one (cell "Train") and the live one in the last cell
        idle = page.locator(".atslib-status", has_text="idle: press Start")
        idle.wait_for(timeout=240_000)
        cell = last_cell(page)
        dash = cell.locator(".widget-vbox:has(.atslib-status)")
        status = dash.locator(".atslib-status")
        start, stop = dash.get_by_role("button", name="Start"), dash.get_by_role("button", name="Stop")
        assert stop.is_disabled() and start.is_enabled()
        wait_kernel_idle(page, 60)
        start.click()

        def running_with_updates():
            m = STATUS_RUNNING.search(status.inner_text())
            return m if m and int(m.group(3)) >= 2 else None
        m = _wait_until(running_with_updates, 120, "status 'running: step ... updates >= 2'")
        assert int(m.group(2)) == LIVE_STEPS
        assert start.is_disabled() and stop.is_enabled()
        assert dash.locator(".widget-output img").count() >= 1, "no live curves in the dashboard"
        stop.click()
        m = _wait_until(lambda: STATUS_STOPPED.search(status.inner_text()), 90, "status 'stopped at step K/N'")
        k, n = int(m.group(1)), int(m.group(2))
        assert n == LIVE_STEPS and 0 < k < n, status.inner_text()
        assert stop.is_disabled() and start.is_enabled(), "Start must be usable again after Stop"
        summary = json.loads((live_dir / "summary.json").read_text())
        assert summary["steps"] == LIVE_STEPS and summary["steps_done"] == k < LIVE_STEPS, summary
        assert (live_dir / "checkpoint.pt").is_file()
        SHOTS.mkdir(parents=True, exist_ok=True)
        dash.screenshot(path=str(SHOTS / "02_training.png"))
        print(f"02_training in the browser: {time.monotonic() - t0:.1f} s")
