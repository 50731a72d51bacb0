import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)  # many small ops: extra threads cost more than they give on 2 cores


@pytest.fixture(scope="session")
def images():
    from atslib.data import load_images
    return load_images()


def tiny_tasks(images, n=3, ways=3, shots=2, queries=3, noise_ratio=0.0, seed=0, dtype=torch.float64):
    from atslib.tasks import EpisodeSampler, stream
    s = EpisodeSampler(images, "train", ways, shots, queries, noise_ratio=noise_ratio)
    t = s.sample(n, stream(seed, 0, "test"))
    t.x_s, t.x_q = t.x_s.to(dtype), t.x_q.to(dtype)
    return t


def tiny_model(images, ways=3, width=8, pools=4, dtype=torch.float64, seed=0):
    from atslib.models import build_model
    from atslib.tasks import stream
    return build_model(tuple(images.x.shape[1:]), ways, width, pools, generator=stream(seed, 0, "m")).to(dtype)


def tiny_config(**kw):
    from atslib import Config
    base = dict(steps=4, eval_every=2, n_val_tasks=6, n_test_tasks=10, pool_size=4, meta_batch=2, val_tasks=2,
                queries=5, width=8, checkpoint_every=2, pool_log_every=1)
    base.update(kw)
    return Config(**base)


sys.modules.setdefault("helpers", sys.modules[__name__])


@pytest.fixture
def float64():
    """torch's default dtype float64 for one test (exact comparisons), restored after it."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
