"""Importing the standard few-shot layouts (``atslib.ingest.importers``) on synthetic miniatures written here:
shapes, label remapping, disjoint splits, names, the output's sha256, a few training steps on each
result, the memory-mapped folder form (the same run as the npz), the restricted unpickler, and one
clear line for every kind of bad input."""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import miniatures as M
from atslib.ingest import importers, safepickle
from atslib.data import DataError, load_images, sha256
from atslib.loop import Run
from conftest import ROOT, tiny_config

CLI = [sys.executable, "-m", "atslib", "data", "import"]


def cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd or ROOT)


def tiny_run(data, out, method="uniform", **kw):
    cfg = tiny_config(data=str(data), ways=2, shots=1, queries=2, steps=2, eval_every=2, n_val_tasks=2,
                      n_test_tasks=3, pool_size=3, method=method, checkpoint_every=2, **kw)
    run = Run(cfg, out, overwrite=True)
    run.train()
    return run


@pytest.mark.parametrize("kind", sorted(M.WRITERS))
def test_each_layout_imports_detects_and_trains(kind, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    expected = M.WRITERS[kind](src)
    out = tmp_path / "data.npz"
    s = importers.import_dataset(src, out, need=3, progress=False)
    assert s["layout"] == M.LAYOUT_OF[kind] and s["detected"]
    d = load_images(out)
    # names in split order, labels remapped to 0..C-1 in that order, splits disjoint
    assert d.names == [n for part in expected for n in part]
    assert d.split.tolist() == [i for i, part in enumerate(expected) for _ in part]
    assert len(set(d.names)) == len(d.names)
    assert sorted(set(d.y.tolist())) == list(range(len(d.names)))
    assert all(len(r) == M.PER_CLASS for r in d.rows_by_class())
    size = {"omniglot": 28, "cifar-fs": 32, "cifar-fs-pickle": 32, "fc100": 32}.get(kind, 84)
    channels = 1 if kind == "omniglot" else 3
    assert tuple(d.x.shape[1:]) == (channels, size, size)
    assert s["sha256"] == sha256(out) == d.sha256
    assert s["splits"]["train"]["classes"] == len(expected[0])
    # a few steps of training on the result record its sha256
    run = tiny_run(out, tmp_path / "run", max_pools=2 if size < 84 else 4)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data_sha256"] == s["sha256"]
    assert run.summary["steps_done"] == 2


def test_images_are_read_where_the_layout_says(tmp_path):
    """Pixels land in the right class: the l2l cache's scattered rows, the rfs global labels."""
    src = tmp_path / "l2l"
    src.mkdir()
    M.l2l_mini(src)
    importers.import_dataset(src, tmp_path / "a.npz", need=3, progress=False)
    d = load_images(tmp_path / "a.npz")
    raw = pickle.load(open(src / "mini-imagenet-cache-validation.pkl", "rb"))
    wnid = sorted(raw["class_dict"])[1]
    c = d.names.index(wnid)
    got = d.x[d.rows_by_class()[c]].permute(0, 2, 3, 1).numpy()
    assert np.array_equal(got, raw["image_data"][raw["class_dict"][wnid]])
    src = tmp_path / "rfs"
    src.mkdir()
    M.rfs_mini(src)
    importers.import_dataset(src, tmp_path / "b.npz", need=3, progress=False)
    d = load_images(tmp_path / "b.npz")
    raw = pickle.load(open(src / "miniImageNet_category_split_test.pickle", "rb"), encoding="latin1")
    name, label = sorted(raw["catname2label"].items(), key=lambda kv: kv[1])[2]
    rows = np.flatnonzero(np.array(raw["labels"]) == label)
    got = d.x[d.rows_by_class()[d.names.index(name)]].permute(0, 2, 3, 1).numpy()
    assert np.array_equal(got, raw["data"][rows])


def test_omniglot_splits(tmp_path):
    src = tmp_path / "omni"
    src.mkdir()
    M.omniglot(src)
    importers.import_dataset(src, tmp_path / "lake.npz", need=3, progress=False)
    lake = load_images(tmp_path / "lake.npz")
    assert [n.split("/")[0] for n, s in zip(lake.names, lake.split) if s == 0] == ["Latin"] * 5
    assert {n.split("/")[0] for n, s in zip(lake.names, lake.split) if s == 1} == {"Futurama", "Greek"}
    assert {n.split("/")[0] for n, s in zip(lake.names, lake.split) if s == 2} == {"Kanji"}
    x = lake.x.float()
    assert x.mean() < 128            # strokes bright on a dark ground, as QuickDraw
    importers.import_dataset(src, tmp_path / "vin.npz", need=3, progress=False, split="vinyals")
    vin = load_images(tmp_path / "vin.npz")
    n = len(vin.names)
    assert np.bincount(vin.split, minlength=3).tolist() == [round(n * 1200 / 1623), round(n * 100 / 1623),
                                                             n - round(n * 1200 / 1623) - round(n * 100 / 1623)]


def test_folder_form_is_memory_mapped_and_trains_like_the_npz(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    M.l2l_mini(src)
    importers.import_dataset(src, tmp_path / "data.npz", need=3, progress=False)
    s = importers.import_dataset(src, tmp_path / "data", need=3, progress=False)
    folder = tmp_path / "data"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "names.npy", "split.npy", "x.npy", "y.npy"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["sha256"]["x.npy"] == sha256(folder / "x.npy")
    d = load_images(folder)
    assert s["sha256"] == d.sha256 == sha256(folder / "manifest.json")
    assert not d.x.is_contiguous()           # a view on the mapped file: nothing was copied at load
    dn = load_images(tmp_path / "data.npz")
    assert np.array_equal(d.x.numpy(), dn.x.numpy()) and d.names == dn.names
    a = tiny_run(tmp_path / "data.npz", tmp_path / "ra", method="ats").history_frame()
    b = tiny_run(folder, tmp_path / "rb", method="ats").history_frame()
    cols = [c for c in a.columns if "seconds" not in c and c != "wall"]
    assert a[cols].equals(b[cols])


def test_cli_prints_the_summary_and_trains_with_data(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    M.WRITERS["fc100"](src)
    r = cli(src, "--out", tmp_path / "fc.npz", "--shots", 1, "--queries", 2)
    assert r.returncode == 0, r.stderr
    assert "layout fc100 (detected)" in r.stdout and "32x32x3" in r.stdout
    assert f"sha256 {sha256(tmp_path / 'fc.npz')}" in r.stdout
    assert "train     5 classes, 6 images per class" in r.stdout


def _fails(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


class Payload:
    """Unpickling this calls os.system: it would create ``target``."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def test_a_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    # the control: the plain unpickler runs it and the file appears
    control = tmp_path / "control-created"
    bad = tmp_path / "control.pkl"
    bad.write_bytes(pickle.dumps({"image_data": Payload(control), "class_dict": {}}))
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({str(bad)!r}, 'rb'))"], check=True)
    assert control.exists()
    # the importer refuses the same kind of file: one line, exit 2, nothing created, nothing written
    src, target = tmp_path / "src", tmp_path / "pwned"
    src.mkdir()
    M.l2l_mini(src)
    (src / "mini-imagenet-cache-train.pkl").write_bytes(
        pickle.dumps({"image_data": Payload(target), "class_dict": {}}))
    line = _fails(cli(src, "--out", tmp_path / "out.npz"), "mini-imagenet-cache-train.pkl", "refused",
                  f"{os.system.__module__}.system")
    assert not target.exists() and not (tmp_path / "out.npz").exists()
    assert not list(tmp_path.glob("*out.npz*"))
    with pytest.raises(DataError, match="refused"):
        safepickle.load(src / "mini-imagenet-cache-train.pkl")
    assert not target.exists()
    print(line)


def _l2l(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    M.l2l_mini(src)
    return src


def test_bad_input_gets_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out.npz"
    nothing = lambda: not out.exists() and not list(tmp_path.glob("*out.npz*"))
    _fails(cli(tmp_path / "nowhere", "--out", out), "nowhere", "no such file")
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(cli(empty, "--out", out), "no known layout", "--format")
    _fails(cli(empty, "--out", out, "--format", "imagenet21k"), "--format imagenet21k", "allowed: l2l-mini")
    src = _l2l(tmp_path)
    (src / "mini-imagenet-cache-test.pkl").unlink()
    _fails(cli(src, "--out", out), "mini-imagenet-cache-test.pkl: no such file", "learn2learn", "Nothing is downloaded")
    M.l2l_mini(src)
    full = (src / "mini-imagenet-cache-validation.pkl").read_bytes()
    (src / "mini-imagenet-cache-validation.pkl").write_bytes(full[: len(full) // 2])
    _fails(cli(src, "--out", out), "mini-imagenet-cache-validation.pkl", "truncated")
    (src / "mini-imagenet-cache-validation.pkl").write_bytes(
        b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head></html>")
    _fails(cli(src, "--out", out), "looks like a web page, not the dataset")
    assert nothing()


def test_out_never_loses_anything(tmp_path):
    """An existing --out is refused (with --overwrite only an earlier import is replaced), and so is an
    --out that holds the source: each one line, exit 2, every file where it was."""
    src = _l2l(tmp_path)
    before = {f: f.read_bytes() for f in src.iterdir()}
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    _fails(cli(src, "--out", mine, "--shots", 1, "--queries", 2), f"--out {mine}", "already exists", "--overwrite")
    _fails(cli(src, "--out", mine, "--shots", 1, "--queries", 2, "--overwrite"), "not an earlier import")
    _fails(cli(src, "--out", tmp_path, "--shots", 1, "--queries", 2, "--overwrite"), "holds the source")
    own = tmp_path / "own.npz"
    own.write_bytes(b"a user's file")
    _fails(cli(src, "--out", own, "--shots", 1, "--queries", 2, "--overwrite"), "not an earlier import")
    assert (mine / "notes.txt").read_text() == "keep me" and own.read_bytes() == b"a user's file"
    assert {f: f.read_bytes() for f in src.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "own.npz", "src"]     # no partial left
    for out in (tmp_path / "d.npz", tmp_path / "d"):          # an earlier import is replaced on request
        assert cli(src, "--out", out, "--shots", 1, "--queries", 2).returncode == 0
        first = sha256(out if out.suffix else out / "manifest.json")
        _fails(cli(src, "--out", out, "--shots", 1, "--queries", 2), "already exists")
        r = cli(src, "--out", out, "--shots", 1, "--queries", 2, "--overwrite")
        assert r.returncode == 0, r.stderr
        assert sha256(out if out.suffix else out / "manifest.json") == first
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_import_without_tqdm_and_one_line_without_pillow(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    M.WRITERS["fc100"](src)
    monkeypatch.setitem(sys.modules, "tqdm", None)           # import tqdm now raises ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    s = importers.import_dataset(src, tmp_path / "a.npz", need=3)
    assert s["images"] == sum(M.SPLIT_CLASSES) * M.PER_CLASS
    cifar = tmp_path / "cifar"
    cifar.mkdir()
    M.cifar_fs_folders(cifar)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DataError, match=r"need pillow; allowed: pip install 'atslib\[ingest\]'"):
        importers.import_dataset(cifar, tmp_path / "b.npz", need=3)
    assert not (tmp_path / "b.npz").exists()


def test_mixed_sizes_small_classes_and_shared_classes(tmp_path):
    out = tmp_path / "out.npz"
    src = tmp_path / "cifar"
    src.mkdir()
    M.cifar_fs_folders(src)
    from PIL import Image
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(src / "data" / "val_thing_1" / "0.png")
    _fails(cli(src, "--out", out, "--shots", 1, "--queries", 2), "mixed sizes", "val_thing_1")
    assert not out.exists() and not list(tmp_path.glob("*out.npz*"))
    src = tmp_path / "l2l"
    src.mkdir()
    M.l2l_mini(src)
    _fails(cli(src, "--out", out, "--shots", 5, "--queries", 15), "has 6 images", "shots + queries = 20")
    d = pickle.load(open(src / "mini-imagenet-cache-test.pkl", "rb"))
    train = pickle.load(open(src / "mini-imagenet-cache-train.pkl", "rb"))
    d["class_dict"][sorted(train["class_dict"])[0]] = d["class_dict"].pop(sorted(d["class_dict"])[0])
    pickle.dump(d, open(src / "mini-imagenet-cache-test.pkl", "wb"))
    _fails(cli(src, "--out", out, "--shots", 1, "--queries", 2), "in both the train and the test split")
    assert not out.exists() and not list(tmp_path.glob("*out.npz*"))


def test_a_folder_without_its_files_is_refused_by_train(tmp_path):
    d = tmp_path / "half"
    d.mkdir()
    np.save(d / "x.npy", np.zeros((2, 4, 4), np.uint8))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "atslib", "train", "--data", str(d), "--out", str(tmp_path / "r"),
                        "--steps", "1"], capture_output=True, text=True, env=env, cwd=ROOT)
    _fails(r, "y.npy", "manifest.json")
    assert not (tmp_path / "r").exists()


def test_notebook_01_shows_an_imported_dataset(tmp_path):
    papermill = pytest.importorskip("papermill")
    src = tmp_path / "src"
    src.mkdir()
    M.l2l_mini(src)
    importers.import_dataset(src, tmp_path / "mini", need=3, progress=False)      # the folder form
    nb = ROOT / "notebooks" / "01_tasks.ipynb"
    params = {"SMOKE": True, "FIG_DIR": str(tmp_path / "figures"), "DATA": str(tmp_path / "mini"), "WAYS": 2,
              "SHOTS": 1, "QUERIES": 2, "BUDGET": 3}
    papermill.execute_notebook(str(nb), str(tmp_path / nb.name), parameters=params, kernel_name="python3",
                               cwd=str(ROOT / "notebooks"), progress_bar=False)
    text = (tmp_path / nb.name).read_text()
    assert "mini: 66 images of (3, 84, 84), 11 classes" in text
    assert (tmp_path / "figures" / "01_episode.png").stat().st_size > 1000
