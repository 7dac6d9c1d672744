"""The command line: ``python -m emorec COMMAND``. The modules that load TensorFlow at import
(training, workflows, benchmarks, scans) are imported by the commands that need them, so ``stats``,
``models`` and ``--help`` answer at once."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from emorec import registry
from emorec.cards import COLUMN_TITLES, benchmark_table, model_table
from emorec.config import (CACHE_DIR, DEFAULT_MODEL, FER_SLICE, FINETUNE_EPOCHS, IMAGE_SUFFIXES, LABELS, MODELS_DIR,
                           PRETRAIN_EPOCHS, PROBE_EPOCHS, PROTOCOLS, SEARCH_SPACE, SHIPPED_SCAN, VARIANT_NAMES,
                           WILD_EPOCHS, FaceDefaults, default_data_dir)
from emorec.crops import detect_dataset, detection_report
from emorec.data import DatasetError, class_counts, image_sizes, load_dataset
from emorec.distributed import runner
from emorec.faces import FaceDetector
from emorec.images import ImageError, load_image
from emorec.predict import EmotionRecognizer
from emorec.tune_results import (SearchSpaceError, TalosTableError, load_space, merge_scans, parameter_importance,
                                 read_results, summarize)


def cmd_stats(args: argparse.Namespace) -> int:
    manifest = load_dataset(args.data_dir)
    print(f"{args.data_dir}: {len(manifest)} images, {manifest['subject'].nunique()} subjects\n")
    print(class_counts(manifest).to_string())
    if args.sizes:
        print("\nImage sizes:")
        print(image_sizes(manifest).to_string(index=False))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
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
    from emorec import bench  # deferred: loads TensorFlow

    if args.write_cards and args.what != "latency":
        print("--write-cards goes with `bench latency`.", file=sys.stderr)
        return 2
    print(bench.run(args.what, args.data, args.write_cards).to_string(index=False))
    return 0


def command_line() -> str:
    """The command being run, as a card records it (so anyone can rerun it)."""
    return "python -m emorec " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def progress_bar(desc: str, unit: str = "it"):
    return lambda items: tqdm(items, desc=desc, unit=unit)


def cmd_pretrain(args: argparse.Namespace) -> int:
    from emorec.finetune import pretrain_fer, pretrained_path  # deferred: loads TensorFlow

    pretrained = pretrained_path(MODELS_DIR)
    if args.restart and not pretrained.is_file():
        print(f"--restart continues the pretrained network, and {pretrained} does not exist: run without --restart "
              "first.", file=sys.stderr)
        return 2
    pretrain_fer(args.data, pretrained.parent, args.epochs, restart_from=pretrained if args.restart else None)
    print(f"saved {pretrained}")
    return 0


def cmd_pretrain_wild(args: argparse.Namespace) -> int:
    from emorec.finetune import stage1_path, wild_path  # deferred: loads TensorFlow
    from emorec.wild import pretrain_wild  # deferred: loads TensorFlow

    start = stage1_path(MODELS_DIR)
    if not start.is_file():
        print(f"stage 1b continues stage 1's network, and {start} does not exist: run `pretrain` first.",
              file=sys.stderr)
        return 2
    stats = pretrain_wild(start, args.ferplus, args.fer, args.lfw, wild_path(MODELS_DIR), args.epochs)
    print(json.dumps(stats, indent=1))
    print(f"saved {wild_path(MODELS_DIR)}")
    return 0


class UsageError(ValueError):
    """A command line that parses but asks for something that cannot be: argparse's exit (status 2,
    with the command's usage), like any other wrong command line."""


def reject_emorec_options(args: argparse.Namespace) -> None:
    """The extra data and stage-2 options mean something to emorec's recipe only: refuse them for
    a study variant rather than ignore them."""
    given = [option for option, value, default in (("--ck48", args.ck48, None), ("--fer", args.fer, None),
                                                   ("--fer-faces", args.fer_faces, FER_SLICE),
                                                   ("--probe-epochs", args.probe_epochs, PROBE_EPOCHS),
                                                   ("--transfer", args.transfer, None))
             if value != default]
    if args.variant != "emorec" and given:
        raise UsageError(f"{', '.join(given)} apply to --variant emorec only")


