"""Sweeps on Ray (``sweep --executor ray``): connecting, checking resources, running each run as a
Ray task, sending checkpoints back to the driver, and the progress display.

Connecting follows Ray's own conventions:

- no ``--address``: a fresh local Ray (``address="local"``) that lives as long as the sweep; a Ray
  already running on the machine is never joined by accident;
- ``--address auto``: the cluster started on this machine with ``ray start``;
- ``--address HOST:PORT``: the cluster whose head listens there (the GCS port, 6379 by default);
  ``ray://HOST:10001`` connects through Ray Client (a driver outside the cluster).

Every failure to connect is one line (exit 2) within ``CONNECT_TIMEOUT`` seconds, never a hang. A
per-run resource request that no node can meet (``--num-cpus``, ``--num-gpus``) is refused at once.

No shared file system is needed and no work is lost: a worker that cannot see the driver's
``--out`` trains in a temporary folder and sends every checkpoint it writes (``checkpoint_every``
steps) to a small actor, the *board*, on the driver's node; the driver writes it under ``--out``.
A task retried after its node died resumes from the board's latest checkpoint; a sweep restarted
after its driver died sends each unfinished run's checkpoint from ``--out`` along with the task.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from ..config import Config
from .grid import GridError, RunSpec
from ..loop import Run
from ..population import group, train_population
from ..store import (
    BEST,
    CHECKPOINT,
    CHECKPOINT_FILES,
    INIT_FILES,
    RECORD_FILES,
    SUMMARY,
    RunError,
    atomic_write,
    load_torch,
)

# seconds: a cluster that does not answer by then is reported, not waited for (ATSLIB_RAY_CONNECT_TIMEOUT)
CONNECT_TIMEOUT = float(os.environ.get("ATSLIB_RAY_CONNECT_TIMEOUT", 30))
CALL_TIMEOUT = 60.0             # seconds: any single call to the board
POLL = 1.0                      # seconds between progress updates
MARKER = ".ray-sweep"           # written by the driver under --out: a worker that reads it shares the file system


class ClusterError(GridError):
    """Ray cannot run the sweep as asked (one line, exit 2)."""


# -- connecting --------------------------------------------------------------------------------
def parse_address(address: str | None) -> tuple[str, str | None, int | None]:
    """("local" | "auto" | "hostport" | "client", host, port)."""
    if address is None:
        return "local", None, None
    allowed = "allowed: auto, HOST:PORT (the head's GCS port, e.g. 10.0.0.5:6379), ray://HOST:10001, or no --address"
    a = address.strip()
    if a == "auto":
        return "auto", None, None
    if a == "local":
        return "local", None, None
    kind = "client" if a.startswith("ray://") else "hostport"
    rest = a[len("ray://"):] if kind == "client" else a
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"--address {address!r}: not HOST:PORT; {allowed}")
    return kind, host, int(port)


def _token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return Path(path).is_file()


def _reachable(host: str, port: int, timeout: float = 5.0) -> str | None:
    """None when something accepts TCP connections at host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.timeout:
        return f"no answer within {timeout:.0f} s"
    except OSError as e:
        return e.strerror or type(e).__name__


def _set_auth_mode(mode: str) -> None:
    """RAY_AUTH_MODE for this process (restored by Connection.close); Ray reads its config once, so it is
    refreshed too."""
    os.environ["RAY_AUTH_MODE"] = mode
    try:
        from ray._raylet import Config
        Config.initialize("")
    except (ImportError, AttributeError):      # another Ray version: the variable alone
        pass


