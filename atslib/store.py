"""Run directories on disk: atomic writes, checkpoints, the format version.

A run directory holds ``config.json`` (the config plus data sha256 and versions), ``history.csv``
(scalars per step), ``summary.json``, ``test_scores.csv`` (one row per meta-test task),
``pool.csv.gz`` (every k-th pool: probability, factors, drawn, ``noisy`` and the task ``kind``),
``checkpoint.pt``
(everything needed to resume) and ``best.pt`` (the meta-parameters chosen on validation).
In the records, ``noisy`` (and ``noisy_mass``, ``clean_share``, ``pool_noisy``, ``auc``,
``noise_auc``) counts the *bad* tasks: label-noisy ones, and on images also shifted-domain ones
(``--ood-ratio``); hard-but-clean tasks count as clean. ``kind`` (0 ordinary, 1 noisy, 2 hard,
3 shifted) tells them apart.
Every file is written to a temporary name and renamed, so a crash never leaves half a file.
Checkpoints are read with ``torch.load(weights_only=True)``. ``runs.load_run`` reads a whole run.

The constants below (``CONFIG``, ``HISTORY``, ...) are the one place that names these files; the
rest of the package (core and wings) uses them. ``START_VAL_KEYS`` / ``START_TEST_KEYS`` name the
settings on which a starting model's validation / test depend. Code that exists only to read runs
that older atslib versions wrote is gathered at the end of this module ("legacy").
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

FORMAT_VERSION = 1

# -- the files of a run directory ------------------------------------------------------------------
CONFIG = "config.json"                    # the config, data path and sha256, versions, format version
HISTORY = "history.csv"                   # one row of scalars per step
POOLS = "pool.csv.gz"                     # every pool_log_every-th pool: probability, factors, drawn, noisy, kind
SUMMARY = "summary.json"                  # the finished run's summary; written last: a run with one is done
TEST_SCORES = "test_scores.csv"           # one row per meta-test task
TEST_SCORES_HARD = "test_scores_hard.csv"  # one row per hard meta-test task (image runs with hard_ratio > 0)
CHECKPOINT = "checkpoint.pt"              # everything needed to resume
BEST = "best.pt"                          # the meta-parameters chosen on validation, and their step
START_VAL = "start_val.json"              # in an --init run's directory: its start's validation scores (a cache)
FAILED = "FAILED"                         # written by a sweep: the error of the run's last attempt, until one succeeds
REUSED_FROM = "REUSED_FROM"               # written by a sweep: the finished run of another grid whose records it copied

RECORD_FILES = (CONFIG, HISTORY, TEST_SCORES, POOLS, BEST, SUMMARY)   # a finished run's records, SUMMARY last
CHECKPOINT_FILES = (CONFIG, CHECKPOINT, HISTORY, POOLS)                # what a run resumes from
INIT_FILES = (CONFIG, BEST)                                            # what --init reads of its start

# -- the settings a starting model's scores depend on ---------------------------------------------
# The validation of a starting model (step 0, ``loop.start_validation``) depends on these settings
# and the data's sha256: runs that agree on them share it (the key of START_VAL).
START_VAL_KEYS = ("ways", "shots", "queries", "n_val_tasks", "test_seed", "test_inner_steps", "inner_lr", "inner",
                  "dataset", "max_support", "max_query")
# Its test depends on these and the number of meta-test tasks (``study.reproduction.with_start_candidate``,
# which reuses an --init run's validation *and* test).
START_TEST_KEYS = START_VAL_KEYS + ("n_test_tasks",)


class RunError(ValueError):
    """A run directory that cannot be used as asked (exists, missing, other version)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write ``path`` whole or not at all (a temporary file, then a rename), readable as any file the
    user creates (mkstemp's owner-only mode would hide runs from colleagues on a shared disk)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def write_json(path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_rows(path, rows: list[dict]) -> None:
    """A CSV table from ``rows`` (dicts; the columns in order of first appearance, a missing or NaN
    cell empty, floats as their shortest round-trip repr), gzip-compressed with mtime 0 when
    ``path`` ends in ``.gz``. Read back with any CSV reader (``runs.load_run``: pandas)."""
    path = Path(path)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in columns])
    data = buf.getvalue().encode()
    if path.suffix == ".gz":
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as g:
            g.write(data)
        data = out.getvalue()
    atomic_write(path, data)