def recipe_of(args: argparse.Namespace):
    """emorec's stage-2 recipe from the command line."""
    from emorec.finetune import Recipe  # deferred: loads TensorFlow

    return Recipe(args.data, args.ck48, args.fer, args.transfer, epochs=args.epochs or FINETUNE_EPOCHS,
                  probe_epochs=args.probe_epochs, fer_faces=args.fer_faces)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from emorec import workflows  # deferred: loads TensorFlow

    reject_emorec_options(args)
    if args.protocol in ("cross-dataset", "fer2013-publictest"):
        given = [option for option, value in (("--folds", args.folds), ("--epochs", args.epochs), ("--ck48", args.ck48),
                                              ("--fer", args.fer), ("--transfer", args.transfer),
                                              ("--address", args.address)) if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} apply to cross-validation, not to --protocol {args.protocol} "
                             "(it measures the shipped model as it is)")
    if args.protocol == "cross-dataset":
        return print_cross_dataset(args.variant, args.data)
    progress = progress_bar(f"{args.variant} {args.protocol}", "fold")
    if args.protocol == "fer2013-publictest":
        summary = workflows.evaluate_holdout(args.variant, args.data, command_line(), MODELS_DIR)
        print(f"{args.data}: accuracy {summary['accuracy']:.3f}, macro-F1 {summary['macro_f1']:.3f} "
              f"({summary['images']} faces)")
        return 0
    if args.variant == "emorec":
        if args.protocol != "subject-kfold":
            raise UsageError("emorec is cross-validated by subject only (--protocol subject-kfold)")
        summary = workflows.cross_validate_emorec(recipe_of(args), command_line(), MODELS_DIR, args.folds, progress,
                                                  progress_bar("weight-mixing scan", "fold"),
                                                  runner(args.engine, args.address))
    else:
        summary = workflows.evaluate_variant(args.variant, args.data, args.protocol, command_line(), args.folds,
                                             MODELS_DIR, progress, args.epochs, runner(args.engine, args.address))
    if "weight_mixing" in summary:
        print(pd.DataFrame(summary["weight_mixing"]["scan"]).to_string(index=False))
        print(f"chosen: {summary['weight_mixing']['share']:g} x fine-tuned weights")
        for domain, held_out in summary["weight_mixing"]["leave_one_domain_out"].items():
            print(f"{domain} left out: share {held_out['share']:g} chosen by the others, accuracy there "
                  f"{held_out['accuracy']:.1%} (the best any share scores there: {held_out['best']:.1%})")
    for key, title in (("classes_8", "8 classes"), ("emotions_7", "7 emotions")):
        acc, f1 = summary[key]["accuracy"], summary[key]["macro_f1"]
        print(f"{title}: accuracy {acc['mean']:.3f} ± {acc['std']:.3f}, macro-F1 {f1['mean']:.3f} ± {f1['std']:.3f}")
    if summary.get("published") is False:
        print(f"not the shipped model's recipe: results kept in {summary['run_dir']}; `train` with the same "
              "options ships this recipe with them")
    return 0


def print_cross_dataset(name: str, data_root: Path) -> int:
    from emorec.workflows import evaluate_cross_dataset  # deferred: loads TensorFlow

    result = evaluate_cross_dataset(name, data_root, command_line(), MODELS_DIR,
                                    progress_bar(f"{name} cross-dataset", "set"))
    table = pd.DataFrame([{"set": set_name, "images": r["images"], "left out: trained on": r["left_out_trained_on"],
                           "faces found": r["face_rate"],
                           "accuracy": r["accuracy"], "macro-F1": r["macro_f1"],
                           "floor accuracy": r["floor"]["accuracy"],
                           "floor macro-F1": r["floor"]["macro_f1"]} for set_name, r in result["sets"].items()])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1%}"))
    for set_name, reason in result["skipped"].items():
        print(f"skipped {set_name}: {reason}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from emorec.workflows import ship_emorec, train_final  # deferred: loads TensorFlow

    reject_emorec_options(args)
    if args.variant == "emorec":
        card = ship_emorec(recipe_of(args), command_line(), MODELS_DIR)
    else:
        card = train_final(args.variant, args.data, command_line(), args.epochs, MODELS_DIR,
                           progress=progress_bar("detecting faces", "img"))
    print(f"saved models/{args.variant}: {card.parameters:,} parameters, {card.size_mb:.1f} MB, "
          f"{card.latency_ms_per_face} ms per face")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    if args.metric is not None and not args.cross_dataset:
        raise UsageError("--metric applies with --cross-dataset only")
    names = registry.model_names(MODELS_DIR)
    cards = registry.read_cards(names, MODELS_DIR)
    if args.cross_dataset:
        table = benchmark_table(cards, args.metric or "accuracy").rename(columns=COLUMN_TITLES)
        table = table.rename_axis("model").reset_index()
    else:
        predictions = {name: registry.read_predictions(name, "subject-kfold", MODELS_DIR) for name in cards}
        table = model_table(cards, predictions,
                            unreadable={name: model_problem(name) for name in names if name not in cards})
        for name in cards:
            if problem := model_problem(name):
                table.loc[table["model"] == name, "status"] = problem
    if table.empty:
        print("No models in models/.")
    elif args.markdown:
        print(markdown_table(table, fractions=args.cross_dataset))
    else:
        print(table.to_string(index=False))
    return 0


def model_problem(name: str) -> str | None:
    """Why a listed model cannot be used (no readable card, no model file), or None."""
    try:
        registry.read_card(name, MODELS_DIR)
    except registry.ModelUnavailable as error:
        return str(error)
    if not (MODELS_DIR / name / registry.MODEL_FILE).is_file():
        return f"unavailable: no {registry.MODEL_FILE}"
    return None


def markdown_table(table, fractions: bool = False) -> str:
    """A DataFrame as a Markdown table (fractions as percentages: the accuracy columns, or every
    number with ``fractions``), for the README."""
    def cell(column: str, value) -> str:
        if value is None or value != value:
            return "—"
        if isinstance(value, float) and (fractions or "CK+" in column or "FER" in column or "study" in column):
            return f"{value:.1%}"
        return str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(c, v) for c, v in row.items()) + " |" for _, row in table.iterrows()]
    return "\n".join(lines)


