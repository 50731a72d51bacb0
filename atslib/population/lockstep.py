"""Lockstep: R runs in one process, their model maths batched across runs.

A population trains R ordinary runs (``loop.Run``), each in a thread of its own running its own
``Run.train`` - its own task stream, method and method state, optimizer, validation, checkpoint
choice, NaN handling and run directory, with the very code of a single run.

**The seam.** The core's model maths are plain PyTorch functions that know nothing of
populations: ``maml.evaluate``, ``features.pool_factors``, ``step.task_grad`` and ``step.update``
(``SEAMS``). For the time of ``Lockstep.run`` (``substituted``), this module puts a dispatcher
(``batchable(kind)(fn)``) in place of each of them - in the module that defines it and in every
``atslib`` module that imported it by name, found by identity - and a step counter
(``ticking``) in place of ``step.meta_step``; on leaving, it puts the plain functions back. A
dispatcher called in a population's run thread hands the call to its ``Lockstep``; called
anywhere else (a single run, the main thread serving a batch, a run serving its own plain call)
it is the plain function.

A call handed over waits on an event of its own, and every wait is bounded (``Lockstep(timeout)``:
past it, ``PopulationTimeout`` names the runs or the call waited for). When every
live run waits, the main thread takes the waiting calls of one kind (``serve_now``) and groups
them by the key of the batched implementation registered for that kind (``register``;
``atslib.population.batched``: one program over a leading run axis). A group of two or more
runs is computed by the main thread, under the callers' grad, inference and autocast modes
(``Modes``); whatever a run's state must change (an optimizer step) is then done by the run
itself, in its own thread (``Batched.finish``). A call with no batched path, alone in its group,
or whose batched path failed (warned once per kind) goes back to its run, which makes the plain
call in its own thread (one run at a time, as a single run would). So every change to a run's
state - its optimizer, its method - happens in that run's thread, and a run that fails stops
alone.

So nothing a method computes depends on whether it runs alone or in a population, apart from the
floating-point rounding of the batched kernels (``tests/test_population.py`` checks the records of
a population against those of single runs).
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from .. import features, maml, step

TIMEOUT = 3600.0     # seconds a wait may last before it is an error (a stall detector, not a time limit)

# the core's plain functions a population batches, by kind: (module that defines it, name)
SEAMS = {"evaluate": (maml, "evaluate"), "pool_factors": (features, "pool_factors"),
         "task_grad": (step, "task_grad"), "update": (step, "update")}
TICK = (step, "meta_step")       # a run starts a step (keeps a population's runs in phase)

_local = threading.local()


class Batched(NamedTuple):
    key: Callable                   # key(request) -> hashable: equal keys batch together; None: served alone
    run: Callable                   # run(requests) -> one result per request (an exception instance: its error)
    finish: Callable | None = None  # finish(request, result) -> the call's value, in the caller's thread


BATCHED: dict[str, Batched] = {}

_AUTOCAST = ("cpu", "cuda")


@dataclass(frozen=True)
class Modes:
    """The thread-local torch modes of a call, which the main thread serves it under."""
    grad: bool
    inference: bool
    autocast: tuple = ()            # ((device type, dtype), ...) where autocast is on

    @classmethod
    def current(cls) -> "Modes":
        return cls(torch.is_grad_enabled(), torch.is_inference_mode_enabled(),
                   tuple((d, torch.get_autocast_dtype(d)) for d in _AUTOCAST if torch.is_autocast_enabled(d)))

    @contextlib.contextmanager
    def applied(self):
        with contextlib.ExitStack() as stack:
            if self.inference:
                stack.enter_context(torch.inference_mode())
            stack.enter_context(torch.set_grad_enabled(self.grad))
            for device, dtype in self.autocast:
                stack.enter_context(torch.autocast(device, dtype=dtype))
            yield


@dataclass(eq=False)
class Request:
    kind: str
    fn: Callable              # the plain function (what a single run calls)
    args: tuple
    kwargs: dict
    modes: Modes = field(default_factory=Modes.current)
    run: int = -1             # the calling run
    done: threading.Event = field(default_factory=threading.Event)
    answer: tuple | None = None   # (how, value): "value", "error", "finish" (value for finish) or "plain"

    @property
    def grad(self) -> bool:
        return self.modes.grad

    def direct(self):
        """The plain call, in the caller's thread; batchable calls inside it are plain too."""
        _local.plain = getattr(_local, "plain", 0) + 1
        try:
            return self.fn(*self.args, **self.kwargs)
        finally:
            _local.plain -= 1

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
    """Raised in every run's thread when the population as a whole stops (Ctrl-C, a bug, a stall)."""


