"""The prediction API (``emorec.predict``): EmotionRecognizer, its loading and PhotoResult."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from skimage import data as skdata

from emorec import registry
from emorec.cards import ModelCard
from emorec.config import LABELS
from emorec.predict import EmotionRecognizer
from tests.conftest import DAMAGE, save_tiny_model, shared_data


def test_recognizer_predicts_faces_and_whole_images(tmp_path):
    save_tiny_model(tmp_path, convolutional=True)
    recognizer = EmotionRecognizer.load("tiny", tmp_path)
    astronaut = skdata.astronaut()
    faces = recognizer.predict(astronaut)
    assert len(faces) == 1
    face = faces[0].to_dict()
    assert face["label"] in LABELS and sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    json.dumps(face)
    whole = recognizer.predict(astronaut, whole_image=True)
    assert whole[0].box == [0, 0, 512, 512]


def test_temperature_softens_probabilities(tmp_path):
    save_tiny_model(tmp_path, convolutional=True)
    sharp = EmotionRecognizer.load("tiny", tmp_path)
    registry.update_card("tiny", {"temperature": 3.0}, tmp_path)
    soft = EmotionRecognizer.load("tiny", tmp_path)
    crops = np.random.default_rng(0).integers(0, 255, (4, 48, 48, 1)).astype(np.float32)
    assert soft.classify(crops).max(axis=1).mean() < sharp.classify(crops).max(axis=1).mean()
    assert np.allclose(soft.classify(crops).sum(axis=1), 1)


# Damages from the shared table (tests/conftest.py; test_bad_input tries the app and the CLI on others).
@pytest.mark.parametrize(
    "name", ["model-only", "card-not-json", "card-only", "model-garbage", "card-incomplete", "wrong-classes"])
def test_unusable_models_say_why(tmp_path, name):
    damage, message = DAMAGE[name]
    damage(save_tiny_model(tmp_path, convolutional=True))
    with pytest.raises(registry.ModelUnavailable, match=message):
        EmotionRecognizer.load("tiny", tmp_path)


@pytest.mark.data
@pytest.mark.parametrize("name", ["baseline", "tuned_full", "tuned_mtcnn", "emorec"])
def test_shipped_model_labels_ckplus_images(name):
    from emorec.data import load_dataset
    from emorec.images import load_image

    manifest = load_dataset(shared_data("ckplus"))
    sample = manifest[manifest["label"].isin(["happiness", "surprise", "neutral"])].iloc[::60]
    recognizer = EmotionRecognizer.load(name)
    correct = 0
    for path, label in zip(sample["path"], sample["label"]):
        faces = recognizer.predict(load_image(path))
        assert len(faces) == 1 and sum(faces[0].probabilities.values()) == pytest.approx(1, abs=1e-4)
        correct += faces[0].label == label
    if name == "emorec":  # trained on these frames (and 99 % right on happiness/surprise of unseen subjects)
        assert correct / len(sample) >= 0.9, f"{correct} of {len(sample)}"


def test_flip_averaging_is_the_mean_of_face_and_mirror():
    import keras

    # A network that tells left from right: its answer for a face and for the mirror image differ.
    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(8, activation="softmax",
                                                 kernel_initializer=keras.initializers.RandomNormal(0, 0.01, seed=0))])
    card = ModelCard("asymmetric", classes=LABELS, input_shape=(48, 48, 1))
    crops = np.random.default_rng(1).integers(0, 255, (3, 48, 48, 1)).astype(np.float32)
    mirrored = np.flip(crops, axis=2)  # left-right: the width axis of (faces, height, width, channels)
    one_pass = EmotionRecognizer("asymmetric", model, card).classify(crops)
    averaged = EmotionRecognizer("asymmetric", model, dataclasses.replace(card, mirror_averaged=True)).classify(crops)
    assert not np.allclose(one_pass, model.predict(mirrored, verbose=0), atol=1e-3)
    assert np.allclose(averaged, (model.predict(crops, verbose=0) + model.predict(mirrored, verbose=0)) / 2, atol=1e-5)


def test_photo_result_rows_and_disagreements_per_face():
    from emorec.faces import Face
    from emorec.predict import FacePrediction, PhotoResult

    def said(label):
        return FacePrediction([0, 0, 1, 1], 1.0, label, {label: 0.9, "neutral": 0.1}, True)

    faces = [Face((0, 0, 10, 10), 0.99, {}), Face((20, 0, 10, 10), 0.98, {})]
    group = PhotoResult(faces, {"crops": [said("happiness"), said("neutral")], "frame": [said("anger")] * 2},
                        False, frozenset({"frame"}))
    # the frame model spoke of no face in particular
    assert group.disagreements(0) == {} and group.disagreements(1) == {}
    alone = PhotoResult(faces[:1], {"crops": [said("happiness")], "frame": [said("anger")]},
                        False, frozenset({"frame"}))
    assert alone.disagreements(0) == {"crops": "happiness", "frame": "anger"}
    rows = group.face_rows("party.jpg")
    assert [(r["face"], r["model"], r["predicted"], r["whole photo"]) for r in rows] == [
        (1, "crops", "happiness", False), (1, "frame", "anger", True),
        (2, "crops", "neutral", False), (2, "frame", "anger", True)]
    assert (rows[0]["x"], rows[0]["y"], rows[0]["width"], rows[0]["height"]) == (0, 0, 10, 10)
    assert rows[0]["confidence"] == 0.9 and rows[0]["happiness"] == 0.9 and rows[0]["status"] == "classified"
    assert PhotoResult([], {"crops": []}, False).face_rows("wall.jpg") == [
        {"photo": "wall.jpg", "status": "no face", "error": None}]