def iter_images(paths: list[Path]):
    """Files as given, and image files under directories (recursively, sorted)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path


def cmd_predict(args: argparse.Namespace) -> int:
    recognizer = EmotionRecognizer.load(args.model, MODELS_DIR)
    images = list(iter_images(args.paths))
    if not images:
        print(f"warning: no image files in {', '.join(map(str, args.paths))}", file=sys.stderr)
    for path in images:
        try:
            faces = [f.to_dict() for f in recognizer.predict(load_image(path), whole_image=args.whole_image)]
            error = None
        except ImageError as problem:
            faces, error = [], str(problem)
        if args.json:
            print(json.dumps({"path": str(path), "faces": faces, "error": error}), flush=True)
        elif error:
            print(f"{path}: error: {error}")
        elif not faces:
            print(f"{path}: no face found (try --whole-image for pre-cropped faces)")
        else:
            print(f"{path}: " + "; ".join(
                f"face {i + 1} at {f['box']}: {f['label']} {f['probabilities'][f['label']]:.0%}"
                + ("" if f["sure"] else " (not sure)")
                for i, f in enumerate(faces)))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from emorec.tune_scan import run_scan, run_sharded_scan  # deferred: loads TensorFlow and Talos

    try:
        shard = tuple(int(v) for v in args.shard.split("/")) if args.shard else None
    except ValueError:
        shard = (-1,)
    if shard and not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
        print("error: --shard must be INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4", file=sys.stderr)
        return 2
    if args.out is None:  # the shipped scan, or this shard's part of it
        tuning = MODELS_DIR / "tuning"
        args.out = (tuning / "shards" / f"{SHIPPED_SCAN}-{shard[0]}of{shard[1]}.csv" if shard
                    else tuning / f"{SHIPPED_SCAN}.csv")
    if args.out.is_dir() or args.out.suffix.lower() != ".csv":
        print(f"error: --out must name a .csv file, not {args.out}", file=sys.stderr)
        return 2
    if shard and args.shards:
        raise UsageError("--shard runs one shard by hand; --shards splits the whole scan: give one of them")
    load_space(args.space)  # a bad space file fails now, not after loading the data
    started = time.time()
    if shard:
        status, rows = run_scan(args.data, args.out, args.variant, args.space, args.rounds, shard)
    else:
        shards = args.shards or os.cpu_count() or 1
        rows = run_sharded_scan(args.data, args.out, args.variant, args.space, args.rounds, shards,
                                runner(args.engine, args.address), progress_bar("scan shards", "shard"))
        status = f"of {shards} shards complete"
    print(f"scan {status}: {rows} configurations in {args.out} ({(time.time() - started) / 60:.1f} min this run)")
    return 0


def cmd_tune_merge(args: argparse.Namespace) -> int:
    print(f"{merge_scans(args.tables, args.out)} configurations in {args.out}")
    return 0


def cmd_tune_report(args: argparse.Namespace) -> int:
    """What a scan found, as text: the Tuning page's headline numbers for a terminal or a README."""
    results = read_results(args.table)
    metric = args.metric or results.primary_metric
    if metric not in results.metrics:
        print(f"error: {args.table} has no metric {metric!r}; it has {', '.join(results.metrics)}", file=sys.stderr)
        return 2
    summary = summarize(results, metric)
    print(f"{args.table}: {summary.configurations:,} configurations ({results.dialect}), ranked by {metric}")
    if summary.minutes is not None:
        print(f"training time: {summary.minutes:.1f} min in all, "
              f"median {summary.median_seconds:.0f} s per configuration")
    print(f"best {metric} {summary.best:.4f}, median {summary.median:.4f}; "
          f"at or below chance (1/{len(LABELS)}): {summary.below_chance:.0%}")
    for _, row in summary.repeated.iterrows():
        print(f"{int(row['runs'])} runs ({row['share']:.0%}) ended at exactly {metric} = {row[metric]:.4f}")
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(f"\ntop {args.top}:")
        print(results.top(args.top, metric)[[*results.metrics, *results.params]].to_string(index=False))
        print(f"\nparameter importance (share of {metric} variance explained, one-way ANOVA):")
        print(parameter_importance(results, metric).to_string(index=False))
    return 0


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def at_least_two(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("cross-validation needs at least 2 folds")
    return value


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

    pretrain = commands.add_parser("pretrain", help="emorec stage 1: pretrain on FER2013 train (resumable)")
    pretrain.add_argument("--data", required=True, type=Path, help="FER2013 train (class folders or CSV)")
    pretrain.add_argument("--epochs", type=positive_int, default=PRETRAIN_EPOCHS)
    pretrain.add_argument("--restart", action="store_true",
                          help="continue the shipped pretrained network for another cycle "
                               "(warm restart, random erasing)")
    pretrain.set_defaults(run=cmd_pretrain)

    wild = commands.add_parser("pretrain-wild",
                               help="emorec stage 1b: FER+ votes and LFW people, from stage 1 (resumable)")
    wild.add_argument("--ferplus", required=True, type=Path, help="FER+ votes (ferplus/labels.csv)")
    wild.add_argument("--fer", required=True, type=Path, help="FER2013 train (the faces the votes are for)")
    wild.add_argument("--lfw", required=True, type=Path, help="LFW expressions (class folders; people in file names)")
    wild.add_argument("--epochs", type=positive_int, default=WILD_EPOCHS)
    wild.set_defaults(run=cmd_pretrain_wild)

    variants = list(VARIANT_NAMES)
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--ck48", type=Path, default=None, help="emorec: CK+48 frames as extra training faces")
    extra.add_argument("--fer", type=Path, default=None, help="emorec: FER2013 train, a slice mixed into fine-tuning")
    extra.add_argument("--fer-faces", type=positive_int, default=FER_SLICE,
                       help="emorec: size of that FER2013 slice (default: %(default)s)")
    extra.add_argument("--transfer", type=Path, default=None,
                       help="emorec: the data folder holding ferplus/, lfw_expressions/ and london/: FER+ votes "
                            "label the FER2013 faces, and LFW's validation people and London join the choice of the "
                            "mixing share")
    extra.add_argument("--probe-epochs", type=non_negative_int, default=PROBE_EPOCHS,
                       help="emorec: epochs training the classifier alone before fine-tuning "
                            "(LP-FT; default: %(default)s)")
    engine = argparse.ArgumentParser(add_help=False)  # how independent jobs (folds, shards) run
    engine.add_argument("--engine", choices=["ray", "local"], default="ray",
                        help="ray: folds or shards as Ray tasks, on a local Ray cluster sized to this machine or on "
                             "--address; local: one after the other in this process (default: %(default)s)")
    engine.add_argument("--address", default=None,
                        help="a Ray cluster to run on, e.g. ray://head:10001 (default: $RAY_ADDRESS, else local)")
    evaluate = commands.add_parser("evaluate", parents=[extra, engine],
                                   help="evaluate a model variant and record it in its card")
    evaluate.add_argument("--variant", required=True, choices=variants)
    evaluate.add_argument("--data", required=True, type=Path,
                          help="dataset folder (CK+; FER2013 validation for fer2013-publictest; the folder holding "
                               "fer2013/, ferplus/, lfw_expressions/ and london/ for cross-dataset)")
    evaluate.add_argument("--protocol", choices=[*PROTOCOLS, "fer2013-publictest", "cross-dataset"],
                          default="subject-kfold",
                          help="subject-kfold (honest), image-kfold (the study's split), fer2013-publictest "
                               "(the shipped model on FER2013's PublicTest faces) or cross-dataset (the shipped model "
                               "on FER2013 and FER+ PublicTest, LFW's validation people and the London set); "
                               "default: %(default)s")
    evaluate.add_argument("--folds", type=at_least_two, default=None,
                          help="number of folds (default: 10 by subject, 4 by image: the study's 75/25 split)")
    evaluate.add_argument("--epochs", type=positive_int, default=None,
                          help=f"emorec: fine-tuning epochs per fold (default {FINETUNE_EPOCHS}); a study variant: "
                               "the most epochs per fold, before early stopping (default: the variant's)")
    evaluate.set_defaults(run=cmd_evaluate)

    train = commands.add_parser("train", parents=[extra],
                                help="train a model variant on a whole dataset and ship it in models/")
    train.add_argument("--variant", required=True, choices=variants)
    train.add_argument("--data", required=True, type=Path, help="dataset folder (CK+)")
    train.add_argument("--epochs", type=positive_int, default=None,
                       help="default: the median best epoch of its cross-validation, else the variant's default "
                            f"(emorec: {FINETUNE_EPOCHS} fine-tuning epochs)")
    train.set_defaults(run=cmd_train)

    tune = commands.add_parser("tune", parents=[engine],
                               help="a Talos scan of the study's network family, validated by subject")
    tune.add_argument("--space", type=Path, default=SEARCH_SPACE, help="search-space TOML (default: the study's)")
    tune.add_argument("--variant", choices=["full", "mtcnn"], default="mtcnn", help="whole frames or MTCNN crops")
    tune.add_argument("--data", required=True, type=Path, help="dataset folder (CK+)")
    tune.add_argument("--rounds", type=positive_int, default=None, help="configurations to try (default: all)")
    tune.add_argument("--out", type=Path, default=None,
                      help=f"results table (default: models/tuning/{SHIPPED_SCAN}.csv, "
                           f"or shards/{SHIPPED_SCAN}-IofN.csv)")
    tune.add_argument("--shards", type=positive_int, default=None,
                      help="split the scan in this many jobs (default: one per CPU of this machine)")
    tune.add_argument("--shard", default=None, metavar="I/N",
                      help="run only shard I of N here, without Ray (for several machines by hand; tune-merge)")
    tune.set_defaults(run=cmd_tune)

    merge = commands.add_parser("tune-merge", help="merge the results tables of a scan's shards")
    merge.add_argument("tables", nargs="+", type=Path)
    merge.add_argument("--out", required=True, type=Path)
    merge.set_defaults(run=cmd_tune_merge)

    report = commands.add_parser("tune-report", help="what a Talos results table found: best runs, importance")
    report.add_argument("table", type=Path, help="a Talos results CSV (any Talos version)")
    report.add_argument("--metric", default=None, help="rank by this metric (default: the validation metric)")
    report.add_argument("--top", type=positive_int, default=5, help="configurations to show")
    report.set_defaults(run=cmd_tune_report)

    models = commands.add_parser("models", help="list the shipped models with their headline numbers")
    models.add_argument("--markdown", action="store_true", help="as a Markdown table (for the README)")
    models.add_argument("--cross-dataset", action="store_true",
                        help="the cross-dataset benchmark instead (`evaluate --protocol cross-dataset`), "
                             "one column per set")
    models.add_argument("--metric", choices=["accuracy", "macro_f1", "face_rate"], default=None,
                        help="with --cross-dataset: the number shown (default: accuracy)")
    models.set_defaults(run=cmd_models)

    predict = commands.add_parser("predict", help="classify the faces in images (files or folders)")
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH_OR_DIR")
    predict.add_argument("--model", default=DEFAULT_MODEL, help="model name in models/ (default: %(default)s)")
    predict.add_argument("--whole-image", action="store_true", help="treat each image as one face (pre-cropped faces)")
    predict.add_argument("--json", action="store_true", help="one JSON object per image per line")
    predict.set_defaults(run=cmd_predict)

    bench = commands.add_parser("bench", help="speed and memory on this machine, as a table")
    bench.add_argument("what", nargs="?", choices=["all", "faces", "predict", "latency"], default="all",
                       help="what to measure (default: %(default)s: everything in one table; latency: every "
                            "shipped model per face, as served)")
    bench.add_argument("--data", type=Path, default=None,
                       help="face photos to time on, e.g. CK+ class folders (default: ../shared/data/ckplus; "
                            "latency times a blank face)")
    bench.add_argument("--write-cards", action="store_true",
                       help="with `latency`: record the numbers, the date and this machine in the models' cards")
    bench.set_defaults(run=cmd_bench)
    for command in commands.choices.values():
        command.set_defaults(parser=command)  # UsageError reports through the command's own usage
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as error:
        args.parser.error(str(error))  # exits with status 2
    except (DatasetError, ImageError, registry.ModelUnavailable, SearchSpaceError, TalosTableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
