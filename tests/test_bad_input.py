"""The bad-input matrix: every entry point (image loader, Classify uploads and camera, dataset
folders, Talos CSVs and search spaces, model files, the CLI, the caches) answers bad input with a
clear message, never a traceback on a page, and never leaves a half-written file.

These cases add to the ones in test_images, test_data, test_tune_results, test_predict, test_cli, test_app and
test_classify_page. Fixtures are tiny and synthetic (tmp_path); the only photo with a face is
scikit-image's public-domain astronaut.
"""

from __future__ import annotations

import emorec  # noqa: F401  (first, before anything loads TensorFlow: see emorec/__init__.py)

import io
import json
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata
from streamlit.testing.v1 import AppTest

import emorec.config
from emorec import data, registry
from emorec import tune_results as tune
from emorec.cli import main as cli_main
from emorec.config import LABELS
from emorec.images import ImageError, load_image
from tests.conftest import DAMAGE as ALL_DAMAGE
from tests.conftest import ROOT, TALOS2, save_tiny_model, truncate, write_image

TIMEOUT = 120


# ---------------------------------------------------------------------------------------------
# Small synthetic inputs


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


ASTRONAUT = encoded(Image.fromarray(skdata.astronaut()), "JPEG")
BLANK = encoded(Image.new("RGB", (160, 120), (200, 200, 200)), "PNG")
BLANK_JPEG = encoded(Image.new("RGB", (160, 120), (200, 200, 200)), "JPEG")
ICO = encoded(Image.new("RGB", (32, 32), "red"), "ICO")


def huge_png_header(width: int = 20000, height: int = 20000) -> bytes:
    """A 70-byte PNG whose header claims width x height pixels (400 megapixels by default): Pillow
    refuses it at open time (DecompressionBombError), before any pixel is decoded."""
    png = bytearray(encoded(Image.new("L", (8, 8)), "PNG"))
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])) & 0xFFFFFFFF)
    return bytes(png)


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def non_image_folder(root: Path) -> Path:
    """Class folders whose files have image names but hold text."""
    (root / "happy").mkdir(parents=True)
    (root / "happy" / "a.png").write_text("not an image")
    (root / "happy" / "b.jpg").write_text("<!doctype html><html>404</html>")
    return root


def faceless_folder(root: Path) -> Path:
    """Readable images without a face: two classes, three subjects."""
    for subject in range(1, 4):
        write_image(root / "happy" / f"S{subject:03d}_001_00000011.png", size=(160, 120), mode="RGB", value=200)
        write_image(root / "sad" / f"S{subject:03d}_002_00000011.png", size=(160, 120), mode="RGB", value=90)
    return root


def all_messages(app: AppTest) -> list[str]:
    return [m.value for m in [*app.error, *app.warning, *app.info]]


# ---------------------------------------------------------------------------------------------
# Model folders: one tiny real model, copied and damaged in every way a file gets damaged


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A real Keras model (48x48 gray -> 8 classes, untrained) with its card, built once."""
    return save_tiny_model(tmp_path_factory.mktemp("template"), description="bad-input test model")


# The damages of the shared table (tests/conftest.py) that the app and the CLI are tried on here.
DAMAGE = {name: ALL_DAMAGE[name] for name in (
    "truncated", "empty-model", "model-is-a-folder", "card-not-an-object", "card-not-utf8", "card-truncated",
    "card-only", "model-only", "wrong-input-shape")}


def damaged_models(root: Path, tiny_model: Path, keep_good: bool = True) -> Path:
    """A models folder with every kind of damage in DAMAGE (and one intact copy, ``tiny``)."""
    root.mkdir(parents=True, exist_ok=True)
    if keep_good:
        shutil.copytree(tiny_model, root / "tiny")
    for name, (damage, _) in DAMAGE.items():
        shutil.copytree(tiny_model, root / name)
        damage(root / name)
    return root


@pytest.mark.parametrize("name", list(DAMAGE))
def test_damaged_model_file_is_unavailable_with_its_reason(tmp_path, tiny_model, name):
    from emorec.predict import EmotionRecognizer

    models = damaged_models(tmp_path / "models", tiny_model)
    with pytest.raises(registry.ModelUnavailable, match=DAMAGE[name][1]) as error:
        EmotionRecognizer.load(name, models)
    assert repr(name) in str(error.value) and "Traceback" not in str(error.value)


def test_load_recognizers_keeps_the_good_model_and_explains_the_others(tmp_path, tiny_model):
    from emorec.predict import load_recognizers

    available, unavailable = load_recognizers(damaged_models(tmp_path / "models", tiny_model))
    assert list(available) == ["tiny"]
    assert set(unavailable) == set(DAMAGE)
    for name, (_, reason) in DAMAGE.items():
        assert reason in unavailable[name], (name, unavailable[name])


# ---------------------------------------------------------------------------------------------
# The app starts with damaged models: each is marked unavailable with its reason, others work.
# One AppTest per page is shared by that page's cases (module scope: opening a page costs seconds);
# every case sets its own inputs and looks only for its own messages.


def open_page(page: str) -> AppTest:
    """The app on ``page``, with ``emorec.config.MODELS_DIR`` and ``EMOREC_DATA`` already set."""
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    app.run()
    assert not app.exception
    app.switch_page(page).run()
    return app


@pytest.fixture
def page(monkeypatch, tmp_path):
    """Open a page on a models folder of this test only."""

    def opener(models: Path, page: str) -> AppTest:
        monkeypatch.setattr(emorec.config, "MODELS_DIR", models)
        monkeypatch.setenv("EMOREC_DATA", str(tmp_path / "no-data"))
        return open_page(page)

    return opener


def shared_page(tmp_path_factory, models: Path, page: str):
    """A page opened once for a module's cases (a generator for module-scoped fixtures)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(emorec.config, "MODELS_DIR", models)
        patch.setenv("EMOREC_DATA", str(tmp_path_factory.mktemp("no-data") / "none"))
        yield open_page(page)


