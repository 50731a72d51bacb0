"""ipywidgets views built on ``atslib.display.plots`` (optional: ipywidgets is imported only when used).

Headless rule: every view draws its default state once when built and never waits for an
event, so a papermill run passes straight through; figures that CI checks are saved by the
notebooks outside any callback. In JupyterLab the controls redraw the view.
"""
from __future__ import annotations

import threading

from . import plots
from .live import LiveRun
from ..tasks import EpisodeSampler, stream


def _w():
    import ipywidgets
    return ipywidgets


def png(fig, dpi: int = 90) -> bytes:
    """The figure as PNG bytes (closed afterwards): works under any matplotlib backend."""
    import io

    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _show(out, fig, alt: str = "figure") -> None:
    """Put ``fig`` into the Output widget ``out`` as a PNG image.

    The image is rendered here (not left to the kernel's display hook), so it shows as an image
    whatever ``MPLBACKEND`` says, and setting the widget's ``outputs`` works from any thread (a
    background thread has no parent message for ``with out:`` to capture).
    """
    import base64
    data = base64.b64encode(png(fig)).decode()
    out.outputs = ({"output_type": "display_data", "data": {"image/png": data, "text/plain": f"<{alt}>"},
                    "metadata": {}},)


class _Debounce:
    """Call ``fn`` once, ``delay`` s after the last of a burst of widget events (keyboard presses on a
    slider, a drag): one redraw for the final value instead of one per intermediate value."""

    def __init__(self, fn, delay: float = 0.3):
        self.fn, self.delay, self.timer, self.lock = fn, delay, None, threading.Lock()

    def __call__(self, *_):
        with self.lock:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = threading.Timer(self.delay, self._fire)
            self.timer.daemon = True
            self.timer.start()

    def _fire(self):
        with self.lock:
            self.timer = None
        self.fn()


def _slider(kind, **kw):
    return getattr(_w(), kind)(continuous_update=False, style={"description_width": "initial"}, **kw)


def task_explorer(data, ways=5, shots=1, noise_ratio=0.6, flip_prob=0.8, seed=0, n_tasks=400):
    """Sliders for noise ratio, flip probability, ways and shots; redraws a noisy episode, the
    true-vs-shown label matrix and the realised noise rate against the requested one (together,
    once after the slider is released)."""
    import matplotlib.pyplot as plt

    w = _w()
    s_ratio = _slider("FloatSlider", value=noise_ratio, min=0, max=1, step=0.1, description="noise ratio")
    s_flip = _slider("FloatSlider", value=flip_prob, min=0, max=1, step=0.1, description="flip prob")
    s_ways = _slider("IntSlider", value=ways, min=2, max=min(10, len(data.classes("val"))), description="ways")
    s_shots = _slider("IntSlider", value=shots, min=1, max=5, description="shots")
    readout = w.HTML()
    out_ep, out_stats = w.Output(), w.Output()
    lock = threading.Lock()

    def redraw():
        with lock:
            r, f, n, k = s_ratio.value, s_flip.value, s_ways.value, s_shots.value
            sampler = EpisodeSampler(data, "train", n, k, 1, noise_ratio=r, flip_prob=f)
            pool = sampler.sample(n_tasks, stream(seed, 0, "explorer"))
            realised_tasks = float(pool.noisy.float().mean())
            realised_labels = float((pool.y_s != pool.y_s_clean).float().mean())
            shown = EpisodeSampler(data, "train", n, k, 2, noise_ratio=r, flip_prob=f)
            ep = shown.sample(1, stream(seed, 1, f"explorer/{r}/{f}"))
            fig_ep, _ = plots.episode_grid(ep, 0, data.names, max_query=1)
            fig_m, ax = plt.subplots(figsize=(3.6, 3.1))
            mask = pool.noisy
            plots.label_matrix(pool.y_s_clean[mask], pool.y_s[mask], n, ax=ax,
                               title=f"noisy tasks' support labels ({int(mask.sum())} tasks)")
            _show(out_ep, fig_ep, "episode")     # both images, then the readout: one update
            _show(out_stats, fig_m, "label matrix")
            readout.value = (f"<b class='atslib-readout'>realised noise: {realised_tasks:.3f} of tasks noisy "
                             f"(requested {r:.2f}); {realised_labels:.3f} of support labels corrupted "
                             f"(expected {r * f:.3f})</b>")

    later = _Debounce(redraw)
    for s in (s_ratio, s_flip, s_ways, s_shots):
        s.observe(later, names="value")
    redraw()
    return w.VBox([w.HBox([s_ratio, s_flip]), w.HBox([s_ways, s_shots]), readout, w.HBox([out_ep, out_stats])])


