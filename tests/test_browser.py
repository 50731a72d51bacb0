"""JupyterLab in a real browser, started the way a user starts it: ``make lab`` (Playwright + Debian's Chromium).

A session fixture runs ``make lab`` with the port and token in ``JUPYTER_PORT`` / ``JUPYTER_TOKEN``
(Jupyter Server reads both), ``LAB_DIR`` pointing at a temporary copy of notebooks 01, 02 and 05
(``results/`` linked next to it, ``FIG_DIR`` in the temp dir), and otherwise the test process's own
environment - which under ``make test`` includes ``MPLBACKEND=Agg``: the ``lab`` target must keep it
away from the kernel, or figures show as text. Each test opens its notebook, runs all cells from the
Run menu, then plays with the widgets:

* 01_tasks: figure cells show images (no ``<Figure size …>`` or ``PosixPath`` text); the noise-ratio
  slider moves (keyboard on its noUi handle), the readout follows and both images are redrawn.
* 02_training: the synchronous dashboard has no buttons and says "–" (never nan) before the first
  validation; Start trains in the background, Stop answers within a second ("stopping", disabled),
  the status counts the test, then "stopped at step K/N" and Start works again.
* 05_race: the committed race is drawn; move the noise-ratio slider, press Race, see two live
  updates, press Stop, see "stopped" within 5 s.

Skipped when Chromium (``apt-get install chromium``), the ``playwright`` package, ``make`` or the
repository's ``.venv`` is missing; never run ``playwright install``. On failure a screenshot is
saved under pytest's tmp_path and its path printed; after a pass the views are saved to
/tmp/browser-shots/ for a look.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
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
TOKEN = secrets.token_hex(16)


# -- helpers ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, path: str, method: str = "GET"):
    req = urllib.request.Request(base + path, method=method, headers={"Authorization": f"token {TOKEN}"})
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
    """``make lab`` over a temp copy of notebooks 01, 02 and 05; yields (base_url, temp_dir)."""
    if not Path(CHROMIUM).is_file():
        pytest.skip("Chromium not installed: apt-get install chromium")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed: pip install playwright "
                        "(its driver ships in the wheel; do not run `playwright install`)")
    pytest.importorskip("jupyterlab")
    if shutil.which("make") is None or not (ROOT / ".venv" / "bin" / "jupyter").is_file():
        pytest.skip("make lab needs make and the repository's .venv (make venv)")
    tmp = tmp_path_factory.mktemp("lab")
    nbdir = tmp / "notebooks"
    nbdir.mkdir()
    for name in ("01_tasks", "02_training", "05_race"):
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", nbdir)
    (tmp / "results").symlink_to(ROOT / "results")      # the notebooks read ../results
    _set_parameters(nbdir / "01_tasks.ipynb", SMOKE=True)
    # a short synchronous run (SMOKE), then a live run long enough to be stopped half-way
    _set_parameters(nbdir / "02_training.ipynb", SMOKE=True, RUN_DIR=str(tmp / "runs" / "02_training"))
    _replace_in_source(nbdir / "02_training.ipynb", "live.controls(cfg,",
                       f"live.controls(cfg.replace(steps={LIVE_STEPS}, eval_every=50),")

    port = _free_port()
    # the test's own environment (under `make test`: MPLBACKEND=Agg, TQDM_DISABLE=1), as a user's shell
    # would pass it, plus throwaway Jupyter dirs so no user setting or workspace leaks in
    env = dict(os.environ, JUPYTER_PORT=str(port), JUPYTER_TOKEN=TOKEN, FIG_DIR=str(tmp / "figures"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
    base = f"http://127.0.0.1:{port}"
    log = open(tmp / "jupyterlab.log", "w")
    # `-o .venv/.installed`: use the venv as it is (never reinstall from inside a test)
    proc = subprocess.Popen(["make", "--no-print-directory", "-C", str(ROOT), "-o", ".venv/.installed", "lab",
                             f"LAB_DIR={nbdir}", "LAB_ARGS=--no-browser --ip=127.0.0.1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def up():
        if proc.poll() is not None:
            raise RuntimeError(f"make lab exited with {proc.returncode}; see {tmp / 'jupyterlab.log'}")
        with contextlib.suppress(Exception):
            return _api(base, "/api/status") is not None
        return False
    try:
        _wait_until(up, 90, f"make lab on {base} (log: {tmp / 'jupyterlab.log'})", every=0.5)
        yield base, tmp
    finally:
        _shutdown_kernels(base)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)     # make and the jupyter server it started
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
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
    page.goto(f"{base}/lab/workspaces/{name}/tree/{name}.ipynb?token={TOKEN}")
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


# -- tests ------------------------------------------------------------------------------------
READOUT = re.compile(r"realised noise: ([0-9.]+) of tasks noisy \(requested ([0-9.]+)\)")
TEXT_REPRS = ("<Figure size", "PosixPath")


def wait_all_run(page, timeout: float) -> None:
    """Every code cell executed (a number in its prompt) and the kernel idle."""
    page.wait_for_function(
        """() => {
            const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            if (!p) return false;
            const prompts = [...p.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return prompts.length && prompts.every(e => /\\[\\d+\\]/.test(e.textContent));
        }""", timeout=timeout * 1000)
    wait_kernel_idle(page, 60)


def test_task_explorer_shows_images_and_slider_redraws(lab, page, tmp_path):
    base, tmp = lab
    with _screenshot_on_failure(page, tmp_path, "01_tasks"):
        t0 = time.monotonic()
        open_and_run_all(page, base, "01_tasks")
        wait_all_run(page, 180)
        print(f"01_tasks Run All (SMOKE) in the browser: {time.monotonic() - t0:.1f} s")
        # figure cells display images, not text reprs (MPLBACKEND=Agg must not reach the kernel)
        outputs = page.locator(".jp-NotebookPanel .jp-OutputArea-output")
        text = "\n".join(outputs.all_inner_texts())
        assert not any(r in text for r in TEXT_REPRS), f"text repr instead of a figure: {text[:500]}"
        static = page.locator(".jp-NotebookPanel .jp-OutputArea-output img:not(.widget-output img)")
        assert page.locator(".jp-NotebookPanel .jp-OutputArea-output > img, "
                            ".jp-NotebookPanel .jp-RenderedImage img").count() >= 3, "no figure images"
        assert static.count() >= 3
        explorer = page.locator(".widget-vbox:has(.widget-slider)").last
        explorer.scroll_into_view_if_needed()
        readout = explorer.locator("b.atslib-readout")
        images = explorer.locator(".widget-output img")

        def state():
            m = READOUT.search(readout.inner_text())
            srcs = [images.nth(i).get_attribute("src") for i in range(images.count())]
            return (float(m.group(1)), float(m.group(2))), srcs

        _wait_until(lambda: images.count() == 2, 60, "the episode and label-matrix images")
        assert "<Figure" not in explorer.inner_text()
        (real0, req0), srcs0 = state()
        assert req0 == pytest.approx(0.6) and all(s and s.startswith("data:image/png") for s in srcs0)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "01_tasks_make_lab.png"))

        def move(key: str, times: int, expect: float):
            handle = explorer.locator(".widget-slider").filter(has_text="noise ratio").locator(".noUi-handle")
            handle.focus()
            for _ in range(times):
                handle.press(key)
                time.sleep(0.1)
            _wait_until(lambda: f"(requested {expect:.2f})" in readout.inner_text(), 60, f"requested {expect:.2f}")
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
        assert list((tmp / "figures").glob("01_*.png")), "FIG_DIR from the environment was not used"
        explorer.screenshot(path=str(SHOTS / "01_tasks_explorer.png"))
        print(f"01_tasks in the browser: {time.monotonic() - t0:.1f} s")


STATUS_RUNNING = re.compile(r"running: step (\d+)/(\d+) · updates (\d+)")
STATUS_STOPPED = re.compile(r"stopped at step (\d+)/(\d+)")


def test_training_dashboard_stop_answers(lab, page, tmp_path):
    base, tmp = lab
    live_dir = tmp / "runs" / "02_training-live"
    with _screenshot_on_failure(page, tmp_path, "02_training"):
        t0 = time.monotonic()
        open_and_run_all(page, base, "02_training")
        idle = page.locator(".atslib-status", has_text="idle: press Start")
        idle.wait_for(timeout=240_000)
        wait_all_run(page, 60)
        # the synchronous dashboard (cell "Train"): a status, curves, no buttons
        dashboards = page.locator(".jp-NotebookPanel .widget-vbox:has(.atslib-status)")
        assert dashboards.count() == 2
        sync = dashboards.first
        sync.scroll_into_view_if_needed()        # JupyterLab lays out only the cells in view, as a reader sees them
        assert sync.get_by_role("button").count() == 0, "the synchronous dashboard must have no buttons"
        _wait_until(lambda: re.search(r"done at step 6/6 · test acc 0\.\d+", sync.locator(".atslib-status").inner_text()),
                    30, "the synchronous dashboard's final status")
        dash = dashboards.last                   # the Start / Stop controls (the summary follows them)
        dash.scroll_into_view_if_needed()
        status = dash.locator(".atslib-status")
        start, stop = dash.get_by_role("button", name="Start"), dash.get_by_role("button", name="Stop")
        assert stop.is_disabled() and start.is_enabled()
        start.click()
        seen = []

        def running_with_updates():
            txt = status.inner_text()
            seen.append(txt)
            m = STATUS_RUNNING.search(txt)
            return m if m and int(m.group(3)) >= 2 else None
        m = _wait_until(running_with_updates, 120, "status 'running: step ... updates >= 2'")
        assert int(m.group(2)) == LIVE_STEPS
        assert any("val acc –" in t for t in seen) and not any("nan" in t for t in seen), seen
        assert start.is_disabled() and stop.is_enabled()
        assert dash.locator(".widget-output img").count() >= 1, "no live curves in the dashboard"
        stop.click()
        t_stop = time.monotonic()
        _wait_until(lambda: "stopping" in status.inner_text() and stop.is_disabled(), 1.0,
                    "'stopping' and a disabled Stop within a second")
        print(f"Stop answered in {time.monotonic() - t_stop:.2f} s: {status.inner_text()!r}")
        phases = set()

        def stopped():
            txt = status.inner_text()
            if re.search(r"(validating|testing) at step \d+/\d+: \d+/\d+ tasks", txt):
                phases.add(txt.split(" at ")[0])
            return STATUS_STOPPED.search(txt)
        m = _wait_until(stopped, 120, "status 'stopped at step K/N'", every=0.1)
        print(f"stopped {time.monotonic() - t_stop:.1f} s after Stop; phases seen: {sorted(phases)}")
        k, n = int(m.group(1)), int(m.group(2))
        assert n == LIVE_STEPS and 0 < k < n, status.inner_text()
        assert any("testing" in p for p in phases), f"the test's progress was not shown: {phases}"
        assert stop.is_disabled() and start.is_enabled(), "Start must be usable again after Stop"
        summary = json.loads((live_dir / "summary.json").read_text())
        assert summary["steps"] == LIVE_STEPS and summary["steps_done"] == k < LIVE_STEPS, summary
        SHOTS.mkdir(parents=True, exist_ok=True)
        dash.screenshot(path=str(SHOTS / "02_training_after_stop.png"))
        print(f"02_training in the browser: {time.monotonic() - t0:.1f} s")


RACE_UPDATE = re.compile(r"racing at noise ratio ([0-9.]+), \d+ s · update (\d+)")


def test_noise_ratio_race_live_and_stop(lab, page, tmp_path):
    base, tmp = lab
    with _screenshot_on_failure(page, tmp_path, "05_race"):
        t0 = time.monotonic()
        open_and_run_all(page, base, "05_race")
        status = page.locator(".atslib-race-status")
        status.wait_for(timeout=120_000)
        wait_all_run(page, 120)
        view = page.locator(".jp-NotebookPanel .widget-vbox:has(.atslib-race-status)")
        view.scroll_into_view_if_needed()        # JupyterLab lays out only the cells in view, as a reader sees them
        _wait_until(lambda: "committed race" in status.inner_text(), 30, "the committed race's status line")
        assert view.locator(".widget-output img").count() == 1, "the committed race is not drawn"
        handle = view.locator(".widget-slider").filter(has_text="noise ratio").locator(".noUi-handle")
        handle.focus()
        for _ in range(2):
            handle.press("ArrowRight")
            time.sleep(0.1)
        _wait_until(lambda: "0.80" in view.locator(".widget-slider").filter(has_text="noise ratio").inner_text()
                    or "0.8" in view.locator(".widget-slider").filter(has_text="noise ratio").inner_text(),
                    10, "the slider at 0.8")
        go, halt = view.get_by_role("button", name="Race"), view.get_by_role("button", name="Stop")
        assert halt.is_disabled() and go.is_enabled()
        go.click()
        img = view.locator(".widget-output img")
        srcs = {img.get_attribute("src")}

        def two_updates():
            m = RACE_UPDATE.search(status.inner_text())
            srcs.add(img.get_attribute("src"))
            return m if m and int(m.group(2)) >= 2 else None
        m = _wait_until(two_updates, 90, "two live updates of the race")
        assert float(m.group(1)) == pytest.approx(0.8), status.inner_text()
        assert len(srcs) >= 2, "the live figure was not redrawn"      # the committed race, then live ones (a
        # poll can miss an intermediate image when two updates land between polls on a loaded machine)
        assert go.is_disabled() and halt.is_enabled()
        SHOTS.mkdir(parents=True, exist_ok=True)
        view.screenshot(path=str(SHOTS / "05_race_running.png"))
        halt.click()
        t_stop = time.monotonic()
        _wait_until(lambda: "stopped" in status.inner_text(), 5, "'stopped' within 5 s of Stop", every=0.1)
        print(f"race: 'stopped' {time.monotonic() - t_stop:.2f} s after Stop: {status.inner_text()!r}")
        _wait_until(lambda: go.is_enabled(), 30, "Race usable again once the racers have ended")
        assert halt.is_disabled()
        view.screenshot(path=str(SHOTS / "05_race_stopped.png"))
        print(f"05_race in the browser: {time.monotonic() - t0:.1f} s")


def test_make_lab_turns_autosave_off(lab):
    """Tweaking a notebook in `make lab` must not rewrite the committed .ipynb / paired .py unless saved."""
    base, _ = lab
    s = _api(base, "/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    # overrides.json replaces the schema's default (what the Lab uses unless a user setting says otherwise)
    assert s["schema"]["properties"]["autosave"]["default"] is False, s["schema"]["properties"]["autosave"]
    assert s["settings"].get("autosave", False) is False
