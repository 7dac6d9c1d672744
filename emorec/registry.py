"""Where the shipped models live: ``models/<name>/`` holds ``model.keras``, ``card.json`` (what it
expects, what it was trained on, how it scored, the commands that made it; ``cards.ModelCard``), a
readable ``card.md``, its training history, its cross-validation predictions and the digests of
the images it trained on. Reading and writing these files, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from emorec.cards import ModelCard, card_markdown
from emorec.config import MODELS_DIR
from emorec.files import atomic_write_text, read_digests, write_digests

MODEL_FILE, CARD_FILE, CARD_MD = "model.keras", "card.json", "card.md"
TRAINING_IMAGES = "training-images.txt.gz"  # content digests of every image a model trained on, in any stage


class ModelUnavailable(RuntimeError):
    """A model that cannot be used; the message says which and why."""


def model_names(models_dir: Path = MODELS_DIR) -> list[str]:
    """Every folder under ``models/`` with a card or a model file, usable or not."""
    return sorted(d.name for d in models_dir.glob("*") if (d / CARD_FILE).exists() or (d / MODEL_FILE).exists())


def read_card(name: str, models_dir: Path = MODELS_DIR) -> ModelCard:
    """The card of ``models/<name>``; ``ModelUnavailable`` saying why when it cannot be read."""
    try:
        return ModelCard.from_dict(_card_values(name, models_dir))
    except (TypeError, ValueError) as error:  # a field of the wrong kind, e.g. "classes": 5
        raise ModelUnavailable(f"Model {name!r}: its card is malformed ({error}).") from None


def read_cards(names, models_dir: Path = MODELS_DIR) -> dict[str, ModelCard]:
    """The readable cards of the named models (a model without one is left out)."""
    cards = {}
    for name in names:
        try:
            cards[name] = read_card(name, models_dir)
        except ModelUnavailable:
            continue
    return cards


def _card_values(name: str, models_dir: Path) -> dict:
    path = models_dir / name / CARD_FILE
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelUnavailable(f"Model {name!r} has no card ({path}).") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelUnavailable(f"Model {name!r}: its card {path} is unreadable ({error}).") from None
    if not isinstance(card, dict):
        raise ModelUnavailable(f"Model {name!r}: its card {path} is not a JSON object.")
    return card


def update_card(name: str, changes: dict, models_dir: Path = MODELS_DIR) -> ModelCard:
    """Merge ``changes`` into the card (nested dicts merged one level deep; a None value removes
    its key, so a retrained model sheds numbers that described the old one), write it
    atomically, and regenerate ``card.md``."""
    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        card = _card_values(name, models_dir)
    except ModelUnavailable:
        card = {"name": name}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(card.get(key), dict):
            value = {**card[key], **value}
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None}
        if value is None:
            card.pop(key, None)
        else:
            card[key] = value
    atomic_write_text(folder / CARD_FILE, json.dumps(card, indent=1) + "\n")
    atomic_write_text(folder / CARD_MD, card_markdown(card))
    return ModelCard.from_dict(card)


def write_training_images(name: str, digests, models_dir: Path = MODELS_DIR) -> None:
    """Record which images a model trained on (``files.content_digest`` of each), so a score on
    photos it has seen is not taken for skill on new people."""
    write_digests(models_dir / name / TRAINING_IMAGES, digests)


def training_images(name: str, models_dir: Path = MODELS_DIR) -> frozenset[str] | None:
    """The digests of the images a model trained on; None when it recorded none (unknown)."""
    return read_digests(models_dir / name / TRAINING_IMAGES)


def read_history(name: str, models_dir: Path = MODELS_DIR) -> list[dict] | None:
    """The final model's training history (one dict per epoch), when saved."""
    try:
        return json.loads((models_dir / name / "history.json").read_text())
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        return None


def read_predictions(name: str, protocol: str, models_dir: Path = MODELS_DIR):
    """Every cross-validation test prediction of a model (``cv-<protocol>.csv``), when saved."""
    path = models_dir / name / f"cv-{protocol}.csv"
    try:
        return pd.read_csv(path, float_precision="round_trip")  # the same floats as written: the same argmax
    except (OSError, ValueError, pd.errors.ParserError):  # ValueError: not UTF-8, or empty
        return None


def training_stats(models_dir: Path = MODELS_DIR) -> dict[str, dict]:
    """The statistics of each model's training data, by model name (from the cards)."""
    return {name: card.data for name, card in read_cards(model_names(models_dir), models_dir).items()
            if "per_class" in card.data}


def training_images_of(names, models_dir: Path = MODELS_DIR) -> dict[str, frozenset[str] | None]:
    """``training_images`` of each named model (for ``metrics.score_labelled``)."""
    return {name: training_images(name, models_dir) for name in names}