def _fmt(v, digits: int = 3) -> str:
    """A number, or "–" where there is none yet (never "nan")."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "–"
    return "–" if v != v else f"{v:.{digits}f}"


class TrainingDashboard:
    """Live curves while a run trains: train loss, validation accuracy and, on noisy tasks, the
    probability mass on noisy tasks; a status line says what the run is doing (training, validating,
    testing, with counts).

    ``run(cfg)`` trains synchronously (papermill, scripts, Run All): curves and status update while
    the cell runs; it has no buttons, because a kernel busy in a cell cannot receive a click.
    ``controls(cfg)`` shows Start / Stop for JupyterLab: Start trains in a background thread, Stop
    answers at once ("stopping — testing on N tasks…"), disables itself and sets a
    ``threading.Event``; the run ends cleanly after the current step (validated, tested with its best
    parameters, summary written) while the status shows the test's progress. Under papermill no
    click arrives, so ``controls`` draws its idle state only.
    """

    def __init__(self, every: int = 10, buttons: bool = False):
        """``buttons``: show Start / Stop from the start (``controls`` adds them anyway)."""
        w = _w()
        self.every = every
        self.stop_event = threading.Event()
        self.status = w.HTML("<span class='atslib-status'>not started</span>")
        self.out = w.Output()
        self.start_button = w.Button(description="Start", button_style="success", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.stop_button.on_click(self._on_stop)
        self.row = w.HBox([self.status])
        self.box = w.VBox([self.row, self.out])
        if buttons:
            self.row.children = (self.start_button, self.stop_button, self.status)
        self.run_obj, self.thread, self.updates, self.stopping, self.cfg = None, None, 0, False, None

    def _set_status(self, text: str) -> None:
        self.status.value = f"<span class='atslib-status'>{text}</span>"

    def _on_stop(self, *_):
        self.stopping = True
        self.stop_event.set()
        self.stop_button.disabled = True
        n = self.cfg.n_test_tasks if self.cfg is not None else "the test"
        self._set_status(f"stopping — testing on {n} tasks…")

    def _on_phase(self, phase, done, total):
        step = self.run_obj.step if self.run_obj is not None else 0
        what = f"{done}/{total} tasks" if total else "…"
        head = "stopping — " if self.stopping else ""
        self._set_status(f"{head}{phase} at step {step}/{self.cfg.steps}: {what}")

    def _callback(self, rec, run):
        if rec["step"] % self.every == 0 or "val_acc" in rec:
            self.redraw(run)
        return False

    def redraw(self, run):
        import matplotlib.pyplot as plt
        h = run.history_frame()
        noisy = run.cfg.bad_ratio > 0 and "noisy_mass" in h     # a panel only where it has something to show
        fig, axes = plt.subplots(1, 3 if noisy else 2, figsize=(11 if noisy else 8, 3))
        plots.learning_curves(h, axes=axes[:2], smooth=10)
        if noisy:
            axes[2].plot(h["step"], h["noisy_mass"].rolling(10, min_periods=1).mean(), color="#d62728",
                         label="sampler")
            axes[2].plot(h["step"], h["pool_noisy"].rolling(50, min_periods=1).mean(), ":", color="grey",
                         label="noisy share of pool")
            axes[2].set_xlabel("step"), axes[2].set_ylabel("probability mass on noisy tasks")
            plots.legend_outside(axes[2])
        fig.tight_layout()
        _show(self.out, fig, "training curves")
        self.updates += 1
        val = h["val_acc"].dropna().iloc[-1] if "val_acc" in h and h["val_acc"].notna().any() else None
        if not self.stopping:
            self._set_status(f"running: step {run.step}/{run.cfg.steps} · updates {self.updates} · "
                             f"val acc {_fmt(val)}")

    def _train(self, cfg, out, resume, overwrite):
        self.cfg, self.stopping = cfg, False
        self.start_button.disabled, self.stop_button.disabled = True, False
        try:
            self.run_obj = LiveRun(cfg, out, resume=resume, overwrite=overwrite, on_phase=self._on_phase)
            self._set_status(f"running: step {self.run_obj.step}/{cfg.steps} · val acc –")
            self.run_obj.train([self._callback], stop=self.stop_event)
        except Exception as e:  # noqa: BLE001 - show it in the dashboard, re-raise for scripts
            self._set_status(f"failed: {type(e).__name__}: {e}")
            raise
        finally:
            self.stop_button.disabled = True
            self.start_button.disabled = False   # a stopped or finished run can be started again
        self.stopping = True    # keep the final status
        self.redraw(self.run_obj)
        s = self.run_obj.summary
        how = "stopped" if s["steps_done"] < cfg.steps else "done"
        self._set_status(f"{how} at step {s['steps_done']}/{cfg.steps} · test acc {_fmt(s['test_mean'])} ± "
                         f"{_fmt(s['test_ci95'])} over {s['n_test_tasks']} tasks")
        return self.run_obj

    def run(self, cfg, out=None, resume=False, overwrite=True):
        """Train synchronously, showing curves and status (no buttons); returns the ``Run``."""
        from IPython.display import display
        display(self.box)
        return self._train(cfg, out, resume, overwrite)

    def controls(self, cfg, out=None, resume=False, overwrite=True):
        """Show Start / Stop; Start trains in a background thread. Returns the widget box."""
        self.cfg = cfg
        self.row.children = (self.start_button, self.stop_button, self.status)
        self.start_button.on_click(lambda _: self.start(cfg, out, resume, overwrite))
        self._set_status("idle: press Start")
        return self.box

    def start(self, cfg, out=None, resume=False, overwrite=True):
        if self.thread is not None and self.thread.is_alive():
            return self
        self.stop_event.clear()
        self.cfg, self.stopping, self.updates = cfg, False, 0
        self.start_button.disabled, self.stop_button.disabled = True, False
        self._set_status("starting…")
        self.thread = threading.Thread(target=self._train, args=(cfg, out, resume, overwrite), daemon=True)
        self.thread.start()
        return self


def scatter_explorer(pools_by_run: dict, sim: str = "sim_cos"):
    """A slider over logged steps and a dropdown over runs redraw the loss-vs-similarity scatter."""
    w = _w()
    names = list(pools_by_run)
    dd = w.Dropdown(options=names, value=names[0], description="run")
    steps0 = sorted(pools_by_run[names[0]]["step"].unique())
    sl = w.SelectionSlider(options=steps0, value=steps0[len(steps0) // 2], description="step",
                           continuous_update=False)
    out = w.Output()

    def redraw(*_):
        fig, _ = plots.loss_sim_scatter(pools_by_run[dd.value], [sl.value], sim=sim, title=dd.value)
        _show(out, fig)

    def new_run(*_):
        steps = sorted(pools_by_run[dd.value]["step"].unique())
        sl.unobserve(redraw, names="value")
        sl.options = steps
        sl.value = steps[len(steps) // 2]
        sl.observe(redraw, names="value")
        redraw()

    dd.observe(new_run, names="value")
    sl.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([dd, sl]), out])


def page_switcher(pages: dict, description: str = "view"):
    """A dropdown that switches, instantly, between pre-rendered pages.

    ``pages`` maps a name to a list of items: PNG bytes (``png(fig)``), a pandas DataFrame (shown
    as a table) or a str (shown as text). Everything is rendered when the view is built, so
    switching never computes.
    """
    import base64
    w = _w()
    names = list(pages)

    def item(x):
        if isinstance(x, (bytes, bytearray)):
            return {"output_type": "display_data", "metadata": {},
                    "data": {"image/png": base64.b64encode(x).decode(), "text/plain": "<figure>"}}
        if hasattr(x, "to_html"):
            return {"output_type": "display_data", "metadata": {},
                    "data": {"text/html": x.to_html(index=False), "text/plain": x.to_string(index=False)}}
        return {"output_type": "stream", "name": "stdout", "text": f"{x}\n"}

    rendered = {n: tuple(item(x) for x in pages[n]) for n in names}
    dd = w.Dropdown(options=names, value=names[0], description=description)
    out = w.Output()

    def show(*_):
        out.outputs = rendered[dd.value]

    dd.observe(show, names="value")
    show()
    return w.VBox([dd, out])
