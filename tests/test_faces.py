"""Face detection, alignment, cropping and the detection cache.

Real faces come from scikit-image's bundled public-domain photos (astronaut, camera), so these
tests need no dataset; the CK+ detection-rate test skips when ../shared/data is absent.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from emorec.crops import detect_dataset, detection_report, model_inputs
from emorec.data import load_dataset
from emorec.faces import Face, FaceDetector, align_crop, eye_angle, main_face, reading_order, whole_image_face
from emorec.images import load_image
from tests.conftest import ROOT, shared_data


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skdata.astronaut()


def close(a: Face, b: Face, tolerance: int = 4) -> bool:
    return all(abs(p - q) <= tolerance for p, q in zip(a.box, b.box))


def test_one_face_with_plain_numbers(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.95 and set(face.keypoints) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    x, y, w, h = face.box
    assert 150 < x < 200 and 40 < y < 80 and 70 < w < 120  # the astronaut's face, top centre
    json.dumps(face.to_dict())  # plain Python numbers only
    assert Face.from_dict(face.to_dict()).box == face.box


def test_boxes_are_in_original_coordinates(detector, astronaut):
    big = np.asarray(Image.fromarray(astronaut).resize((2048, 2048)))
    face = detector.detect(astronaut)[0]
    scaled = detector.detect(big)[0]
    assert all(abs(s / 4 - f) <= 6 for s, f in zip(scaled.box, face.box))


def test_exif_rotated_and_rgba_twins_give_the_same_box(detector, astronaut):
    plain = detector.detect(astronaut)[0]
    rotated = Image.fromarray(astronaut).rotate(90, expand=True)  # stored sideways...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...with EXIF saying "rotate 90 CW to display"
    buffer = io.BytesIO()
    rotated.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    from_exif = detector.detect(load_image(buffer.getvalue()))[0]
    assert close(from_exif, plain)

    buffer = io.BytesIO()
    Image.fromarray(astronaut).convert("RGBA").save(buffer, format="PNG")
    assert close(detector.detect(load_image(buffer.getvalue()))[0], plain, tolerance=0)


def test_no_face_is_an_empty_list(detector):
    noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert detector.detect(noise) == []
    assert detector.detect(np.zeros((20, 20, 3), np.uint8)) == []  # too small to hold a face


def test_a_photo_without_a_face_logs_no_tensorflow_warning():
    """mtcnn ends on an error from its later stages when the first finds nothing, and TensorFlow
    logged a 'Local rendezvous is aborting' warning for each such photo or video frame."""
    import subprocess
    import sys

    script = ("import emorec, numpy as np; from emorec.faces import FaceDetector; d = FaceDetector(); "
              "print(d.detect(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)), "
              "d.detect(np.full((200, 200, 3), 128, np.uint8)))")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[] []" and "rendezvous" not in run.stderr and "Incompatible shapes" not in run.stderr


def test_a_dim_blue_tinted_face_is_found_on_the_equalised_gray_retry(detector, astronaut):
    from emorec.faces import equalised_gray

    film_still = np.stack([astronaut[..., 0] * 0.05 + 10, astronaut[..., 1] * 0.1 + 20, astronaut[..., 2] * 0.15 + 90],
                          axis=-1).astype(np.uint8)  # dark, flat and blue, as a graded film still
    dim_room = (astronaut * 0.06).astype(np.uint8)
    for photo in (film_still, dim_room):
        assert detector._detect(photo) == []  # MTCNN alone misses it
        faces = detector.detect(photo)
        assert len(faces) == 1 and close(faces[0], detector.detect(astronaut)[0], tolerance=12)
    assert equalised_gray(film_still).shape == astronaut.shape
    assert detector.settings()["retry"] == "clahe-gray"  # cached detections of the older detector are not reused


def test_small_face_in_a_gray_photo_needs_a_smaller_min_face(detector):
    camera = load_image(skdata.camera())  # the face is about 12 % of the image's side
    assert detector.detect(camera) == []
    assert len(FaceDetector(min_face=0.1).detect(camera)) == 1


def test_alignment_levels_the_eyes(detector, astronaut):
    face = detector.detect(astronaut)[0]
    tilted = np.asarray(Image.fromarray(astronaut).rotate(15, center=(220, 110), resample=Image.BILINEAR))
    tilted_face = detector.detect(tilted)[0]
    assert abs(eye_angle(tilted_face) - eye_angle(face) + 15) < 5  # the detector sees the tilt
    crop = align_crop(tilted, tilted_face, (48, 48), channels=1)
    assert crop.shape == (48, 48, 1) and crop.dtype == np.uint8
    rgb = align_crop(astronaut, face, (72, 54), channels=3)
    assert rgb.shape == (72, 54, 3)
    # Cropping the aligned crop again finds a level face.
    assert abs(eye_angle(detector.detect(align_crop(tilted, tilted_face, (256, 256), 3, margin=0.8))[0])) < 5


def test_whole_image_face_and_reading_order():
    image = np.zeros((48, 40), np.uint8)
    assert whole_image_face(image).box == (0, 0, 40, 48)
    faces = [Face((300, 10, 50, 50), 0.9), Face((10, 200, 50, 50), 0.9), Face((10, 12, 50, 50), 0.9)]
    assert [f.box[:2] for f in reading_order(faces)] == [(10, 12), (300, 10), (10, 200)]
    # One row of a group photo at slightly different heights is numbered left to right (rounding each
    # centre to a multiple of the face height split it in two rows: 2, 1, 3 from left to right).
    row = [Face((0, 105, 100, 100), 0.9), Face((100, 95, 100, 100), 0.9), Face((200, 100, 100, 100), 0.9)]
    assert [f.box[0] for f in reading_order(row)] == [0, 100, 200]
    # Heads at heights spread over most of a face height (a browser walkthrough's group photo read 1, 5, 2, 6, ...).
    staggered = [Face((x, 100 + dy, 68, 68), 0.9) for x, dy in zip(range(0, 700, 100), (0, 55, 10, 45, -5, 30, 20))]
    assert [f.box[0] for f in reading_order(staggered)] == list(range(0, 700, 100))
    two_rows = [Face((0, 0, 50, 50), 0.9), Face((100, 60, 50, 50), 0.9)]  # a face height apart: two rows
    assert [f.box[0] for f in reading_order(two_rows)] == [0, 100]
    assert main_face(faces + [Face((0, 0, 60, 60), 0.8)]).box == (0, 0, 60, 60)
    assert main_face([]) is None


class CountingDetector(FaceDetector):
    """The real detector, counting how often it runs (to test the cache)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        return super().detect(image)


