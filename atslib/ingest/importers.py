"""Your own data: the few-shot image datasets people already have on disk, imported offline.

``python -m atslib data import SRC --out PATH [--format NAME]`` reads one of the layouts below and
writes the project's image contract (``atslib.data``): ``PATH.npz``, or, when PATH does not end in
``.npz``, the memory-mapped folder form (``x.npy`` uncompressed, read lazily, so a training run
touches only the episodes it draws). ``--data PATH`` then trains on it. Nothing is downloaded.

Layouts (``LAYOUTS``; detected from the files when ``--format`` is omitted):

- ``l2l-mini``: learn2learn's ``mini-imagenet-cache-{train,validation,test}.pkl``, each a dict of
  ``image_data`` uint8 [N,84,84,3] and ``class_dict`` {wnid: [rows]};
- ``ravi-mini``: Ravi & Larochelle's ``{train,val,test}.csv`` (``filename,label``) with an ``images/``
  folder of JPEGs, resized to 84 px when they are not;
- ``rfs-mini``: MetaOptNet/RFS's ``miniImageNet_category_split_{train_phase_train,val,test}.pickle``,
  dicts of ``data``, ``labels`` and ``catname2label`` (Python-2 pickles);
- ``ats-mini``: the ATS authors' ``mini_imagenet_{train,val,test}.pkl``, uint8 [C,600,84,84,3];
- ``tiered``: ``{split}_images_png.pkl`` (PNG bytes per image) or ``{split}_images.npz`` (``images``)
  with ``{split}_labels.pkl`` (``label_specific``, optionally ``label_specific_str``);
- ``omniglot``: ``images_background/`` and ``images_evaluation/`` as ``<Alphabet>/character<NN>/*.png``,
  strokes made bright on dark (as QuickDraw) and resized to 28 px. Split ``lake`` (default): the
  background alphabets train; the evaluation alphabets, sorted by name, go to validation (the first
  half, rounded up) and test (the rest); with one evaluation alphabet its characters are halved.
  Split ``vinyals``: all characters in sorted order, the first round(n·1200/1623) train, the next
  round(n·100/1623) validate, the rest test (1200/100/323 on the full set). Rotations are not added;
- ``cifar-fs``: ``data/<class>/*.png`` with ``splits/bertinetto/{train,val,test}.txt``, or
  MetaOptNet's ``CIFAR_FS_{train,val,test}.pickle``; ``fc100``: ``FC100_{train,val,test}.pickle``.

Every pickle goes through ``atslib.ingest.safepickle`` (no code runs). Bad input raises ``DataError`` with
one line; the output appears only when the import has succeeded.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import safepickle
from ..data import DataError, sha256

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class ClassImages:
    """One class of one split: its name, how many images, and how to read them (uint8 [n,H,W(,3)])."""

    split: int
    name: str
    count: int
    read: Callable[[], np.ndarray]
    origin: str = ""            # the file or folder it comes from, for messages


@dataclass
class Layout:
    name: str
    signature: tuple[str, ...]          # paths (relative to SRC) whose presence identifies the layout
    read: Callable[..., list[ClassImages]]
    where: str                          # where people usually get the files


def _text(k) -> str:
    """A name from a pickle: Python 2 strings may arrive as bytes."""
    return k.decode() if isinstance(k, bytes) else str(k)


def _has(d: dict, key: str) -> bool:
    return key in d or key.encode() in d


def _key(d: dict, key: str):
    """d[key], for dicts written by Python 2 (bytes keys) or 3."""
    if key in d:
        return d[key]
    if key.encode() in d:
        return d[key.encode()]
    raise KeyError(key)


def _dict(obj, path: Path, keys: tuple[str, ...]) -> dict:
    if not isinstance(obj, dict):
        raise DataError(f"{path}: holds a {type(obj).__name__}; this layout expects a dict with {', '.join(keys)}")
    missing = [k for k in keys if not _has(obj, k)]
    if missing:
        have = sorted(_text(k) for k in obj)
        raise DataError(f"{path}: keys {have}; this layout expects {', '.join(keys)} (missing {', '.join(missing)})")
    return obj


def _images(a, path: Path, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8 or a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[-1] != 3):
        raise DataError(f"{path}: {what} is {a.dtype} {list(a.shape)}; expected uint8 [N,H,W,3] or [N,H,W]")
    return a


def _need(src: Path, name: str, layout: str) -> Path:
    p = src / name
    if not p.exists():
        raise DataError(f"{p}: no such file; the {layout} layout needs it ({LAYOUTS[layout].where}). "
                        f"Nothing is downloaded: copy it there")
    return p


def _by_label(split: int, labels: np.ndarray, images: np.ndarray, names: dict, origin: str) -> list[ClassImages]:
    labels = np.asarray(labels).astype(np.int64).ravel()
    if len(labels) != len(images):
        raise DataError(f"{origin}: {len(labels)} labels for {len(images)} images")
    out = []
    for lab in np.unique(labels):
        rows = np.flatnonzero(labels == lab)
        out.append(ClassImages(split, str(names.get(int(lab), f"class{int(lab)}")), len(rows),
                               lambda rows=rows: np.ascontiguousarray(images[rows]), origin))
    return out


# ---------------------------------------------------------------- miniImageNet

def read_l2l(src: Path, **_) -> list[ClassImages]:
    out = []
    for s, part in enumerate(("train", "validation", "test")):
        p = _need(src, f"mini-imagenet-cache-{part}.pkl", "l2l-mini")
        d = _dict(safepickle.load(p), p, ("image_data", "class_dict"))
        images = _images(_key(d, "image_data"), p, "image_data")
        for wnid, rows in sorted(_key(d, "class_dict").items(), key=lambda kv: str(kv[0])):
            rows = np.asarray(rows, dtype=np.int64)
            if rows.size and (rows.min() < 0 or rows.max() >= len(images)):
                raise DataError(f"{p}: class_dict[{wnid!r}] has rows outside [0, {len(images) - 1}]")
            out.append(ClassImages(s, _text(wnid), len(rows), lambda rows=rows, images=images: images[rows], str(p)))
    return out


def _pil():
    """pillow, or the one line that says how to get it."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError("this layout stores JPEG/PNG images, which need pillow; allowed: "
                        "pip install 'atslib[ingest]' (or pip install pillow)") from None
    return Image, UnidentifiedImageError


