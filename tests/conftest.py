"""Shared fixtures: where the real datasets are, and tiny synthetic datasets in every layout."""

from __future__ import annotations

import emorec  # noqa: F401  (first, before anything loads TensorFlow: see emorec/__init__.py)

import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("EMOREC_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_data(*parts: str) -> Path:
    """A folder of ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the real datasets), which is absent on this machine")
    return path


def calibrated_probabilities(n: int, seed: int, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic predictions that are calibrated by construction, and their labels: with the true
    class's logit raised by 1, the softmax of the logits is the true posterior."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, classes))
    logits[np.arange(n), labels] += 1.0
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), labels


def write_image(path: Path, size=(64, 48), mode="L", value: int | None = None) -> Path:
    """A small image with some structure (so encoders keep detail), written in the format of its suffix."""
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    height, width = size[1], size[0]
    pixels = rng.integers(0, 255, (height, width, 3 if mode == "RGB" else 1), dtype=np.uint8)
    if value is not None:
        pixels[:] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.squeeze()).convert(mode).save(path)
    return path


@pytest.fixture
def class_folder_dataset(tmp_path: Path) -> Path:
    """<root>/<class>/S<subject>_<seq>_<frame>.png with aliases for folder names: 6 subjects, 3 labels."""
    root = tmp_path / "faces"
    for subject in range(1, 7):
        for sequence, folder in enumerate(["happy", "Angry", "neutral"], start=1):
            write_image(root / folder / f"S{subject:03d}_{sequence:03d}_{10 + sequence:08d}.png")
    return root
