"""How far torch's CPU kernel paths move the golden records, per case, in float32 and float64.

Each (dtype, kernel path) writes its records in a subprocess (``tests/golden_records.py --dump``);
the table then gives, per case, the largest relative difference between the machine's own path and
the alternative one, and whether every drawn index agrees. The alternative path stands in for another
CPU: ``ATEN_CPU_CAPABILITY=default`` (no vector kernels in ATen), ``ONEDNN_MAX_CPU_ISA=SSE41`` (oneDNN
convolutions) and ``MKL_ENABLE_INSTRUCTIONS=SSE4_2`` (MKL's BLAS).

    python scripts/golden_drift.py --out build/golden-drift      # ~35 min on one core
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from golden_records import cases, drift, path  # noqa: E402

ALT = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}
PATHS = {"native": {}, "alt": ALT}


def dump(out: Path, dtype: str, kernel: str) -> Path:
    d = out / f"{dtype}-{kernel}"
    if len(list(d.glob("*.json"))) < len(cases()):          # resumable: a finished dump is kept
        env = {**os.environ, **PATHS[kernel], "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
        subprocess.run([sys.executable, str(ROOT / "tests" / "golden_records.py"), "--dump", str(d),
                        "--dtype", dtype], env=env, check=True, cwd=ROOT)
    return d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/golden-drift")
    args = ap.parse_args(argv)
    out = Path(args.out)
    rows = []
    for method, dataset in cases():
        rows.append({"case": f"{dataset}-{method}"})
    out.mkdir(parents=True, exist_ok=True)
    for dtype in ("float64", "float32"):
        a, b = dump(out, dtype, "native"), dump(out, dtype, "alt")
        for row, (method, dataset) in zip(rows, cases()):
            name = path(method, dataset).name
            d = drift(json.loads((b / name).read_text()), json.loads((a / name).read_text()))
            row[f"{dtype}_max_rel"], row[f"{dtype}_drawn_equal"] = d["max_rel"], d["drawn_equal"]
            row[f"{dtype}_theta_loss"] = d["max_rel_theta_loss"]
    (out / "drift.json").write_text(json.dumps({"alt_env": ALT, "rows": rows}, indent=1) + "\n")
    print("| case | float32: any number | θ norm, loss | drawn equal | float64: any number | θ norm, loss | drawn equal |\n"
          "|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['float32_max_rel']:.1e} | {r['float32_theta_loss']:.1e} | {r['float32_drawn_equal']} | "
              f"{r['float64_max_rel']:.1e} | {r['float64_theta_loss']:.1e} | {r['float64_drawn_equal']} |")
    print(f"largest: float32 {max(r['float32_max_rel'] for r in rows):.1e}, "
          f"float64 {max(r['float64_max_rel'] for r in rows):.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
