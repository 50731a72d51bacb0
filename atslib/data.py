"""Datasets as arrays: image npz files (QuickDraw or any file of the same schema).

Schema of an image npz (see ``data/build_quickdraw.py``): exactly ``x`` uint8 [N,H,W] (grey) or
[N,H,W,3] (colour), ``y`` int16 [N] class index, ``names`` str [C], ``split`` int8 [C]
(0 meta-train, 1 meta-val, 2 meta-test). ``load_images`` checks it and raises ``DataError``
naming what is wrong; every run records the file's sha256.

The same arrays may instead be a folder (written by ``python -m atslib data import``, see
``atslib.ingest.importers``): ``x.npy``, ``y.npy``, ``names.npy``, ``split.npy`` and ``manifest.json`` (the
sha256 of each array file). ``x.npy`` is memory-mapped, so a run reads only the images of the
episodes it draws; the run records the manifest's sha256 (the arrays are not re-hashed at each start).
"""
from __future__ import annotations

import hashlib
import mmap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError
from .paths import DATA_DIR, ROOT

DEFAULT_IMAGES = DATA_DIR / "quickdraw100.npz"
SPLITS = {"train": 0, "val": 1, "test": 2}


class DataError(ValueError):
    """A data file that is missing, truncated or of the wrong schema."""


def resolve(path: str | Path | None, default: Path = DEFAULT_IMAGES) -> Path:
    """Absolute path; relative paths are tried from the working directory, then the repo root."""
    if path is None:
        return default
    p = Path(path).expanduser()
    if not p.is_absolute() and not p.exists() and (ROOT / p).exists():
        p = ROOT / p
    return p.resolve()


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class ImageData:
    """Images as a uint8 tensor [N, C, H, W] with class labels and the class split."""

    x: torch.Tensor            # (N, C, H, W) uint8
    y: torch.Tensor            # (N,) int64
    names: list[str]           # (C,)
    split: np.ndarray          # (C,) int8
    path: Path
    sha256: str

    @property
    def n_classes(self) -> int:
        return len(self.names)

    def classes(self, split: str | int) -> np.ndarray:
        s = SPLITS.get(split, split)
        return np.flatnonzero(self.split == s)

    def rows_by_class(self) -> list[torch.Tensor]:
        """Row indices of each class (cached)."""
        if not hasattr(self, "_rows"):
            order = torch.argsort(self.y, stable=True)
            counts = torch.bincount(self.y, minlength=self.n_classes).tolist()
            self._rows = list(torch.split(order, counts))
        return self._rows

    def min_count(self, split: str | int) -> int:
        rows = self.rows_by_class()
        return min(len(rows[c]) for c in self.classes(split))


def read_npz(path: str | Path | None, default: Path = DEFAULT_IMAGES) -> tuple[Path, dict]:
    """(resolved path, {key: array}) of an npz; ``DataError`` if missing or unreadable."""
    p = resolve(path, default)
    if not p.is_file() and p == Path(default):
        raise DataError(f"--data {p}: no such file: the default data come with a clone of the repository "
                        f"(data/{p.name}), not with an installed package; allowed: --data PATH (a file of this "
                        f"schema, or python -m atslib data import), or ATSLIB_DATA_DIR=<clone>/data")
    if not p.is_file():
        raise DataError(f"--data {p}: no such file")
    try:
        with np.load(p, allow_pickle=False) as z:
            return p, {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataError(f"--data {p}: not a readable npz ({type(e).__name__}: {e}); is it truncated?") from None


FOLDER_FILES = ("x.npy", "y.npy", "names.npy", "split.npy", "manifest.json")


def read_folder(p: Path) -> dict:
    """The arrays of the folder form, ``x`` memory-mapped (copy-on-write: torch needs a writable array)."""
    missing = [f for f in FOLDER_FILES if not (p / f).is_file()]
    if missing:
        raise DataError(f"--data {p}: a folder without {', '.join(missing)}; an image folder (python -m atslib "
                        f"data import) holds {', '.join(FOLDER_FILES)}")
    try:
        arrays = {k: np.load(p / f"{k}.npy", mmap_mode="c" if k == "x" else None, allow_pickle=False)
                  for k in ("x", "y", "names", "split")}
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"--data {p}: an unreadable array ({type(e).__name__}: {e}); is it truncated?") from None
    m = getattr(arrays["x"], "_mmap", None)
    if m is not None and hasattr(mmap, "MADV_RANDOM"):
        m.madvise(mmap.MADV_RANDOM)      # episodes read scattered images: no read-ahead around each one
    return arrays


def load_images(path: str | Path | None = None) -> ImageData:
    """Load and validate an image npz or folder; raise ``DataError`` with a one-line reason."""
    p = resolve(path)
    folder = p.is_dir()
    p, arrays = (p, read_folder(p)) if folder else read_npz(p)
    expected = {"x", "y", "names", "split"}
    if set(arrays) != expected:
        raise DataError(f"--data {p}: keys {sorted(arrays)}; an image npz has exactly {sorted(expected)}")
    x, y, names, split = arrays["x"], arrays["y"], arrays["names"], arrays["split"]
    if x.dtype != np.uint8 or not (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] == 3)):
        raise DataError(f"--data {p}: x is {x.dtype} {list(x.shape)}; expected uint8 [N,H,W] or [N,H,W,3]")
    if y.dtype != np.int16 or y.shape != (x.shape[0],):
        raise DataError(f"--data {p}: y is {y.dtype} {list(y.shape)}; expected int16 [{x.shape[0]}]")
    if names.dtype.kind != "U" or names.ndim != 1:
        raise DataError(f"--data {p}: names is {names.dtype} {list(names.shape)}; expected str [C]")
    if split.dtype != np.int8 or split.shape != names.shape or not np.isin(split, (0, 1, 2)).all():
        raise DataError(f"--data {p}: split must be int8 [{len(names)}] with values 0, 1, 2")
    if y.size and (y.min() < 0 or y.max() >= len(names)):
        raise DataError(f"--data {p}: y has class indices outside [0, {len(names) - 1}]")
    xt = torch.from_numpy(x)
    if x.ndim == 3:
        xt = xt.unsqueeze(1)
    else:   # a view on a memory-mapped file (copying would read it all); episodes are made contiguous
        xt = xt.permute(0, 3, 1, 2) if folder else xt.permute(0, 3, 1, 2).contiguous()
    digest = sha256(p / "manifest.json") if folder else sha256(p)
    return ImageData(xt, torch.from_numpy(y.astype(np.int64)), [str(n) for n in names], split, p, digest)


def check_task_shape(data: ImageData, ways: int, shots: int, queries: int, budget: int | None) -> None:
    """Raise ``ConfigError`` when the episodes asked for cannot be drawn from ``data``."""
    for split in ("train", "val", "test"):
        n = len(data.classes(split))
        if ways > n:
            raise ConfigError(f"--ways {ways}: the {split} split of {data.path.name} has {n} classes; "
                              f"allowed: 2..{n}")
        need = shots + queries
        have = data.min_count(split)
        if need > have:
            raise ConfigError(f"--shots {shots} + --queries {queries} = {need}: the {split} split has "
                              f"{have} examples in its smallest class; allowed: shots + queries <= {have}")
    n_train = len(data.classes("train"))
    if budget is not None and not ways <= budget <= n_train:
        raise ConfigError(f"--budget-classes {budget}: allowed: {ways}..{n_train} (ways..meta-train classes)")
