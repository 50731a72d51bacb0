"""Command line: ``python -m atslib {train,eval,sweep,bench,report,data} ...``.

Bad input never shows a traceback: one line on stderr naming the option, the value and what is
allowed, exit code 2, and nothing written to the output directory.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from .config import METHODS, Config, ConfigError
from .data import DataError
from .evaluate import evaluate_run
from .guards import NonFiniteError
from .ingest.importers import LAYOUTS, format_summary, import_dataset
from .loop import Run
from .paths import FIGURES_DIR, README, REPORT
from .store import BEST, RunError
from .study import EXECUTORS

# The wings each command needs are imported by that command: ``train`` and ``eval`` run on the
# core's dependencies alone (torch, numpy); ``sweep`` and ``report`` need the study extra (pandas).

USER_ERRORS = (ConfigError, DataError, RunError)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's own style, without the usage block)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{s!r} is not a boolean; allowed: true, false")


def add_config_options(p: argparse.ArgumentParser) -> None:
    """Every Config field becomes an option (``first_order`` -> ``--first-order``), its help the
    field's comment in ``Config``."""
    text = Config.field_help()
    for f in fields(Config):
        if f.name == "first_order":
            p.add_argument("--first-order", action="store_true", default=None, help="first-order meta-gradient")
            continue
        kind = {"int": int, "float": float, "bool": _bool}.get(str(f.type).split(" ")[0].replace("'", ""), None)
        if f.name in ("budget_classes",):
            kind = int
        kw = {"type": kind} if kind else {}
        if f.name == "method":
            kw["choices"] = METHODS
            kw["metavar"] = "METHOD"
        if kind is _bool:
            kw["metavar"] = "true|false"
        about = text.get(f.name, "").replace("one of METHODS", "one of " + ", ".join(METHODS)).replace("%", "%%")
        p.add_argument(_flag(f.name), default=None, help=f"{about} (default {f.default!r})".lstrip(), **kw)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m atslib", description="Meta-learning with an Adaptive Task Scheduler")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    t = sub.add_parser("train", help="train one run (or, with --seeds, a population of runs in lockstep)")
    add_config_options(t)
    t.add_argument("--out", required=True,
                   help="run directory (with --seeds: a folder for runs named METHOD-sSEED, or a path with {seed})")
    t.add_argument("--seeds", default=None, metavar="S1,S2,...",
                   help="train one run per seed as a population: in lockstep, in this process, the model maths "
                        "batched across runs (--seed is then not allowed; --init may contain {seed})")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    e = sub.add_parser("eval", help="re-test a saved run")
    e.add_argument("run_dir")
    e.add_argument("--data", default=None, help="another npz of the same schema")
    e.add_argument("--n-test-tasks", type=int, default=None)
    s = sub.add_parser("sweep", help="run a grid of training runs (resumable)")
    s.add_argument("grid")
    s.add_argument("--out", required=True)
    s.add_argument("--executor", default="local", choices=EXECUTORS,
                   help="local (one run at a time), process (a process pool), population (compatible runs in "
                        "lockstep, model maths batched: one GPU), ray")
    s.add_argument("--address", default=None,
                   help="ray executor: a cluster to join - auto (started on this machine with ray start), HOST:PORT "
                        "(the head's GCS port, 6379), ray://HOST:10001 (Ray Client); default: a fresh local Ray")
    s.add_argument("--workers", type=int, default=None,
                   help="the most runs at once (local: 1; process: default 1; population: runs per population, "
                        "default all compatible; ray: default as many as fit)")
    s.add_argument("--scale", default="cpu", help="the grid's scale preset (default cpu; gpu = the paper's settings)")
    s.add_argument("--num-cpus", type=float, default=1, help="ray executor: CPUs per run (default 1)")
    s.add_argument("--num-gpus", type=float, default=0, help="ray executor: GPUs per run (default 0)")
    s.add_argument("--no-shared-fs", dest="shared_fs", action="store_false",
                   help="ray executor: workers never use the driver's folders (checkpoints travel through the "
                        "driver), as on a cluster without a shared file system")
    s.add_argument("--populations", action="store_true",
                   help="ray executor: one Ray task per population of compatible runs (the same cell and method), "
                        "trained in lockstep on its worker (a GPU each, with --num-gpus 1)")
    s.add_argument("--limit", type=int, default=None, help="train at most this many unfinished runs, then stop")
    s.add_argument("--only", nargs="+", default=None, help="only these cells or methods")
    s.add_argument("--seeds", nargs="+", type=int, default=None, help="only runs with these seeds")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    r = sub.add_parser("report", help="rewrite the results block of REPRODUCTION.md from the saved tables")
    r.add_argument("--out", default=str(REPORT), help="the document (default REPRODUCTION.md)")
    r.add_argument("--tables", default=str(FIGURES_DIR / "tables"),
                   help="where notebooks 07 and 09 saved their tables (default figures/tables, as make figures does)")
    r.add_argument("--readme", default=None,
                   help="the document whose findings table to rewrite too (default: README.md when --out is "
                        "the default REPRODUCTION.md, else none)")
    d = sub.add_parser("data", help="import a few-shot dataset you have on disk (miniImageNet, Omniglot, ...)")
    dsub = d.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    di = dsub.add_parser("import", help="write the image contract from a dataset folder (nothing is downloaded)")
    di.add_argument("src", help="the folder that holds the dataset's files")
    di.add_argument("--out", required=True,
                    help="PATH.npz, or a folder (any other name): the memory-mapped form for data larger than memory")
    di.add_argument("--format", default=None, metavar="NAME",
                    help="the layout (default: detected): " + ", ".join(LAYOUTS))
    di.add_argument("--split", default="lake", metavar="lake|vinyals", help="omniglot's class split (default lake)")
    di.add_argument("--image-size", type=int, default=None,
                    help="resize to this many px (ravi-mini: default 84; omniglot: default 28; others keep theirs)")
    di.add_argument("--shots", type=int, default=5, help="with --queries: images an episode needs per class (5)")
    di.add_argument("--queries", type=int, default=15, help="(default 15: a class needs shots + queries images)")
    di.add_argument("--overwrite", action="store_true",
                    help="replace an existing --out, when it is an earlier import (nothing else is ever replaced)")
    di.add_argument("--quiet", action="store_true", help="no progress bar")
    b = sub.add_parser("bench", help="time uniform, ats and the reference loop")
    b.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    b.add_argument("--json", default=None, help="write the results as JSON here")
    b.add_argument("--against", default=None, metavar="COMMIT|DIR",
                   help="instead: s/iter of uniform and ats here vs a reference commit (a worktree under build/) "
                        "or directory, alternating, with the ratio")
    b.add_argument("--rounds", type=int, default=None, help="--against: alternating rounds (default 3)")
    b.add_argument("--pool-size", type=int, default=None, help="candidate tasks per iteration (default 10)")
    b.add_argument("--meta-batch", type=int, default=None, help="tasks per meta-update (default 2)")
    b.add_argument("--image-size", type=int, default=None, help="images resized to this many px (default 28)")
    b.add_argument("--data", default=None, help="an image npz or folder (default QuickDraw), e.g. from data import")
    b.add_argument("--max-pools", type=int, default=None, help="max-pools of the conv-4 (default 3; 4 at 84 px)")
    b.add_argument("--ways", type=int, default=None, help="default 5")
    b.add_argument("--shots", type=int, default=None, help="default 1")
    b.add_argument("--queries", type=int, default=None, help="query examples per class (default 15)")
    b.add_argument("--width", type=int, default=None, help="conv channels (default 32)")
    b.add_argument("--repeats", type=int, default=None, help="timed iterations per method (default 5)")
    b.add_argument("--warmup", type=int, default=None, help="untimed iterations first (default 2)")
    b.add_argument("--inner", default=None, choices=("anil", "maml"), help="default anil")
    b.add_argument("--threads", type=int, default=None, help="torch CPU threads per worker (default: torch's)")
    b.add_argument("--draws-per-step", type=int, default=None, help="ATS scheduler draws per step (default 2)")
    b.add_argument("--population", default=None, metavar="R1,R2,...",
                   help="instead: throughput of populations of these sizes against single runs (e.g. 1,4,16)")
    b.add_argument("--methods", default=None, help="--population: methods, comma-separated (default uniform,ats)")
    return p


