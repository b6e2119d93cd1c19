"""``python -m alignlib.experiments NAME --profile default|full --out DIR [--resume] [--device cpu|cuda]``

Writes ``DIR/experiments_NAME.json`` (the results, after every run), ``DIR/runs/<id>`` and ``DIR/data``."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from alignlib.experiments.grids import PROFILES, SWEEPS, estimate_seconds
from alignlib.experiments.runner import SweepError, run_sweep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alignlib.experiments",
                                     description="Run one of the papers' experiments as a resumable sweep.")
    parser.add_argument("name", metavar="NAME", help=f"the sweep: {', '.join(SWEEPS)}")
    parser.add_argument("--profile", default="default",
                        help="default (CPU minutes, as notebook 08 runs it) or full (the committed results)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs, data and the results JSON")
    parser.add_argument("--resume", action="store_true", help="continue the sweep in OUT; finished runs are kept")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.name not in SWEEPS:
        parser.error(f"unknown sweep {args.name!r}; choose one of {', '.join(SWEEPS)}")
    if args.profile not in PROFILES:
        parser.error(f"unknown profile {args.profile!r}; choose one of {', '.join(PROFILES)}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file, not a folder")
    if args.device not in ("cpu", "cuda"):
        parser.error(f"--device must be cpu or cuda, got {args.device!r}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available")
    grid = SWEEPS[args.name].runs(args.profile)
    seconds = sum(map(estimate_seconds, grid))
    bound = " at most" if args.name == "efficiency" else " about"
    print(f"{args.name} ({args.profile}): {len(grid)} runs,{bound} {seconds / 60:.0f} min on a 2-core CPU", flush=True)
    command = "python -m alignlib.experiments " + shlex.join(a for a in (argv if argv is not None else sys.argv[1:])
                                                            if a != "--resume")
    try:
        record = run_sweep(args.name, args.profile, args.out, args.resume, args.device,
                           progress=not args.quiet, command=command)
    except SweepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    done = sum(r["seconds"] for r in record["runs"].values())
    print(f"{len(record['runs'])}/{len(grid)} runs done ({done / 60:.1f} min of run time recorded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
