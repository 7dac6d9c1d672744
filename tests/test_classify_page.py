"""The Classify page under AppTest: uploads (one, several, no face, corrupt), camera, batch mode."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, save_tiny_model

TIMEOUT = 120


def jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG")
    return buffer.getvalue()


ASTRONAUT = jpeg(skdata.astronaut())
BLANK = jpeg(np.full((240, 320, 3), 180, np.uint8))
CORRUPT = ASTRONAUT[: len(ASTRONAUT) // 3]


@pytest.fixture
def classify_page(tmp_path, monkeypatch):
    models = tmp_path / "models"
    save_tiny_model(models, "tiny", convolutional=True)
    save_tiny_model(models, "tiny_whole", face_crop=False, convolutional=True)
    (models / "broken").mkdir()
    (models / "broken" / "card.json").write_text("{oops")
    import emorec.config
    monkeypatch.setattr(emorec.config, "MODELS_DIR", models)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    app.run()
    app.switch_page("pages/2_classify.py").run()
    assert not app.exception
    return app


def upload(app: AppTest, *files: tuple[str, bytes]) -> AppTest:
    app.file_uploader[0].set_value([(name, data, "image/jpeg") for name, data in files]).run()
    assert not app.exception, app.exception
    return app


def test_page_lists_models_and_explains_unavailable_ones(classify_page):
    assert any("broken" in w.value and "unreadable" in w.value for w in classify_page.warning)
    assert classify_page.multiselect[0].value == ["tiny", "tiny_whole"]


def test_the_page_opens_with_the_default_model_alone_loaded(tmp_path, monkeypatch):
    """Opening Classify loads emorec (the default) only; another model loads when it is chosen."""
    import emorec.config
    from emorec.predict import EmotionRecognizer

    models = tmp_path / "models"
    for name in ("emorec", "other"):
        save_tiny_model(models, name, convolutional=True)
    monkeypatch.setattr(emorec.config, "MODELS_DIR", models)
    loaded = []
    original = EmotionRecognizer.load.__func__
    monkeypatch.setattr(EmotionRecognizer, "load", classmethod(
        lambda cls, name, models_dir=None: loaded.append(name) or original(cls, name, models_dir)))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    app.run()
    app.switch_page("pages/2_classify.py").run()
    assert not app.exception and app.multiselect[0].value == ["emorec"]
    assert loaded == ["emorec"]
    app.multiselect[0].set_value(["emorec", "other"]).run()
    assert not app.exception and loaded == ["emorec", "other"]


def test_one_photo_with_a_face(classify_page):
    app = upload(classify_page, ("astronaut.jpg", ASTRONAUT))
    assert [s.value for s in app.subheader] == ["astronaut.jpg"]
    summary, probabilities = [d.value for d in app.dataframe]
    assert list(probabilities.columns) == ["tiny", "tiny_whole (whole photo)"] and len(probabilities) == 8
    assert list(summary["model"]) == ["tiny", "tiny_whole"] and list(summary["whole photo"]) == [False, True]
    assert ((summary["photo"] == "astronaut.jpg").all() and (summary["face"] == 1).all()
            and (summary["upload"] == 1).all())
    assert [b.label for b in app.get("download_button")] == ["Download (CSV)", "Download (JSON)"]
    assert not app.error


def test_no_face_offers_the_whole_image(classify_page):
    app = upload(classify_page, ("wall.jpg", BLANK))
    assert any("No face found in wall.jpg" in i.value for i in app.info)
    app.button(key=next(b.key for b in app.button if b.key and b.key.startswith("whole-button"))).click().run()
    assert not app.exception
    assert len(app.dataframe) == 2  # now classified as one face: its probabilities and the results table


def test_corrupt_file_is_an_inline_error_and_others_still_run(classify_page):
    app = upload(classify_page, ("broken.jpg", CORRUPT), ("astronaut.jpg", ASTRONAUT), ("wall.jpg", BLANK))
    assert [s.value for s in app.subheader] == ["broken.jpg", "astronaut.jpg", "wall.jpg"]
    assert len(app.error) == 1 and "broken.jpg" in app.error[0].value
    assert len(app.dataframe) == 2 and any("No face found" in i.value for i in app.info)
    # The results (and their downloads) list every photo: faces with boxes and probabilities, and the others.
    summary = app.dataframe[0].value
    assert dict(zip(summary["photo"], summary["status"])) == {"broken.jpg": "error", "astronaut.jpg": "classified",
                                                              "wall.jpg": "no face"}
    assert summary.loc[summary["photo"] == "broken.jpg", "error"].str.contains("broken.jpg").all()
    assert {"x", "y", "width", "height", "neutral", "happiness", "surprise"} <= set(summary.columns)
    faces = summary[summary["status"] == "classified"]
    assert np.allclose(faces[["neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness",
                              "surprise"]].sum(axis=1), 1, atol=1e-3)


def test_a_whole_photo_main_model_explains_no_face_it_did_not_see(classify_page):
    app = upload(classify_page, ("astronaut.jpg", ASTRONAUT))
    assert any(e.label.startswith("Why did tiny say") for e in app.expander)
    app.selectbox[0].set_value("tiny_whole").run()
    assert not app.exception
    assert not any(e.label.startswith("Why did") for e in app.expander)  # its answer is about the whole photo


def test_camera_photo(classify_page):
    app = classify_page
    app.toggle[1].set_value(True).run()  # "Use the camera"
    app.camera_input[0].upload("photo.jpg", ASTRONAUT, "image/jpeg").run()
    assert not app.exception
    assert "camera photo" in [s.value for s in app.subheader]
    assert len(app.dataframe) == 2


def test_batch_with_labels_from_file_names(classify_page):
    app = classify_page
    app.file_uploader(key="batch-uploads").set_value(
        [("happy_astronaut.jpg", ASTRONAUT, "image/jpeg"), ("surprised wall.jpg", BLANK, "image/jpeg")]).run()
    next(b for b in app.button if b.label == "Classify 2 photos").click().run()
    assert not app.exception
    summary = app.dataframe[0].value
    assert set(summary["model"]) == {"tiny", "tiny_whole"} and (summary["photos"] == 2).all()
    assert (summary["faces_found"] == 1).all()  # no face on the wall: it counts against accuracy, not in faces_found


def test_batch_of_friends_photos_is_labelled_from_their_names(classify_page):
    """File names as people save them, synonyms included, give the expected labels."""
    names = {"happy matt.png": "happiness", "afraid mom.png": "fear", "surprised_gf.png": "surprise",
             "disgusted dad.jpg": "disgust", "smiling grandma.jpg": "happiness"}
    app = classify_page
    app.file_uploader(key="batch-uploads").set_value([(name, ASTRONAUT, "image/jpeg") for name in names]).run()
    next(b for b in app.button if b.label == f"Classify {len(names)} photos").click().run()
    assert not app.exception
    results = app.dataframe[-1].value
    assert dict(zip(results["photo"], results["expected"])) == names


def test_batch_says_how_many_photos_a_model_trained_on(classify_page):
    """A score on a model's own training photos reads like skill on new people: the summary counts
    them (by content, whatever the file's name) and a warning says so."""
    import emorec.config
    from emorec import registry
    from emorec.files import content_digest

    registry.write_training_images("tiny", [content_digest(ASTRONAUT)], emorec.config.MODELS_DIR)
    app = classify_page
    app.file_uploader(key="batch-uploads").set_value(
        [("happy_me.jpg", ASTRONAUT, "image/jpeg"), ("surprised wall.jpg", BLANK, "image/jpeg")]).run()
    next(b for b in app.button if b.label == "Classify 2 photos").click().run()
    assert not app.exception
    summary = app.dataframe[0].value.set_index("model")
    assert summary.loc["tiny", "seen_in_training"] == 1
    assert pd.isna(summary.loc["tiny_whole", "seen_in_training"])  # it recorded nothing: unknown, not "none"
    assert any("1 of these 2 photos are ones **tiny** trained on" in w.value for w in app.warning)


def test_batch_folder_named_by_expression(classify_page, tmp_path):
    """A folder called "happy" labels its photos, as its subfolders would."""
    folder = tmp_path / "happy"
    folder.mkdir()
    (folder / "astronaut.jpg").write_bytes(ASTRONAUT)
    app = classify_page
    app.text_input[0].set_value(str(folder)).run()
    next(b for b in app.button if b.label == "Classify 1 photos").click().run()
    assert not app.exception
    results = app.dataframe[-1].value
    assert set(results["expected"]) == {"happiness"} and set(results["photo"]) == {"happy/astronaut.jpg"}


def test_batch_folder_without_images_and_over_the_limit(classify_page, tmp_path, monkeypatch):
    app = classify_page
    empty = tmp_path / "empty"
    empty.mkdir()
    app.text_input[0].set_value(str(empty)).run()
    assert not app.exception and any("No " in i.value and "image under" in i.value for i in app.info)
    import emorec.config

    monkeypatch.setattr(emorec.config, "MAX_BATCH_PHOTOS", 2)
    many = tmp_path / "many"
    many.mkdir()
    for i in range(3):
        (many / f"happy_{i}.jpg").write_bytes(BLANK)
    app.text_input[0].set_value(str(many)).run()
    assert not app.exception and any("More than 2 images" in w.value for w in app.warning)
    assert any(b.label == "Classify 2 photos" for b in app.button)
