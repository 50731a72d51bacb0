"""ipywidgets views built on ``atslib.plots`` (optional: ipywidgets is imported only when used).

Headless rule: every view draws its default state once when built and never waits for an
event, so a papermill run passes straight through; figures that CI checks are saved by the
notebooks outside any callback. In JupyterLab the controls redraw the view.
"""
from __future__ import annotations

import threading


def _w():
    import ipywidgets
    return ipywidgets


def _show(out, fig):
    import matplotlib.pyplot as plt
    from IPython import get_ipython
    from IPython.display import display
    ip = get_ipython()
    if ip is not None and threading.current_thread() is not threading.main_thread():
        # A background thread (the dashboard's Start) has no parent message, so ``with out:`` would
        # not capture its display: set the Output widget's state instead (the browser redraws it).
        data, metadata = ip.display_formatter.format(fig)
        out.outputs = ({"output_type": "display_data", "data": data, "metadata": metadata},)
    else:
        with out:
            out.clear_output(wait=True)
            display(fig)
    plt.close(fig)


def task_explorer(data, ways=5, shots=1, noise_ratio=0.6, flip_prob=0.8, seed=0, n_tasks=400):
    """Sliders for noise ratio, flip probability, ways and shots; redraws a noisy episode, the
    true-vs-shown label matrix and the realised noise rate against the requested one."""
    import matplotlib.pyplot as plt
    from . import plots
    from .tasks import EpisodeSampler, stream

    w = _w()
    s_ratio = w.FloatSlider(value=noise_ratio, min=0, max=1, step=0.1, description="noise ratio")
    s_flip = w.FloatSlider(value=flip_prob, min=0, max=1, step=0.1, description="flip prob")
    s_ways = w.IntSlider(value=ways, min=2, max=min(10, len(data.classes("val"))), description="ways")
    s_shots = w.IntSlider(value=shots, min=1, max=5, description="shots")
    readout = w.HTML()
    out_ep, out_stats = w.Output(), w.Output()

    def redraw(*_):
        r, f, n, k = s_ratio.value, s_flip.value, s_ways.value, s_shots.value
        sampler = EpisodeSampler(data, "train", n, k, 1, noise_ratio=r, flip_prob=f)
        pool = sampler.sample(n_tasks, stream(seed, 0, "explorer"))
        realised_tasks = float(pool.noisy.float().mean())
        realised_labels = float((pool.y_s != pool.y_s_clean).float().mean())
        readout.value = (f"<b class='atslib-readout'>realised noise: {realised_tasks:.3f} of tasks noisy "
                         f"(requested {r:.2f}); {realised_labels:.3f} of support labels corrupted "
                         f"(expected {r * f:.3f})</b>")
        shown = EpisodeSampler(data, "train", n, k, 2, noise_ratio=r, flip_prob=f)
        ep = shown.sample(1, stream(seed, 1, f"explorer/{r}/{f}"))
        fig, _ = plots.episode_grid(ep, 0, data.names, max_query=1)
        _show(out_ep, fig)
        fig, ax = plt.subplots(figsize=(3.6, 3.1))
        mask = pool.noisy
        plots.label_matrix(pool.y_s_clean[mask], pool.y_s[mask], n, ax=ax,
                           title=f"noisy tasks' support labels ({int(mask.sum())} tasks)")
        _show(out_stats, fig)

    for s in (s_ratio, s_flip, s_ways, s_shots):
        s.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([s_ratio, s_flip]), w.HBox([s_ways, s_shots]), readout, w.HBox([out_ep, out_stats])])