class PopulationTimeout(RuntimeError):
    """A wait of the lockstep lasted longer than its ``timeout``; the message names what it waited for."""


def register(kind: str, key: Callable, run: Callable, finish: Callable | None = None) -> None:
    """Register the batched implementation of ``kind``. ``run(requests)`` returns one result per
    request, an exception instance standing for that request's error; it runs in the main thread
    and only computes: it changes no run's state, so that when it raises (say, out of memory for R
    runs at once) the calls can be served one by one instead. What a run's state must change (an
    optimizer step) goes in ``finish(request, result)``, called in that run's own thread, which
    returns the call's value. ``key(request)`` returns None for a call that must be served alone."""
    BATCHED[kind] = Batched(key, run, finish)


def _current() -> "Lockstep | None":
    """The lockstep of this thread, where it is a population's run thread outside a plain call."""
    return None if getattr(_local, "plain", 0) else getattr(_local, "lockstep", None)


def batchable(kind: str):
    """A dispatcher for ``fn``: in a population's run thread it hands the call to the population,
    elsewhere it is ``fn``."""
    def deco(fn):
        @functools.wraps(fn)
        def dispatch(*args, **kwargs):
            ls = _current()
            if ls is None:
                return fn(*args, **kwargs)
            return ls.call(Request(kind, fn, args, kwargs))
        dispatch.plain = fn
        return dispatch
    return deco


def ticking(fn):
    """``fn`` (a run's step), counted as the start of a step by the run's population."""
    @functools.wraps(fn)
    def counted(*args, **kwargs):
        tick()
        return fn(*args, **kwargs)
    counted.plain = fn
    return counted


def tick() -> None:
    """Mark the start of a run's step (keeps a population's runs in phase; nothing outside one)."""
    ls = _current()
    if ls is not None:
        ls.tick()


def in_population() -> bool:
    return _current() is not None


# -- the substitution -----------------------------------------------------------------------------
_installed = threading.Lock()
_users = 0
_undo: list[tuple[object, str, object]] = []


def _substitute() -> list[tuple[object, str, object]]:
    """Put the dispatchers in place of the plain functions of ``SEAMS`` (and the counter in place
    of ``TICK``) wherever an ``atslib`` module outside this wing binds them; returns what to undo."""
    wrap = {}
    for kind, (mod, name) in SEAMS.items():
        fn = getattr(mod, name)
        wrap[id(fn)] = (fn, batchable(kind)(fn))
    fn = getattr(*TICK)
    wrap[id(fn)] = (fn, ticking(fn))
    undo = []
    for mname, mod in list(sys.modules.items()):
        if mod is None or not (mname == "atslib" or mname.startswith("atslib.")) or mname.startswith(__package__):
            continue
        for name, value in list(vars(mod).items()):
            hit = wrap.get(id(value))
            if hit is not None and hit[0] is value:
                undo.append((mod, name, value))
                setattr(mod, name, hit[1])
    return undo


@contextlib.contextmanager
def substituted():
    """The dispatchers in place for the time of the block (nested and concurrent blocks share them)."""
    global _users
    with _installed:
        if _users == 0:
            _undo[:] = _substitute()
        _users += 1
    try:
        yield
    finally:
        with _installed:
            _users -= 1
            if _users == 0:
                for mod, name, value in reversed(_undo):
                    setattr(mod, name, value)
                _undo.clear()