def config_from_args(args) -> Config:
    d = {f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name, None) is not None}
    return Config.from_dict(d)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"--seeds {text!r}: allowed: distinct integers >= 0, comma-separated (e.g. 0,1,2,3)")
    return seeds


def cmd_train_population(args) -> int:
    if args.seed is not None:
        raise ConfigError("--seed with --seeds: allowed: one of them")
    seeds = parse_seeds(args.seeds)
    base = config_from_args(args)
    cfgs = [base.replace(seed=s, init=base.init.replace("{seed}", str(s)) if base.init else base.init) for s in seeds]
    for c in cfgs:                       # before any run is built (and --overwrite deletes its folder)
        if c.init and not (Path(c.init) / BEST).is_file():
            raise ConfigError(f"--init {c.init}: no {BEST} there; allowed: a finished run directory")
    outs = [args.out.replace("{seed}", str(s)) if "{seed}" in args.out else str(Path(args.out) / f"{base.method}-s{s}")
            for s in seeds]
    from .population import train_population
    members = train_population(cfgs, outs, resume=args.resume, overwrite=args.overwrite)
    failed = 0
    for m, out in zip(members, outs):
        if m.ok:
            s = m.run.summary
            print(json.dumps({"seed": s["seed"], "out": out, **{k: s[k] for k in SHOWN if k in s}}))
        else:
            failed = 1
            print(f"python -m atslib train: run {out} failed: {type(m.error).__name__}: {m.error}", file=sys.stderr)
    return failed


