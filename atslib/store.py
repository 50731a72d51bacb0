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

import io
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
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


def write_csv(path, df: pd.DataFrame) -> None:
    path = Path(path)
    buf = io.BytesIO()
    df.to_csv(buf, index=False, compression={"method": "gzip", "mtime": 0} if path.suffix == ".gz" else None)
    atomic_write(path, buf.getvalue())


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