def _open_image(path: Path, size: int | None, grey: bool) -> np.ndarray:
    Image, UnidentifiedImageError = _pil()
    try:
        with Image.open(path) as im:
            im = im.convert("L" if grey else "RGB")
            if size and im.size != (size, size):
                im = im.resize((size, size), Image.LANCZOS)
            return np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None


def _decode(blob, origin: str, grey: bool = False) -> np.ndarray:
    Image, UnidentifiedImageError = _pil()
    data = blob.tobytes() if isinstance(blob, np.ndarray) else bytes(blob)
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("L" if grey else "RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{origin}: an image that does not decode ({e})") from None


def _stack(arrays: list[np.ndarray], origin: str) -> np.ndarray:
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise DataError(f"{origin}: images of mixed sizes {', '.join('x'.join(map(str, s)) for s in shapes[:3])}; "
                        f"one size is allowed per dataset (this layout is not resized)")
    return np.stack(arrays)


def read_ravi(src: Path, size: int | None = None, **_) -> list[ClassImages]:
    size = size or 84
    folder = _need(src, "images", "ravi-mini")
    out = []
    for s, part in enumerate(SPLIT_NAMES):
        p = _need(src, f"{part}.csv", "ravi-mini")
        with open(p, newline="") as f:
            rows = list(csv.reader(f))
        if not rows or [c.strip() for c in rows[0][:2]] != ["filename", "label"]:
            raise DataError(f"{p}: the first line is {rows[0] if rows else 'empty'}; expected the header filename,label")
        classes: dict[str, list[str]] = {}
        for i, r in enumerate(rows[1:], start=2):
            if len(r) < 2:
                raise DataError(f"{p}: line {i} is {r}; expected filename,label")
            classes.setdefault(r[1].strip(), []).append(r[0].strip())
        for label in sorted(classes):
            files = classes[label]
            out.append(ClassImages(s, label, len(files), lambda files=files: np.stack(
                [_open_image(folder / fn, size, False) for fn in files]), str(p)))
    return out