def test_detection_cache_resumes_and_keys_by_content(tmp_path, astronaut):
    root = tmp_path / "faces"
    for label in ("happy", "sad"):
        (root / label).mkdir(parents=True)
        Image.fromarray(astronaut).save(root / label / f"S001_001_{label}.png")
    (root / "sad" / "broken.png").write_bytes(b"not a png")
    manifest = load_dataset(root)
    counting = CountingDetector()
    first = detect_dataset(manifest, counting, tmp_path / "cache")
    assert counting.calls == 1  # two files, same bytes: detected once; the broken file never reaches it
    assert list(first["n_faces"]) == [1, 1, 0]
    assert "not an image" in first["error"].iloc[2]
    again = detect_dataset(manifest, counting, tmp_path / "cache")
    assert counting.calls == 1 and list(again["n_faces"]) == [1, 1, 0]
    report = detection_report(first)
    assert report.loc["total", "images"] == 3 and report.loc["total", "no face"] == 1
    inputs = model_inputs(first.iloc[:2], (48, 48, 1), face_crop=True)
    assert inputs.shape == (2, 48, 48, 1)


@pytest.mark.data
def test_every_ckplus_frame_has_one_face(detector, tmp_path):
    manifest = load_dataset(shared_data("ckplus"))  # all 920 (detections are cached after the first run)
    detections = detect_dataset(manifest, detector)
    not_one = detections[detections["n_faces"] != 1]["path"].tolist()
    assert not not_one, f"expected exactly one face in: {not_one}"


def test_captions_fit_their_faces_and_stay_on_the_image():
    """On a panorama the font follows the long side; captions still shrink to their faces (so
    neighbours in a group photo do not overlap) and a face at the right edge keeps its caption."""
    from emorec.drawing import SURE_COLOUR, draw_faces

    image = np.zeros((600, 8000, 3), np.uint8)
    boxes = [[1000, 300, 120, 120], [7900, 300, 100, 100]]
    drawn = draw_faces(image, boxes, ["1 happiness 97%", "2 surprise 88%"])
    caption_columns = np.flatnonzero((drawn[:290] == SURE_COLOUR).all(axis=2).any(axis=0))  # above the boxes
    first, second = caption_columns[caption_columns < 4000], caption_columns[caption_columns >= 4000]
    assert first.min() == 1000 and first.max() <= 1000 + 120 + 6
    assert second.max() == 7999 and second.min() >= 7900 - 20  # the number, kept on the image beside its face


def test_small_faces_in_a_group_photo_keep_a_readable_number():
    """A 4000-pixel group photo shown at page width: a caption shrunk to a 60-pixel face would be a
    few screen pixels tall, so such faces show their number only, at a readable size."""
    from emorec.drawing import SURE_COLOUR, draw_faces

    image = np.zeros((3000, 4000, 3), np.uint8)
    drawn = draw_faces(image, [[500, 1000, 60, 60], [2000, 1000, 900, 900]], ["1 happiness 97%", "2 surprise 88%"])
    label = (drawn[:995] == SURE_COLOUR).all(axis=2)  # caption backgrounds above the boxes
    small_rows, big_rows = np.flatnonzero(label[:, 400:700].any(axis=1)), np.flatnonzero(label[:, 2000:].any(axis=1))
    screen = 800 / 4000  # shown 800 pixels wide
    assert len(small_rows) * screen >= 10  # a readable height on screen, not ~6 px
    assert np.flatnonzero(label[:, 400:700].any(axis=0)).size <= 130  # one digit wide, not the whole caption
    assert np.flatnonzero(label[:, 2000:].any(axis=0)).size > 300 and len(big_rows) >= len(small_rows)
