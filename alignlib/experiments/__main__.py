"""``python -m alignlib.experiments NAME --profile default|full --out DIR [--resume] [--device cpu|cuda] [--workers N]``

Writes ``DIR/experiments_NAME.json`` (the results, after every run), ``DIR/runs/NAME/<id>`` and ``DIR/data``.
With ``--workers N``, N processes (each with an equal share of the CPU's threads) take the runs in turn."""
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
from alignlib.experiments.sweep import read_runs


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
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes sharing the sweep, each with 1/N of the threads (default 1)")
    args = parser.parse_args(argv)
    if args.name not in known:
        parser.error(f"unknown sweep {args.name!r}; choose one of {', '.join(known)}")
    if args.profile not in PROFILES:
        parser.error(f"unknown profile {args.profile!r}; choose one of {', '.join(PROFILES)}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file, not a folder")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.device not in ("cpu", "cuda"):
        parser.error(f"--device must be cpu or cuda, got {args.device!r}")
    if args.device == "cuda":
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
    base = [a for i, a in enumerate(given) if a not in ("--resume", "--quiet", "--workers") and
            not a.startswith("--workers=") and not (i > 0 and given[i - 1] == "--workers")]
    command = "python -m alignlib.experiments " + shlex.join(base)
    if args.workers > 1:
        return run_workers(args, sweep.results_path(args.out), base, len(grid))
    try:
        record = sweep.run(args.profile, args.out, args.resume, args.device, progress=not args.quiet, command=command)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    done = sum(r["seconds"] for r in record["runs"].values())
    print(f"{len(record['runs'])}/{len(grid)} runs done ({done / 60:.1f} min of run time recorded)")
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
