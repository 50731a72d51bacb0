"""``make_method(cfg, setup)``: the task-selection method a config names, built from its spec.

The names and what each method is live in ``atslib.registry``; the code in ``baselines`` (the
baselines) and ``ats`` (ATS, its reweighting and cheap variants). ATS's ablations are ``ATS`` with
the parameters of their spec: which factors it sees, whether phi trains, phi's initial output.
"""
from __future__ import annotations

from .ats import ATS, ATSReweight, CheapATS
from .baselines import (
    DAML,
    GCP,
    PAML,
    Focal,
    Method,
    OracleClean,
    RankSimLoss,
    SelfPaced,
    Uniform,
    UniformVal,
)
from .registry import SPECS

FAMILIES = {c.name: c for c in (Uniform, UniformVal, SelfPaced, Focal, DAML, PAML, GCP, RankSimLoss, OracleClean,
                                ATS, ATSReweight, CheapATS)}


def make_method(cfg, setup) -> Method:
    spec = SPECS[cfg.method]
    return FAMILIES[spec.family](cfg, setup, **spec.ats)


__all__ = ["make_method", "FAMILIES"]
