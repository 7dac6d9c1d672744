"""Speed and memory benchmarks on this machine, printed as tables by ``python -m emorec bench``."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from emorec.config import PROJECT_ROOT, FaceDefaults

DEFAULT_BENCH_DATA = PROJECT_ROOT.parent / "shared" / "data" / "ckplus"


def bench_images(data: Path | None, count: int = 60) -> list[Path]:
    """Up to ``count`` images of a dataset, spread over its classes (CK+: 640x490 frames)."""
    from emorec.data import DatasetError, load_dataset

    folder = data or DEFAULT_BENCH_DATA
    if not folder.exists():
        raise DatasetError(f"{folder} does not exist: pass --data with a folder of face photos (CK+ class folders).")
    manifest = load_dataset(folder)
    step = max(1, len(manifest) // count)
    return [Path(p) for p in manifest["path"].iloc[::step][:count]]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_faces(data: Path | None) -> pd.DataFrame:
    """Load + detect + align + crop per image, at a few ``min_face`` settings (the default marked)."""
    from emorec.faces import FaceDetector, align_crop
    from emorec.images import load_image

    paths = bench_images(data)
    rows = []
    for min_face in sorted({0.1, FaceDefaults.min_face, 0.2}):
        detector = FaceDetector(min_face=min_face)
        detector.detect(load_image(paths[0]))  # warm-up: traces MTCNN's graphs
        seconds, one_face = [], 0
        for path in paths:
            started = time.perf_counter()
            image = load_image(path)
            faces = detector.detect(image)
            for face in faces:
                align_crop(image, face, (48, 48))
            seconds.append(time.perf_counter() - started)
            one_face += len(faces) == 1
        rows.append({
            "stage": "load+detect+align+crop",
            "min_face": f"{min_face}" + (" (default)" if min_face == FaceDefaults.min_face else ""),
            "images": len(paths),
            "image size": "x".join(map(str, load_image(paths[0]).shape[1::-1])),
            "median s": round(float(np.median(seconds)), 4),
            "p90 s": round(float(np.percentile(seconds, 90)), 4),
            "one face": f"{one_face}/{len(paths)}",
            "peak RSS MB": round(peak_rss_mb()),
        })
    return pd.DataFrame(rows)


BENCHES = {"faces": bench_faces}


def run(what: str, data: Path | None = None) -> pd.DataFrame:
    return BENCHES[what](data)