# -- the lockstep ---------------------------------------------------------------------------------
class Lockstep:
    """Runs ``jobs`` (callables, one per run) in threads and serves their batchable calls.

    ``timeout``: the longest the main thread waits for the runs to reach their next call, and
    half the longest a run waits for its call to be served (or for another run's plain call to
    end), before the wait raises ``PopulationTimeout`` naming what it waited for; None: no bound.
    """

    def __init__(self, timeout: float | None = TIMEOUT):
        self.timeout = timeout
        self.cv = threading.Condition()      # guards the state below; only the main thread waits on it
        self.pending: dict[int, Request] = {}    # run -> its call, not yet taken
        self.taken: dict[int, Request] = {}      # run -> its call, taken by the main thread, not yet answered
        self.live: set[int] = set()
        self.aborted: BaseException | None = None
        self.serving = ""                    # what the main thread computes now (for a stalled run's error)
        self.plain_lock = threading.Lock()   # plain calls one run at a time
        self.epoch: dict[int, int] = {}      # run -> steps started
        self.seen_epoch, self.seen = -1, []  # the kinds called so far in the lowest step, in order
        self.rounds = 0                      # dispatch rounds
        self.batched: Counter = Counter()    # kind -> calls served by its batched implementation
        self.direct: Counter = Counter()     # kind -> calls served one by one
        self.fallbacks: Counter = Counter()  # kind -> failures of its batched implementation (or key)

    # -- in a run's thread ------------------------------------------------------------------
    def call(self, req: Request):
        me = req.run = _local.run_id
        with self.cv:
            if self.aborted is not None:
                raise PopulationAborted(f"the population stopped: {self.aborted!r}")
            self.pending[me] = req
            self.cv.notify()
        bound = None if self.timeout is None else 2 * self.timeout    # the main thread, which names
        if not req.done.wait(bound):                                  # the runs it waits for, speaks first
            with self.cv:
                if not req.done.is_set():
                    self.pending.pop(me, None)
                    self.taken.pop(me, None)
                    raise PopulationTimeout(f"run {me}: its {req.kind} call was not served within "
                                            f"{bound:g} s ({self._doing(exclude=me)})")
        how, value = req.answer
        if how == "error":
            raise value
        if how == "finish":
            return BATCHED[req.kind].finish(req, value)
        if how == "plain":
            if not self.plain_lock.acquire(timeout=-1 if bound is None else bound):
                raise PopulationTimeout(f"run {me}: waited {bound:g} s for another run's plain call to end")
            try:
                return req.direct()
            finally:
                self.plain_lock.release()
        return value

    def tick(self) -> None:
        """A run starts its next step (called through ``tick``, around ``step.meta_step``)."""
        with self.cv:
            self.epoch[_local.run_id] = self.epoch.get(_local.run_id, 0) + 1

    # -- in the main thread -----------------------------------------------------------------
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
                _local.lockstep = None
                with self.cv:
                    self.live.discard(i)
                    self.cv.notify()

        self.live = set(range(len(jobs)))
        threads = [threading.Thread(target=worker, args=(i, j), daemon=True) for i, j in enumerate(jobs)]
        with substituted():
            for t in threads:
                t.start()
            try:
                while True:
                    with self.cv:
                        if not self.cv.wait_for(lambda: all(i in self.pending for i in self.live), self.timeout):
                            raise PopulationTimeout(f"population: the main thread waited {self.timeout:g} s for "
                                                    f"the runs to reach their next batchable call "
                                                    f"({self._doing()})")
                        if not self.live:
                            break
                        batch = self.serve_now()
                        for i in batch:
                            self.taken[i] = self.pending.pop(i)
                    self.execute(batch)
            except BaseException as e:          # Ctrl-C, a bug or a stall: every run stops (raising in its thread)
                with self.cv:
                    self.aborted = e
                    for req in (*self.pending.values(), *self.taken.values()):
                        self._answer(req, "error", PopulationAborted(f"the population stopped: {e!r}"))
                    self.pending.clear()
                for t in threads:               # a run stuck outside the lockstep is left behind (a daemon)
                    t.join(self.timeout)
                raise
            for t in threads:
                t.join()
        return outcome

    def _doing(self, exclude: int | None = None) -> str:
        """What the lockstep waits on, in words (call with ``cv`` held)."""
        if self.serving:
            return f"the main thread is serving {self.serving}"
        out = sorted(i for i in self.live - set(self.pending) - set(self.taken) if i != exclude)
        calls = ", ".join(f"run {i}: {r.kind}" for i, r in sorted(self.pending.items()))
        return f"runs {out} have not reached their next batchable call; waiting: {calls or 'none'}"

    def _answer(self, req: Request, how: str, value) -> None:
        """Hand ``req``'s caller its answer (call with ``cv`` held)."""
        if self.taken.get(req.run) is req:
            del self.taken[req.run]
        req.answer = (how, value)
        req.done.set()

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

    def execute(self, batch: dict[int, Request]) -> None:
        """One round: group the taken calls by (kind, key, modes); send the plain ones back to
        their runs at once, compute each batched group and answer its runs."""
        self.rounds += 1
        groups: dict[tuple, list[int]] = {}
        for i in sorted(batch):
            req = batch[i]
            key = self._key(req)
            if key is None:
                groups[("plain", i)] = [i]
            else:
                groups.setdefault((req.kind, key, req.modes), []).append(i)
        together = [(k[0], ids) for k, ids in groups.items() if k[0] != "plain" and len(ids) > 1]
        self._plain([batch[i] for k, ids in groups.items() if k[0] == "plain" or len(ids) == 1 for i in ids])
        for kind, ids in together:
            reqs = [batch[i] for i in ids]
            impl = BATCHED[kind]
            with self.cv:
                self.serving = f"{kind} for runs {ids}"
            try:
                with reqs[0].modes.applied():
                    values = impl.run(reqs)
                if len(values) != len(reqs):
                    raise RuntimeError(f"{len(values)} results for {len(reqs)} calls")
            except Exception as e:              # noqa: BLE001 - it changed nothing: serve the calls one by one
                self._fell_back(kind, "batched path", e)
                values = None
            with self.cv:
                self.serving = ""
                if values is None:
                    self._plain(reqs)
                    continue
                self.batched[kind] += len(reqs)
                for r, v in zip(reqs, values, strict=True):
                    how = "error" if isinstance(v, BaseException) else ("finish" if impl.finish else "value")
                    self._answer(r, how, v)

    def _key(self, req: Request):
        impl = BATCHED.get(req.kind)
        if impl is None:
            return None
        try:
            return impl.key(req)
        except Exception as e:                  # noqa: BLE001 - a key that fails: the call is served alone
            self._fell_back(req.kind, "batching key", e)
            return None

    def _plain(self, reqs: list[Request]) -> None:
        """Send calls back to their runs, each to make its plain call in its own thread."""
        with self.cv:
            for r in reqs:
                self.direct[r.kind] += 1
                self._answer(r, "plain", None)

    def _fell_back(self, kind: str, what: str, e: Exception) -> None:
        if not self.fallbacks[kind]:
            warnings.warn(f"population: the {what} of {kind!r} failed ({type(e).__name__}: {e}); its calls are "
                          f"served one run at a time (warned once per kind and population)", RuntimeWarning,
                          stacklevel=3)
        self.fallbacks[kind] += 1


__all__ = ["SEAMS", "TICK", "TIMEOUT", "BATCHED", "Batched", "Modes", "Request", "Lockstep", "PopulationAborted",
           "PopulationTimeout", "batchable", "ticking", "tick", "register", "substituted", "in_population"]
