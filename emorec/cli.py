"""The command line: ``python -m emorec COMMAND``. Heavy modules (TensorFlow) load only in the
commands that need them, so ``stats`` answers at once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emorec.config import default_data_dir


def cmd_stats(args: argparse.Namespace) -> int:
    from emorec.data import class_counts, image_sizes, load_dataset

    manifest = load_dataset(args.data_dir)
    print(f"{args.data_dir}: {len(manifest)} images, {manifest['subject'].nunique()} subjects\n")
    print(class_counts(manifest).to_string())
    if args.sizes:
        print("\nImage sizes:")
        print(image_sizes(manifest).to_string(index=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emorec", description="Facial-expression recognition workbench.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stats = commands.add_parser("stats", help="images, sequences and subjects per class of a dataset")
    stats.add_argument("data_dir", nargs="?", type=Path, default=default_data_dir(),
                       help="dataset folder or FER2013 CSV (default: $EMOREC_DATA or ./data)")
    stats.add_argument("--sizes", action="store_true", help="also count image sizes (reads every file header)")
    stats.set_defaults(run=cmd_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    from emorec.data import DatasetError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
