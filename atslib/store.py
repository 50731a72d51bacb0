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


class RunError(ValueError):
    """A run directory that cannot be used as asked (exists, missing, other version)."""


def atomic_write(path: str | Path, data: bytes | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
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
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunError(f"{run_dir}: not a run directory (no config.json)")
    meta = json.loads(path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise RunError(f"{run_dir}: run format {meta.get('format_version')!r}, this atslib reads format "
                       f"{FORMAT_VERSION}; re-run it with this version")
    return meta