class TrainingDashboard:
    """Live curves while ``meta_train`` runs: train loss, validation accuracy and, for scheduler
    methods, the probability mass on noisy tasks, redrawn from a training callback.

    ``run(cfg)`` trains synchronously (papermill, scripts): the curves update while the cell runs.
    ``controls(cfg)`` shows Start / Stop buttons for JupyterLab: Start trains in a background
    thread (a kernel busy in a cell would not process a click), Stop sets a ``threading.Event``
    that ends training cleanly - checkpointed, tested with its best parameters, summary written.
    Under papermill no click ever arrives, so ``controls`` only draws its idle state.
    """

    def __init__(self, every: int = 10):
        w = _w()
        self.every = every
        self.stop_event = threading.Event()
        self.start_button = w.Button(description="Start", button_style="success", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.stop_button.on_click(lambda _: self.stop_event.set())
        self.status = w.HTML("<span class='atslib-status'>not started</span>")
        self.out = w.Output()
        self.box = w.VBox([w.HBox([self.start_button, self.stop_button, self.status]), self.out])
        self.run_obj, self.thread, self.updates = None, None, 0

    def _callback(self, rec, run):
        if rec["step"] % self.every == 0 or "val_acc" in rec:
            self.redraw(run)
        return False

    def redraw(self, run):
        import matplotlib.pyplot as plt
        from . import plots
        h = run.history_frame()
        fig, axes = plt.subplots(1, 3, figsize=(11, 3))
        plots.learning_curves(h, axes=axes[:2], smooth=10)
        if "noisy_mass" in h and run.cfg.noise_ratio > 0:
            axes[2].plot(h["step"], h["noisy_mass"].rolling(10, min_periods=1).mean(), color="#d62728",
                         label="scheduler")
            axes[2].plot(h["step"], h["pool_noisy"].rolling(50, min_periods=1).mean(), ":", color="grey",
                         label="noisy share of pool")
            axes[2].legend(fontsize=7)
        axes[2].set_xlabel("step"), axes[2].set_ylabel("probability mass on noisy tasks")
        fig.tight_layout()
        _show(self.out, fig)
        self.updates += 1
        val = h["val_acc"].dropna().iloc[-1] if "val_acc" in h and h["val_acc"].notna().any() else float("nan")
        self.status.value = (f"<span class='atslib-status'>running: step {run.step}/{run.cfg.steps} · "
                             f"updates {self.updates} · val acc {val:.3f}</span>")

    def _train(self, cfg, out, resume, overwrite):
        from .loop import Run
        self.start_button.disabled, self.stop_button.disabled = True, False
        try:
            self.run_obj = Run(cfg, out, resume=resume, overwrite=overwrite)
            self.run_obj.train([self._callback], stop=self.stop_event)
        except Exception as e:  # noqa: BLE001 - show it in the dashboard, re-raise for scripts
            self.status.value = f"<span class='atslib-status'>failed: {type(e).__name__}: {e}</span>"
            raise
        finally:
            self.stop_button.disabled = True
            self.start_button.disabled = False   # a stopped or finished run can be started again
        self.redraw(self.run_obj)
        s = self.run_obj.summary
        how = "stopped" if s["steps_done"] < cfg.steps else "done"
        self.status.value = (f"<span class='atslib-status'>{how} at step {s['steps_done']}/{cfg.steps} · "
                             f"test acc {s['test_mean']:.3f} ± {s['test_ci95']:.3f}</span>")
        return self.run_obj

    def run(self, cfg, out=None, resume=False, overwrite=True):
        """Train synchronously, showing the dashboard; returns the ``Run``."""
        from IPython.display import display
        display(self.box)
        return self._train(cfg, out, resume, overwrite)

    def controls(self, cfg, out=None, resume=False, overwrite=True):
        """Show Start / Stop; Start trains in a background thread. Returns the widget box."""
        self.start_button.on_click(lambda _: self.start(cfg, out, resume, overwrite))
        self.status.value = "<span class='atslib-status'>idle: press Start</span>"
        return self.box

    def start(self, cfg, out=None, resume=False, overwrite=True):
        if self.thread is not None and self.thread.is_alive():
            return self
        self.stop_event.clear()
        self.status.value = "<span class='atslib-status'>starting...</span>"
        self.thread = threading.Thread(target=self._train, args=(cfg, out, resume, overwrite), daemon=True)
        self.thread.start()
        return self


def scatter_explorer(pools_by_run: dict, sim: str = "sim_cos"):
    """A slider over logged steps and a dropdown over runs redraw the loss-vs-similarity scatter."""
    from . import plots
    w = _w()
    names = list(pools_by_run)
    dd = w.Dropdown(options=names, value=names[0], description="run")
    steps0 = sorted(pools_by_run[names[0]]["step"].unique())
    sl = w.SelectionSlider(options=steps0, value=steps0[len(steps0) // 2], description="step")
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