class Connection:
    """A connected Ray: where it is and what it offers. ``close()`` shuts down what this sweep started."""

    def __init__(self, where: str, owned: bool, env_before: dict):
        self.where, self.owned, self._env_before = where, owned, env_before
        self.nodes = self.cpus = self.gpus = 0
        self.max_node_cpus = self.max_node_gpus = 0.0
        self.dashboard = None

    def refresh(self) -> None:
        import ray
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        res = [n.get("Resources", {}) for n in nodes]
        self.nodes = len(nodes)
        self.cpus = sum(r.get("CPU", 0) for r in res)
        self.gpus = sum(r.get("GPU", 0) for r in res)
        self.max_node_cpus = max((r.get("CPU", 0) for r in res), default=0)
        self.max_node_gpus = max((r.get("GPU", 0) for r in res), default=0)

    def describe(self) -> str:
        s = (f"ray: {self.where}: {self.nodes} node{'s' * (self.nodes != 1)}, {self.cpus:g} CPU{'s' * (self.cpus != 1)}"
             f", {self.gpus:g} GPU{'s' * (self.gpus != 1)}")
        return s + (f"; dashboard {self.dashboard}" if self.dashboard else "")

    def close(self) -> None:
        import ray
        if ray.is_initialized():
            ray.shutdown()
        _restore(self._env_before)                  # ray.init may set RAY_AUTH_MODE for this process


_PROBE = """
import json, logging, sys
import ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False, logging_level=logging.ERROR)
    print(json.dumps({"ok": True}))
except BaseException as e:
    print(json.dumps({"ok": False, "type": type(e).__name__, "text": (str(e).strip().splitlines() or [""])[0]}))
"""


