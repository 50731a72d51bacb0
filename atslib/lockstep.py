"""Lockstep: R runs in one process, their model maths batched across runs.

A population trains R ordinary runs (``loop.Run``), each in a thread of its own running its own
``Run.train`` - its own task stream, method and method state, optimizer, validation, checkpoint
choice, NaN handling and run directory, with the very code of a single run. The heavy model maths
are the few functions marked ``@batchable(kind)`` (pool factors, per-task meta-gradients, the
meta-update, evaluation). Called in a population thread, such a function does not compute: it
hands its arguments to the population's ``Lockstep`` and waits. When every live run waits, the
main thread executes the waiting calls - by kind, through the batched implementation registered
for that kind (``atslib.population.batched``: one program over a leading run axis), or one by one where none
is registered or only one run asks - and hands each run its own result (or its own exception:
a run that fails stops alone). Outside a population the decorator only calls the function.

So nothing a method computes depends on whether it runs alone or in a population, apart from the
floating-point rounding of the batched kernels (``tests/test_population.py`` checks the records of
a population against those of single runs).
"""
from __future__ import annotations

import functools
import inspect
import threading
from collections import Counter
from dataclasses import dataclass
from collections.abc import Callable

import torch

_local = threading.local()

# kind -> (key(request) -> hashable: requests with equal keys batch together, run(requests) -> results)
BATCHED: dict[str, tuple[Callable, Callable]] = {}


@dataclass
class Request:
    kind: str
    fn: Callable              # the plain function (what a single run calls)
    args: tuple
    kwargs: dict
    grad: bool                # the caller's grad mode (thread-local in torch)

    def direct(self):
        with torch.set_grad_enabled(self.grad):
            return self.fn(*self.args, **self.kwargs)

    @functools.cached_property
    def arguments(self) -> dict:
        """The call's arguments by name, defaults applied (bound once, read by key and batched path)."""
        b = _signature(self.fn).bind(*self.args, **self.kwargs)
        b.apply_defaults()
        return b.arguments


@functools.cache
def _signature(fn):
    return inspect.signature(fn)


class PopulationAborted(RuntimeError):
    """Raised in every run's thread when the population as a whole stops (Ctrl-C, a bug)."""


def register(kind: str, key: Callable, run: Callable) -> None:
    """Register the batched implementation of ``kind``: ``run(requests)`` returns one result per
    request, an exception instance standing for that request's error. When ``run`` raises (say,
    out of memory for R runs at once), the calls are served one by one instead, so ``run`` must
    raise only before it has changed anything (an optimizer step, a cache); ``key(request)``
    returns None for a call that must be served alone."""
    BATCHED[kind] = (key, run)


