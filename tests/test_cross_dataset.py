"""The cross-dataset benchmark on a tiny synthetic data folder in the layouts of ../shared/data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from emorec import cards, cross_dataset, data, metrics, registry
from emorec.config import NO_FACE
from emorec.predict import EmotionRecognizer
from emorec.workflows import evaluate_cross_dataset
from emorec.cli import main as cli_main
from tests.conftest import save_tiny_model, shared_data


@pytest.fixture
def data_root(wild_data_root) -> Path:
    return wild_data_root


def test_scores_count_a_photo_without_a_face_as_wrong_and_show_the_prior():
    labels = np.array(["neutral", "happiness", "happiness", "anger"], object)
    predicted = np.array(["neutral", "happiness", NO_FACE, "neutral"], object)
    scores = metrics.set_scores(labels, predicted, ["neutral", "anger", "happiness"])
    assert scores["accuracy"] == 0.5 and scores["face_rate"] == 0.75
    assert scores["recall"] == {"neutral": 1.0, "anger": 0.0, "happiness": 0.5}
    assert scores["predicted_share"]["neutral"] == pytest.approx(2 / 3, abs=1e-4)  # of the faces found
    assert scores["true_share"]["happiness"] == 0.5
    floor = metrics.floor_scores(labels, ["neutral", "anger", "happiness"])
    assert floor["answer"] == "happiness" and floor["accuracy"] == 0.5 and floor["predicted_share"]["happiness"] == 1.0


def test_benchmark_scores_every_set_and_records_it_in_the_card(tmp_path, data_root):
    models = tmp_path / "models"
    save_tiny_model(models, margin=0.0)
    result = evaluate_cross_dataset("tiny", data_root, "cmd", models)
    sets = result["sets"]
    assert list(sets) == [spec.name for spec in cross_dataset.SETS] and result["skipped"] == {}
    assert (sets["fer2013-whole"]["images"] == 12
            and sets["fer2013-whole"]["classes"] == ["neutral", "anger", "happiness"])
    assert sets["ferplus-whole"]["images"] == 11  # the not-a-face majority left out
    assert sets["ferplus-whole"]["classes"] == ["neutral", "anger", "happiness"]  # contempt never won a vote
    assert sets["lfw-whole"]["images"] == sets["lfw-detect"]["images"] > 0
    assert sets["lfw-detect"]["images"] == 4 * 3  # the 4 people of the kept validation list, not the 8 others
    assert sets["lfw-whole"]["face_rate"] == 1.0 and sets["lfw-detect"]["face_rate"] == 0.0  # noise: no face found
    assert sets["lfw-detect"]["accuracy"] == 0.0
    assert sets["london-detect"]["face_rate"] == 0.5 and sets["london-detect"]["classes"] == ["neutral", "happiness"]
    for scores in sets.values():
        assert 0 <= scores["accuracy"] <= 1 and 0 <= scores["macro_f1"] <= 1 and scores["floor"]["accuracy"] > 0
    card = registry.read_card("tiny", models)
    assert card.cross_dataset["command"] == "cmd" and card.cross_dataset["london-detect"] == sets["london-detect"]
    json.loads((models / "tiny" / registry.CARD_FILE).read_text())  # plain JSON


def test_photos_a_model_trained_on_are_left_out_and_counted(tmp_path, data_root):
    from emorec.files import content_digest

    models = tmp_path / "models"
    save_tiny_model(models)
    seen = sorted((data_root / "fer2013" / "validation" / "happy").glob("*.jpg"))[:2]
    registry.write_training_images("tiny", [content_digest(p.read_bytes()) for p in seen], models)
    sets = evaluate_cross_dataset("tiny", data_root, "cmd", models)["sets"]
    assert sets["fer2013-whole"]["images"] == 10 and sets["fer2013-whole"]["left_out_trained_on"] == 2
    assert sets["ferplus-whole"]["left_out_trained_on"] == 1  # one of the two was voted not-a-face: not in the set
    assert sets["fer2013-whole"]["floor"]["accuracy"] == pytest.approx(1 / 3, abs=1e-4)  # the floor: the whole set
    assert "| left out: trained on |" in (models / "tiny" / "card.md").read_text()


def test_an_absent_set_is_skipped_with_its_reason(tmp_path, data_root):
    models = tmp_path / "models"
    save_tiny_model(models)
    from emorec.predict import EmotionRecognizer

    recognizer = EmotionRecognizer.load("tiny", models)
    result = cross_dataset.benchmark(recognizer, data_root / "fer2013" / "..", sets=cross_dataset.SETS[:1])
    assert list(result["sets"]) == ["fer2013-whole"]
    result = cross_dataset.benchmark(recognizer, tmp_path, sets=cross_dataset.SETS[:1])
    assert result["sets"] == {} and "does not exist" in result["skipped"]["fer2013-whole"]
    with pytest.raises(cross_dataset.DatasetError, match=r"sets \(fer2013/validation, ferplus/labels.csv, "
                                                         r"lfw_expressions, london\)"):
        evaluate_cross_dataset("tiny", tmp_path, "cmd", models)
    # FER+ votes without the FER2013 images they label: that set is skipped, the others still scored.
    import shutil

    (tmp_path / "votes-only" / "ferplus").mkdir(parents=True)
    shutil.copy(data_root / "ferplus" / "labels.csv", tmp_path / "votes-only" / "ferplus")
    shutil.copytree(data_root / "london", tmp_path / "votes-only" / "london")
    result = cross_dataset.benchmark(recognizer, tmp_path / "votes-only")
    assert list(result["sets"]) == ["london-detect"] and "not under" in result["skipped"]["ferplus-whole"]
    # Every photo of a set trained on: nothing left to score, said so.
    everything = frozenset(data.image_digests(cross_dataset.london(data_root)))
    result = cross_dataset.benchmark(recognizer, data_root, sets=cross_dataset.SETS[-1:], trained_on=everything)
    assert result["sets"] == {} and "no photo the model did not train on" in result["skipped"]["london-detect"]


def test_table_has_a_row_per_model_and_the_floor(tmp_path, data_root, capsys):
    models = tmp_path / "models"
    save_tiny_model(models)
    evaluate_cross_dataset("tiny", data_root, "cmd", models)
    card = dataclasses.replace(registry.read_card("tiny", models), evaluation={"subject-kfold": {"classes_8": {
        "accuracy": {"mean": 0.9, "pooled": 0.91}, "macro_f1": {"mean": 0.8, "pooled": 0.81},
        "per_class": {"neutral": {"support": 6}, "happiness": {"support": 4}}}}})
    table = cards.benchmark_table({"tiny": card})
    assert list(table.index) == ["tiny", cards.FLOOR_ROW]
    assert list(table.columns) == [cards.CKPLUS_COLUMN, *(s.name for s in cross_dataset.SETS)]
    assert table.loc["tiny", cards.CKPLUS_COLUMN] == 0.9
    assert table.loc[cards.FLOOR_ROW, cards.CKPLUS_COLUMN] == 0.6  # always neutral: 6 of 10
    assert table.loc[cards.FLOOR_ROW, "london-detect"] == 0.5


def test_cli_prints_the_benchmark_and_the_models_table(tmp_path, data_root, monkeypatch, capsys):
    models = tmp_path / "models"
    save_tiny_model(models)
    from emorec.cli import print_cross_dataset

    monkeypatch.setattr("emorec.cli.MODELS_DIR", models)  # as EMOREC_MODELS would

    assert print_cross_dataset("tiny", data_root) == 0  # `evaluate --protocol cross-dataset` for a model in models/
    out = capsys.readouterr().out
    assert "london-detect" in out and "floor accuracy" in out and "%" in out
    assert cli_main(["models", "--cross-dataset", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| model |" in out and "| tiny |" in out and cards.FLOOR_ROW in out


def test_benchmark_on_the_real_sets_scores_the_shipped_model():
    root = shared_data()
    for spec in cross_dataset.SETS:
        shared_data(spec.location)
    from emorec.predict import EmotionRecognizer

    recognizer = EmotionRecognizer.load("emorec")
    result = cross_dataset.benchmark(recognizer, root,
                                     sets=[s for s in cross_dataset.SETS if s.name == "london-detect"])
    london = result["sets"]["london-detect"]
    card = registry.read_card("emorec").cross_dataset["london-detect"]
    assert london["images"] == 204 and london["accuracy"] == card["accuracy"]  # the card's number reproduces


def test_emorec_card_checks_its_targets_against_its_own_numbers():
    labels = np.array(["neutral"] * 5 + ["happiness"] * 5, object)
    classes = ["neutral", "happiness"]
    london = {"title": "London", "classes": classes, "floor": metrics.floor_scores(labels, classes),
              **metrics.set_scores(labels, labels, classes), "accuracy": 0.775, "macro_f1": 0.80}
    card = {"name": "emorec", "variant": "emorec", "latency_ms_per_face": 6.0,
            "cross_dataset": {"london-detect": london}, "tried": ["what was tried"]}
    text = cards.card_markdown(card)
    assert "| London (face found), accuracy | 77.5 % | >= 80.1 % | **missed** |" in text
    assert "| London (face found), macro-F1 | 80.0 % | >= 77.2 % | met |" in text
    assert "| Latency per face (ms, 2 cores) | 6 | <= 10 | met |" in text
    assert "| FER+ PublicTest, majority vote | — | >= 84.0 % | not measured |" in text
    assert "\n\n- what was tried" in text
    assert "## Targets" not in cards.card_markdown({**card, "variant": "baseline"})


@pytest.mark.data
def test_emorec_scores_its_cards_number_on_unseen_fer2013_faces():
    """The PublicTest faces it never trained on, as the card counts them (argmax over FER2013's seven
    classes): the card's number, to the last digit; far above always answering "happiness"."""
    from emorec import cross_dataset

    root = shared_data()
    shared_data("fer2013", "validation")
    card = registry.read_card("emorec")
    publictest = [s for s in cross_dataset.SETS if s.name == "fer2013-whole"]
    result = cross_dataset.benchmark(EmotionRecognizer.load("emorec"), root, sets=publictest,
                                     trained_on=registry.training_images("emorec"))["sets"]["fer2013-whole"]
    assert result["images"] + result["left_out_trained_on"] == 3589
    assert result["accuracy"] == card.cross_dataset["fer2013-whole"]["accuracy"]
    assert result["accuracy"] > 2 * result["floor"]["accuracy"]
