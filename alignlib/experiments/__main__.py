"""``python -m alignlib.experiments NAME --profile default|full --out DIR [--resume] [--device cpu|cuda] [--workers N]
[--executor local|slurm|local-submitit [--partition P] [--gpus-per-run G] [--time MIN]]``

Writes ``DIR/experiments_NAME.json`` (the results, after every run), ``DIR/runs/NAME/<id>`` and ``DIR/data``.
With ``--workers N``, N processes (each with an equal share of the CPU's threads) take the runs in turn.
With ``--executor slurm``, each missing run is one job of a SLURM job array (:mod:`~alignlib.experiments.cluster`)."""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from alignlib import PROFILES
from alignlib.common import threads
from alignlib.common.errors import UserError
from alignlib.experiments import sweeps
from alignlib.experiments import cluster
from alignlib.experiments.sweep import SweepError, read_runs

# options that do not change a result, left out of the recorded command: flags, and options with a value
UNRECORDED_FLAGS = ("--resume", "--quiet")
UNRECORDED_OPTIONS = ("--workers", "--executor", "--partition", "--gpus-per-run", "--time")


def main(argv: list[str] | None = None) -> int:
    threads.configure()  # before any sweep loads torch; the workers get their share through run_workers
    parser = argparse.ArgumentParser(prog="python -m alignlib.experiments",
                                     description="Run one of the papers' experiments as a resumable sweep.")
    known = sweeps()
    parser.add_argument("name", metavar="NAME", help=f"the sweep: {', '.join(known)}")
    parser.add_argument("--profile", default="default",
                        help="default (CPU minutes, as notebook 08 runs it) or full (the committed results)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs, data and the results JSON")
    parser.add_argument("--resume", action="store_true", help="continue the sweep in OUT; finished runs are kept")
    parser.add_argument("--device", default=None, help="cpu or cuda (default cpu; cuda with --gpus-per-run)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="run the full profile from a tree with uncommitted library changes (recorded in the JSON)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes sharing the sweep, each with 1/N of the threads (default 1)")
    parser.add_argument("--executor", default="local", choices=("local", *cluster.EXECUTORS),
                        help="local: this machine's processes (default); slurm: one SLURM job a run, through "
                             "submitit; local-submitit: the same jobs as subprocesses here")
    parser.add_argument("--partition", default=None, help="the SLURM partition of the jobs")
    parser.add_argument("--gpus-per-run", type=int, default=0, help="GPUs of each job (default 0)")
    parser.add_argument("--time", type=int, default=60, metavar="MIN", help="minutes of each job (default 60)")
    args = parser.parse_args(argv)
    if args.name not in known:
        parser.error(f"unknown sweep {args.name!r}; choose one of {', '.join(known)}")
    if args.profile not in PROFILES:
        parser.error(f"unknown profile {args.profile!r}; choose one of {', '.join(PROFILES)}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file, not a folder")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    args.device = args.device or ("cuda" if args.gpus_per_run else "cpu")
    if args.device not in ("cpu", "cuda"):
        parser.error(f"--device must be cpu or cuda, got {args.device!r}")
    if args.executor == "local" and (args.partition or args.gpus_per_run):
        parser.error("--partition and --gpus-per-run are for --executor slurm")
    if args.executor != "local" and args.workers > 1:
        parser.error("--workers is for --executor local; a scheduler runs one job a run")
    if args.gpus_per_run < 0:
        parser.error(f"--gpus-per-run must be at least 0, got {args.gpus_per_run}")
    if args.time < 1:
        parser.error(f"--time must be at least 1 minute, got {args.time}")
    if args.device == "cuda" and args.executor != "slurm":  # a SLURM job checks its own node
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available")
    sweep = known[args.name]
    grid = sweep.runs(args.profile)
    seconds = sum(map(sweep.estimate, grid))
    bound = " at most" if sweep.upper_bound else " about"
    if not args.quiet:
        print(f"{args.name} ({args.profile}): {len(grid)} runs,{bound} {seconds / 60:.0f} min on a 2-core CPU",
              flush=True)
    given = list(argv if argv is not None else sys.argv[1:])
    # the command as recorded: without the options that do not change a result
    base = [a for i, a in enumerate(given) if a not in UNRECORDED_FLAGS + UNRECORDED_OPTIONS and
            not a.startswith(tuple(f"{o}=" for o in UNRECORDED_OPTIONS)) and
            not (i > 0 and given[i - 1] in UNRECORDED_OPTIONS)]
    command = "python -m alignlib.experiments " + shlex.join(base)
    if args.executor != "local":
        return run_jobs(args, sweep, command)
    if args.workers > 1:
        return run_workers(args, sweep.results_path(args.out), base, len(grid))
    try:
        record = sweep.run(args.profile, args.out, args.resume, args.device, progress=not args.quiet, command=command,
                           allow_dirty=args.allow_dirty)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    done = sum(r["seconds"] for r in record["runs"].values())
    print(f"{len(record['runs'])}/{len(grid)} runs done ({done / 60:.1f} min of run time recorded)")
    return 0


def run_jobs(args, sweep, command: str) -> int:
    """Run the sweep's missing runs as scheduler jobs and wait for them; 1 when some did not finish."""
    try:
        executor = cluster.make_executor(args.executor, args.out / "jobs" / sweep.name, args.partition,
                                         args.gpus_per_run, args.time)
        missing = cluster.submit(sweep, executor, args.profile, args.out, args.resume, args.device, command,
                                 progress=not args.quiet, allow_dirty=args.allow_dirty)
    except SweepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if missing:
        print(f"{len(missing)} runs did not finish ({', '.join(missing)}); logs in {args.out / 'jobs' / sweep.name}; "
              "--resume resubmits them", file=sys.stderr)
        return 1
    print(f"all runs done by {args.executor} jobs")
    return 0


def run_workers(args, path: Path, base: list[str], total: int) -> int:
    """Start ``args.workers`` processes of the command ``base`` (with ``--resume --quiet``) and follow
    the results JSON at ``path`` with one progress bar; returns the first non-zero exit code, or 0."""
    from tqdm.auto import tqdm

    if path.exists() and not args.resume:
        print(f"error: {path} exists; pass --resume to continue that sweep, or choose another --out", file=sys.stderr)
        return 2
    env = {**os.environ, **threads.environment(threads.share(args.workers))}
    workers = [subprocess.Popen([sys.executable, "-m", "alignlib.experiments", *base, "--resume", "--quiet"], env=env)
               for _ in range(args.workers)]
    with tqdm(total=total, desc=f"{args.name} ({args.workers} workers)", unit="run", disable=args.quiet) as bar:
        while any(w.poll() is None for w in workers):
            time.sleep(2)
            bar.update(len(read_runs(path)) - bar.n if path.exists() else 0)
        bar.update(len(read_runs(path)) - bar.n if path.exists() else 0)
    codes = [w.returncode for w in workers]
    print(f"{bar.n}/{total} runs done by {args.workers} workers")
    return next((c for c in codes if c), 0)


if __name__ == "__main__":
    sys.exit(main())