def read_rfs(src: Path, **_) -> list[ClassImages]:
    out = []
    for s, part in enumerate(("train_phase_train", "val", "test")):
        p = _need(src, f"miniImageNet_category_split_{part}.pickle", "rfs-mini")
        d = _dict(safepickle.load(p), p, ("data", "labels"))
        names = {int(v): _text(k) for k, v in _key(d, "catname2label").items()} if _has(d, "catname2label") else {}
        out += _by_label(s, _key(d, "labels"), _images(_key(d, "data"), p, "data"), names, str(p))
    return out


def _array_file(p: Path, what: str) -> np.ndarray:
    """An ndarray from a pickle, or memory-mapped when the file is really an .npy."""
    safepickle.sniff(p)
    with open(p, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        try:
            return np.load(p, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise DataError(f"{p}: not a readable .npy ({e})") from None
    return np.asarray(safepickle.load(p))


def read_ats(src: Path, **_) -> list[ClassImages]:
    out = []
    for s, part in enumerate(SPLIT_NAMES):
        p = _need(src, f"mini_imagenet_{part}.pkl", "ats-mini")
        a = _array_file(p, "images")
        if a.dtype != np.uint8 or a.ndim != 5 or a.shape[-1] != 3:
            raise DataError(f"{p}: an array {a.dtype} {list(a.shape)}; expected uint8 [C,600,84,84,3]")
        for c in range(a.shape[0]):       # the file has no class names: they are numbered per split
            out.append(ClassImages(s, f"{part}-{c:03d}", a.shape[1], lambda c=c, a=a: np.asarray(a[c]), str(p)))
    return out


# ---------------------------------------------------------------- tieredImageNet

def _npz_member(p: Path, member: str) -> np.ndarray:
    """One array of an npz, memory-mapped when it is stored uncompressed (np.savez), else read."""
    try:
        with zipfile.ZipFile(p) as z:
            info = z.getinfo(member + ".npy")
    except KeyError:
        raise DataError(f"{p}: has no array {member!r}") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{p}: not a readable npz ({e}); is it truncated?") from None
    if info.compress_type == zipfile.ZIP_STORED:
        with open(p, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            f.seek(start)
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
        if dtype.hasobject:
            raise DataError(f"{p}: {member} holds Python objects; expected uint8 images")
        return np.memmap(p, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    with np.load(p, allow_pickle=False) as z:
        return z[member]


class _Decoded:
    """PNG blobs that decode only the rows asked for."""

    def __init__(self, blobs, origin: str):
        self.blobs, self.origin = blobs, origin

    def __len__(self):
        return len(self.blobs)

    def __getitem__(self, rows):
        return _stack([_decode(self.blobs[int(r)], self.origin) for r in rows], self.origin)


def read_tiered(src: Path, **_) -> list[ClassImages]:
    out = []
    for s, part in enumerate(SPLIT_NAMES):
        lp = _need(src, f"{part}_labels.pkl", "tiered")
        d = _dict(safepickle.load(lp), lp, ("label_specific",))
        labels = np.asarray(_key(d, "label_specific")).astype(np.int64)
        names = dict(enumerate(map(_text, _key(d, "label_specific_str")))) if _has(d, "label_specific_str") else {}
        png, npz = src / f"{part}_images_png.pkl", src / f"{part}_images.npz"
        if png.exists():
            blobs = safepickle.load(png)
            if len(blobs) != len(labels):
                raise DataError(f"{png}: {len(blobs)} images for {len(labels)} labels in {lp.name}")

            out += _by_label(s, labels, _Decoded(blobs, str(png)), names, str(png))
        elif npz.exists():
            out += _by_label(s, labels, _images(_npz_member(npz, "images"), npz, "images"), names, str(npz))
        else:
            _need(src, png.name, "tiered")
    return out


# ---------------------------------------------------------------- Omniglot

def _characters(folder: Path) -> list[tuple[str, str, list[Path]]]:
    """(alphabet, character, its PNGs) in sorted order."""
    out = []
    for alphabet in sorted(p for p in folder.iterdir() if p.is_dir()):
        for char in sorted(p for p in alphabet.iterdir() if p.is_dir()):
            files = sorted(char.glob("*.png"))
            if files:
                out.append((alphabet.name, char.name, files))
    return out


def read_omniglot(src: Path, size: int | None = None, split: str = "lake", **_) -> list[ClassImages]:
    size = size or 28
    bg = _characters(_need(src, "images_background", "omniglot"))
    ev = _characters(_need(src, "images_evaluation", "omniglot"))
    if split == "lake":
        alphabets = sorted({a for a, _, _ in ev})
        if len(alphabets) >= 2:
            val = set(alphabets[: (len(alphabets) + 1) // 2])
            assign = [(0, c) for c in bg] + [(1 if c[0] in val else 2, c) for c in ev]
        else:
            half = (len(ev) + 1) // 2
            assign = [(0, c) for c in bg] + [(1 if i < half else 2, c) for i, c in enumerate(ev)]
    elif split == "vinyals":
        chars = sorted(bg + ev, key=lambda c: (c[0], c[1]))
        n_train, n_val = round(len(chars) * 1200 / 1623), round(len(chars) * 100 / 1623)
        assign = [(0 if i < n_train else 1 if i < n_train + n_val else 2, c) for i, c in enumerate(chars)]
    else:
        raise DataError(f"--split {split}: allowed: lake, vinyals")

    def read(files):
        return 255 - np.stack([_open_image(f, size, True) for f in files])     # strokes bright, as QuickDraw

    return [ClassImages(s, f"{a}/{c}", len(files), lambda files=files: read(files), str(files[0].parent))
            for s, (a, c, files) in assign]


# ---------------------------------------------------------------- CIFAR-FS and FC100

def _metaoptnet(src: Path, prefix: str, layout: str) -> list[ClassImages]:
    out = []
    for s, part in enumerate(SPLIT_NAMES):
        p = _need(src, f"{prefix}_{part}.pickle", layout)
        d = _dict(safepickle.load(p), p, ("data", "labels"))
        out += _by_label(s, _key(d, "labels"), _images(_key(d, "data"), p, "data"), {}, str(p))
    return out


def read_cifar_fs(src: Path, **_) -> list[ClassImages]:
    if (src / "CIFAR_FS_train.pickle").exists():
        return _metaoptnet(src, "CIFAR_FS", "cifar-fs")
    data = _need(src, "data", "cifar-fs")
    out = []
    for s, part in enumerate(SPLIT_NAMES):
        p = _need(src, f"splits/bertinetto/{part}.txt", "cifar-fs")
        for name in [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]:
            files = sorted((data / name).glob("*.png"))
            if not files:
                raise DataError(f"{data / name}: no PNG images for class {name!r} of {p.name}")
            out.append(ClassImages(s, name, len(files), lambda files=files, d=str(data / name): _stack(
                [_open_image(f, None, False) for f in files], d), str(data / name)))
    return out


def read_fc100(src: Path, **_) -> list[ClassImages]:
    return _metaoptnet(src, "FC100", "fc100")


LAYOUTS = {L.name: L for L in (
    Layout("l2l-mini", ("mini-imagenet-cache-train.pkl",), read_l2l,
           "learn2learn's MiniImagenet(root, download=True) leaves these files in root"),
    Layout("ravi-mini", ("train.csv", "images"), read_ravi,
           "the split CSVs of Ravi & Larochelle's meta-learning LSTM release, with the ImageNet JPEGs in images/"),
    Layout("rfs-mini", ("miniImageNet_category_split_train_phase_train.pickle",), read_rfs,
           "the miniImageNet pickles distributed with MetaOptNet and RFS"),
    Layout("ats-mini", ("mini_imagenet_train.pkl",), read_ats, "the ATS authors' preprocessed miniImageNet arrays"),
    Layout("tiered", ("train_labels.pkl",), read_tiered,
           "Ren et al.'s tieredImageNet release (tiered-imagenet.tar), or its npz conversion"),
    Layout("omniglot", ("images_background",), read_omniglot,
           "Lake et al.'s images_background.zip and images_evaluation.zip, unzipped side by side"),
    Layout("cifar-fs", ("CIFAR_FS_train.pickle",), read_cifar_fs,
           "MetaOptNet's CIFAR_FS pickles, or Bertinetto et al.'s class folders with splits/bertinetto"),
    Layout("fc100", ("FC100_train.pickle",), read_fc100, "MetaOptNet's FC100 pickles"),
)}
_CIFAR_FOLDERS = ("splits/bertinetto/train.txt",)


def detect(src: Path) -> str:
    """The layout whose signature files are in ``src``; ``DataError`` when none (or two) match."""
    if not src.exists():
        raise DataError(f"{src}: no such file or folder")
    if not src.is_dir():
        raise DataError(f"{src}: a file; give the folder that holds the dataset's files")
    found = [L.name for L in LAYOUTS.values() if all((src / s).exists() for s in L.signature)]
    if not found and all((src / s).exists() for s in _CIFAR_FOLDERS):
        found = ["cifar-fs"]
    if len(found) == 1:
        return found[0]
    if found:
        raise DataError(f"{src}: looks like several layouts ({', '.join(found)}); choose one with --format")
    look = "; ".join(f"{n}: {', '.join(L.signature)}" for n, L in LAYOUTS.items())
    raise DataError(f"{src}: no known layout found (looked for {look}); name one with --format")


# ---------------------------------------------------------------- writing the contract

def check(classes: list[ClassImages], need: int) -> None:
    """Splits that share a class, a split too small, or a class with fewer images than an episode needs."""
    seen: dict[str, int] = {}
    for c in classes:
        if c.name in seen and seen[c.name] != c.split:
            raise DataError(f"{c.origin}: class {c.name!r} is in both the {SPLIT_NAMES[seen[c.name]]} and the "
                            f"{SPLIT_NAMES[c.split]} split; splits must not share a class")
        seen[c.name] = c.split
    for s, part in enumerate(SPLIT_NAMES):
        if not any(c.split == s for c in classes):
            raise DataError(f"the {part} split has no classes; every split needs some")
    small = [c for c in classes if c.count < need]
    if small:
        c = small[0]
        raise DataError(f"{c.origin}: class {c.name!r} ({SPLIT_NAMES[c.split]}) has {c.count} images; an episode "
                        f"needs shots + queries = {need} per class ({len(small)} such classes); allowed: "
                        f"--shots/--queries with shots + queries <= {min(x.count for x in classes)}")


def _bar(items, progress: bool):
    """A progress bar over ``items`` when tqdm is installed (it is not needed: then no bar)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return items
    return tqdm(items, desc="importing", unit="class", disable=not progress or None, leave=False)


def is_import(path: Path) -> bool:
    """Whether ``path`` is an earlier import's output: the folder form with its manifest, or an npz
    holding exactly the contract's arrays. Only such a path may be replaced (``--overwrite``)."""
    path = Path(path)
    try:
        if path.is_dir():
            m = json.loads((path / "manifest.json").read_text())
            extra = {f.name for f in path.iterdir()} - {"manifest.json", *m.get("sha256", {})}
            return m.get("format") == "atslib-images-folder" and not extra
        if path.is_file() and path.suffix == ".npz":
            with zipfile.ZipFile(path) as z:
                return sorted(z.namelist()) == ["names.npy", "split.npy", "x.npy", "y.npy"]
    except (OSError, ValueError, zipfile.BadZipFile, AttributeError):
        return False
    return False


def check_out(src: Path, out: Path, overwrite: bool = False) -> None:
    """Refuse an ``--out`` that would lose anything: inside SRC or holding it, or an existing path
    (replaced only with ``overwrite``, and then only when it is an earlier import)."""
    s, o = src.resolve(), out.resolve()
    if o == s or s in o.parents:
        raise DataError(f"--out {out}: inside the source folder; write the import elsewhere")
    if o in s.parents:
        raise DataError(f"--out {out}: holds the source {src}; write the import elsewhere")
    if not out.parent.exists():
        raise DataError(f"--out {out}: the folder {out.parent} does not exist")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise DataError(f"--out {out}: already exists; allowed: a new path, or --overwrite to replace "
                            f"an earlier import")
        if out.is_symlink() or not is_import(out):
            raise DataError(f"--out {out}: exists and is not an earlier import (a folder with an "
                            f"atslib-images-folder manifest, or an npz of x, y, names, split); --overwrite "
                            f"replaces only those; allowed: a new path")


def write(classes: list[ClassImages], out: Path, progress: bool = True) -> dict:
    """Write the contract to ``out`` (npz, or the memory-mapped folder form); return the summary.
    An existing ``out`` is replaced only after the new one is complete (callers check it first)."""
    out = Path(out)
    folder = out.suffix != ".npz"
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")     # this process's own; removed on failure
    n = sum(c.count for c in classes)
    order = sorted(range(len(classes)), key=lambda i: (classes[i].split, i))   # train, val, test
    classes = [classes[i] for i in order]
    x = shape = None
    if len(classes) >= 2 ** 15:
        raise DataError(f"{len(classes)} classes; the image contract (int16 labels) allows at most {2 ** 15 - 1}")
    y = np.empty(n, dtype=np.int16)
    try:
        row = 0
        for ci, c in enumerate(_bar(classes, progress)):
            imgs = c.read()
            if imgs.dtype != np.uint8:
                raise DataError(f"{c.origin}: class {c.name!r}: images are {imgs.dtype}; expected uint8")
            if shape is None:
                shape = imgs.shape[1:]
                if folder:
                    tmp.mkdir(parents=True)
                    x = np.lib.format.open_memmap(tmp / "x.npy", mode="w+", dtype=np.uint8, shape=(n, *shape))
                else:
                    x = np.empty((n, *shape), dtype=np.uint8)
            elif imgs.shape[1:] != shape:
                raise DataError(f"{c.origin}: images of mixed sizes: class {c.name!r} is "
                                f"{'x'.join(map(str, imgs.shape[1:]))}, the first class {'x'.join(map(str, shape))}; "
                                f"one size is allowed per dataset")
            if len(imgs) != c.count:
                raise DataError(f"{c.origin}: class {c.name!r}: {len(imgs)} images read, {c.count} listed")
            x[row: row + c.count] = imgs
            y[row: row + c.count] = ci
            row += c.count
        names = np.array([c.name for c in classes])
        split = np.array([c.split for c in classes], dtype=np.int8)
        if folder:
            x.flush()
            del x
            for k, v in (("y", y), ("names", names), ("split", split)):
                np.save(tmp / f"{k}.npy", v, allow_pickle=False)
            files = {f.name: sha256(f) for f in sorted(tmp.glob("*.npy"))}
            (tmp / "manifest.json").write_text(json.dumps({"format": "atslib-images-folder", "version": 1,
                                                           "sha256": files}, indent=1) + "\n")
        else:
            with open(tmp, "wb") as f:
                np.savez(f, x=x, y=y, names=names, split=split)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        raise
    digest = sha256(out / "manifest.json") if folder else sha256(out)
    per = {part: [c.count for c in classes if c.split == s] for s, part in enumerate(SPLIT_NAMES)}
    return {"out": str(out), "form": "folder (memory-mapped x.npy)" if folder else "npz", "sha256": digest,
            "image_shape": list(shape), "images": n,
            "splits": {k: {"classes": len(v), "images": int(sum(v)), "per_class_min": int(min(v)),
                           "per_class_max": int(max(v))} for k, v in per.items()}}


def import_dataset(src: str | Path, out: str | Path, fmt: str | None = None, need: int = 20,
                   progress: bool = True, overwrite: bool = False, **options) -> dict:
    """Detect (or take) the layout, read it, check it, write the contract; the summary as a dict.
    An existing ``out`` is an error unless ``overwrite`` and it is an earlier import (``check_out``)."""
    src = Path(src).expanduser()
    if fmt is not None and fmt not in LAYOUTS:
        raise DataError(f"--format {fmt}: allowed: {', '.join(LAYOUTS)}")
    if not src.exists():
        raise DataError(f"{src}: no such file or folder")
    layout = fmt or detect(src)
    out = Path(out).expanduser()
    check_out(src, out, overwrite)
    classes = LAYOUTS[layout].read(src, **options)
    check(classes, need)
    summary = write(classes, out, progress)
    return {"layout": layout, "detected": fmt is None, "source": str(src), **summary}


def format_summary(s: dict) -> str:
    """The one-screen summary the command prints."""
    h = "x".join(map(str, s["image_shape"]))
    lines = [f"layout {s['layout']} ({'detected' if s['detected'] else 'as given'}) from {s['source']}",
             f"{s['images']} images of {h} px ({'colour' if len(s['image_shape']) == 3 else 'grey'})"]
    for part, d in s["splits"].items():
        per = (f"{d['per_class_min']}" if d["per_class_min"] == d["per_class_max"]
               else f"{d['per_class_min']}-{d['per_class_max']}")
        lines.append(f"  {part:5s} {d['classes']:5d} classes, {per} images per class ({d['images']} images)")
    lines.append(f"wrote {s['out']} ({s['form']})")
    lines.append(f"sha256 {s['sha256']} (runs record it)")
    lines.append(f"train on it: python -m atslib train --data {s['out']} ...")
    return "\n".join(lines)
