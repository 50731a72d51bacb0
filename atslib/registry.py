"""The one list of task-selection methods, with what each one is.

Every other list derives from ``SPECS``: the CLI's choices and ``Config``'s check (``METHODS``),
which methods score the pool's factors and write pool records (``SCHEDULED``), the paper's
non-adaptive schedulers among which the best one (BNS) is chosen (``NON_ADAPTIVE``), the display
order of tables (``METHODS`` is in that order). ``methods.make_method`` builds a method from its
spec; ATS's ablations are ATS with other parameters (``ats``), not other code.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MethodSpec:
    name: str
    family: str                       # the implementation: a baseline's own name, "ats", "ats-reweight" or "ats-cheap"
    scheduled: bool = False           # ranks the pool by the ATS factors (pool records, noise AUC)
    non_adaptive: bool = False        # one of the paper's non-adaptive schedulers (a BNS candidate)
    images_only: bool = False         # composes tasks from classes (no molecule assays)
    oracle: bool = False              # reads the pool's hidden truth: a ceiling, never a baseline
    ats: dict = field(default_factory=dict)   # the family's parameters (ATS: factors, train_phi, zero_output;
                                              # the fixed ranking: loss_sign)
    about: str = ""


SPECS = {s.name: s for s in (
    MethodSpec("uniform", "uniform", non_adaptive=True, about="B pool tasks uniformly"),
    MethodSpec("uniform-val", "uniform-val", about="uniform + one step on ATS's validation tasks (control)"),
    MethodSpec("spl", "spl", non_adaptive=True, about="self-paced: the easiest share of the pool by loss"),
    MethodSpec("focal", "focal", non_adaptive=True, about="uniform tasks, focal query loss"),
    MethodSpec("gcp", "gcp", non_adaptive=True, images_only=True, about="greedy class-pair potentials"),
    MethodSpec("daml", "daml", non_adaptive=True, about="uniform tasks, harder ones weigh more"),
    MethodSpec("paml", "paml", non_adaptive=True, about="novel tasks in embedding space"),
    MethodSpec("ats", "ats", scheduled=True, about="the adaptive task scheduler"),
    MethodSpec("rank-sim-loss", "rank-sim-loss", scheduled=True, about="fixed ranking z(sim) - z(loss), top B"),
    MethodSpec("rank-sim+loss", "rank-sim-loss", scheduled=True, ats={"loss_sign": 1.0},
               about="fixed ranking z(sim) + z(loss), top B: hard, aligned tasks"),
    MethodSpec("oracle-clean", "oracle-clean", oracle=True,
               about="oracle: B of the pool's clean tasks (reads the hidden truth; a ceiling, not a baseline)"),
    MethodSpec("ats-cheap", "ats-cheap", scheduled=True, about="ATS on cheap factors, phi every k steps"),
    MethodSpec("ats-random-phi", "ats", scheduled=True, ats={"train_phi": False, "zero_output": False},
               about="ablation: a random scheduler that never trains"),
    MethodSpec("ats-loss-only", "ats", scheduled=True, ats={"factors": ("loss",)}, about="ablation: the loss alone"),
    MethodSpec("ats-sim-only", "ats", scheduled=True, ats={"factors": ("sim",)}, about="ablation: the similarity alone"),
    MethodSpec("ats-reweight", "ats-reweight", scheduled=True, about="ablation: weights instead of draws"),
)}

METHODS = tuple(SPECS)
SCHEDULED = tuple(n for n, s in SPECS.items() if s.scheduled)
NON_ADAPTIVE = tuple(n for n, s in SPECS.items() if s.non_adaptive)
ORACLES = tuple(n for n, s in SPECS.items() if s.oracle)


def label(method: str) -> str:
    """A method's name as tables show it: an oracle says so."""
    return f"{method} (oracle)" if method in ORACLES else method


__all__ = ["MethodSpec", "SPECS", "METHODS", "SCHEDULED", "NON_ADAPTIVE", "ORACLES", "label"]