def batchable(kind: str):
    """Mark a function whose calls a population batches across its runs."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            ls = getattr(_local, "lockstep", None)
            if ls is None:
                return fn(*args, **kwargs)
            return ls.call(Request(kind, fn, args, kwargs, torch.is_grad_enabled()))
        wrapper.direct = fn
        return wrapper
    return deco


def tick() -> None:
    """Mark the start of a run's step (keeps a population's runs in phase; nothing outside one)."""
    ls = getattr(_local, "lockstep", None)
    if ls is not None:
        ls.tick()


def in_population() -> bool:
    return getattr(_local, "lockstep", None) is not None


class Lockstep:
    """Runs ``jobs`` (callables, one per run) in threads and serves their batchable calls."""

    def __init__(self):
        self.cv = threading.Condition()
        self.pending: dict[int, Request] = {}
        self.results: dict[int, tuple[bool, object]] = {}
        self.live: set[int] = set()
        self.aborted: BaseException | None = None
        self.waiting: set[int] = set()       # runs inside ``call`` (pending, or being served)
        self.epoch: dict[int, int] = {}      # run -> steps started
        self.seen_epoch, self.seen = -1, []  # the kinds called so far in the lowest step, in order
        self.rounds = 0                      # dispatch rounds
        self.batched: Counter = Counter()    # kind -> calls served by its batched implementation
        self.direct: Counter = Counter()     # kind -> calls served one by one

    def call(self, req: Request):
        me = _local.run_id
        with self.cv:
            if self.aborted is not None:
                raise PopulationAborted(f"the population stopped: {self.aborted!r}")
            self.pending[me] = req
            self.waiting.add(me)
            self.cv.notify_all()
            self.cv.wait_for(lambda: me in self.results)
            self.waiting.discard(me)
            ok, value = self.results.pop(me)
        if not ok:
            raise value
        return value

    def run(self, jobs: list[Callable]) -> list[tuple[bool, object]]:
        """Run every job to its end; returns (ok, return value or exception) per job."""
        outcome: list[tuple[bool, object]] = [(False, None)] * len(jobs)

        def worker(i, job):
            _local.lockstep, _local.run_id = self, i
            try:
                outcome[i] = (True, job())
            except BaseException as e:          # the run fails alone; the others go on
                outcome[i] = (False, e)
            finally:
                with self.cv:
                    self.live.discard(i)
                    self.cv.notify_all()

        self.live = set(range(len(jobs)))
        threads = [threading.Thread(target=worker, args=(i, j), daemon=True) for i, j in enumerate(jobs)]
        for t in threads:
            t.start()
        try:
            while True:
                with self.cv:
                    self.cv.wait_for(lambda: all(i in self.pending for i in self.live))
                    if not self.live:
                        break
                    batch = self.serve_now()
                    for i in batch:
                        del self.pending[i]
                results = self.execute(batch)
                with self.cv:
                    self.results.update(results)
                    self.cv.notify_all()
        except BaseException as e:          # Ctrl-C or a bug here: every run stops (raising in its thread)
            with self.cv:
                self.aborted = e
                for i in self.waiting - set(self.results):     # waiting or being served: stop them all
                    self.results[i] = (False, PopulationAborted(f"the population stopped: {e!r}"))
                self.pending.clear()
                self.cv.notify_all()
            for t in threads:
                t.join()
            raise
        for t in threads:
            t.join()
        return outcome

    def serve_now(self) -> dict[int, Request]:
        """The waiting calls to serve this round, chosen to keep the runs in phase.

        Only runs at the lowest step (``tick``) are served: a run that is a step ahead waits for
        the others. Among those, when their calls are of different kinds (one run hit its cache,
        another did not), the kind first seen in this step goes first, so the others catch up.
        """
        low = min(self.epoch.get(i, 0) for i in self.pending)
        behind = {i: r for i, r in self.pending.items() if self.epoch.get(i, 0) == low}
        if low != self.seen_epoch:
            self.seen_epoch, self.seen = low, []
        for r in behind.values():
            if r.kind not in self.seen:
                self.seen.append(r.kind)
        first = min(behind.values(), key=lambda r: self.seen.index(r.kind)).kind
        return {i: r for i, r in behind.items() if r.kind == first}

    def tick(self) -> None:
        """A run starts its next step (called by ``step.meta_step`` through ``tick``)."""
        with self.cv:
            self.epoch[_local.run_id] = self.epoch.get(_local.run_id, 0) + 1

    def execute(self, batch: dict[int, Request]) -> dict[int, tuple[bool, object]]:
        """One round: group the waiting calls by (kind, key), run each group, return per-run results."""
        self.rounds += 1
        groups: dict[tuple, list[int]] = {}
        for i in sorted(batch):
            req = batch[i]
            key = _safe(lambda req=req: BATCHED[req.kind][0](req)) if req.kind in BATCHED else None
            if key is not None and not isinstance(key, Exception):
                groups.setdefault((req.kind, key, req.grad), []).append(i)
            else:                               # no batched path, or its key failed: the plain call
                groups[("direct", i)] = [i]
        out = {}
        for (kind, *_), ids in groups.items():
            reqs = [batch[i] for i in ids]
            values = None
            if kind != "direct" and len(reqs) > 1:
                with torch.set_grad_enabled(reqs[0].grad):
                    values = _safe(lambda kind=kind, reqs=reqs: BATCHED[kind][1](reqs))
                if isinstance(values, Exception) or len(values) != len(reqs):
                    values = None               # the batched path failed before any side effect: run by run
                else:
                    self.batched[kind] += len(reqs)
            if values is None:
                self.direct.update(r.kind for r in reqs)
                values = [_safe(r.direct) for r in reqs]
            for i, v in zip(ids, values, strict=True):
                out[i] = (not isinstance(v, BaseException), v)
        return out


def _safe(fn):
    try:
        return fn()
    except Exception as e:
        return e


__all__ = ["batchable", "register", "tick", "Lockstep", "Request", "BATCHED", "PopulationAborted", "in_population"]
