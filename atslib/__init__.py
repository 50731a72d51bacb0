"""atslib: Meta-learning with an Adaptive Task Scheduler (Yao et al., NeurIPS 2021), runnable.

The library is thin: tasks as tensors with a leading task axis (``tasks``), a functional
meta-learner (``maml``), the two ATS factors (``features``), the neural scheduler and its exact
REINFORCE (``scheduler``, ``ats``), the baselines (``samplers``), one training loop (``train``,
``loop``), pure metrics (``metrics``) and plots that return figures (``plots``).
"""
__version__ = "0.1.0"

from .config import METHODS, Config, ConfigError  # noqa: E402
from .runs import load_run  # noqa: E402


def meta_train(cfg, callbacks=(), out=None, resume=False, overwrite=False, stop=None):
    """Train one run (see ``atslib.train.meta_train``)."""
    from .train import meta_train as _mt
    return _mt(cfg, callbacks, out, resume, overwrite, stop)


__all__ = ["Config", "ConfigError", "METHODS", "meta_train", "load_run", "__version__"]
