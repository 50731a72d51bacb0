"""The study wing: grids and sweeps of runs (``grid``, ``sweep``, ``cluster`` for Ray), the
seed-level statistics and verdicts (``reproduction``, ``claims``, ``regimes``), the benchmarks
(``bench``, ``popbench``) and the checks of the shared contract (``contract``). Needs the ``study``
extra (pandas, scipy, pyyaml, tabulate); a single training run never imports it."""

EXECUTORS = ("local", "process", "population", "ray")   # the sweep's executors, listed here so the CLI needs no pandas
