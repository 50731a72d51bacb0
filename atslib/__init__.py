"""atslib: Meta-learning with an Adaptive Task Scheduler (Yao et al., NeurIPS 2021), runnable.

The library is thin: tasks as tensors with a leading task axis (``tasks``), a functional
meta-learner (``maml``), the two ATS factors (``features``), the neural scheduler and its exact
REINFORCE (``scheduler``, ``ats``), the baselines (``baselines``), one meta-iteration (``step``)
and the loop around it (``loop``), and pure metrics (``metrics``). Two wings sit on it and are never imported by it:
``atslib.study`` (grids, sweeps, statistics, claims) and ``atslib.display`` (plots that return
figures, widgets, the race); ``atslib.ingest`` imports datasets you have on disk. The layers are
listed in ``ARCHITECTURE.md``.
"""
from .config import METHODS, Config, ConfigError
from .loop import meta_train
from .runs import load_run
from .version import __version__

__all__ = ["Config", "ConfigError", "METHODS", "meta_train", "load_run", "__version__"]
