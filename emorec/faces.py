"""Face detection (MTCNN), eye-line alignment and cropping.

The same ``align_crop`` serves training, evaluation and prediction, so a model always sees faces
cropped the way it was trained on. Detection runs on a downscaled copy of the image, sized so the
smallest face worth finding measures MTCNN's own minimum (20 px); boxes and landmarks are mapped
back to the original image's coordinates.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from emorec.config import FaceDefaults
from emorec.images import with_channels

MTCNN_MIN_FACE = 20  # pixels, in the image MTCNN sees
KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Face:
    """One detected face: ``box`` is ``(x, y, width, height)`` in original image pixels."""

    box: tuple[int, int, int, int]
    score: float
    keypoints: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain Python numbers only, ready for JSON."""
        return {"box": list(self.box), "score": round(self.score, 4),
                "keypoints": {k: [round(x, 1), round(y, 1)] for k, (x, y) in self.keypoints.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> Face:
        return cls(tuple(int(v) for v in d["box"]), float(d["score"]),
                   {k: (float(x), float(y)) for k, (x, y) in d.get("keypoints", {}).items()})

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


def whole_image_face(image: np.ndarray) -> Face:
    """The whole image as one face (for pre-cropped faces such as FER2013's 48x48)."""
    return Face((0, 0, image.shape[1], image.shape[0]), 1.0)


def reading_order(faces: list[Face]) -> list[Face]:
    """Faces row by row, each row left to right: a face joins the row above when its centre lies
    less than a typical face height below the centre of that row's first (highest) face, so people
    standing side by side at somewhat different heights read as one row."""
    if not faces:
        return []
    height = float(np.median([f.box[3] for f in faces]))
    centre = lambda face: face.box[1] + face.box[3] / 2  # noqa: E731
    rows: list[list[Face]] = []
    for face in sorted(faces, key=centre):
        if rows and centre(face) - centre(rows[-1][0]) < height:
            rows[-1].append(face)
        else:
            rows.append([face])
    return [face for row in rows for face in sorted(row, key=lambda f: f.box[0])]


class SkippedWithoutCandidates:
    """A later MTCNN stage that does not run when the stage before it kept no candidate box. mtcnn
    learns that a photo holds no face from the error the stage raises on an empty batch, after
    TensorFlow has logged a warning ("Local rendezvous is aborting ... Incompatible shapes") for
    every such photo or video frame; raising that error here ends detection the same way, quietly."""

    def __init__(self, stage):
        self.stage = stage

    def __call__(self, bboxes_batch, **kwargs):
        import tensorflow as tf  # deferred: loaded by MTCNN already when this runs; importing faces must not load it

        if bboxes_batch is not None and len(bboxes_batch) == 0:
            raise tf.errors.InvalidArgumentError(None, None, "no face candidates")
        return self.stage(bboxes_batch=bboxes_batch, **kwargs)

    def __getattr__(self, name):  # id, name, ...: as the stage it wraps
        return getattr(self.stage, name)


class FaceDetector:
    """MTCNN, created once and reused.

    ``min_face`` is the smallest face to find, as a fraction of the image's shorter side (< 1) or in
    pixels (>= 1); smaller values find smaller faces and cost more time. ``min_score`` drops weak
    detections.
    """

    def __init__(self, min_face: float = FaceDefaults.min_face, min_score: float = FaceDefaults.min_score):
        import tensorflow as tf  # deferred: TensorFlow and MTCNN load with the first detector, not with faces
        from mtcnn import MTCNN

        self.min_face = min_face
        self.min_score = min_score
        self._mtcnn = MTCNN()
        # mtcnn calls its three small networks eagerly, which costs more than their arithmetic;
        # one traced graph per network (any image size) makes detection several times faster.
        signature = [tf.TensorSpec([None, None, None, 3], tf.float32)]
        for stage in self._mtcnn.stages:
            stage._model = tf.function(stage._model.call, input_signature=signature)
        self._mtcnn._stages = [self._mtcnn.stages[0], *map(SkippedWithoutCandidates, self._mtcnn.stages[1:])]

    def settings(self) -> dict:
        return {"detector": "mtcnn-1.0", "min_face": self.min_face, "min_score": self.min_score, "retry": "clahe-gray"}

    def detection_scale(self, height: int, width: int) -> float:
        shorter = min(height, width)
        min_face_px = self.min_face * shorter if self.min_face < 1 else self.min_face
        return min(1.0, MTCNN_MIN_FACE / max(min_face_px, MTCNN_MIN_FACE))

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 image, in reading order; an empty list when there are none. A photo
        in which MTCNN finds none is tried once more as a contrast-normalised gray copy (dim, tinted
        or washed-out photos, such as film stills graded blue)."""
        return self._detect(image) or self._detect(equalised_gray(image))

    def _detect(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        scale = self.detection_scale(height, width)
        small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if min(small.shape[:2]) < 2 * MTCNN_MIN_FACE:
            return []  # too small to hold a face MTCNN can see
        found = self._mtcnn.detect_faces(small, min_face_size=MTCNN_MIN_FACE)
        faces = []
        for raw in found:
            if raw["confidence"] < self.min_score:
                continue
            x, y, w, h = (float(v) / scale for v in raw["box"])
            x0, y0 = max(0, round(x)), max(0, round(y))
            box = (x0, y0, min(width, round(x + w)) - x0, min(height, round(y + h)) - y0)
            if box[2] <= 1 or box[3] <= 1:
                continue
            keypoints = {k: (float(raw["keypoints"][k][0]) / scale, float(raw["keypoints"][k][1]) / scale)
                         for k in KEYPOINTS if k in raw["keypoints"]}
            faces.append(Face(box, float(raw["confidence"]), keypoints))
        return reading_order(faces)


def equalised_gray(image: np.ndarray) -> np.ndarray:
    """A gray copy with local contrast equalised (CLAHE), as RGB: colour casts and dim or flat
    lighting removed, what MTCNN needs to find a face it missed in the original."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    return cv2.cvtColor(clahe.apply(gray), cv2.COLOR_GRAY2RGB)


def eye_angle(face: Face) -> float:
    """Degrees the face is tilted (0 when the eyes are level or unknown)."""
    if "left_eye" not in face.keypoints or "right_eye" not in face.keypoints:
        return 0.0
    (x1, y1), (x2, y2) = sorted([face.keypoints["left_eye"], face.keypoints["right_eye"]])
    return math.degrees(math.atan2(y2 - y1, x2 - x1))


def align_crop(image: np.ndarray, face: Face, size: tuple[int, int], channels: int = 1,
               margin: float = FaceDefaults.margin) -> np.ndarray:
    """The face rotated so its eyes are level, cut out with ``margin`` (a fraction of the box
    height) around the box and resized to ``size`` = (height, width): uint8, ``channels`` 1 or 3."""
    out_h, out_w = size
    x, y, w, h = face.box
    centre = (x + w / 2.0, y + h / 2.0)
    region_h = h * (1.0 + margin)
    scale = out_h / region_h
    # Warp at up to 4x the output size, then downsample with area averaging: no aliasing on big faces.
    supersample = int(min(4, max(1, math.floor(1 / scale))))
    warp_h, warp_w = out_h * supersample, out_w * supersample
    matrix = cv2.getRotationMatrix2D(centre, eye_angle(face), scale * supersample)
    matrix[:, 2] += (warp_w / 2.0 - centre[0], warp_h / 2.0 - centre[1])
    crop = cv2.warpAffine(image, matrix, (warp_w, warp_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if supersample > 1:
        crop = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA)
    return with_channels(crop, channels)


def main_face(faces: list[Face]) -> Face | None:
    """The face a single-face dataset image is about: the largest confident one."""
    return max(faces, key=lambda f: (f.area, f.score), default=None)


@functools.cache
def shared_detector(min_face: float = FaceDefaults.min_face, min_score: float = FaceDefaults.min_score) -> FaceDetector:
    """One MTCNN per setting for the whole process."""
    return FaceDetector(min_face=min_face, min_score=min_score)
