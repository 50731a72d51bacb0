"""Synthetic miniatures of the few-shot dataset layouts ``atslib.ingest.importers`` reads.

Each writer makes a folder in one layout, with random images and a few classes per split
(``SPLIT_CLASSES``), ``PER_CLASS`` images each, and returns the class names per split in the order
the importer must produce them. The tests import them and train a few steps on the result;
``scripts/import_demo.py`` prints each importer's summary on them.
"""
from __future__ import annotations

import csv
import io
import pickle
from pathlib import Path

import numpy as np

SPLIT_CLASSES = (5, 3, 3)          # train, val, test
PER_CLASS = 6


def _rng(seed=0):
    return np.random.default_rng(seed)


def _imgs(rng, n, size=84, colour=True):
    shape = (n, size, size, 3) if colour else (n, size, size)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _png(a: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _dump(obj, path: Path, protocol=2):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def l2l_mini(root: Path, seed=0) -> list[list[str]]:
    rng, names = _rng(seed), []
    for part, n in zip(("train", "validation", "test"), SPLIT_CLASSES):
        wnids = [f"n{part[:2]}{i:05d}" for i in range(n)]
        order = rng.permutation(n * PER_CLASS)           # rows of a class are scattered in image_data
        class_dict = {w: sorted(order[i * PER_CLASS:(i + 1) * PER_CLASS].tolist()) for i, w in enumerate(wnids)}
        _dump({"image_data": _imgs(rng, n * PER_CLASS), "class_dict": class_dict},
              root / f"mini-imagenet-cache-{part}.pkl", protocol=4)
        names.append(sorted(wnids))
    return names


def ravi_mini(root: Path, seed=0, size=100) -> list[list[str]]:
    from PIL import Image
    rng, names = _rng(seed), []
    (root / "images").mkdir()
    for part, n in zip(("train", "val", "test"), SPLIT_CLASSES):
        labels = [f"n{part}{i:04d}" for i in range(n)]
        with open(root / f"{part}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["filename", "label"])
            for lab in labels:
                for j, a in enumerate(_imgs(rng, PER_CLASS, size)):   # not 84 px: the importer resizes
                    fn = f"{lab}{j:08d}.jpg"
                    Image.fromarray(a).save(root / "images" / fn, quality=90)
                    w.writerow([fn, lab])
        names.append(sorted(labels))
    return names


def rfs_mini(root: Path, seed=0) -> list[list[str]]:
    rng, names, base = _rng(seed), [], 0
    for part, n in zip(("train_phase_train", "val", "test"), SPLIT_CLASSES):
        cats = [f"cat_{part[:3]}_{i}" for i in range(n)]
        labels = np.repeat(np.arange(base, base + n), PER_CLASS)[rng.permutation(n * PER_CLASS)]
        _dump({"data": _imgs(rng, n * PER_CLASS), "labels": labels.tolist(),
               "catname2label": {c: base + i for i, c in enumerate(cats)}},
              root / f"miniImageNet_category_split_{part}.pickle")           # protocol 2, as from Python 2
        names.append(cats)
        base += n                                        # global labels, as in the real files
    return names


def ats_mini(root: Path, seed=0) -> list[list[str]]:
    rng, names = _rng(seed), []
    for part, n in zip(("train", "val", "test"), SPLIT_CLASSES):
        a = _imgs(rng, n * PER_CLASS).reshape(n, PER_CLASS, 84, 84, 3)
        _dump(a, root / f"mini_imagenet_{part}.pkl", protocol=4)
        names.append([f"{part}-{c:03d}" for c in range(n)])
    return names


def tiered(root: Path, seed=0, npz=False) -> list[list[str]]:
    rng, names = _rng(seed), []
    for part, n in zip(("train", "val", "test"), SPLIT_CLASSES):
        labels = np.repeat(np.arange(n), PER_CLASS)[rng.permutation(n * PER_CLASS)]
        strs = [f"{part}_specific_{i}" for i in range(n)]
        _dump({b"label_specific": labels, b"label_general": labels // 2, b"label_specific_str": strs},
              root / f"{part}_labels.pkl")                 # bytes keys, as some Python-2 copies have
        imgs = _imgs(rng, n * PER_CLASS)
        if npz:
            np.savez(root / f"{part}_images.npz", images=imgs)
        else:
            _dump([np.frombuffer(_png(a), dtype=np.uint8) for a in imgs], root / f"{part}_images_png.pkl")
        names.append(strs)
    return names


def omniglot(root: Path, seed=0, alphabets=(("Latin", 5), ("Greek", 2), ("Futurama", 2), ("Kanji", 3)),
             background=1) -> list[list[str]]:
    """Background alphabets first (``background`` of them), then evaluation ones; 105 px binary PNGs."""
    from PIL import Image
    rng = _rng(seed)
    for i, (alpha, n_char) in enumerate(alphabets):
        folder = root / ("images_background" if i < background else "images_evaluation") / alpha
        for c in range(n_char):
            d = folder / f"character{c + 1:02d}"
            d.mkdir(parents=True)
            for j in range(PER_CLASS):
                a = np.where(rng.random((105, 105)) < 0.1, 0, 255).astype(np.uint8)   # dark strokes on white
                Image.fromarray(a).save(d / f"{c:04d}_{j:02d}.png")
    bg = [f"{a}/character{c + 1:02d}" for a, n in sorted(alphabets[:background]) for c in range(n)]
    ev_alpha = sorted(alphabets[background:])
    half = (len(ev_alpha) + 1) // 2
    val = [f"{a}/character{c + 1:02d}" for a, n in ev_alpha[:half] for c in range(n)]
    test = [f"{a}/character{c + 1:02d}" for a, n in ev_alpha[half:] for c in range(n)]
    return [bg, val, test]


def cifar_fs_folders(root: Path, seed=0) -> list[list[str]]:
    from PIL import Image
    rng, names = _rng(seed), []
    (root / "splits" / "bertinetto").mkdir(parents=True)
    for part, n in zip(("train", "val", "test"), SPLIT_CLASSES):
        cls = [f"{part}_thing_{i}" for i in range(n)]
        (root / "splits" / "bertinetto" / f"{part}.txt").write_text("\n".join(cls) + "\n")
        for c in cls:
            (root / "data" / c).mkdir(parents=True)
            for j, a in enumerate(_imgs(rng, PER_CLASS, 32)):
                Image.fromarray(a).save(root / "data" / c / f"{j}.png")
        names.append(cls)
    return names


def metaoptnet(root: Path, prefix: str, seed=0) -> list[list[str]]:
    rng, names, base = _rng(seed), [], 0
    for part, n in zip(("train", "val", "test"), SPLIT_CLASSES):
        labels = np.repeat(np.arange(base, base + n), PER_CLASS)
        _dump({"data": _imgs(rng, n * PER_CLASS, 32), "labels": labels.tolist()}, root / f"{prefix}_{part}.pickle")
        names.append([f"class{base + i}" for i in range(n)])
        base += n
    return names


WRITERS = {
    "l2l-mini": l2l_mini, "ravi-mini": ravi_mini, "rfs-mini": rfs_mini, "ats-mini": ats_mini,
    "tiered": tiered, "tiered-npz": lambda r, seed=0: tiered(r, seed, npz=True), "omniglot": omniglot,
    "cifar-fs": cifar_fs_folders, "cifar-fs-pickle": lambda r, seed=0: metaoptnet(r, "CIFAR_FS", seed),
    "fc100": lambda r, seed=0: metaoptnet(r, "FC100", seed),
}
LAYOUT_OF = {k: k.replace("-npz", "").replace("-pickle", "") for k in WRITERS}