def read_columns(path) -> dict[str, np.ndarray]:
    """A table ``write_rows`` wrote, as {column: numpy array} (bool where every cell is True/False;
    float where every non-empty cell is a number, empty cells NaN; strings otherwise): the reader of
    a run's tables without pandas."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    rows = list(csv.reader(io.StringIO(raw.decode(), newline="")))
    if not rows:
        return {}
    out = {}
    for j, name in enumerate(rows[0]):
        cells = [r[j] if j < len(r) else "" for r in rows[1:]]
        if cells and all(c in ("True", "False") for c in cells):
            out[name] = np.array([c == "True" for c in cells])          # a flag column, as pandas reads it
            continue
        try:
            out[name] = np.array([float(c) if c != "" else math.nan for c in cells])
        except ValueError:
            out[name] = np.array(cells, dtype=object)
    return out


def rows_of(columns: dict) -> list[dict]:
    """Rows from equal-length columns (``{name: sequence}``)."""
    names = list(columns)
    return [dict(zip(names, vals)) for vals in zip(*(list(columns[n]) for n in names))]


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, torch.Tensor):
        v = v.item()
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))
    return str(v)


def save_torch(path, obj) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue())


def load_torch(path, map_location="cpu"):
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise RunError(f"{path}: no such checkpoint") from None
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is one clear error
        raise RunError(f"{path}: unreadable checkpoint ({type(e).__name__}); was it written by another "
                       f"atslib version or cut short?") from None


def check_version(run_dir: Path) -> dict:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunError(f"{run_dir}: not a run directory (no {CONFIG})")
    meta = json.loads(path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise RunError(f"{run_dir}: run format {meta.get('format_version')!r}, this atslib reads format "
                       f"{FORMAT_VERSION}; re-run it with this version")
    return meta


# -- legacy: reading runs that older atslib versions wrote ------------------------------------------
# Every run directory in results/ is format 1, but runs written before 2026-11-30 (a3a0d33, the
# numeric safeguards and the starting model as a checkpoint candidate) and before ``pools`` was
# renamed ``max_pools`` lack fields and keys that this version writes. Only ``Config.from_saved``
# and ``loop.Run``'s resume read through these; nothing writes them. Kept where they are, as they
# belong to their readers: ``scheduler.TaskScheduler.load_state_dict`` (a state without "bound",
# public API beyond run directories) and ``study.reproduction`` (``with_start_candidate``, the
# exact after-the-fact correction of runs that predate ``validate_start``; a ``summary.csv`` without
# ``start_val``).

# Values that runs saved before an option existed actually ran with (see ``Config.from_saved``).
LEGACY = {"lookahead_max_norm": 0.0, "adv_clip": 0.0, "adv_reject": 0.0, "reweight_update": "all",
          "validate_start": False}

# Fields renamed since runs were saved: old name -> new name (read by ``Config.from_saved``).
RENAMED = {"pools": "max_pools"}


def upgrade_config(d: dict) -> dict:
    """A saved config dict (``config.json``'s "config") with the fields of this version: renamed
    fields under their new names, an option the run predates at the value it then had (``LEGACY``);
    any other missing field takes its default in ``Config``."""
    d = {RENAMED.get(k, k): v for k, v in d.items()}
    return {**{k: v for k, v in LEGACY.items() if k not in d}, **d}


def upgrade_checkpoint(ck: dict) -> dict:
    """A ``checkpoint.pt`` as this version writes it: checkpoints written before the starting model
    was validated (2026-11-30) have no ``start_val`` (None: the start was no candidate). (An ATS
    method state without the advantage bound is read by ``scheduler.TaskScheduler`` itself: that
    state dict is public API beyond run directories.)"""
    return {"start_val": None, **ck}
