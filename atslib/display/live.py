"""Training that says what it is doing: ``LiveRun`` reports validation and test progress.

``loop.Run`` validates on fixed meta-val tasks and, at the end, tests on 600 meta-test tasks; both
take seconds to a minute on a CPU, with no callback in between. ``LiveRun`` is a ``Run`` that tells
a listener ``on_phase(phase, done, total)`` as they go: ``phase`` is ``"validating"`` or
``"testing"``, ``done`` / ``total`` count tasks (images: counted from the examples that pass through
the backbone; molecules: ``total`` is None). It changes no number: the same parameters are
evaluated on the same tasks, only observed. ``phase_bars()`` turns those reports into ``tqdm.auto``
bars (widget bars in JupyterLab, silent with ``TQDM_DISABLE=1``); ``train()`` is ``meta_train``
with a step bar and phase bars.
"""
from __future__ import annotations

from ..loop import Run
from .progress import progress_callback


class LiveRun(Run):
    def __init__(self, cfg, out=None, resume: bool = False, overwrite: bool = False, on_phase=None):
        super().__init__(cfg, out, resume=resume, overwrite=overwrite)
        self.on_phase = on_phase
        self.phase, self._done, self._total = None, 0.0, None
        # examples per task through the backbone (support + query); None where tasks differ in size
        self._per_task = None if cfg.dataset == "molecules" else cfg.ways * (cfg.shots + cfg.queries)
        self.model.feature_hooks.append(self._count)    # this run's model only

    def _count(self, f) -> None:
        """Told of every batch through the backbone: counts the examples of an evaluation."""
        if self.phase is not None:
            self._done += f.shape[0] / self._per_task if self._per_task else 1
            self._report()

    def _report(self) -> None:
        if self.on_phase is not None:
            done = int(min(self._done, self._total)) if self._total else int(self._done)
            self.on_phase(self.phase, done, self._total)

    def _observe(self, phase, total, fn):
        self.phase, self._done, self._total = phase, 0.0, total
        self._report()
        try:
            return fn()
        finally:
            self._done = self._total or self._done
            self._report()
            self.phase = None

    def validate(self) -> float:
        total = self.cfg.n_val_tasks if self._per_task else None
        return self._observe("validating", total, super().validate)

    def finish(self) -> dict:
        total = None if self.cfg.dataset == "molecules" else self.cfg.n_test_tasks
        return self._observe("testing", total, super().finish)


def phase_bars(desc: str = ""):
    """An ``on_phase`` listener drawing one ``tqdm.auto`` bar per validation / test."""
    from tqdm.auto import tqdm
    state = {"bar": None, "phase": None}

    def on_phase(phase, done, total):
        bar = state["bar"]
        if bar is None or state["phase"] != phase or (bar.total and done < bar.n):
            if bar is not None:
                bar.close()
            unit = "assay chunk" if total is None else "task"
            bar = state["bar"] = tqdm(total=total, desc=f"{desc}{phase}", unit=unit, leave=False)
            state["phase"] = phase
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()
            state["bar"] = None
    return on_phase


def train(cfg, out=None, callbacks=(), resume: bool = False, overwrite: bool = False, stop=None, desc: str = ""):
    """``meta_train`` with progress: a step bar, and a bar for every validation and for the final test."""
    run = LiveRun(cfg, out, resume=resume, overwrite=overwrite, on_phase=phase_bars(desc))
    bar = progress_callback(cfg.steps, run.step, desc=f"{desc}meta-train")
    return run.train([bar, *callbacks], stop)