SHOWN = ("method", "test_mean", "test_ci95", "best_val", "wall_seconds", "noise_auc", "clean_share")


def cmd_train(args) -> int:
    if args.seeds is not None:
        return cmd_train_population(args)
    cfg = config_from_args(args)
    run = Run(cfg, args.out, resume=args.resume, overwrite=args.overwrite)
    from .display.progress import progress_callback
    cbs = [] if args.quiet else [progress_callback(cfg.steps, run.step)]
    run.train(cbs)
    s = run.summary
    print(json.dumps({k: s[k] for k in SHOWN if k in s}))
    return 0


def cmd_eval(args) -> int:
    print(json.dumps(evaluate_run(args.run_dir, args.data, args.n_test_tasks), indent=2))
    return 0


def cmd_report(args) -> int:
    from .study.claims import write_report
    for flag, doc in (("--out", args.out), ("--readme", args.readme)):
        if doc is not None and not Path(doc).is_file():
            print(f"python -m atslib report: error: {flag} {doc}: no such file; allowed: a markdown document "
                  f"that holds the results markers (REPRODUCTION.md, README.md)", file=sys.stderr)
            return 2
    try:
        readme = args.readme or (str(README) if Path(args.out).resolve() == REPORT.resolve() else None)
        missing = write_report(args.out, args.tables, readme)
    except (FileNotFoundError, ValueError) as e:
        print(f"python -m atslib report: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.out}: results block rewritten from {args.tables}" + (f"; {readme}: findings table" if readme else "")
          + (f" (tables not found, left out: {', '.join(missing)})" if missing else ""))
    return 0


def cmd_data(args) -> int:
    if args.image_size is not None and not 8 <= args.image_size <= 512:
        raise ConfigError(f"--image-size {args.image_size}: allowed: 8..512")
    if args.shots < 1 or args.queries < 1:
        raise ConfigError(f"--shots {args.shots} --queries {args.queries}: allowed: integers >= 1")
    if args.split not in ("lake", "vinyals"):
        raise ConfigError(f"--split {args.split}: allowed: lake, vinyals")
    summary = import_dataset(args.src, args.out, args.format, need=args.shots + args.queries,
                             progress=not args.quiet, overwrite=args.overwrite, size=args.image_size,
                             split=args.split)
    print(format_summary(summary))
    return 0


def _name(args) -> str:
    """The subcommand as typed (``data import``), for the error line."""
    return args.command + (f" {args.data_command}" if getattr(args, "data_command", None) else "")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args)
        if args.command == "eval":
            return cmd_eval(args)
        if args.command == "sweep":
            from .study.sweep import run_sweep
            return run_sweep(args.grid, args.out, args.executor, args.address, args.workers, args.scale,
                             args.num_cpus, args.num_gpus, args.limit, args.only, not args.quiet, args.seeds,
                             args.shared_fs, args.populations)
        if args.command == "bench":
            from .study.bench import main as bench_main
            from .study.popbench import main as population_bench_main
            return population_bench_main(args) if args.population else bench_main(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "data":
            return cmd_data(args)
    except USER_ERRORS as e:
        print(f"python -m atslib {_name(args)}: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteError as e:
        print(f"python -m atslib {_name(args)}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
