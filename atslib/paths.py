"""Where things live: the repository's data, results, figures and build folders, in one place.

Every module that needs a default location reads it here (runs and notebooks may always pass
their own paths).
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the committed data files and the scripts that build them; ATSLIB_DATA_DIR points an installed
# package (which ships no data) at a clone's data/ folder
DATA_DIR = Path(os.environ.get("ATSLIB_DATA_DIR") or ROOT / "data").expanduser()
RESULTS_DIR = ROOT / "results"            # committed runs, one folder per grid
FIGURES_DIR = ROOT / "figures"            # the committed gallery: written by `make figures` only
BUILD_DIR = ROOT / "build"                # everything else a run or notebook writes (git-ignored)
BUILD_FIG_DIR = BUILD_DIR / "figures"
REPORT = ROOT / "REPRODUCTION.md"         # written by `python -m atslib report` only
README = ROOT / "README.md"               # its findings table too (between its markers)

__all__ = ["ROOT", "DATA_DIR", "RESULTS_DIR", "FIGURES_DIR", "BUILD_DIR", "BUILD_FIG_DIR", "REPORT", "README"]
