"""Live video: annotate webcam frames with faces and expressions fast enough for a laptop CPU.

Detection runs on every frame at reduced resolution (``FaceDetector`` downscales by itself); the
classifier runs every ``classify_every`` seconds, and at once when a face appears or leaves; in
between, its labels follow the faces. ``LiveAnnotator.process`` is called from the video thread;
what the page shows travels through a queue as ``LiveStats``.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from emorec.config import LIVE_CLASSIFY_EVERY
from emorec.drawing import draw_faces
from emorec.faces import Face, FaceDetector, shared_detector
from emorec.predict import EmotionRecognizer, FacePrediction


@dataclass(frozen=True)
class LiveStats:
    """What the page shows beside the video: frames processed, frames per second (moving
    average), faces in the last frame and the main face's probabilities."""

    frames: int
    fps: float
    faces: int
    main_probabilities: dict[str, float] = field(default_factory=dict)
    main_label: str | None = None


class LiveAnnotator:
    """Draws boxes and labels of one model on video frames; thread-safe."""

    def __init__(self, recognizer: EmotionRecognizer, detector: FaceDetector | None = None,
                 classify_every: float = LIVE_CLASSIFY_EVERY, stats_queue: queue.Queue | None = None):
        self.recognizer = recognizer
        self.detector = detector or shared_detector()
        self.classify_every = classify_every
        self.stats_queue = stats_queue
        self._lock = threading.Lock()
        self._frames = 0
        self._fps = 0.0
        self._last_frame_at: float | None = None
        self._last_classified_at = 0.0
        self._predictions: list[FacePrediction] = []

    def _follow(self, faces: list[Face]) -> list[FacePrediction]:
        """Carry the last labels over to this frame's faces (nearest centre), boxes from this frame."""
        carried = []
        for face in faces:
            x, y, w, h = face.box
            nearest = min(self._predictions, key=lambda p: (p.box[0] + p.box[2] / 2 - x - w / 2) ** 2
                          + (p.box[1] + p.box[3] / 2 - y - h / 2) ** 2, default=None)
            if nearest is not None:
                carried.append(FacePrediction(list(face.box), face.score, nearest.label, nearest.probabilities,
                                              nearest.sure))
        return carried

    def process(self, frame: np.ndarray) -> np.ndarray:
        """An RGB frame in, the annotated frame out (statistics pushed to the queue)."""
        with self._lock:
            now = time.perf_counter()
            faces = self.detector.detect(frame)
            if now - self._last_classified_at >= self.classify_every or len(faces) != len(self._predictions):
                self._predictions = self.recognizer.predict_faces(frame, faces)
                self._last_classified_at = now
            else:
                self._predictions = self._follow(faces)
            self._frames += 1
            if self._last_frame_at is not None:
                instant = 1.0 / max(now - self._last_frame_at, 1e-6)
                self._fps = instant if self._fps == 0 else 0.9 * self._fps + 0.1 * instant
            self._last_frame_at = now
            predictions = list(self._predictions)
            stats = self.stats(predictions)
        if self.stats_queue is not None:
            try:
                self.stats_queue.get_nowait()  # keep only the newest
            except queue.Empty:
                pass
            self.stats_queue.put_nowait(stats)
        captions = [f"{p.label} {p.probabilities[p.label]:.0%}" for p in predictions]
        return draw_faces(frame, [p.box for p in predictions], captions, [p.sure for p in predictions])

    def stats(self, predictions: list[FacePrediction]) -> LiveStats:
        main = max(predictions, key=lambda p: p.box[2] * p.box[3], default=None)
        return LiveStats(self._frames, round(self._fps, 1), len(predictions),
                         main.probabilities if main else {}, main.label if main else None)
