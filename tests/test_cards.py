"""Model cards (``emorec.cards``): headline numbers, the majority-guess floor, models below it."""

from __future__ import annotations

import json

from emorec import cards, registry
from emorec.cards import ModelCard
from tests.conftest import save_tiny_model


def test_headline_numbers_of_a_card():
    block = lambda mean: {"accuracy": {"mean": mean, "std": 0.01}}  # noqa: E731
    card = {"evaluation": {"subject-kfold": {"classes_8": block(0.5), "emotions_7": block(0.4)},
                           "image-kfold": {"classes_8": block(0.7)}, "fer2013-publictest": {"accuracy": 0.3}},
            "latency_ms_per_face": 2.5, "file_size_bytes": 3_000_000}
    assert cards.headline(ModelCard.from_dict(card)) == {
        "CK+ 7 emotions": 0.4, "CK+ emotion frames, 8-way": None, "CK+ 8 classes": 0.5,
        "CK+ 8 classes, image folds": 0.7, "FER2013 PublicTest": 0.3, "latency ms/face": 2.5, "size MB": 3.0}
    assert set(cards.headline(ModelCard("new")).values()) == {None}  # a card with nothing measured yet


def test_majority_guess_is_the_floor_from_class_supports():
    support = lambda **counts: {"per_class": {c: {"support": n} for c, n in counts.items()}}  # noqa: E731
    both = [ModelCard("a", evaluation={"subject-kfold": {"classes_8": support(neutral=6, anger=2),
                                                         "emotions_7": support(anger=2, fear=1)}}),
            ModelCard("b", evaluation={"fer2013-publictest": support(happiness=1, sadness=3)})]
    assert cards.majority_guess(both) == {"CK+ 7 emotions": 0.6667, "CK+ emotion frames, 8-way": 0.6667,
                                          "CK+ 8 classes": 0.75, "FER2013 PublicTest": 0.75}


def test_models_below_the_floor_are_named(tmp_path):
    supports = {"per_class": {"neutral": {"support": 6}, "anger": {"support": 2}}}  # floor: 6 of 8, 75 %
    for name, accuracy in (("weak", 0.6), ("strong", 0.9), ("unmeasured", None)):
        save_tiny_model(tmp_path, name, convolutional=True)
        if accuracy is not None:  # only what this reads (card.md would want a whole evaluation)
            card = json.loads((tmp_path / name / registry.CARD_FILE).read_text())
            card["evaluation"] = {"subject-kfold": {"classes_8": {"accuracy": {"mean": accuracy}, **supports}}}
            (tmp_path / name / registry.CARD_FILE).write_text(json.dumps(card))
    assert cards.below_floor(registry.read_cards(["weak", "strong", "unmeasured", "missing"], tmp_path)) == ["weak"]
    # Above the floor on CK+ but below it on most sets of people from outside the lab: named too.
    card = json.loads((tmp_path / "strong" / registry.CARD_FILE).read_text())
    card["cross_dataset"] = {name: {"accuracy": accuracy, "floor": {"accuracy": 0.4}}
                             for name, accuracy in (("a", 0.3), ("b", 0.35), ("c", 0.5))}
    (tmp_path / "strong" / registry.CARD_FILE).write_text(json.dumps(card))
    assert cards.below_floor(registry.read_cards(["weak", "strong"], tmp_path)) == ["weak", "strong"]
