"""Detect the faces of a whole dataset once and keep the result in a cache outside the repo.

Detections (boxes, scores, landmarks) are cached, not pixels: one JSON file per image, keyed by a
hash of the image's bytes and the detector's settings, written atomically, so ``prepare`` can be
interrupted and resumed and a renamed file is not detected twice. Crops for any input size are
then cut from the cached detections with ``faces.align_crop`` in about a millisecond.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from emorec.config import CACHE_DIR, LABELS, FaceDefaults
from emorec.data import DatasetError, read_image
from emorec.faces import Face, FaceDetector, align_crop, main_face, shared_detector
from emorec.files import atomic_target, atomic_write_text
from emorec.images import ImageError, load_image, to_model_input


def _key(row: pd.Series, settings: dict) -> str:
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode())
    if isinstance(row.get("pixels"), str):
        digest.update(row["pixels"].encode())
    else:
        digest.update(Path(row["path"]).read_bytes())
    return digest.hexdigest()


def _load_rgb(row: pd.Series) -> np.ndarray:
    return load_image(read_image(row)) if isinstance(row.get("pixels"), str) else load_image(row["path"])


def _cached_faces(path: Path) -> list[Face] | None:
    """The faces stored for one image, or None when there is no (readable) entry: a damaged entry
    is detected again rather than trusted."""
    try:
        return [Face.from_dict(d) for d in json.loads(path.read_text())]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None


def detect_dataset(manifest: pd.DataFrame, detector: FaceDetector, cache_dir: Path = CACHE_DIR / "faces",
                   progress: Callable[[Iterable], Iterable] = iter) -> pd.DataFrame:
    """The manifest with ``faces`` (list of ``Face``), ``n_faces`` and ``error`` columns; images
    already in the cache are not detected again. ``progress`` wraps the row iterator (e.g. tqdm)."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetError(f"The cache folder {cache_dir} cannot be created ({error.strerror or error}).") from None
    settings = detector.settings()
    faces_column, errors = [], []
    for _, row in progress(list(manifest.iterrows())):
        try:
            path = cache_dir / f"{_key(row, settings)}.json"
            faces = _cached_faces(path)
            if faces is None:
                faces = detector.detect(_load_rgb(row))
                atomic_write_text(path, json.dumps([f.to_dict() for f in faces]))
            faces_column.append(faces)
            errors.append(None)
        except (ImageError, OSError) as error:
            faces_column.append([])
            errors.append(str(error))
    result = manifest.copy()
    result["faces"] = faces_column
    result["n_faces"] = [len(f) for f in faces_column]
    result["error"] = errors
    return result


def detection_report(detections: pd.DataFrame) -> pd.DataFrame:
    """Per class: images, how many have exactly one, no or several faces, and the detection rate."""
    table = pd.DataFrame(
        {
            "images": detections.groupby("label").size(),
            "one face": detections[detections["n_faces"] == 1].groupby("label").size(),
            "no face": detections[detections["n_faces"] == 0].groupby("label").size(),
            "several": detections[detections["n_faces"] > 1].groupby("label").size(),
        }
    ).reindex([label for label in LABELS if label in set(detections["label"])]).fillna(0).astype(int)
    table.loc["total"] = table.sum()
    table["detection rate"] = ((table["images"] - table["no face"]) / table["images"]).round(4)
    table.index.name = "label"
    return table


def model_inputs(manifest: pd.DataFrame, input_shape: tuple[int, int, int], face_crop: bool,
                 margin: float = FaceDefaults.margin) -> np.ndarray:
    """The images as a model of ``input_shape`` sees them: with ``face_crop``, the aligned crop of
    each image's main face (from the ``faces`` column of ``detect_dataset``); otherwise, or when no
    face was found, the whole image resized (whole-frame models, pre-cropped faces)."""
    height, width, channels = input_shape
    out = np.empty((len(manifest), height, width, channels), np.uint8)
    for i, (_, row) in enumerate(manifest.iterrows()):
        image = _load_rgb(row)
        face = main_face(row["faces"]) if face_crop else None
        if face is not None:
            out[i] = align_crop(image, face, (height, width), channels, margin)
        else:
            out[i] = to_model_input(image, input_shape)
    return out


def contents_signature(manifest: pd.DataFrame) -> str:
    """What a manifest's images hold, cheaply: each file's size and modification time (a FER2013 CSV
    row: its pixels), so images changed at the same paths are not served from a stale cache."""
    digest = hashlib.sha1()
    pixels = manifest["pixels"] if "pixels" in manifest else [None] * len(manifest)
    for path, row_pixels in zip(manifest["path"], pixels):
        if isinstance(row_pixels, str):
            digest.update(row_pixels.encode())
            continue
        try:
            stat = os.stat(path)
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns};".encode())
        except (OSError, ValueError):
            digest.update(b"unreadable;")  # model_inputs names the file when it fails to read it
    return digest.hexdigest()


def cached_model_inputs(manifest: pd.DataFrame, input_shape: tuple[int, int, int], face_crop: bool,
                        margin: float = FaceDefaults.margin, cache_dir: Path = CACHE_DIR / "arrays") -> np.ndarray:
    """``model_inputs`` computed once per (images and their contents, shape, crop settings) and kept as .npy."""
    recipe = [list(manifest["path"]), contents_signature(manifest), list(input_shape), face_crop,
              margin if face_crop else None]
    if face_crop:
        recipe.append([[f.to_dict() for f in faces] for faces in manifest["faces"]])
    key = hashlib.sha1(json.dumps(recipe).encode()).hexdigest()[:16]
    path = cache_dir / f"{key}.npy"
    expected_shape = (len(manifest), *input_shape)
    try:
        images = np.load(path)
        if images.shape == expected_shape and images.dtype == np.uint8:
            return images
        path.unlink()  # damaged or foreign: rebuilt below
    except FileNotFoundError:
        pass
    except (OSError, ValueError, EOFError):
        path.unlink(missing_ok=True)
    images = model_inputs(manifest, input_shape, face_crop, margin)
    with atomic_target(path) as tmp:
        np.save(tmp, images)
    return images


def main_face_crops(manifest: pd.DataFrame, input_shape: tuple[int, int, int], margin: float,
                    detector: FaceDetector | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each photo's main face as MTCNN finds it (detections cached), cropped as the app crops it,
    and whether a face was found (where none was: the whole photo, to be counted as no face)."""
    detections = detect_dataset(manifest, detector or shared_detector())
    return cached_model_inputs(detections, input_shape, True, margin), (detections["n_faces"] > 0).to_numpy()
