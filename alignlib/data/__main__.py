"""``python -m alignlib.data synth --preset tiny|short|mosi|mosei --seed S [--n CLIPS] [--pause P] [--skip S]
[--faint F] [--nonlinear K] --out FILE [--yes]``"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alignlib.data import synthetic

LARGE = 1 << 30  # files above 1 GiB need --yes


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    """The CLI: a user's mistake prints ``error: ...`` on stderr and exits 2, without a traceback."""
    try:
        return _main(argv)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    parser = _Parser(prog="python -m alignlib.data", description="alignlib data tools")
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser("synth", help="generate the synthetic benchmark in MMSA's pickle format")
    synth.add_argument("--preset", choices=sorted(synthetic.PRESETS), default="tiny",
                       help="sizes, sequence lengths and feature widths: tiny (a sample), short (mosi-sized, short clips), mosi or mosei")
    synth.add_argument("--seed", type=int, default=0, help="the same seed gives the same file")
    synth.add_argument("--n", type=int, default=None, metavar="CLIPS",
                       help="total clips, split in the preset's train/valid/test proportions")
    synth.add_argument("--out", required=True, help="output .pkl (the correspondence goes to OUT.correspondence.npz)")
    synth.add_argument("--yes", action="store_true", help="write files larger than 1 GiB without asking")
    knobs = synth.add_argument_group("difficulty (each 0 by default: the original benchmark)")
    knobs.add_argument("--pause", type=float, default=0.0, help="share of the frames that belong to no word, in [0, 0.9]")
    knobs.add_argument("--skip", type=float, default=0.0, help="share of the words that get no frame in a modality, in [0, 0.9]")
    knobs.add_argument("--faint", type=float, default=0.0, help="how much of its word's content a frame loses, in [0, 1]")
    knobs.add_argument("--nonlinear", type=float, default=0.0,
                       help="mix of a fixed random two-layer network into the linear map of the frames, in [0, 1]")
    args = parser.parse_args(argv)
    difficulty = synthetic.Difficulty(args.pause, args.skip, args.faint, args.nonlinear)
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as {out / 'synthetic.pkl'}")
    if out.parent.exists() and not out.parent.is_dir():
        raise ValueError(f"--out {out}: {out.parent} is not a folder")

    size = synthetic.estimated_bytes(args.preset, args.n)
    sizes = synthetic.split_sizes(args.preset, args.n)
    print(f"{args.preset}: {sum(sizes)} clips (train/valid/test {sizes}), about {size / 2**20:.1f} MiB of features")
    if size > LARGE and not args.yes:
        print(f"error: that is {size / 2**30:.1f} GiB; pass --yes to write it, or --n to make it smaller", file=sys.stderr)
        return 2
    data, correspondence = synthetic.generate(args.preset, args.seed, args.n, **vars(difficulty))
    path = synthetic.write(args.out, data, correspondence)
    print(f"wrote {path} and {synthetic.correspondence_path(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