@pytest.fixture(scope="module")
def damaged_dir(tmp_path_factory, tiny_model) -> Path:
    """Every kind of damaged model beside one intact model, ``tiny``."""
    return damaged_models(tmp_path_factory.mktemp("damaged") / "models", tiny_model)


@pytest.fixture(scope="module")
def shipped_copy(tmp_path_factory) -> Path:
    """A copy of the shipped models/ (as EMOREC_MODELS would point to) with baseline's model.keras
    cut in half, tuned_full's card.json not JSON, and a card without a model file."""
    if not (ROOT / "models" / "tuned_mtcnn" / registry.MODEL_FILE).exists():
        pytest.skip("needs the shipped models/tuned_mtcnn")
    models = tmp_path_factory.mktemp("shipped") / "models"
    for name in ("baseline", "tuned_full", "tuned_mtcnn"):
        (models / name).mkdir(parents=True)
        for file in (registry.MODEL_FILE, registry.CARD_FILE):
            shutil.copy(ROOT / "models" / name / file, models / name / file)
    shutil.copytree(ROOT / "models" / "tuning", models / "tuning")
    truncate(models / "baseline" / registry.MODEL_FILE)
    (models / "tuned_full" / registry.CARD_FILE).write_text("{ not json")
    (models / "card_only").mkdir()
    shutil.copy(ROOT / "models" / "tuned_mtcnn" / registry.CARD_FILE, models / "card_only" / registry.CARD_FILE)
    return models


def test_classify_page_with_a_damaged_copy_of_the_shipped_models(page, shipped_copy):
    app = page(shipped_copy, "pages/2_classify.py")
    assert not app.exception
    warnings = [w.value for w in app.warning]
    assert any("baseline" in w and "is damaged or incomplete" in w for w in warnings), warnings
    assert any("tuned_full" in w and "unreadable" in w for w in warnings), warnings
    assert any("card_only" in w and "no model file" in w for w in warnings), warnings
    assert app.multiselect[0].value == ["tuned_mtcnn"]
    # The intact model still classifies (batch tab: the photos tab would add an occlusion map, seconds here).
    app.file_uploader(key="batch-uploads").set_value([("happy_astronaut.jpg", ASTRONAUT, "image/jpeg")]).run()
    next(b for b in app.button if b.label == "Classify 1 photos").click().run()
    assert not app.exception and not app.error
    results = app.dataframe[-1].value
    assert results["model"].tolist() == ["tuned_mtcnn"] and results["faces"].tolist() == [1]
    assert results["predicted"].iloc[0] in LABELS


@pytest.fixture(scope="module")
def no_usable_app(tmp_path_factory, tiny_model):
    """The app on a models folder where every model is damaged (their cards mostly readable)."""
    models = damaged_models(tmp_path_factory.mktemp("broken") / "models", tiny_model, keep_good=False)
    yield from shared_page(tmp_path_factory, models, "app.py")


@pytest.mark.parametrize("page_file", ["pages/2_classify.py", "pages/3_live.py"])
def test_no_usable_model_is_said_plainly(no_usable_app, page_file):
    app = no_usable_app
    app.switch_page(page_file).run()
    assert not app.exception
    assert any("No usable model" in e.value for e in app.error)
    assert len(app.warning) == len(DAMAGE)


def test_compare_without_a_usable_model(no_usable_app):
    app = no_usable_app
    app.switch_page("pages/5_compare.py").run()
    assert not app.exception and app.dataframe  # the readable cards are compared
    app.file_uploader[0].set_value(("photos.zip", zip_of({"happy/a.png": BLANK, "sad/b.png": BLANK}),
                                    "application/zip")).run()
    assert not app.exception
    # Damage a file shows (no model file, a cut archive, a bad card) is known at once; the rest when the
    # models load, which happens when the evaluation is asked for: either way the page says so plainly.
    button = [b for b in app.button if b.label == "Evaluate every model"]
    if button:
        button[0].click().run()
        assert not app.exception
    assert any("No usable model to evaluate" in e.value for e in app.error), [e.value for e in app.error]


# Compare page ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compare_app(tmp_path_factory, damaged_dir):
    yield from shared_page(tmp_path_factory, damaged_dir, "pages/5_compare.py")


def test_compare_page_with_damaged_models(compare_app):
    app = compare_app
    assert not app.exception
    warnings = [w.value for w in app.warning]
    for name in ("card-not-an-object", "card-not-utf8", "card-truncated", "model-only"):
        assert any(repr(name) in w for w in warnings), (name, warnings)
    models_shown = set(app.dataframe[0].value["model"])
    assert {"tiny", "truncated", "card-only"} <= models_shown  # readable cards are still compared


def evaluate_button(app: AppTest):
    """The Compare page's evaluate button, after a run when the pending input has yet to show it."""
    button = next((b for b in app.button if b.label == "Evaluate every model"), None)
    if button is None:
        app.run()
        button = next(b for b in app.button if b.label == "Evaluate every model")
    return button


@pytest.mark.parametrize("files, message", [
    ({"../evil/happy/a.png": BLANK}, "unsafe path: ../evil/happy/a.png"),
    ({"happy/a.png": BLANK, "bored/b.png": BLANK}, "'bored' are not expression labels"),
], ids=["zip-slip", "zip-unknown-class"])
def test_compare_page_rejects_bad_zips(compare_app, files, message):
    app = compare_app
    app.file_uploader[0].set_value(("photos.zip", zip_of(files), "application/zip"))
    evaluate_button(app).click().run()
    assert not app.exception
    assert any(message in e.value for e in app.error), [e.value for e in app.error]


