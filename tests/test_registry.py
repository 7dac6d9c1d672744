"""The model store: cards read as ``ModelCard``, written atomically with their Markdown, and the
shipped cards' numbers reproduce from the predictions kept beside them."""

from __future__ import annotations

import json

import pytest

from emorec import metrics, registry
from emorec.cards import ModelCard
from tests.conftest import ROOT, save_tiny_model

SHIPPED = ROOT / "models"
CROSS_VALIDATIONS = [(name, protocol) for name in registry.model_names(SHIPPED)
                     for protocol in ("subject-kfold", "image-kfold")
                     if (SHIPPED / name / f"cv-{protocol}.csv").exists()]


@pytest.mark.parametrize(("name", "protocol"), CROSS_VALIDATIONS)
def test_every_shipped_cards_numbers_reproduce_from_its_predictions(name, protocol):
    card = registry.read_card(name, SHIPPED).result(protocol)
    again = metrics.summarize(registry.read_predictions(name, protocol, SHIPPED), protocol)
    for block in ("classes_8", "emotions_7"):
        for key in ("accuracy", "macro_f1", "per_class", "confusion_matrix", "images", "folds"):
            assert again[block][key] == card[block][key], (block, key)
    assert again["emotions_7_served"] == card["emotions_7_served"] and again["ece"] == card["ece"]


def test_cards_are_typed_and_keep_what_they_do_not_name(tmp_path):
    save_tiny_model(tmp_path, temperature=0.8, quantization="int8 Dense")
    card = registry.read_card("tiny", tmp_path)
    assert isinstance(card, ModelCard) and card.input_shape == (48, 48, 1) and card.temperature == 0.8
    assert card.other == {"quantization": "int8 Dense"} and card.result("subject-kfold") == {}
    assert (tmp_path / "tiny" / registry.CARD_MD).read_text().startswith("# Model card: tiny")
    # A None removes a key; nested mappings merge one level deep.
    registry.update_card("tiny", {"evaluation": {"a": {"accuracy": 0.5}}}, tmp_path)
    registry.update_card("tiny", {"evaluation": {"b": {"accuracy": 0.6}}, "temperature": None}, tmp_path)
    card = registry.read_card("tiny", tmp_path)
    assert set(card.evaluation) == {"a", "b"} and card.temperature == 1.0
    assert "temperature" not in json.loads((tmp_path / "tiny" / registry.CARD_FILE).read_text())


def test_a_card_with_a_field_of_the_wrong_kind_says_so(tmp_path):
    folder = save_tiny_model(tmp_path)
    card = json.loads((folder / registry.CARD_FILE).read_text())
    (folder / registry.CARD_FILE).write_text(json.dumps({**card, "evaluation": [1, 2]}))
    with pytest.raises(registry.ModelUnavailable, match="malformed"):
        registry.read_card("tiny", tmp_path)
    assert registry.read_cards(["tiny"], tmp_path) == {}


def test_predictions_are_kept_to_the_last_digit(tmp_path):
    import pandas as pd

    folder = tmp_path / "m"
    folder.mkdir()
    frame = pd.DataFrame({"fold": [0], "path": ["a.png"], "label": ["anger"], "anger": [1 / 3], "neutral": [0.1 + 0.2]})
    (folder / "cv-subject-kfold.csv").write_text(frame.to_csv(index=False))
    again = registry.read_predictions("m", "subject-kfold", tmp_path)
    assert again["anger"][0] == 1 / 3 and again["neutral"][0] == 0.1 + 0.2
