"""Shared fixtures: where the real datasets are, tiny synthetic datasets in every layout, tiny models
and the ways a model folder gets damaged."""

from __future__ import annotations

import emorec  # noqa: F401  (first, before anything loads TensorFlow: see emorec/__init__.py)

import json
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emorec import registry

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("EMOREC_SHARED_DATA", ROOT.parent / "shared" / "data"))
# A search space of two parameters, a few configurations: scans that take seconds.
TINY_SPACE = """
[params]
activation_1 = ["relu", "tanh"]
activation_2 = ["relu"]
activation_3 = ["elu"]
activation_4 = ["relu"]
activation_5 = ["relu"]
neurons_layer_2 = [8]
neurons_layer_3 = [8, 16]
neurons_layer_4 = [8]
dropout = [0.1]
kernel_initializer = ["uniform"]
optimizer = ["Adam", "SGD"]
lr = [0.001]
batch_size = [8]
epochs = [2]
last_activation = ["softmax"]

[scan]
early_stopping_patience = 1
validation_subjects = 0.34
"""
# A Talos 2.x results table (three configurations), as a scan writes it.
TALOS2 = ("start,end,duration,execution_time,round_epochs,loss,accuracy,val_loss,val_accuracy,lr,dropout,optimizer,"
          "neurons_layer_2,activation_1,_trial_id,_param_hash\n"
          "2026-11-20 10:00:00,2026-11-20 10:00:30,30.5,30.1,12,0.9,0.7,1.1,0.61,0.001,0.30000000000000004,Adam,"
          "64,relu,0,ab12\n"
          "2026-11-20 10:00:30,2026-11-20 10:01:10,40.0,39.8,15,0.8,0.75,1.0,0.66,0.0001,0.1,Nadam,"
          "128,elu,1,cd34\n"
          "2026-11-20 10:01:10,2026-11-20 10:01:40,30.0,29.9,10,1.9,0.2,2.0,0.125,0.001,0.5,SGD,"
          "64,tanh,2,ef56\n")


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


def save_tiny_model(models_dir: Path, name: str = "tiny", convolutional: bool = False, **card) -> Path:
    """A real Keras model (48x48 gray -> 8 classes, untrained) with its card in ``models_dir/name``, as
    training would leave it: one dense layer, or (``convolutional``) emorec's own network made narrow,
    for what needs convolutions (the "why" heat map)."""
    import keras

    from emorec.config import LABELS
    from emorec.models import emorec_cnn

    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    model = (emorec_cnn(widths=(16, 32)) if convolutional else
             keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                               keras.layers.Dense(len(LABELS), activation="softmax")]))
    model.save(folder / registry.MODEL_FILE)
    registry.update_card(name, {"classes": list(LABELS), "input_shape": [48, 48, 1], "face_crop": True,
                                "description": "test model", **card}, models_dir)
    return folder


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def set_card(folder: Path, **changes) -> None:
    card = json.loads((folder / registry.CARD_FILE).read_text())
    (folder / registry.CARD_FILE).write_text(json.dumps({**card, **changes}))


# Every way a model folder (as save_tiny_model leaves it) gets damaged, and what the reason the model is
# unavailable must say: test_predict and test_bad_input (the app, the CLI) each pick the cases they try.
DAMAGE = {
    # name: (how the copy is damaged, what the reason must say)
    "truncated": (lambda f: truncate(f / registry.MODEL_FILE), "is damaged or incomplete"),
    "empty-model": (lambda f: (f / registry.MODEL_FILE).write_bytes(b""), "is damaged or incomplete"),
    "model-garbage": (lambda f: (f / registry.MODEL_FILE).write_bytes(b"garbage"), "is damaged or incomplete"),
    "model-is-a-folder": (lambda f: ((f / registry.MODEL_FILE).unlink(), (f / registry.MODEL_FILE).mkdir()),
                          "is damaged or incomplete"),
    "card-not-json": (lambda f: (f / registry.CARD_FILE).write_text("{not json"), "unreadable"),
    "card-not-an-object": (lambda f: (f / registry.CARD_FILE).write_text("[1, 2]"), "not a JSON object"),
    "card-not-utf8": (lambda f: (f / registry.CARD_FILE).write_bytes(b"\xff\xfe{\x00"), "unreadable"),
    "card-truncated": (lambda f: truncate(f / registry.CARD_FILE), "unreadable"),
    "card-incomplete": (lambda f: (f / registry.CARD_FILE).write_text('{"name": "tiny"}'),
                        "lacks classes, input_shape"),
    "card-only": (lambda f: (f / registry.MODEL_FILE).unlink(), "no model file"),
    "model-only": (lambda f: (f / registry.CARD_FILE).unlink(), "has no card"),
    "wrong-input-shape": (lambda f: set_card(f, input_shape=[32, 25, 3]), "does not match its card"),
    "wrong-classes": (lambda f: (f / registry.CARD_FILE).write_text(
        '{"classes": ["a", "b"], "input_shape": [48, 48, 1]}'), "does not match"),
}


@pytest.fixture
def class_folder_dataset(tmp_path: Path) -> Path:
    """<root>/<class>/S<subject>_<seq>_<frame>.png with aliases for folder names: 6 subjects, 3 labels."""
    root = tmp_path / "faces"
    for subject in range(1, 7):
        for sequence, folder in enumerate(["happy", "Angry", "neutral"], start=1):
            write_image(root / folder / f"S{subject:03d}_{sequence:03d}_{10 + sequence:08d}.png")
    return root


@pytest.fixture(scope="session")
def wild_data_root(tmp_path_factory) -> Path:
    """A tiny ../shared/data: FER2013 train and validation (three classes, 10 and 4 faces each) with
    FER+ votes (one face per split voted not-a-face), LFW expressions of 12 people, 4 of them on the
    kept validation list (noise: no face to find) and a London set whose first person is a real face
    (scikit-image's astronaut)."""
    import csv

    from skimage import data as skdata

    from emorec.config import LABELS

    root = tmp_path_factory.mktemp("data")
    votes = []
    for split, faces in (("train", 10), ("validation", 4)):
        for folder, label in (("happy", "happiness"), ("angry", "anger"), ("neutral", "neutral")):
            for i in range(faces):
                path = write_image(root / "fer2013" / split / folder / f"{split}_{folder}{i}.jpg", size=(48, 48))
                row = dict.fromkeys([*LABELS, "unknown", "NF"], 0) | {label: 6, "contempt": 4}
                if (folder, i) == ("happy", 0):
                    row = dict.fromkeys([*LABELS, "unknown", "NF"], 0) | {"NF": 10}
                votes.append({"path": path.relative_to(root).as_posix(), "split": split, **row})
    (root / "ferplus").mkdir()
    with open(root / "ferplus" / "labels.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, ["path", "split", *LABELS, "unknown", "NF"])
        writer.writeheader()
        writer.writerows(votes)
    from emorec.data import lfw_validation_people

    held_out = sorted(lfw_validation_people())[:4]  # people of the kept validation list, and others who may train
    for person in [*held_out, *(f"Person_{i:02d}" for i in range(8))]:
        for n, label in enumerate(("happiness", "neutral", "anger")):
            write_image(root / "lfw_expressions" / label / f"{person}_{n + 1:04d}.jpg", size=(112, 112))
    for label in ("neutral", "happiness"):
        write_image(root / "london" / label / "002.jpg", size=(128, 128), mode="RGB")
        Image.fromarray(skdata.astronaut()).save(root / "london" / label / "001.jpg")
    return root