@pytest.mark.parametrize("typed", ["{tmp}/nowhere", "~nosuchuser_emorec/nowhere", "{tmp}/no\x00where"],
                         ids=["missing", "unknown-home", "nul-character"])
def test_compare_page_missing_folder(compare_app, tmp_path, typed):
    app = compare_app
    app.file_uploader[0].set_value(None)
    app.text_input[0].set_value(typed.format(tmp=tmp_path))
    evaluate_button(app).click().run()
    assert not app.exception
    assert any("where does not exist" in e.value for e in app.error), [e.value for e in app.error]


# Classify page: uploads, camera, batch ---------------------------------------------------------


@pytest.fixture(scope="module")
def classify_app(tmp_path_factory, damaged_dir):
    yield from shared_page(tmp_path_factory, damaged_dir, "pages/2_classify.py")


def test_classify_page_lists_every_damaged_model_and_runs_the_good_one(classify_app):
    app = classify_app
    assert not app.exception
    warnings = [w.value for w in app.warning]
    for name, (_, reason) in DAMAGE.items():
        assert any(f"**{name}**" in w and reason in w for w in warnings), (name, warnings)
    # Damage its files show is known before loading (not offered); a network that does not match its card only
    # when it loads (offered, then named unavailable): either way the good model alone runs.
    assert "truncated" not in app.multiselect[0].options and "tiny" in app.multiselect[0].value
    assert app.selectbox[0].options == ["tiny"]


BAD_UPLOADS = {
    "empty.jpg": (b"", "empty.jpg is empty (0 bytes)"),
    "notes.png": (b"hello, these are my notes\n", "notes.png is not an image"),
    "icon.png": (ICO, "icon.png is an ICO image; supported: PNG, JPEG"),
    "huge.png": (huge_png_header(), "huge.png has too many pixels"),
}


@pytest.fixture(scope="module")
def uploaded(classify_app) -> AppTest:
    """The four bad files and one good photo uploaded together."""
    files = [(name, content, "image/png") for name, (content, _) in BAD_UPLOADS.items()]
    classify_app.file_uploader[0].set_value([*files, ("astronaut.jpg", ASTRONAUT, "image/jpeg")]).run()
    return classify_app


@pytest.mark.parametrize("name", list(BAD_UPLOADS), ids=["empty-upload", "text-as-png", "ico-as-png", "huge-header"])
def test_bad_upload_is_an_inline_error(uploaded, name):
    assert not uploaded.exception
    assert name in [s.value for s in uploaded.subheader]
    message = BAD_UPLOADS[name][1]
    assert any(message in e.value for e in uploaded.error), [e.value for e in uploaded.error]


def test_bad_uploads_do_not_stop_the_good_one(uploaded):
    assert [s.value for s in uploaded.subheader][-1] == "astronaut.jpg"
    assert len(uploaded.error) == len(BAD_UPLOADS) and len(uploaded.dataframe) == 2  # its probabilities and the table
    table = uploaded.dataframe[0].value  # every photo has a row: the readable one its faces, the others their error
    assert set(table.loc[table["status"] == "classified", "photo"]) == {"astronaut.jpg"}
    assert set(table.loc[table["status"] == "error", "photo"]) == set(BAD_UPLOADS)


def without_uploads(app: AppTest) -> AppTest:
    """The shared page with the photos of earlier cases removed (applied on the next run)."""
    if app.file_uploader[0].value:
        app.file_uploader[0].set_value([])
    return app