def _probe(address: str, what: str, timeout: float, auth_mode: str | None) -> str:
    """Join the cluster from a child process first: Ray retries a silent or refusing cluster for minutes
    and prints a warning a second meanwhile. Returns "ok", or "auth" as soon as the cluster refuses the
    child's token (or its lack of one); raises ClusterError for anything else, and after ``timeout`` s."""
    import json
    import subprocess
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    if auth_mode is not None:
        env["RAY_AUTH_MODE"] = auth_mode
    p = subprocess.Popen([sys.executable, "-c", _PROBE, address], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(iter(p.stderr.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    refused = lambda: any("InvalidAuthToken" in ln or "Unauthenticated" in ln for ln in err)  # noqa: E731
    while p.poll() is None and time.monotonic() < deadline and not refused():
        time.sleep(0.1)
    if p.poll() is None:
        p.kill()
        p.wait(10)
        if refused():
            return "auth"
        raise ClusterError(f"{what}: no Ray answered within {timeout:.0f} s; allowed: the address `ray start --head` "
                           f"printed on the head node (HOST:6379), auto on a cluster node, or no --address")
    lines = [ln for ln in p.stdout.read().splitlines() if ln.startswith("{")]
    got = json.loads(lines[-1]) if lines else {"ok": False, "type": "exit", "text": f"exit code {p.returncode}"}
    if got["ok"]:
        return "ok"
    if got["type"] == "AuthenticationError" or refused():
        return "auth"
    raise ClusterError(f"{what}: Ray could not connect ({got['type']}: {got['text'][:200]}); allowed: a running Ray "
                       f"cluster's address (HOST:6379), auto, or no --address for a local Ray")


def _join_probe(address: str, what: str, timeout: float) -> None:
    """Find the auth mode that the cluster accepts. A driver in token mode works with a cluster
    without auth only in part (the cluster cannot call back, so actors die), so no token is tried
    first, then this machine's token if the cluster asks for one. RAY_AUTH_MODE set by the user is
    kept as it is."""
    t0 = time.monotonic()
    left = lambda: max(timeout - (time.monotonic() - t0), 1.0)  # noqa: E731
    if os.environ.get("RAY_AUTH_MODE") is not None:
        if _probe(address, what, left(), None) == "auth":
            raise ClusterError(_auth_message(what))
        return
    if _probe(address, what, left(), "disabled") == "ok":
        _set_auth_mode("disabled")
        return
    if not _token_available() or _probe(address, what, left(), "token") == "auth":
        raise ClusterError(_auth_message(what))
    _set_auth_mode("token")


def _auth_message(what: str) -> str:
    return (f"{what}: the cluster uses token auth and refused this driver (no token, or another one); allowed: "
            f"the head node's token (`ray get-auth-token` there) in ~/.ray/auth_token or RAY_AUTH_TOKEN, "
            f"with RAY_AUTH_MODE=token")


def _ray_init(kwargs: dict, what: str, timeout: float) -> dict:
    """ray.init in a thread, given up on after ``timeout`` s (Ray itself retries a silent GCS for minutes)."""
    import ray
    box: dict = {}
    if kwargs.get("address") == "local":
        # in this thread: Ray ties the processes it starts to the thread that starts them (parent-death
        # signal), and a local start cannot hang on an address
        timeout = None

    def go():
        try:
            box["ctx"] = ray.init(**kwargs)
        except BaseException as e:  # noqa: BLE001 - reported below as one line
            box["error"] = e

    if timeout is None:
        go()
    else:
        t = threading.Thread(target=go, name="atslib-ray-init", daemon=True)
        t.start()
        t.join(timeout)
    if "ctx" not in box and "error" not in box:
        raise ClusterError(f"{what}: no Ray answered within {timeout:.0f} s; allowed: the address `ray start "
                           f"--head` printed on the head node (HOST:6379), auto on a cluster node, or no --address")
    if "error" in box:
        e = box["error"]
        name = type(e).__name__
        text = (str(e).strip().splitlines() or [""])[0]
        if name == "AuthenticationError":
            raise ClusterError(_auth_message(what)) from None
        raise ClusterError(f"{what}: Ray could not connect ({name}: {text[:200]}); allowed: a running Ray "
                           f"cluster's address (HOST:6379), auto, or no --address for a local Ray") from None
    return box


def _restore(env: dict) -> None:
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def connect(address: str | None, timeout: float = CONNECT_TIMEOUT) -> Connection:
    """Start a fresh local Ray (no address) or join a cluster; one-line ClusterError on failure."""
    kind, host, port = parse_address(address)
    env_before = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE",)}
    try:
        return _connect(address, kind, host, port, timeout, env_before)
    except BaseException:
        _restore(env_before)
        raise


def _connect(address, kind, host, port, timeout, env_before) -> Connection:
    import logging

    import ray
    if ray.is_initialized():
        raise ClusterError("--executor ray: Ray is already initialized in this process; allowed: ray.shutdown() "
                           "first - the sweep starts or joins Ray itself (--address)")
    what = f"--address {address}" if address else "--executor ray (a local Ray)"
    kw = dict(log_to_driver=False, logging_level=logging.ERROR)
    if kind in ("hostport", "client"):
        why = _reachable(host, port)
        if why is not None:
            raise ClusterError(f"--address {address}: nothing answers at {host}:{port} ({why}); allowed: the address "
                               f"`ray start --head` printed on the head node (HOST:6379), auto on a cluster node, "
                               f"ray://HOST:10001 (Ray Client), or no --address for a local Ray")
    if kind == "local":
        kw.update(address="local", include_dashboard=False)
    else:
        # Ray turns token auth on for `ray start --head` once ~/.ray/auth_token exists, but sends the token
        # only for address auto; the probe finds what this cluster accepts
        kw.update(address=address.strip())
        t0 = time.monotonic()
        _join_probe(address.strip(), what, timeout)
        timeout = max(timeout - (time.monotonic() - t0), 10.0)
    box = _ray_init(kw, what, timeout)
    where = {"local": "a local Ray started for this sweep", "auto": "the Ray cluster on this machine (auto)"}.get(
        kind, f"the Ray cluster at {address}")
    conn = Connection(where, owned=kind == "local", env_before=env_before)
    conn.refresh()
    url = getattr(box.get("ctx"), "dashboard_url", None)
    conn.dashboard = (url if not url or url.startswith("http") else f"http://{url}") or None
    return conn


def check_resources(conn: Connection, num_cpus: float, num_gpus: float) -> None:
    """A run asking for more than any node has would wait forever: refuse it now."""
    if num_cpus > conn.max_node_cpus:
        raise ClusterError(f"--num-cpus {num_cpus:g}: no node of {conn.where} has {num_cpus:g} CPUs (the largest has "
                           f"{conn.max_node_cpus:g}); allowed: at most {conn.max_node_cpus:g}")
    if num_gpus > conn.max_node_gpus:
        raise ClusterError(f"--num-gpus {num_gpus:g}: no node of {conn.where} has {num_gpus:g} GPUs (the largest has "
                           f"{conn.max_node_gpus:g}); allowed: at most {conn.max_node_gpus:g}")


def precheck_local(num_cpus: float) -> None:
    """Before starting a local Ray (seconds): a request for more CPUs than this machine has."""
    try:
        have = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        have = os.cpu_count() or 1
    if num_cpus > have:
        raise ClusterError(f"--num-cpus {num_cpus:g}: the local Ray has {have} CPUs; allowed: at most {have}, or "
                           f"--address for a larger cluster")


# -- the board: progress and the latest checkpoint of every running run --------------------------
class Board:
    """A Ray actor (0 CPUs, on the driver's node). Workers report starts, steps and checkpoints; the
    driver polls it. Holds one checkpoint per running run."""

    def __init__(self):
        self.running: dict = {}      # run -> {"step", "steps", "node", "since"}
        self.ckpt: dict = {}         # run -> (version, step, files)
        self.events: list = []
        self.version = 0
        self.training: set = set()   # runs whose task is training now (for the most at once)
        self.peak = 0

    def started(self, run: str, step: int, steps: int, node: str, attempt_from: str) -> None:
        self.running[run] = {"step": step, "steps": steps, "node": node, "since": time.time()}
        self.events.append({"run": run, "event": "started", "step": step, "node": node, "from": attempt_from})
        self.training.add(run)
        self.peak = max(self.peak, len(self.training))

    def ended(self, run: str) -> None:
        """A task's training ended (finished or raised): counted out of the runs at once."""
        self.training.discard(run)

    def step(self, run: str, step: int) -> None:
        if run in self.running:
            self.running[run]["step"] = step

    def checkpoint(self, run: str, step: int, files: dict) -> None:
        self.version += 1
        self.ckpt[run] = (self.version, step, files)

    def latest(self, run: str):
        got = self.ckpt.get(run)
        return None if got is None else (got[1], got[2])

    def finished(self, run: str) -> None:
        self.running.pop(run, None)
        self.ckpt.pop(run, None)

    def poll(self, seen: int, first_event: int) -> dict:
        return {"running": dict(self.running), "events": self.events[first_event:],
                "ckpt": {r: v for r, v in self.ckpt.items() if v[0] > seen}, "version": self.version,
                "peak": self.peak}


# -- one run (a Ray task) ---------------------------------------------------------------------
def _write_files(folder: Path, files: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f, data in files.items():
        atomic_write(folder / f, data)


def _shared(out: str, marker: str | None) -> bool:
    """Whether this worker sees the driver's --out (the marker the driver wrote there reads back)."""
    m = Path(out).parent.parent / MARKER
    return bool(marker) and m.is_file() and m.read_text().strip() == marker


def _place(name: str, config: dict, target: Path, init_files: dict, ckpt: tuple | None, board) -> str:
    """Prepare a run's folder on a worker without the driver's file system: its --init start at the
    path the config names, and the newest checkpoint it is given (the board's, from an earlier
    attempt in this sweep, or the driver's ``ckpt`` from --out); returns where that came from."""
    import ray

    init = config.get("init")
    if init and not (Path(init) / BEST).is_file():
        _write_files(Path(init), init_files)
    try:
        latest = ray.get(board.latest.remote(name), timeout=CALL_TIMEOUT)
    except (ray.exceptions.RayError, TimeoutError):     # a board restarted with its node: the driver's copy
        latest = None
    best, source = None, "step 0"
    for got, where in ((ckpt, "the driver's --out"), (latest, "the board")):
        if got is not None and (best is None or got[0] > best[0]):
            best, source = got, where
    if best is not None:
        _write_files(target, best[1])
    return source


def _watch(name: str, run: Run, target: Path, shared: bool, board, node: str, source: str) -> list:
    """Tell the board the run started; return its progress callback; without the driver's file
    system, send every checkpoint the run writes to the board too."""
    import ray

    board.started.remote(name, run.step, run.cfg.steps, node, source)
    last = [0.0]

    def progress(rec, r):
        now = time.monotonic()
        if now - last[0] > POLL / 2:
            last[0] = now
            board.step.remote(name, r.step)

    def ship(r):                       # every checkpoint written here is sent to the driver too
        files = {f: (target / f).read_bytes() for f in CHECKPOINT_FILES if (target / f).is_file()}
        try:
            ray.get(board.checkpoint.remote(name, r.step, files), timeout=CALL_TIMEOUT)
        except (ray.exceptions.RayError, TimeoutError):  # the next checkpoint goes instead
            pass

    if not shared:
        run.after_checkpoint.append(ship)
    return [progress]


def _records(target: Path) -> dict:
    return {f: (target / f).read_bytes() for f in RECORD_FILES if (target / f).is_file()}


@contextlib.contextmanager
def _workdir(cwd: str, shared: bool):
    """The driver's folder when shared, else a temporary one removed afterwards."""
    tmp = None if shared else tempfile.mkdtemp(prefix="atslib-ray-")
    os.chdir(cwd if shared else tmp)
    try:
        yield tmp
    finally:
        if tmp is not None:
            os.chdir(cwd if Path(cwd).is_dir() else tempfile.gettempdir())
            shutil.rmtree(tmp, ignore_errors=True)


def ray_task(name: str, config: dict, out: str, cwd: str, marker: str | None, init_files: dict,
             ckpt: tuple | None, board) -> dict:
    """Train (or resume) one run on a Ray worker. With the driver's file system (``marker`` readable)
    it works in place; else in a temporary folder, resuming from the newest checkpoint it is given
    (the board's, from an earlier attempt in this sweep, or the driver's ``ckpt`` from --out), and
    sends each checkpoint it writes to the board."""
    import ray

    os.environ.setdefault("TQDM_DISABLE", "1")
    node = ray.get_runtime_context().get_node_id()
    shared = _shared(out, marker)
    with _workdir(cwd, shared) as tmp:
        target = Path(out) if shared else Path(tmp) / "run"
        source = "its folder" if shared else _place(name, config, target, init_files, ckpt, board)
        run = Run(Config.from_dict(config), target, resume=True)
        callbacks = _watch(name, run, target, shared, board, node, source)
        try:
            run.train(callbacks)
        finally:
            board.ended.remote(name)
        return {"summary": run.summary, "files": _records(target)}


def ray_population_task(items: list[dict], cwd: str, marker: str | None, board) -> list[dict]:
    """Train (or resume) compatible runs as one population on a Ray worker (``items``: per run its
    name, config, out, init_files and ckpt, as for ``ray_task``); per run {"summary", "files"} or
    {"error"}. A run that fails stops alone; a worker that dies retries the task, and each run
    resumes from its newest checkpoint."""
    import ray

    os.environ.setdefault("TQDM_DISABLE", "1")
    node = ray.get_runtime_context().get_node_id()
    shared = _shared(items[0]["out"], marker)
    with _workdir(cwd, shared) as tmp:
        targets, sources = [], []
        for i, it in enumerate(items):
            target = Path(it["out"]) if shared else Path(tmp) / f"run{i}"
            targets.append(target)
            sources.append("its folder" if shared else _place(it["name"], it["config"], target, it["init_files"],
                                                              it["ckpt"], board))

        def prepare(i, run):
            return _watch(items[i]["name"], run, targets[i], shared, board, node, sources[i])

        try:
            members = train_population([Config.from_dict(it["config"]) for it in items], targets, resume=True,
                                       prepare=prepare)
        finally:
            for it in items:
                board.ended.remote(it["name"])
        return [{"summary": m.run.summary, "files": _records(t)} if m.ok else {"error": _task_error(m.error)}
                for m, t in zip(members, targets)]


def _task_error(e: BaseException) -> str:
    """The run's own error (``RunError: ...``), not Ray's wrapper around it (``RayTaskError(RunError):
    ray::ray_task() (pid=..)``)."""
    cause = getattr(e, "cause", None)
    err = cause if isinstance(cause, BaseException) else e
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"


def _driver_files(spec: RunSpec, names) -> dict:
    return {f: (spec.dir / f).read_bytes() for f in names if (spec.dir / f).is_file()}


def _init_files(config: dict) -> dict:
    init = config.get("init")
    if not init:
        return {}
    return {f: (Path(init) / f).read_bytes() for f in INIT_FILES if (Path(init) / f).is_file()}


def _driver_checkpoint(spec: RunSpec):
    if not (spec.dir / CHECKPOINT).is_file():
        return None
    try:
        step = int(load_torch(spec.dir / CHECKPOINT)["step"])
    except (RunError, KeyError, TypeError, ValueError):      # unreadable: the run starts again
        return None
    return step, _driver_files(spec, CHECKPOINT_FILES)


# -- the executor --------------------------------------------------------------------------------
def open_cluster(address: str | None, num_cpus: float, num_gpus: float) -> Connection:
    """Connect and check that a run fits on some node; one-line ClusterError (exit 2) otherwise."""
    parse_address(address)
    if address is None:
        precheck_local(num_cpus)
    conn = connect(address)
    try:
        check_resources(conn, num_cpus, num_gpus)
    except ClusterError:
        conn.close()
        raise
    return conn


def run_ray(conn: Connection, todo: list[RunSpec], out: Path, done, bar, *, workers=None, num_cpus=1, num_gpus=0,
            shared_fs=True, say=None, label="sweep", populations: bool = False) -> None:
    """Run ``todo`` as Ray tasks; ``done(spec, result)`` / ``done(spec, error=...)`` as each ends.
    ``workers``: at most this many tasks at once (None: as many as the cluster's resources allow).
    ``populations``: one task per population of compatible runs (``atslib.population``), each
    task with ``num_cpus``/``num_gpus``, instead of one task per run."""
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    marker_path = out / MARKER
    try:
        groups = ([[todo[i] for i in ids] for ids in group([Config.from_dict(s.config) for s in todo])]
                  if populations else [[s] for s in todo])
        fit = int(min(conn.cpus // num_cpus if num_cpus else len(groups) or 1,
                      conn.gpus // num_gpus if num_gpus else len(groups) or 1)) or 1
        cap = min(workers or fit, max(len(groups), 1))
        unit = f"population ({len(todo)} runs in {len(groups)})" if populations else "run"
        say(f"{conn.describe()}; each {unit} {num_cpus:g} CPU{'s' * (num_cpus != 1)}"
            f"{f', {num_gpus:g} GPU' if num_gpus else ''}: up to {cap} at once"
            f"{' (--workers)' if workers else ''}")
        if not todo:
            return
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        marker = None
        if shared_fs:
            marker = uuid.uuid4().hex
            atomic_write(marker_path, marker + "\n")
        # the board lives on the head node (the cluster ends with it anyway), else on the driver's
        heads = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and "node:__internal_head__" in n["Resources"]]
        home = heads[0] if heads else ray.get_runtime_context().get_node_id()
        board = ray.remote(num_cpus=0, max_restarts=3, max_task_retries=3)(Board).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(home, soft=not heads)).remote()
        task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=3)(ray_task)
        pop_task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=3)(ray_population_task)
        cwd = os.getcwd()
        queue, refs = list(groups), {}

        def submit():
            while queue and len(refs) < cap:
                g = queue.pop(0)
                items = [dict(name=s.name, config=s.config, out=str(s.dir.resolve()), init_files=_init_files(s.config),
                              ckpt=_driver_checkpoint(s)) for s in g]        # for a worker that cannot see --out
                if populations:
                    ref = pop_task.remote(items, cwd, marker, board)
                else:
                    it = items[0]
                    ref = task.remote(it["name"], it["config"], it["out"], cwd, marker, it["init_files"], it["ckpt"],
                                      board)
                refs[ref] = g

        by_name = {s.name: s for s in todo}
        seen, n_events, peak, finished = 0, 0, 0, 0
        base = bar.n if bar is not None else 0
        submit()

        def sync():
            nonlocal seen, n_events, peak
            try:
                state = ray.get(board.poll.remote(seen, n_events), timeout=CALL_TIMEOUT)
            except (ray.exceptions.RayError, TimeoutError) as e:  # its node died: it restarts elsewhere
                say(f"{label}: progress board unavailable ({type(e).__name__}); retrying")
                return {}
            if state["version"] < seen:                          # a restarted board counts from 0 again
                seen, n_events = 0, 0
                return {}
            for run, (version, step, files) in sorted(state["ckpt"].items(), key=lambda kv: kv[1][0]):
                if run in by_name and not (by_name[run].dir / SUMMARY).is_file():
                    _write_files(by_name[run].dir, files)
            seen = state["version"]
            n_events += len(state["events"])
            for ev in state["events"]:
                if ev["step"] > 0:
                    say(f"{label}: run {ev['run']} resumed at step {ev['step']} (checkpoint from {ev['from']}) on "
                        f"node {ev['node'][:8]}")
            running = state["running"]
            peak = max(peak, state.get("peak", 0))
            return running

        def show(running: dict) -> None:
            if bar is None:
                return
            live = {s.name for g in refs.values() for s in g}
            running = {r: v for r, v in running.items() if r in live}
            frac = sum(min(1.0, v["step"] / max(v["steps"], 1)) for v in running.values())
            bar.n = round(base + finished + frac, 2)
            # tasks submitted, not training yet: those the cluster has room for are starting (a worker
            # imports torch), the others wait for resources (other jobs on the cluster are not counted)
            not_started = sum(not any(s.name in running for s in g) for g in refs.values())
            starting = min(not_started, max(fit - (len(refs) - not_started), 0))
            items = ", ".join(f"{r} {v['step']}/{v['steps']}" for r, v in sorted(running.items())[:4])
            parts = [f"running {len(running)}" + (f" [{items}{' ...' if len(running) > 4 else ''}]" if items else "")]
            if starting:
                parts.append(f"starting {starting}")
            if not_started > starting:
                parts.append(f"waiting for resources {not_started - starting}")
            if queue:
                parts.append(f"queued {len(queue)}")
            bar.set_postfix_str(", ".join(parts), refresh=True)

        last, running = 0.0, {}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL)
            if ready or time.monotonic() - last >= POLL:
                last = time.monotonic()
                running = sync()
            for ref in ready:
                g = refs.pop(ref)
                try:
                    result = ray.get(ref, timeout=CALL_TIMEOUT)
                    results = result if populations else [result]
                except Exception as e:  # noqa: BLE001 - one failed run must not stop the sweep
                    results = [{"error": _task_error(e)}] * len(g)
                for s, r in zip(g, results):
                    if bar is not None:
                        bar.n = base + finished          # done() counts the run itself
                    if "error" in r:
                        done(s, error=r["error"])
                    else:
                        done(s, r)
                    board.finished.remote(s.name)
                    finished += 1
                submit()
            show(running)
        try:
            sync()                                         # the last count of runs at once
        except Exception:  # noqa: BLE001 - a count is not worth failing a finished sweep for
            pass
        say(f"{label}: at most {peak} run{'s' * (peak != 1)} ran at once")
    finally:
        marker_path.unlink(missing_ok=True)

