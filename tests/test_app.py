"""The app's pages driven by Streamlit's AppTest (no browser)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, shared_data, write_image


def open_app(monkeypatch, data_dir: Path) -> AppTest:
    monkeypatch.setenv("EMOREC_DATA", str(data_dir))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    assert not app.exception
    return app


def test_home_links_every_page(monkeypatch, tmp_path):
    from ui.navigation import PAGES

    app = open_app(monkeypatch, tmp_path)
    assert "emorec" in app.title[0].value
    text = " ".join(m.value for m in app.markdown)
    assert "subject" in text
    links = [link.proto.label for link in app.main.get("page_link")]
    assert links == [f"**{page.title}** — {page.summary}" for page in PAGES if not page.default]
    assert all(link.proto.page_script_hash for link in app.main.get("page_link"))  # each resolves to a page of the app


def sidebar_menu(app: AppTest) -> list[tuple[str, str]]:
    return [(link.proto.label, link.proto.icon) for link in app.sidebar.get("page_link")]


def test_every_page_has_the_menu(monkeypatch, tmp_path):
    """Home and a page switched to show the same sidebar menu (ui.navigation.page_setup), every link
    resolving to a page of the app (Streamlit's pages/ convention: app.py and pages/)."""
    from ui.navigation import PAGES

    menu = [(page.title, page.icon) for page in PAGES]
    app = open_app(monkeypatch, tmp_path)
    assert sidebar_menu(app) == menu
    assert len({link.proto.page_script_hash for link in app.sidebar.get("page_link")} - {""}) == len(PAGES)
    app.switch_page("pages/4_tuning.py").run()
    assert not app.exception and sidebar_menu(app) == menu


def test_page_setup_knows_every_page_file():
    """Every file in pages/ is a page in Streamlit's pages/ convention: each has its entry in PAGES
    (page_setup looks it up), and nothing else lives there."""
    from ui.navigation import PAGES, page_info

    files = ["app.py", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py"))]
    assert files == [page.path for page in PAGES]
    assert all(page_info(ROOT / page.path) == page for page in PAGES)
    with pytest.raises(ValueError, match="not a page"):
        page_info(ROOT / "ui" / "widgets.py")


def test_dataset_page_shows_counts(monkeypatch, class_folder_dataset):
    app = open_app(monkeypatch, class_folder_dataset)
    app.switch_page("pages/1_dataset.py").run()
    assert not app.exception
    assert [m.value for m in app.metric] == ["18", "3", "6", "18"]
    counts = app.dataframe[0].value
    assert counts.loc["total", "images"] == 18 and {"subjects", "sequences"} <= set(counts.columns)


def test_dataset_page_leaves_out_counts_a_dataset_does_not_name(monkeypatch, tmp_path):
    """FER2013's file names give no subjects or sequences: no column of zeros, a caption instead."""
    for label in ("happy", "sad"):
        for i in range(3):
            write_image(tmp_path / "fer" / label / f"Training_{i}.jpg", size=(48, 48))
    app = open_app(monkeypatch, tmp_path / "fer")
    app.switch_page("pages/1_dataset.py").run()
    assert not app.exception
    counts = app.dataframe[0].value
    assert "subjects" not in counts.columns and "sequences" not in counts.columns and counts.loc["total", "images"] == 6
    assert any("does not name them" in c.value for c in app.caption)


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_dataset_page_without_data_explains(monkeypatch, tmp_path, where):
    folder = tmp_path / where
    if where == "empty":
        folder.mkdir()
    app = open_app(monkeypatch, folder)
    app.switch_page("pages/1_dataset.py").run()
    assert not app.exception
    assert str(folder) in app.warning[0].value
    text = " ".join(m.value for m in app.markdown)
    assert "cohn-kanade-images" in text and "FER2013" in text
    assert "`<root>/Emotion/S005/001/*_emotion.txt`" in text  # as code: Markdown would eat the asterisks
    if where == "empty":
        assert "holds no dataset. Understood layouts:  \n- class folders" in app.warning[0].value
    assert "pretrained on FER2013 train" in text  # the shipped emorec's card: more than its CK+ frames


def test_dataset_page_follows_the_text_input(monkeypatch, tmp_path, class_folder_dataset):
    app = open_app(monkeypatch, tmp_path / "nothing-here")
    app.switch_page("pages/1_dataset.py").run()
    app.text_input[0].set_value(str(class_folder_dataset)).run()
    assert not app.exception
    assert app.metric[0].value == "18"


@pytest.mark.data
def test_dataset_page_on_ckplus(monkeypatch):
    app = open_app(monkeypatch, shared_data("ckplus"))
    app.switch_page("pages/1_dataset.py").run()
    assert not app.exception
    assert app.metric[0].value == "920" and app.metric[2].value == "123"


def test_tuning_page_opens_the_shipped_scan_and_filters(monkeypatch, tmp_path):
    app = open_app(monkeypatch, tmp_path)
    app.switch_page("pages/4_tuning.py").run()
    assert not app.exception
    assert app.selectbox(key="scan").value == "emorec-mtcnn-scan"  # emorec's own scan opens first
    assert app.selectbox(key="emorec-mtcnn-scan.csv:metric").value == "val_balanced_accuracy"
    assert int(app.metric[0].value.replace(",", "")) >= 200
    app.selectbox(key="emorec-mtcnn-scan.csv:metric").set_value("val_loss").run()
    app.selectbox(key="scan").set_value("study-2019-full-frames").run()
    assert app.metric[0].value == "2,000"
    app.selectbox(key="scan").set_value("emorec-mtcnn-scan").run()  # back: its metric was kept
    assert app.selectbox(key="emorec-mtcnn-scan.csv:metric").value == "val_loss" and not app.exception
    app.selectbox(key="scan").set_value("study-2019-full-frames").run()
    assert any("0.2048" in w.value for w in app.warning)  # the study's stuck runs are called out
    assert any(c.value.startswith("2,000 of 2,000") for c in app.caption)  # no filter left over from the other scan
    assert any(c.value.startswith("About 30 epochs")
               for c in app.caption)  # what training one row costs (no durations in this table)
    app.multiselect(key="study-2019-full-frames.csv:filter-optimizer").set_value(["Adam"]).run()
    assert not app.exception
    assert any("of 2,000 configurations after filtering" in c.value and not c.value.startswith("2,000 of")
               for c in app.caption)


def test_tuning_page_rejects_a_broken_upload(monkeypatch, tmp_path):
    app = open_app(monkeypatch, tmp_path)
    app.switch_page("pages/4_tuning.py").run()
    app.selectbox(key="scan").set_value("Upload a Talos CSV…").run()
    app.file_uploader(key="scan-upload").set_value(("broken.csv", b"name,score\nx,1\n", "text/csv")).run()
    assert not app.exception
    assert "no metric column" in app.error[0].value
    app.file_uploader(key="scan-upload").set_value(("new.csv", b"lr,val_accuracy,val_loss\n", "text/csv")).run()
    assert not app.exception and "has a header but no rows" in app.error[0].value
    assert not any("Choose a scan" in i.value for i in app.info)  # the error says it all


def plotted_numbers(chart) -> list[float]:
    """Every number a Plotly chart of a page plots (AppTest holds its JSON; Plotly packs arrays in base64)."""
    def values(packed):
        if isinstance(packed, dict):
            return np.frombuffer(base64.b64decode(packed["bdata"]), dtype=packed["dtype"]).tolist()
        return [v for v in packed if isinstance(v, (int, float))] if isinstance(packed, list) else []

    numbers = []
    for trace in json.loads(chart.proto.spec)["data"]:
        for key in ("x", "y"):
            numbers += values(trace.get(key, []))
        numbers += values(trace.get("line", {}).get("color", []))
    return numbers


def test_tuning_page_metric_box_shows_the_metric_in_use(monkeypatch, tmp_path):
    """The metric chosen for one scan stays with it: after switching to an uploaded table the box and
    the numbers agree (the box read val_accuracy while every number was for val_loss)."""
    app = open_app(monkeypatch, tmp_path)
    app.switch_page("pages/4_tuning.py").run()
    app.selectbox(key="emorec-mtcnn-scan.csv:metric").set_value("val_loss").run()
    app.selectbox(key="scan").set_value("Upload a Talos CSV…").run()
    study = (ROOT / "models" / "tuning" / "study-2019-mtcnn.csv").read_bytes()
    app.file_uploader(key="scan-upload").set_value(("study-2019-mtcnn.csv", study, "text/csv")).run()
    assert not app.exception
    box = app.selectbox(key="study-2019-mtcnn.csv:metric")
    assert box.value == "val_accuracy" and app.metric[1].label == "Best val_accuracy"
    box.set_value("val_loss").run()
    assert app.metric[1].label == "Best val_loss"
    assert any("left out of the histogram" in c.value for c in app.caption)  # diverged runs up to 390,985
    for chart in app.get("plotly_chart"):  # no chart squashed by them either: every plotted loss is ordinary
        assert max(plotted_numbers(chart), default=0) < 1000, json.loads(chart.proto.spec)["data"][0]["type"]

    lines = study.decode().splitlines()
    truncated = "\n".join(lines[:-1] + [lines[-1][: len(lines[-1]) // 3]]).encode()
    app.file_uploader(key="scan-upload").set_value(("cut.csv", truncated, "text/csv")).run()
    assert not app.exception and any("cut off while it was written" in w.value for w in app.warning)


def test_train_a_configuration_from_the_tuning_page(monkeypatch, tmp_path, class_folder_dataset):
    import shutil

    import emorec.config

    models = tmp_path / "models"
    shutil.copytree(ROOT / "models" / "tuning", models / "tuning")
    monkeypatch.setattr(emorec.config, "MODELS_DIR", models)
    app = open_app(monkeypatch, tmp_path)
    app.switch_page("pages/4_tuning.py").run()
    app.text_input[-1].set_value(str(class_folder_dataset)).run()
    app.radio[0].set_value("whole frames (32x25)").run()
    next(b for b in app.button if b.label == "Train").click().run(timeout=300)
    assert not app.exception, app.exception
    assert app.success and "Registered models/custom-" in app.success[0].value, [e.value for e in app.error]
    name = app.text_input[-2].value
    card = json.loads((models / name / "card.json").read_text())
    assert card["face_crop"] is False and card["training"]["params"]["optimizer"] in {"Adam", "Nadam", "RMSprop", "SGD"}
    assert card["training"]["params"]["lr"] < 0.1  # Talos's normalised units converted
    held_out = card["evaluation"]["subject-holdout"]
    assert 0 < held_out["majority_class"] <= 1 and "macro-F1" in app.success[0].value
    assert card["latency_ms_per_face"] > 0 and "cores" in card["latency_measured"]  # the saved model, as served
    app.run()  # the name is taken now: training again needs a yes
    assert next(b for b in app.button if b.label == "Train").disabled
    app.checkbox(key=f"replace-{name}").check().run()
    assert not next(b for b in app.button if b.label == "Train").disabled


def test_compare_page_reads_the_shipped_cards(monkeypatch, tmp_path):
    from emorec import registry

    app = open_app(monkeypatch, tmp_path)
    app.switch_page("pages/5_compare.py").run()
    assert not app.exception
    table = app.dataframe[0].value
    shipped = [name for name in registry.model_names() if registry.read_card(name).result("subject-kfold")]
    assert shipped, "no shipped model card holds a subject-grouped evaluation"
    for name in shipped:
        card = registry.read_card(name)
        accuracy = card.result("subject-kfold")["classes_8"]["accuracy"]
        row = table[table["model"] == name].iloc[0]
        assert row["CK+ 8 classes, by subject"] == f"{accuracy['mean']:.1%} ± {accuracy['std']:.1%}"
    reported = table[table["model"].str.endswith("2019 study")]
    assert len(reported) >= 1 and reported["CK+ 8 classes, by image"].str.contains("as reported").all()

    # People it never saw: every benchmarked model's cross-dataset numbers, and the floor.
    assert "People it never saw" in [h.value for h in app.subheader]
    cross = app.dataframe[1].value.set_index("model")
    benchmarked = [name for name in registry.model_names() if registry.read_card(name).benchmark_sets()]
    assert benchmarked and set(benchmarked) < set(cross.index) and "always the most frequent class" in cross.index
    for name in benchmarked:
        london = registry.read_card(name).cross_dataset["london-detect"]["accuracy"]
        assert cross.loc[name, "London set (face found by MTCNN)"] == f"{london:.1%}"
    app.radio(key="cross-metric").set_value("face_rate").run()
    assert not app.exception and app.dataframe[1].value.set_index("model").loc[benchmarked[0]].str.endswith("%").all()


def test_compare_page_plots_the_weight_mixing_scan(monkeypatch, tmp_path):
    import shutil

    import emorec.config
    from emorec import registry

    models = tmp_path / "models"
    shutil.copytree(ROOT / "models" / "emorec", models / "emorec", ignore=shutil.ignore_patterns("*.keras", "pretrain"))
    scan = [{"share": s, "ckplus_8": 0.9, "ckplus_7": 0.85 + s / 10, "fer2013_heldout": 0.66 - s / 10, "score": 0.8}
            for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    evaluation = registry.read_card("emorec", models).evaluation
    evaluation["subject-kfold"]["weight_mixing"] = {"share": 0.5, "criterion": "best mean", "scan": scan,
                                                    "fer2013_heldout_faces": 2871}
    registry.update_card("emorec", {"evaluation": evaluation}, models)
    monkeypatch.setattr(emorec.config, "MODELS_DIR", models)
    app = open_app(monkeypatch, tmp_path)
    app.switch_page("pages/5_compare.py").run()
    assert not app.exception, app.exception
    assert "emorec: posed against in-the-wild faces" in [h.value for h in app.subheader]
    assert any("0.5 x fine-tuned + 0.5 x pretrained" in c.value for c in app.caption)


def test_compare_page_scores_an_uploaded_zip_and_rejects_a_bad_one(monkeypatch, tmp_path):
    import io
    import zipfile

    app = open_app(monkeypatch, tmp_path)
    app.switch_page("pages/5_compare.py").run()
    app.file_uploader[0].set_value(("bad.zip", b"not a zip", "application/zip")).run()
    next(b for b in app.button if b.label == "Evaluate every model").click().run()
    assert not app.exception and "not a zip" in app.error[0].value

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for label in ("happy", "sad"):
            image = io.BytesIO()
            Image.fromarray(skdata.astronaut()).save(image, format="JPEG")
            archive.writestr(f"friends/{label}/anna.jpg", image.getvalue())
    app.file_uploader[0].set_value(("friends.zip", buffer.getvalue(), "application/zip")).run()
    next(b for b in app.button if b.label == "Evaluate every model").click().run(timeout=180)
    assert not app.exception
    assert any("photos" in d.value.columns and (d.value["photos"] == 2).all() for d in app.dataframe)
    next(t for t in app.toggle if "cropped already" in t.label).set_value(True).run()
    assert not any("photos" in d.value.columns for d in app.dataframe)  # the old answer does not fit the new question
    next(b for b in app.button if b.label == "Evaluate every model").click().run(timeout=180)
    summary = next(d.value for d in app.dataframe if "photos" in d.value.columns)
    assert (summary["faces_found"] == 2).all()  # each whole image is the face



def test_tuning_page_shows_a_running_scans_table_as_it_grows(monkeypatch, tmp_path):
    """A scan in shards rewrites its merged table as each shard finishes: the page reads it again."""
    import os
    import shutil

    import emorec.config
    from tests.conftest import TALOS2

    models = tmp_path / "models"
    shutil.copytree(ROOT / "models" / "tuning", models / "tuning")
    table = models / "tuning" / f"{emorec.config.SHIPPED_SCAN}.csv"
    table.write_text("".join(TALOS2.splitlines(keepends=True)[:3]))  # the first shard: two configurations
    monkeypatch.setattr(emorec.config, "MODELS_DIR", models)
    app = open_app(monkeypatch, tmp_path)
    app.switch_page("pages/4_tuning.py").run()
    assert app.metric[0].value == "2"
    table.write_text(TALOS2)  # the next shard finished
    os.utime(table, (table.stat().st_atime, table.stat().st_mtime + 5))
    app.run()
    assert app.metric[0].value == "3" and not app.exception
