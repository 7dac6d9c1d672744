"""Workflows (``emorec.workflows``): ``train_final`` ships a model with its card."""

from __future__ import annotations

from skimage import data as skdata

from emorec import cards, registry
from emorec.config import LABELS
from emorec.files import content_digest
from emorec.predict import EmotionRecognizer


def test_train_final_ships_a_model_with_its_card(tmp_path, class_folder_dataset):
    from emorec.workflows import train_final

    card = train_final("baseline", class_folder_dataset, "python -m emorec train --variant baseline", epochs=1,
                       models_dir=tmp_path)
    folder = tmp_path / "baseline"
    assert (folder / "model.keras").exists() and (folder / "history.json").exists() and (folder / "card.md").exists()
    assert card.classes == LABELS and card.input_shape == (32, 25, 3) and card.training["epochs"] == 1
    assert card.data["images"] == 18 and card.latency_ms_per_face > 0
    assert card.study_reported["accuracy"] == 0.21
    assert EmotionRecognizer.load("baseline", tmp_path).predict(skdata.astronaut())[0].box == [0, 0, 512, 512]
    assert cards.headline(card)["size MB"] > 0
    # It records what it trained on, by content: the same photo renamed is still recognised.
    seen = registry.training_images("baseline", tmp_path)
    first = sorted(class_folder_dataset.rglob("*.png"))[0]
    assert len(seen) == 18 and content_digest(first.read_bytes()) in seen
    assert registry.training_images("tuned_full", tmp_path) is None  # none recorded: unknown, not "none"
