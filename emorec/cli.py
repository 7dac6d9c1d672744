"""The command line: ``python -m emorec COMMAND``. Heavy modules (TensorFlow) load only in the
commands that need them, so ``stats`` answers at once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emorec.config import CACHE_DIR, FaceDefaults, default_data_dir


def cmd_stats(args: argparse.Namespace) -> int:
    from emorec.data import class_counts, image_sizes, load_dataset

    manifest = load_dataset(args.data_dir)
    print(f"{args.data_dir}: {len(manifest)} images, {manifest['subject'].nunique()} subjects\n")
    print(class_counts(manifest).to_string())
    if args.sizes:
        print("\nImage sizes:")
        print(image_sizes(manifest).to_string(index=False))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from emorec.crops import detect_dataset, detection_report
    from emorec.data import load_dataset
    from emorec.faces import FaceDetector

    manifest = load_dataset(args.data_dir)
    detector = FaceDetector(min_face=args.min_face, min_score=args.min_score)
    detections = detect_dataset(manifest, detector, args.cache,
                                progress=lambda rows: tqdm(rows, desc="detecting faces", unit="img"))
    print(detection_report(detections).to_string())
    for title, rows in (("No face", detections["n_faces"] == 0), ("Several faces", detections["n_faces"] > 1)):
        listed = detections[rows]
        if len(listed):
            print(f"\n{title} ({len(listed)}):")
            for _, row in listed.iterrows():
                print(f"  {row['path']}" + (f"  ({row['error']})" if row["error"] else f"  ({row['n_faces']} faces)"))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from emorec import bench

    print(bench.run(args.what, args.data).to_string(index=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emorec", description="Facial-expression recognition workbench.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stats = commands.add_parser("stats", help="images, sequences and subjects per class of a dataset")
    stats.add_argument("data_dir", nargs="?", type=Path, default=default_data_dir(),
                       help="dataset folder or FER2013 CSV (default: $EMOREC_DATA or ./data)")
    stats.add_argument("--sizes", action="store_true", help="also count image sizes (reads every file header)")
    stats.set_defaults(run=cmd_stats)

    prepare = commands.add_parser("prepare", help="detect the faces of a dataset once, into the crop cache")
    prepare.add_argument("data_dir", type=Path, help="dataset folder or FER2013 CSV")
    prepare.add_argument("--min-face", type=float, default=FaceDefaults.min_face,
                         help="smallest face: fraction of the shorter side (<1) or pixels (default: %(default)s)")
    prepare.add_argument("--min-score", type=float, default=FaceDefaults.min_score,
                         help="drop detections below this MTCNN score (default: %(default)s)")
    prepare.add_argument("--cache", type=Path, default=CACHE_DIR / "faces", help="cache folder (default: %(default)s)")
    prepare.set_defaults(run=cmd_prepare)

    bench = commands.add_parser("bench", help="speed and memory on this machine, as a table")
    bench.add_argument("what", nargs="?", choices=["faces"], default="faces", help="what to measure (default: %(default)s)")
    bench.add_argument("--data", type=Path, default=None,
                       help="CK+ class folders to time on (default: ../shared/data/ckplus when present, else synthetic)")
    bench.set_defaults(run=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    from emorec.data import DatasetError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
