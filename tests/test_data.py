"""The committed QuickDraw file and the loader's checks."""
import numpy as np
import pytest
from helpers import ROOT

from atslib.data import DataError, load_images


def test_committed_quickdraw_schema(images):
    with np.load(ROOT / "data" / "quickdraw100.npz") as z:
        assert sorted(z.files) == ["names", "split", "x", "y"]
        assert z["x"].dtype == np.uint8 and z["x"].shape == (10000, 28, 28)
        assert z["y"].dtype == np.int16 and z["split"].dtype == np.int8
        assert np.bincount(z["split"]).tolist() == [64, 16, 20]
    assert len(images.sha256) == 64


def test_near_duplicates_never_straddle_splits(images):
    import importlib.util
    spec = importlib.util.spec_from_file_location("bq", ROOT / "data" / "build_quickdraw.py")
    bq = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bq)
    split = dict(zip(images.names, images.split.tolist()))
    for group in bq.NEAR_DUPLICATES:
        present = {split[n] for n in group if n in split}
        assert len(present) <= 1, group


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"PK\x03\x04 truncated"), "not a readable npz"),
    (lambda p: np.savez(p, x=np.zeros((2, 4, 4), np.uint8)), "keys"),
    (lambda p: np.savez(p, x=np.zeros((2, 4, 4), np.float32), y=np.zeros(2, np.int16), names=np.array(["a"]),
                        split=np.zeros(1, np.int8)), "x is float32"),
    (lambda p: np.savez(p, x=np.zeros((2, 4, 4), np.uint8), y=np.array([0, 5], np.int16), names=np.array(["a"]),
                        split=np.zeros(1, np.int8)), "outside"),
])
def test_bad_files_give_one_clear_error(tmp_path, make, message):
    p = tmp_path / "bad.npz"
    make(p)
    with pytest.raises(DataError, match=message):
        load_images(p)


def test_colour_images_of_other_sizes_train(tmp_path):
    from atslib import Config, meta_train
    rng = np.random.default_rng(0)
    n_cls, per = 12, 8
    x = rng.integers(0, 255, size=(n_cls * per, 20, 20, 3), dtype=np.uint8)
    y = np.repeat(np.arange(n_cls), per).astype(np.int16)
    np.savez(tmp_path / "c.npz", x=x, y=y, names=np.array([f"c{i}" for i in range(n_cls)]),
             split=np.array([0] * 6 + [1] * 3 + [2] * 3, np.int8))
    cfg = Config(data=str(tmp_path / "c.npz"), ways=3, shots=1, queries=2, steps=2, eval_every=1, n_val_tasks=3,
                 n_test_tasks=4, width=8, pool_size=2, meta_batch=2)
    run = meta_train(cfg)
    assert run.setup.model.conv0.weight.shape[1] == 3 and 0 <= run.summary["test_mean"] <= 1


def test_an_installed_package_without_the_data_says_what_to_pass(tmp_path):
    """A package installed without a clone has no data/: one line naming --data and ATSLIB_DATA_DIR;
    ATSLIB_DATA_DIR then finds a clone's data."""
    import os
    import subprocess
    import sys
    code = "from atslib.data import load_images; print(load_images(None).path)"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ATSLIB_DATA_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "--data PATH" in r.stderr and "ATSLIB_DATA_DIR" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "atslib", "train", "--steps", "1", "--out", str(tmp_path / "run")],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "ATSLIB_DATA_DIR" in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()
    env["ATSLIB_DATA_DIR"] = str(ROOT / "data")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == str((ROOT / "data" / "quickdraw100.npz").resolve())