@pytest.mark.parametrize("photo, message", [
    (ASTRONAUT[: len(ASTRONAUT) // 3], "camera photo is damaged or incomplete"),
    (BLANK_JPEG, "No face found in camera photo"),
], ids=["corrupt-camera-photo", "camera-photo-without-a-face"])
def test_camera_photo(classify_app, photo, message):
    app = without_uploads(classify_app)
    if not app.toggle[1].value:
        app.toggle[1].set_value(True).run()  # "Use the camera"
    app.camera_input[0].upload("photo.jpg", photo, "image/jpeg").run()
    assert not app.exception
    assert any(message in m.value for m in [*app.error, *app.info]), all_messages(app)


@pytest.mark.parametrize("content, message", [
    (b"\x00\x01\x02binary", "has no rows of the form file,label"),
    (b"file,label\nanna.jpg,bored\n", "Unknown label 'bored'"),
], ids=["labels-csv-garbage", "labels-csv-unknown-label"])
def test_bad_labels_csv(classify_app, content, message):
    app = without_uploads(classify_app)
    app.file_uploader(key="labels-csv").set_value(("labels.csv", content, "text/csv")).run()
    assert not app.exception
    assert any(message in e.value for e in app.error), [e.value for e in app.error]


def test_batch_folder_of_non_images_reports_each_file(classify_app, tmp_path):
    app = without_uploads(classify_app)
    folder = non_image_folder(tmp_path / "photos")
    app.text_input[0].set_value(str(folder)).run()
    next(b for b in app.button if b.label == "Classify 2 photos").click().run()
    assert not app.exception
    results = app.dataframe[-1].value
    assert list(results["photo"]) == ["photos/happy/a.png", "photos/happy/b.jpg"]  # named from the folder itself on
    assert results["error"].str.contains("is not an image").all()


@pytest.mark.parametrize("where", ["missing", "file", "unknown-home"])
def test_batch_folder_that_is_not_a_folder(classify_app, tmp_path, where):
    app = without_uploads(classify_app)
    path = str(tmp_path / "nowhere")
    if where == "file":
        path = str(tmp_path / "photo.png")
        Path(path).write_bytes(BLANK)
    elif where == "unknown-home":
        path = "~nosuchuser_emorec/photos"
    app.text_input[0].set_value(path).run()
    assert not app.exception
    assert any(path in m for m in all_messages(app)), all_messages(app)


# Dataset page on bad folders -------------------------------------------------------------------


def bad_dataset(kind: str, root: Path) -> tuple[Path, str]:
    """A bad dataset of ``kind`` under ``root`` and what the page must say about it."""
    if kind == "unknown-class":
        write_image(root / "bored" / "a.png")
        return root, "'bored' are not expression labels"
    if kind == "no-images":
        (root / "happy").mkdir(parents=True)
        (root / "happy" / "readme.txt").write_text("photos go here")
        return root, "No labelled images found"
    if kind == "not-fer-csv":
        root.mkdir()
        (root / "people.csv").write_text("name,age\nbob,3\n")
        return root / "people.csv", "missing column(s) emotion, pixels"
    if kind == "image-file":
        return write_image(root / "one.png"), "is a file; expected a dataset folder"
    if kind == "ck-without-emotion":
        write_image(root / "cohn-kanade-images" / "S005" / "001" / "S005_001_00000001.png")
        return root, "is not the CK+ layout"
    raise ValueError(kind)


@pytest.fixture(scope="module")
def dataset_app(tmp_path_factory, tiny_model):
    yield from shared_page(tmp_path_factory, tiny_model.parent, "pages/1_dataset.py")


def show_dataset(app: AppTest, where: Path) -> AppTest:
    app.text_input[0].set_value(str(where)).run()
    assert not app.exception
    return app


@pytest.mark.parametrize("kind", ["unknown-class", "no-images", "not-fer-csv", "image-file", "ck-without-emotion"])
def test_dataset_page_explains_a_bad_folder(dataset_app, tmp_path, kind):
    where, message = bad_dataset(kind, tmp_path / "data")
    app = show_dataset(dataset_app, where)
    assert any(message in w.value for w in app.warning), [w.value for w in app.warning]


@pytest.mark.parametrize("typed", ["~nosuchuser_emorec/data", "da\x00ta"], ids=["unknown-home", "nul-character"])
def test_dataset_page_with_a_path_that_cannot_exist(dataset_app, typed):
    app = show_dataset(dataset_app, typed)
    assert any("does not exist" in w.value for w in app.warning), [w.value for w in app.warning]


def test_dataset_page_with_files_that_are_not_images(dataset_app, tmp_path):
    app = show_dataset(dataset_app, non_image_folder(tmp_path / "data"))
    assert app.metric[0].value == "2"
    assert app.dataframe[-1].value["mode"].tolist() == ["unreadable"]  # image sizes
    warnings = [w.value for w in app.warning]
    assert any(w.startswith("a.png is not an image") for w in warnings), warnings
    assert any(w.startswith("b.jpg is not an image") for w in warnings), warnings


def test_dataset_page_with_a_fer_row_of_the_wrong_size(dataset_app, tmp_path):
    csv = tmp_path / "fer.csv"
    csv.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    app = show_dataset(dataset_app, csv)
    assert any("has 3 pixels, expected 2304" in w.value for w in app.warning), [w.value for w in app.warning]


def test_dataset_page_with_a_decompression_bomb(dataset_app, tmp_path):
    folder = tmp_path / "data"
    write_image(folder / "happy" / "ok.png")
    (folder / "happy" / "huge.png").write_bytes(huge_png_header())
    app = show_dataset(dataset_app, folder)
    assert any("huge.png" in w.value for w in app.warning)


# Tuning page: shipped scans, uploads, training a configuration ---------------------------------


@pytest.fixture(scope="module")
def tuning_models(tmp_path_factory) -> Path:
    models = tmp_path_factory.mktemp("tuning") / "models"
    (models / "tuning").mkdir(parents=True)
    (models / "tuning" / "a-broken.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (models / "tuning" / "b-good.csv").write_text(TALOS2)
    return models


@pytest.fixture(scope="module")
def tuning_app(tmp_path_factory, tuning_models):
    yield from shared_page(tmp_path_factory, tuning_models, "pages/4_tuning.py")


def test_tuning_page_with_a_corrupt_shipped_scan(tuning_app):
    app = tuning_app
    if app.selectbox(key="scan").value != "a-broken":  # the page opens on it (first in the list)
        app.selectbox(key="scan").set_value("a-broken").run()
    assert not app.exception
    assert any("a-broken.csv is not UTF-8 text" in e.value for e in app.error), [e.value for e in app.error]
    assert any("Choose a scan" in i.value for i in app.info)
    app.selectbox(key="scan").set_value("b-good").run()
    assert not app.exception and app.metric[0].value == "3"


def test_tuning_page_empty_upload(tuning_app):
    app = tuning_app
    app.selectbox(key="scan").set_value("Upload a Talos CSV…").run()
    app.file_uploader(key="scan-upload").set_value(("scan.csv", b"", "text/csv")).run()
    assert not app.exception
    assert any("scan.csv is empty" in e.value for e in app.error)


@pytest.mark.parametrize("name, data_dir, message", [
    ("../evil", None, "Choose a name of letters, digits"),
    ("baseline", None, "not a shipped model's"),
    ("custom-1", "nowhere", "nowhere does not exist"),
], ids=["name-with-path", "name-of-a-shipped-model", "missing-training-data"])
def test_tuning_page_train_with_bad_input(tuning_app, tuning_models, tmp_path, name, data_dir, message):
    app = tuning_app
    if app.selectbox(key="scan").value != "b-good" or app.exception:
        app.selectbox(key="scan").set_value("b-good").run()
    app.text_input[-2].set_value(name)
    app.text_input[-1].set_value(str(tmp_path / (data_dir or "nowhere"))).run()
    train = next(b for b in app.button if b.label == "Train")
    assert train.disabled == (data_dir is None)  # a bad name cannot be trained at all
    if not train.disabled:
        train.click().run()
    assert not app.exception
    assert any(message in e.value for e in app.error), [e.value for e in app.error]
    assert not (tuning_models / name).exists()


# ---------------------------------------------------------------------------------------------
# Image loader: paths the existing matrix does not reach


@pytest.mark.parametrize("make, kind, message", [
    (lambda tmp: huge_png_header(), "too-large", "too many pixels"),
    (lambda tmp: tmp, "missing", "no such file"),
    (lambda tmp: Image.new("RGB", (0, 0)), "zero-size", "has no pixels"),
    (lambda tmp: b"%PDF-1.4\n1 0 obj<<>>endobj\n", "not-an-image", "is not an image"),
    (lambda tmp: np.full((4, 4), np.inf), "bad-array", "NaN or infinite"),
], ids=["pillow-bomb-header", "folder-path", "zero-size-pil", "pdf", "inf-array"])
def test_image_loader_more_bad_inputs(tmp_path, make, kind, message):
    with pytest.raises(ImageError, match=message) as error:
        load_image(make(tmp_path), name="photo.jpg")
    assert error.value.kind == kind


def test_image_loader_string_array():
    with pytest.raises(ImageError) as error:
        load_image(np.array([["a", "b"], ["c", "d"]]))
    assert error.value.kind == "bad-array"


# ---------------------------------------------------------------------------------------------
# Dataset layer and other data files


@pytest.mark.parametrize("make, message", [
    (lambda p: bad_dataset("ck-without-emotion", p)[0], "needs cohn-kanade-images/ and Emotion/"),
    (lambda p: ck_with_emotion(p, "9.0000000e+00"), r"expected an emotion code 0\.\.7, found '9\.0000000e\+00'"),
    (lambda p: ck_with_emotion(p, ""), "expected an emotion code 0..7, found ''"),
    (lambda p: (write_image(p / "train" / "happy" / "a.png"), write_image(p / "happy" / "b.png"))[1].parent.parent,
     "'train' are not expression labels"),
    (lambda p: (p.mkdir(), (p / "a.csv").write_text("emotion,pixels\n"), (p / "b.csv").write_text("x\n"), p)[-1],
     "holds no dataset"),
    (lambda p: (p.mkdir(), (p / "fer.csv").write_text("emotion,pixels\n"), p / "fer.csv")[-1], "No labelled images"),
], ids=["ck-no-emotion-folder", "ck-emotion-code-9", "ck-emotion-empty", "split-and-class-folders-mixed",
        "two-csvs", "fer-header-only"])
def test_more_bad_datasets(tmp_path, make, message):
    with pytest.raises(data.DatasetError, match=message):
        data.load_dataset(make(tmp_path / "data"))


def ck_with_emotion(root: Path, code: str) -> Path:
    write_image(root / "cohn-kanade-images" / "S005" / "001" / "S005_001_00000001.png")
    emotion = root / "Emotion" / "S005" / "001" / "S005_001_00000001_emotion.txt"
    emotion.parent.mkdir(parents=True)
    emotion.write_text(code)
    return root


@pytest.mark.parametrize("pixels, message", [
    ("1 2 3", "has 3 pixels, expected 2304"),
    (" ".join(["300"] * 2304), "outside 0..255"),
], ids=["fer-wrong-pixel-count", "fer-pixel-out-of-range"])
def test_bad_fer_pixels_are_named_when_read(tmp_path, pixels, message):
    csv = tmp_path / "fer.csv"
    csv.write_text(f"emotion,pixels\n3,{pixels}\n")
    with pytest.raises(data.DatasetError, match=message):
        data.read_image(data.load_dataset(csv).iloc[0])


def test_zip_with_a_corrupt_compressed_member(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("happy/a.png", bytes(range(256)) * 40)
    damaged = bytearray(buffer.getvalue())
    start = 30 + len("happy/a.png")  # the member's deflate stream, after its local header
    damaged[start:start + 8] = b"\xff" * 8
    with pytest.raises(data.DatasetError, match="cannot be unpacked at happy/a.png"):
        data.extract_zip(bytes(damaged), tmp_path / "out")


def test_zip_with_an_unsafe_path(tmp_path):
    with pytest.raises(data.DatasetError, match=r"unsafe path: \.\./evil\.png"):
        data.extract_zip(zip_of({"happy/a.png": BLANK, "../evil.png": BLANK}), tmp_path / "out")
    assert not (tmp_path / "evil.png").exists()


def test_labels_csv_with_an_unknown_label():
    with pytest.raises(data.DatasetError, match="Unknown label 'bored'"):
        data.expected_labels_csv("file,label\nanna.jpg,bored\n")


def test_search_space_that_is_not_text(tmp_path):
    space = tmp_path / "space.toml"
    space.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(tune.SearchSpaceError, match="is not valid TOML"):
        tune.load_space(space)


def test_search_space_that_is_a_folder(tmp_path):
    with pytest.raises(tune.SearchSpaceError, match=str(tmp_path)):
        tune.load_space(tmp_path)


# ---------------------------------------------------------------------------------------------
# The CLI, in this process (python -m emorec runs the same ``main``)


def run_main(capsys, *argv: str) -> tuple[int | str, str, str]:
    """(exit status, stdout, stderr) of ``python -m emorec ARGV``; a traceback gives status 'traceback'."""
    try:
        code = cli_main([str(a) for a in argv])
    except SystemExit as exit:
        code = exit.code
    except Exception as error:
        captured = capsys.readouterr()
        return "traceback", captured.out, f"{captured.err}Traceback: {type(error).__name__}: {error}"
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["evaluate", "--variant", "best", "--data", "x"], "invalid choice: 'best'"),
    (["prepare", "x", "--min-face", "big"], "argument --min-face: invalid float value: 'big'"),
    (["tune", "--data", "x", "--rounds", "many"], "argument --rounds: invalid positive_int value: 'many'"),
    (["bench", "everything"], "invalid choice: 'everything'"),
    (["train", "--variant", "baseline", "--data", "x", "--epochs", "0"], "argument --epochs: must be at least 1"),
    (["evaluate", "--variant", "emorec", "--data", "x", "--probe-epochs", "-1"],
     "argument --probe-epochs: must be 0 or more"),
], ids=["no-command", "unknown-command", "unknown-variant", "min-face-not-a-number", "rounds-not-a-number",
        "unknown-bench", "zero-epochs", "negative-probe-epochs"])
def test_cli_bad_arguments(capsys, argv, message):
    code, _, err = run_main(capsys, *argv)
    assert code == 2 and message in err and "usage:" in err


@pytest.mark.parametrize("kind", ["unknown-class", "no-images", "not-fer-csv", "ck-without-emotion"])
def test_cli_stats_on_bad_folders(capsys, tmp_path, kind):
    where, message = bad_dataset(kind, tmp_path / "data")
    code, out, err = run_main(capsys, "stats", where)
    assert code == 2 and message in err and "Traceback" not in err and not out


def test_cli_prepare_on_an_empty_folder(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run_main(capsys, "prepare", tmp_path / "empty", "--cache", tmp_path / "cache")
    assert code == 2 and "holds no dataset" in err


def test_cli_prepare_lists_files_that_are_not_images(capsys, tmp_path):
    folder = non_image_folder(tmp_path / "data")
    code, out, err = run_main(capsys, "prepare", folder, "--cache", tmp_path / "cache")
    assert code == 0, err
    assert "No face (2)" in out
    for name in ("a.png", "b.jpg"):
        assert f"{folder / 'happy' / name} is not an image" in out


def test_cli_prepare_cache_that_is_a_file(capsys, tmp_path):
    folder = faceless_folder(tmp_path / "data")
    cache = tmp_path / "cache.txt"
    cache.write_text("a file")
    code, _, err = run_main(capsys, "prepare", folder, "--cache", cache)
    assert code == 2 and str(cache) in err and "Traceback" not in err


def test_cli_train_on_an_empty_folder(capsys, monkeypatch, tmp_path):
    # Safety: were the folder ever accepted, nothing may be written into the real models/.
    monkeypatch.setattr("emorec.cli.MODELS_DIR", tmp_path / "models")
    (tmp_path / "empty").mkdir()
    code, _, err = run_main(capsys, "train", "--variant", "baseline", "--data", tmp_path / "empty")
    assert code == 2 and "holds no dataset" in err
    assert not (tmp_path / "models").exists()


def test_cli_tune_space_that_is_a_folder(capsys, tmp_path):
    code, _, err = run_main(capsys, "tune", "--data", tmp_path, "--space", tmp_path, "--out", tmp_path / "scan.csv")
    assert code == 2 and str(tmp_path) in err and "Traceback" not in err


def test_cli_bench_on_files_that_are_not_images(capsys, tmp_path):
    code, _, err = run_main(capsys, "bench", "faces", "--data", non_image_folder(tmp_path / "data"))
    assert code == 2 and "is not an image" in err and "Traceback" not in err


def test_cli_bench_on_photos_without_faces(capsys, monkeypatch, tmp_path):
    import emorec.predict

    monkeypatch.setattr(registry, "model_names", lambda *args, **kwargs: [])  # no model loading: faces only
    monkeypatch.setattr(emorec.predict, "load_recognizers", lambda *args, **kwargs: ({}, {}))
    code, _, err = run_main(capsys, "bench", "all", "--data", faceless_folder(tmp_path / "data"))
    assert code == 2 and "face" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# The CLI on a damaged copy of the shipped models. EMOREC_MODELS is read once, at import, into
# config.MODELS_DIR, which the CLI passes everywhere; these cases point the CLI's copy at the damaged
# one (test_cli.run_cli checks the variable itself in a fresh process: a second TensorFlow start here
# would double this file's time).


@pytest.fixture
def cli_on(monkeypatch, capsys, tmp_path):
    """``run(*argv)`` -> (status, stdout, stderr) of the CLI with its models folder set to ``models``."""
    def run(models: Path, *argv: str):
        monkeypatch.setattr("emorec.cli.MODELS_DIR", models)  # as EMOREC_MODELS would
        monkeypatch.setattr(emorec.config, "CACHE_DIR", tmp_path / "cache")
        return run_main(capsys, *argv)

    return run


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("photos")
    (work / "astronaut.jpg").write_bytes(ASTRONAUT)
    (work / "notes.jpg").write_text("not a photo")
    (work / "empty").mkdir()
    return work


def test_cli_models_marks_an_unreadable_card(cli_on, shipped_copy):
    code, out, err = cli_on(shipped_copy, "models")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.strip().startswith("tuned_full"))
    assert "card" in row and "is unreadable" in row
    assert any(line.strip().startswith("tuned_mtcnn") for line in out.splitlines())


def test_cli_models_marks_a_missing_model_file(cli_on, shipped_copy):
    _, out, _ = cli_on(shipped_copy, "models")
    row = next(line for line in out.splitlines() if line.strip().startswith("card_only"))
    assert "no model file" in row or "unavailable" in row


@pytest.mark.parametrize("model, message", [
    ("baseline", "Model 'baseline': model.keras is damaged or incomplete"),
    ("tuned_full", "Model 'tuned_full': its card"),
    ("card_only", "Model 'card_only' has a card but no model file"),
], ids=["predict-truncated-model", "predict-unreadable-card", "predict-card-without-model"])
def test_cli_predict_with_a_damaged_model(cli_on, shipped_copy, photos, model, message):
    code, out, err = cli_on(shipped_copy, "predict", "--model", model, photos / "astronaut.jpg")
    assert code == 2 and message in err and "Traceback" not in err
    assert not out


def test_cli_predict_with_the_intact_model_and_bad_files(cli_on, shipped_copy, photos):
    code, out, err = cli_on(shipped_copy, "predict", "--model", "tuned_mtcnn", "--json", photos / "astronaut.jpg",
                            photos / "missing.jpg", photos / "notes.jpg")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [Path(line["path"]).name for line in lines] == ["astronaut.jpg", "missing.jpg", "notes.jpg"]
    astronaut, missing, notes = lines
    assert astronaut["error"] is None and len(astronaut["faces"]) == 1
    assert missing["faces"] == [] and "no such file" in missing["error"]
    assert notes["faces"] == [] and "is not an image" in notes["error"]


def test_cli_predict_on_a_folder_without_images(cli_on, shipped_copy, photos):
    code, out, err = cli_on(shipped_copy, "predict", "--model", "tuned_mtcnn", photos / "empty")
    assert code == 0 and ("no image" in (out + err).lower() or "0 images" in (out + err).lower())


# ---------------------------------------------------------------------------------------------
# No half-written file: a crash in the middle of a write leaves the previous file whole


def crash_half_way(real_write):
    """A stand-in for a writer that dies (disk full) after writing half its text."""

    def write(path, text, *args, **kwargs):
        real_write(path, text[: len(text) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    return write


def test_card_update_interrupted_mid_write_keeps_the_old_card(monkeypatch, tmp_path, tiny_model):
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "tiny")
    before = (models / "tiny" / registry.CARD_FILE).read_text()
    monkeypatch.setattr(Path, "write_text", crash_half_way(Path.write_text))
    with pytest.raises(OSError):
        registry.update_card("tiny", {"description": "x" * 10_000}, models)
    monkeypatch.undo()
    assert (models / "tiny" / registry.CARD_FILE).read_text() == before
    assert registry.read_card("tiny", models).description == "bad-input test model"


def test_model_save_interrupted_mid_write_keeps_the_old_model(monkeypatch, tmp_path, tiny_model):
    import keras

    from emorec.predict import EmotionRecognizer
    from emorec.train import save_model

    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "tiny")
    path = models / "tiny" / registry.MODEL_FILE
    before = path.read_bytes()
    model = keras.models.load_model(path, compile=False)

    def dying_save(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(before[: len(before) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", dying_save)
    with pytest.raises(OSError):
        save_model(model, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert EmotionRecognizer.load("tiny", models).name == "tiny"


def fill_the_disk(monkeypatch) -> None:
    """From now on every text write stops halfway with ENOSPC, as on a full disk."""
    real = Path.write_text

    def dying_write_text(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", dying_write_text)


def test_merge_interrupted_mid_write_keeps_the_old_table(monkeypatch, tmp_path):
    scan = tmp_path / "scan.csv"
    scan.write_text(TALOS2)
    out = tmp_path / "merged.csv"
    out.write_text(TALOS2)
    fill_the_disk(monkeypatch)
    with pytest.raises(tune.TalosTableError, match="cannot be written \\(No space left on device\\)"):
        tune.merge_scans([scan], out)
    monkeypatch.undo()
    assert out.read_text() == TALOS2 and not list(tmp_path.glob(".*tmp*"))


class FakeDetector:
    """Finds one face in the top-left corner of every image (no MTCNN needed)."""

    def settings(self) -> dict:
        return {"detector": "fake"}

    def detect(self, image):
        from emorec.faces import Face

        return [Face((0, 0, 8, 8), 0.99)]


def test_detection_cache_interrupted_mid_write_is_not_poisoned(monkeypatch, tmp_path):
    from emorec.crops import detect_dataset

    manifest = data.load_dataset(faceless_folder(tmp_path / "data"))
    cache = tmp_path / "cache"
    monkeypatch.setattr(Path, "write_text", crash_half_way(Path.write_text))
    first = detect_dataset(manifest, FakeDetector(), cache)
    monkeypatch.undo()
    assert first["error"].str.contains("No space left on device").all()
    assert not list(cache.glob("*.json"))  # only temporary files were half written
    again = detect_dataset(manifest, FakeDetector(), cache)
    assert again["n_faces"].tolist() == [1] * len(manifest) and again["error"].isna().all()
    assert all(json.loads(p.read_text()) for p in cache.glob("*.json"))


def test_cross_validation_table_interrupted_mid_write_keeps_the_old_table(monkeypatch, tmp_path):
    from emorec import workflows

    manifest = data.load_dataset(faceless_folder(tmp_path / "data"))
    predictions = pd.DataFrame({"fold": 0, "path": manifest["path"], "label": manifest["label"],
                                **{label: 1 / len(LABELS) for label in LABELS}})
    monkeypatch.setattr(emorec.config, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(workflows, "variant_inputs", lambda name, manifest, progress=iter: np.zeros((len(manifest), 1)))
    monkeypatch.setattr(workflows, "cross_validate", lambda *args, **kwargs: predictions)
    monkeypatch.setattr(workflows, "best_epoch", lambda run_dir: 1)
    models = tmp_path / "models"
    (models / "baseline").mkdir(parents=True)
    table = models / "baseline" / "cv-subject-kfold.csv"
    table.write_text("the previous, complete table\n")
    fill_the_disk(monkeypatch)
    with pytest.raises(OSError):
        workflows.evaluate_variant("baseline", tmp_path / "data", "subject-kfold", "cmd", n_splits=2, models_dir=models)
    monkeypatch.undo()
    assert table.read_text() == "the previous, complete table\n"
    assert not list(table.parent.glob(".*tmp*"))


# ---------------------------------------------------------------------------------------------
# Caches: a damaged cache file is detected again, not trusted


def test_damaged_detection_cache_entry_is_detected_again(tmp_path):
    from emorec.crops import detect_dataset

    manifest = data.load_dataset(faceless_folder(tmp_path / "data"))
    cache = tmp_path / "cache"
    detect_dataset(manifest, FakeDetector(), cache)
    damaged = sorted(cache.glob("*.json"))[0]
    damaged.write_text('[{"box": [0, 0')
    again = detect_dataset(manifest, FakeDetector(), cache)
    assert again["n_faces"].tolist() == [1] * len(manifest)


def test_damaged_array_cache_is_rebuilt(tmp_path):
    from emorec.crops import cached_model_inputs

    manifest = data.load_dataset(faceless_folder(tmp_path / "data"))
    cache = tmp_path / "arrays"
    first = cached_model_inputs(manifest, (8, 8, 1), face_crop=False, cache_dir=cache)
    truncate(next(cache.glob("*.npy")))
    again = cached_model_inputs(manifest, (8, 8, 1), face_crop=False, cache_dir=cache)
    assert np.array_equal(first, again)


def test_array_cache_follows_images_changed_at_the_same_paths(tmp_path):
    from emorec.crops import cached_model_inputs

    folder = tmp_path / "data"
    write_image(folder / "happy" / "a.png", value=0)
    manifest = data.load_dataset(folder)
    before = cached_model_inputs(manifest, (8, 8, 1), face_crop=False, cache_dir=tmp_path / "arrays")
    write_image(folder / "happy" / "a.png", size=(32, 24), value=255)
    after = cached_model_inputs(data.load_dataset(folder), (8, 8, 1), face_crop=False, cache_dir=tmp_path / "arrays")
    assert before.max() == 0 and after.min() == 255


def test_cli_pretrain_restart_without_a_pretrained_network(capsys, monkeypatch, tmp_path):
    import emorec.cli

    monkeypatch.setattr(emorec.cli, "MODELS_DIR", tmp_path / "models")
    code, _, err = run_main(capsys, "pretrain", "--data", tmp_path, "--restart")
    assert code == 2 and "does not exist: run without --restart first" in err and "Traceback" not in err


def test_cli_write_cards_goes_with_latency_only(capsys):
    code, _, err = run_main(capsys, "bench", "faces", "--write-cards")
    assert code == 2 and "--write-cards goes with `bench latency`" in err


def test_a_file_that_cannot_be_read_is_an_image_error(monkeypatch, tmp_path):
    photo = tmp_path / "locked.png"
    photo.write_bytes(BLANK)

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)  # chmod cannot deny root, who runs CI
    with pytest.raises(ImageError, match="locked.png cannot be read \\(Permission denied\\)") as error:
        load_image(photo)
    assert error.value.kind == "unreadable"


@pytest.mark.parametrize("name, content", [("history.json", b"\xff\xfe[]"),
                                           ("cv-subject-kfold.csv", b"fold,\xff\xfe\n")],
                         ids=["history", "predictions"])
def test_model_files_that_are_not_utf8_read_as_absent(tmp_path, name, content):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / name).write_bytes(content)
    assert registry.read_history("m", tmp_path) is None
    assert registry.read_predictions("m", "subject-kfold", tmp_path) is None


def test_an_unknown_optimizer_fails_before_any_face_is_prepared(tmp_path):
    from emorec.workflows import train_configuration

    with pytest.raises(ValueError, match="Unknown optimizer 'lion': emorec trains with adam, .*adamax"):
        train_configuration({"optimizer": "lion"}, tmp_path / "no-data", "t", False, "", tmp_path)


def test_study_tables_optimizers_are_all_known():
    from emorec.train import make_optimizer

    for name in ("Adam", "Nadam", "RMSprop", "SGD", "Adagrad", "Adamax", "Adadelta", "AdamW"):
        assert make_optimizer(name, 1e-3).learning_rate > 0


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_cli_refuses_emorec_options_for_a_study_variant(capsys, tmp_path, command):
    code, _, err = run_main(capsys, command, "--variant", "baseline", "--data", tmp_path, "--fer", tmp_path,
                            "--fer-faces", "10")
    assert (code == 2 and "error: --fer, --fer-faces apply to --variant emorec only" in err
            and f"emorec {command}" in err)


@pytest.mark.parametrize("protocol", ["cross-dataset", "fer2013-publictest"])
def test_cli_refuses_training_options_when_measuring_a_shipped_model(capsys, tmp_path, protocol):
    code, _, err = run_main(capsys, "evaluate", "--variant", "emorec", "--data", tmp_path, "--protocol", protocol,
                            "--folds", "5", "--transfer", tmp_path)
    assert code == 2 and f"--folds, --transfer apply to cross-validation, not to --protocol {protocol}" in err
    code, _, err = run_main(capsys, "models", "--metric", "macro_f1")
    assert code == 2 and "--metric applies with --cross-dataset only" in err


def test_cli_refuses_a_protocol_emorec_is_not_evaluated_by(capsys, tmp_path):
    code, _, err = run_main(capsys, "evaluate", "--variant", "emorec", "--data", tmp_path, "--protocol", "image-kfold")
    assert code == 2 and "cross-validated by subject only" in err
