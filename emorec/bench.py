"""Speed and memory benchmarks on this machine, printed as tables by ``python -m emorec bench``."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from emorec import registry
from emorec.config import BENCH_DATA, DEFAULT_MODEL, EMOREC_INPUT_SHAPE, MODELS_DIR, FaceDefaults
from emorec.data import DatasetError, load_dataset
from emorec.faces import FaceDetector, align_crop, shared_detector
from emorec.images import ImageError, load_image
from emorec.predict import EmotionRecognizer, classify_photo, load_recognizers, served_latency
from emorec.workflows import record_latency

def bench_images(data: Path | None, count: int = 60) -> list[Path]:
    """Up to ``count`` images of a dataset, spread over its classes (CK+: 640x490 frames)."""
    folder = data or BENCH_DATA
    if not folder.exists():
        raise DatasetError(f"{folder} does not exist: pass --data with a folder of face photos (CK+ class folders).")
    manifest = load_dataset(folder)
    step = max(1, len(manifest) // count)
    return [Path(p) for p in manifest["path"].iloc[::step][:count]]


def face_photo(paths: list[Path], detector) -> tuple[Path, np.ndarray, object]:
    """The first readable photo with a face, its pixels and that face: benchmarks time real work."""
    for path in paths:
        try:
            image = load_image(path)
        except ImageError:
            continue
        faces = detector.detect(image)
        if faces:
            return path, image, faces[0]
    raise DatasetError(f"No face found in any of the {len(paths)} benchmark photos; pass --data with face photos.")


def bench_latency(write_cards: bool = False, models_dir: Path = MODELS_DIR) -> pd.DataFrame:
    """Every shipped model's latency per face on this machine, as served (``--write-cards``: into
    their cards, so the README and the Compare page compare numbers from one machine)."""
    rows = []
    for name in registry.model_names(models_dir):
        try:
            measured = record_latency(name, models_dir) if write_cards else served_latency(name, models_dir)
        except registry.ModelUnavailable as error:
            rows.append({"model": name, "ms per face": None, "measured": f"unavailable: {error}"})
            continue
        rows.append({"model": name, "ms per face": measured["latency_ms_per_face"],
                     "measured": measured["latency_measured"]})
    return pd.DataFrame(rows)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_faces(data: Path | None) -> pd.DataFrame:
    """Load + detect + align + crop per image, at the app's two ``min_face`` settings (the default
    and "find small faces", marked) and one between them."""
    paths = bench_images(data)
    rows = []
    marks = {FaceDefaults.min_face: " (default)", FaceDefaults.min_small_face: " (small faces)"}
    for min_face in sorted({*marks, 0.1}):
        detector = FaceDetector(min_face=min_face)
        detector.detect(load_image(paths[0]))  # warm-up: traces MTCNN's graphs
        seconds, one_face = [], 0
        for path in paths:
            started = time.perf_counter()
            image = load_image(path)
            faces = detector.detect(image)
            for face in faces:
                align_crop(image, face, EMOREC_INPUT_SHAPE[:2])
            seconds.append(time.perf_counter() - started)
            one_face += len(faces) == 1
        rows.append({
            "stage": "load+detect+align+crop",
            "min_face": f"{min_face}{marks.get(min_face, '')}",
            "images": len(paths),
            "image size": "x".join(map(str, load_image(paths[0]).shape[1::-1])),
            "median s": round(float(np.median(seconds)), 4),
            "p90 s": round(float(np.percentile(seconds, 90)), 4),
            "one face": f"{one_face}/{len(paths)}",
            "peak RSS MB": round(peak_rss_mb()),
        })
    return pd.DataFrame(rows)


def _median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def bench_predict(data: Path | None) -> pd.DataFrame:
    """End to end per 640x490 photo (load, detect, crop, classify) with the default model and with
    every shipped model side by side, and a 20-photo batch, after warm-up (medians of repeated runs)."""
    paths = bench_images(data, 20)
    recognizers, _ = load_recognizers()
    if not recognizers:
        raise registry.ModelUnavailable("No usable model in models/ to benchmark.")
    default = DEFAULT_MODEL if DEFAULT_MODEL in recognizers else next(iter(recognizers))
    photo, _, _ = face_photo(paths, shared_detector())
    rows = []
    for label, chosen in ((f"default model ({default})", {default: recognizers[default]}),
                          (f"all {len(recognizers)} models side by side", recognizers)):
        classify_photo(load_image(photo), chosen)  # warm-up
        rows.append({"measure": f"one photo, {label}", "photos": 1,
                     "median s": round(_median_seconds(lambda chosen=chosen: classify_photo(load_image(photo), chosen),
                                                       15), 4)})
        rows.append({"measure": f"{len(paths)}-photo batch, {label}", "photos": len(paths),
                     "median s": round(_median_seconds(lambda chosen=chosen: [classify_photo(load_image(p), chosen)
                                                                              for p in paths], 3), 3)})
    table = pd.DataFrame(rows)
    return table.assign(**{"s per photo": (table["median s"] / table["photos"]).round(4),
                           "peak RSS MB": round(peak_rss_mb())})


def bench_all(data: Path | None) -> pd.DataFrame:
    """One table: model load time, face stage, each model per face, end to end per photo, batch
    throughput and peak memory."""
    paths = bench_images(data, 20)
    photo, image, _ = face_photo(paths, shared_detector())
    rows = []
    for name in registry.model_names():
        started = time.perf_counter()
        try:
            EmotionRecognizer.load(name)
        except Exception as error:  # the table reports an unusable model instead of stopping
            rows.append({"measure": f"load {name}", "value": f"unavailable: {error}", "unit": ""})
            continue
        rows.append({"measure": f"load {name}", "value": round(time.perf_counter() - started, 3), "unit": "s"})
        keras.backend.clear_session()
    detector = shared_detector()

    def face_stage() -> None:
        pixels = load_image(photo)
        align_crop(pixels, detector.detect(pixels)[0], EMOREC_INPUT_SHAPE[:2])

    rows.append({"measure": "face stage (load+detect+align+crop) per photo", "unit": "s",
                 "value": round(_median_seconds(face_stage, 15), 4)})
    recognizers, _ = load_recognizers()
    for name, recognizer in recognizers.items():  # as the cards measure it (bench latency --write-cards)
        rows.append({"measure": f"{name} per face", "unit": "ms", "value": recognizer.latency_ms()})
    if recognizers:
        classify_photo(image, recognizers)
        rows.append({"measure": "end to end per photo, all models", "unit": "s",
                     "value": round(_median_seconds(lambda: classify_photo(load_image(photo), recognizers), 10), 4)})
        started = time.perf_counter()
        for path in paths:
            classify_photo(load_image(path), recognizers)
        rows.append({"measure": "batch throughput, all models", "unit": "photos/s",
                     "value": round(len(paths) / (time.perf_counter() - started), 1)})
    rows.append({"measure": "peak memory (RSS)", "unit": "MB", "value": round(peak_rss_mb())})
    return pd.DataFrame(rows)[["measure", "value", "unit"]]


BENCHES = {"all": bench_all, "faces": bench_faces, "predict": bench_predict}  # on photos (``data``)


def run(what: str, data: Path | None = None, write_cards: bool = False) -> pd.DataFrame:
    return bench_latency(write_cards) if what == "latency" else BENCHES[what](data)
