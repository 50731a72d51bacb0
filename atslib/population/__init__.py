"""The population wing: R runs trained in lockstep in one process, their model maths batched
across runs (``engine``), the batched maths over a leading run axis (``batched``) and its
benchmark (``atslib.study.popbench``). Optional: a single run never imports it."""
from .engine import VARYING, Member, compatible_key, group, train_population

__all__ = ["VARYING", "Member", "compatible_key", "group", "train_population"]
