"""Time Run All of every notebook in JupyterLab started by ``make lab``, in headless Chromium, at the
notebooks' default parameters; play 02's Stop and a full race in 05_race; save screenshots.

    .venv/bin/python scripts/lab_timings.py [--out build/lab-timings] [--only 01_tasks 05_race]

Works on a temporary copy of the notebooks (``results/`` linked next to it, figures into the temp
dir), so nothing in the repository is written. Needs Chromium at /usr/bin/chromium and playwright.
Prints one line per notebook and writes ``timings.json`` and the screenshots under ``--out``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = secrets.token_hex(16)


def api(base, path, method="GET"):
    req = urllib.request.Request(base + path, method=method, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        body = r.read()
    return json.loads(body) if body else None


def shutdown_kernels(base):
    with contextlib.suppress(Exception):
        for k in api(base, "/api/kernels"):
            with contextlib.suppress(Exception):
                api(base, f"/api/kernels/{k['id']}", "DELETE")


def wait_until(fn, timeout, what, every=0.25):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = fn()
        if v:
            return v
        time.sleep(every)
    raise TimeoutError(f"{what} after {timeout} s")


IDLE = """() => { const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const i = p && p.querySelector('.jp-Notebook-ExecutionIndicator');
  const n = p && p.querySelector('.jp-KernelName');
  return n && /Python 3/.test(n.textContent) && i && i.dataset.status === 'idle'; }"""
ALL_RUN = """() => { const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!p) return false; if ([...p.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')].some(
    e => /Traceback|\\w+Error\\b/.test(e.textContent))) return true;
  const pr = [...p.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
  return pr.length && pr.every(e => /\\[\\d+\\]/.test(e.textContent)); }"""


def run_all(page, base, name, timeout):
    page.goto(f"{base}/lab/workspaces/{name}/tree/{name}.ipynb?token={TOKEN}")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
    page.wait_for_function(IDLE, timeout=60_000)
    t0 = time.monotonic()
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()
    page.locator(".jp-InputPrompt", has_text=re.compile(r"\[\*\]")).first.wait_for(timeout=30_000)
    page.wait_for_function(ALL_RUN, timeout=timeout * 1000, polling=500)
    page.wait_for_function(IDLE, timeout=timeout * 1000, polling=500)
    err = page.locator('[data-mime-type="application/vnd.jupyter.stderr"]', has_text=re.compile(r"Traceback|\w+Error\b"))
    if err.count():
        raise RuntimeError(f"a cell failed: {err.first.inner_text()[-400:]}")
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "build" / "lab-timings"))
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright
    tmp = Path(tempfile.mkdtemp(prefix="lab-timings-"))
    nbdir = tmp / "notebooks"
    nbdir.mkdir()
    names = [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))]
    names = [n for n in args.only if n in names] if args.only else names   # in the order asked
    for n in names:
        shutil.copy(ROOT / "notebooks" / f"{n}.ipynb", nbdir)
    for d in ("results", "experiments"):   # the notebooks read ../results and ../experiments
        (tmp / d).symlink_to(ROOT / d)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, JUPYTER_PORT=str(port), JUPYTER_TOKEN=TOKEN, FIG_DIR=str(tmp / "figures"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "ws"))
    base = f"http://127.0.0.1:{port}"
    log = open(tmp / "lab.log", "w")
    proc = subprocess.Popen(["make", "--no-print-directory", "-C", str(ROOT), "-o", ".venv/.installed", "lab",
                             f"LAB_DIR={nbdir}", "LAB_ARGS=--no-browser --ip=127.0.0.1"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    timings = {}
    try:
        wait_until(lambda: _up(base), 90, "make lab")
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for n in names:
                ctx = b.new_context(viewport={"width": 1500, "height": 1000})
                page = ctx.new_page()
                page.set_default_timeout(30_000)
                try:
                    t = run_all(page, base, n, 900)
                    timings[n] = {"run_all_s": round(t, 1)}
                    print(f"{n}: Run All {t:.1f} s", flush=True)
                    page.screenshot(path=str(out / f"{n}.png"))
                    if n == "01_tasks":
                        page.locator(".jp-NotebookPanel .jp-OutputArea-output img").first.scroll_into_view_if_needed()
                        page.screenshot(path=str(out / "01_tasks_figure.png"))
                    if n == "02_training":
                        timings[n].update(stop_02(page, out))
                    if n == "05_race":
                        timings[n].update(race_05(page, out))
                except Exception as e:  # noqa: BLE001 - keep timing the others
                    timings[n] = {"error": f"{type(e).__name__}: {e}"}
                    print(f"{n}: {timings[n]['error']}", flush=True)
                    with contextlib.suppress(Exception):
                        page.screenshot(path=str(out / f"{n}-error.png"))
                finally:
                    ctx.close()
                    shutdown_kernels(base)
                    (out / "timings.json").write_text(json.dumps(timings, indent=1))
            b.close()
    finally:
        shutdown_kernels(base)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    (out / "timings.json").write_text(json.dumps(timings, indent=1))
    print(json.dumps(timings, indent=1))


def _up(base):
    with contextlib.suppress(Exception):
        return api(base, "/api/status") is not None
    return False


def stop_02(page, out):
    cell = page.locator(".jp-NotebookPanel .jp-Cell").last
    cell.scroll_into_view_if_needed()
    dash = cell.locator(".widget-vbox:has(.atslib-status)")
    status = dash.locator(".atslib-status")
    dash.get_by_role("button", name="Start").click()
    wait_until(lambda: re.search(r"updates [2-9]", status.inner_text()), 120, "two updates")
    stop = dash.get_by_role("button", name="Stop")
    stop.click()
    t0 = time.monotonic()
    wait_until(lambda: "stopping" in status.inner_text() and stop.is_disabled(), 5, "stopping")
    answered = time.monotonic() - t0
    seen = set()

    def stopped():
        txt = status.inner_text()
        seen.add(re.sub(r"\d+/\d+ tasks", "N tasks", txt))
        return "stopped at step" in txt
    wait_until(stopped, 300, "stopped", every=0.2)
    page.wait_for_timeout(500)
    dash.screenshot(path=str(out / "02_training_after_stop.png"))
    return {"stop_answered_s": round(answered, 2), "stop_to_stopped_s": round(time.monotonic() - t0, 1),
            "statuses": sorted(seen)[:8]}


def race_05(page, out):
    status = page.locator(".atslib-race-status")
    view = page.locator(".jp-NotebookPanel .widget-vbox:has(.atslib-race-status)")
    view.scroll_into_view_if_needed()
    t0 = time.monotonic()
    view.get_by_role("button", name="Race").click()
    wait_until(lambda: re.search(r"update ([4-9]|\d\d)", status.inner_text()), 120, "mid-race")
    view.screenshot(path=str(out / "05_race_running.png"))
    wait_until(lambda: "done in" in status.inner_text(), 600, "race done", every=1.0)
    wall = time.monotonic() - t0
    page.wait_for_timeout(1500)
    view.screenshot(path=str(out / "05_race_finished.png"))
    return {"race_wall_s": round(wall, 1), "race_status": status.inner_text()}


if __name__ == "__main__":
    main()
