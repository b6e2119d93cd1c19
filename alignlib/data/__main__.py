"""``python -m alignlib.data synth --preset tiny|short|mosi|mosei --seed S [--n CLIPS] [--pause P] [--skip S]
[--faint F] [--nonlinear K] --out FILE [--yes]`` and ``python -m alignlib.data csd --words W.csd --text T.csd
--audio A.csd --vision V.csd --labels L.csd --out FILE [--folds FILE] [--unassigned SPLIT] [--max-words N]
[--max-audio N] [--max-vision N]``"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alignlib.common import threads
from alignlib.common.errors import UserError
from alignlib.data import from_sdk, synthetic

LARGE = 1 << 30  # files above 1 GiB need --yes


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    """The CLI: a user's mistake (:class:`~alignlib.common.errors.UserError`) prints ``error: ...`` on
    stderr and exits 2, without a traceback; any other exception is a bug and shows its traceback."""
    threads.configure()
    try:
        return _main(argv)
    except UserError as error:
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
    _add_csd_parser(commands)
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'synthetic.pkl'}")
    if out.parent.exists() and not out.parent.is_dir():
        raise UserError(f"--out {out}: {out.parent} is not a folder")
    if args.command == "csd":
        return _csd(args)
    difficulty = synthetic.Difficulty(args.pause, args.skip, args.faint, args.nonlinear)

    size = synthetic.estimated_bytes(args.preset, args.n)
    sizes = synthetic.split_sizes(args.preset, args.n)
    print(f"{args.preset}: {sum(sizes)} clips (train/valid/test {sizes}), about {size / 2**20:.1f} MiB of features")
    if size > LARGE and not args.yes:
        print(f"error: that is {size / 2**30:.1f} GiB; pass --yes to write it, or --n to make it smaller", file=sys.stderr)
        return 2
    data, correspondence = synthetic.generate(args.preset, args.seed, args.n, **vars(difficulty))
    try:
        path = synthetic.write(args.out, data, correspondence)
    except OSError as error:
        raise UserError(f"--out {out}: cannot write it ({error.strerror or error})") from None
    print(f"wrote {path} and {synthetic.correspondence_path(path)}")
    return 0


def _add_csd_parser(commands) -> None:
    csd = commands.add_parser("csd", help="convert CMU-MultimodalSDK computational sequences (.csd) into our data format")
    for name, what in (("words", "timestamped words (sp marks a silence)"), ("text", "timestamped word vectors"),
                       ("audio", "acoustic features (COVAREP)"), ("vision", "visual features (FACET, OpenFace)"),
                       ("labels", "opinion segment labels")):
        csd.add_argument(f"--{name}", required=True, metavar=f"{name.upper()}.csd", help=what)
    csd.add_argument("--folds", default=None, help="JSON {split: [ids]} or the SDK's cmu_*_std_folds.py; ids of videos or segments")
    csd.add_argument("--unassigned", choices=from_sdk.SPLITS, default="train", help="the split of segments in no fold")
    for name, what in (("words", "words"), ("audio", "acoustic frames"), ("vision", "visual frames")):
        csd.add_argument(f"--max-{name}", type=int, default=None, metavar="N",
                         help=f"keep the first N {what} of a longer segment (default: pad to the longest)")
    csd.add_argument("--out", required=True, help="output .pkl (the frame-to-word tables go to OUT.correspondence.npz)")


def _csd(args) -> int:
    folds = from_sdk.read_folds(args.folds) if args.folds else None
    limits = {m: n for m, n in (("text", args.max_words), ("audio", args.max_audio), ("vision", args.max_vision))
              if n is not None}
    built = from_sdk.build({name: getattr(args, name) for name in from_sdk.SEQUENCES}, folds, args.unassigned,
                           progress=True, limits=limits)
    path = synthetic.write(args.out, built.data, built.correspondence)
    print("segments: " + ", ".join(f"{split} {n}" for split, n in built.counts.items())
          + f" ({built.unassigned} in no fold, put in {args.unassigned})")
    for reason, ids in built.skipped.items():
        print(f"left out {len(ids)} segment(s), {reason}: {', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''}")
    if built.cut:
        print(f"segments cut to the --max-* lengths: {built.cut}")
    replaced = {name: n for name, n in built.replaced_neg_inf.items() if n}
    if replaced:
        print(f"-inf features replaced by 0: {replaced}")
    print(f"wrote {path} and {synthetic.correspondence_path(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
