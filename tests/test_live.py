"""The live annotator without a browser: boxes drawn, labels throttled and carried, stats queued."""

from __future__ import annotations

import queue

import numpy as np
from skimage import data as skdata

from emorec.live import LiveAnnotator
from emorec.predict import EmotionRecognizer
from tests.conftest import save_tiny_model


class CountingRecognizer(EmotionRecognizer):
    calls = 0

    def predict_faces(self, image, faces):
        CountingRecognizer.calls += 1
        return super().predict_faces(image, faces)


def test_frames_are_annotated_and_stats_queued(tmp_path):
    save_tiny_model(tmp_path, convolutional=True)
    recognizer = CountingRecognizer.load("tiny", tmp_path)
    stats = queue.Queue(maxsize=1)
    annotator = LiveAnnotator(recognizer, classify_every=10.0, stats_queue=stats)
    frame = skdata.astronaut()
    for _ in range(3):
        annotated = annotator.process(frame)
    assert annotated.shape == frame.shape and not np.array_equal(annotated, frame)  # a box was drawn
    assert CountingRecognizer.calls == 1  # classified once, labels carried to the next frames
    latest = stats.get_nowait()
    assert latest.frames == 3 and latest.faces == 1 and latest.fps > 0
    assert set(latest.main_probabilities) == set(recognizer.classes)
    blank = annotator.process(np.zeros((480, 640, 3), np.uint8))
    assert (blank == 0).all() and stats.get_nowait().faces == 0
