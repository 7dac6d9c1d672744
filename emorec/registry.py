"""The shipped models in ``models/<name>/``: ``model.keras``, ``card.json`` (what it expects, what
it was trained on, how it scored, the commands that made it) and a readable ``card.md``."""

from __future__ import annotations

import json
from pathlib import Path

from emorec.config import MODELS_DIR
from emorec.files import atomic_write_text, read_digests, write_digests

MODEL_FILE, CARD_FILE, CARD_MD = "model.keras", "card.json", "card.md"
TRAINING_IMAGES = "training-images.txt.gz"  # content digests of every image a model trained on, in any stage


class ModelUnavailable(RuntimeError):
    """A model that cannot be used; the message says which and why."""


def model_names(models_dir: Path = MODELS_DIR) -> list[str]:
    """Every folder under ``models/`` with a card or a model file, usable or not."""
    return sorted(d.name for d in models_dir.glob("*") if (d / CARD_FILE).exists() or (d / MODEL_FILE).exists())


def read_card(name: str, models_dir: Path = MODELS_DIR) -> dict:
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


def update_card(name: str, changes: dict, models_dir: Path = MODELS_DIR) -> dict:
    """Merge ``changes`` into the card (nested dicts merged one level deep; a None value removes
    its key, so a retrained model sheds numbers that described the old one), write it
    atomically, and regenerate ``card.md``."""
    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        card = read_card(name, models_dir)
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
    return card


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
    import pandas as pd

    path = models_dir / name / f"cv-{protocol}.csv"
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):  # ValueError: not UTF-8, or empty
        return None


def training_stats(models_dir: Path = MODELS_DIR) -> dict[str, dict]:
    """The statistics of each model's training data, by model name (from the cards)."""
    stats = {}
    for name in model_names(models_dir):
        try:
            data = read_card(name, models_dir).get("data")
        except ModelUnavailable:
            continue
        if isinstance(data, dict) and "per_class" in data:
            stats[name] = data
    return stats


def headline(card: dict, predictions=None) -> dict:
    """The numbers a model is known by: subject-independent CK+ accuracy (7 and 8 classes; with
    its ``predictions`` by subject, also the emotion frames scored as the app answers, neutral
    included), the image-level folds the 2019 study used (to show what they inflate), FER2013
    PublicTest accuracy, latency and size."""
    from emorec.evaluate import served_emotion_accuracy

    subject = card.get("evaluation", {}).get("subject-kfold", {})
    image = card.get("evaluation", {}).get("image-kfold", {})
    fer = card.get("evaluation", {}).get("fer2013-publictest", {})

    def accuracy(block: dict) -> float | None:
        return block.get("accuracy", {}).get("mean") if block else None

    return {
        "CK+ 7 emotions": accuracy(subject.get("emotions_7", {})),
        "CK+ emotion frames, 8-way": None if predictions is None else served_emotion_accuracy(predictions)["mean"],
        "CK+ 8 classes": accuracy(subject.get("classes_8", {})),
        "CK+ 8 classes, image folds": accuracy(image.get("classes_8", {})),
        "FER2013 PublicTest": fer.get("accuracy") if fer else None,
        "latency ms/face": card.get("latency_ms_per_face"),
        "size MB": round(card["file_size_bytes"] / 1e6, 2) if card.get("file_size_bytes") else None,
    }


def majority_guess(cards) -> dict:
    """What always answering a test set's most frequent class scores, per headline column (from the
    class supports the cards record): the floor a model has to clear, e.g. 64 % "neutral" on CK+."""
    def share(block: dict | None) -> float | None:
        supports = [c["support"] for c in (block or {}).get("per_class", {}).values()]
        return round(max(supports) / sum(supports), 4) if supports else None

    floor: dict[str, float] = {}
    for card in cards:
        evaluation = card.get("evaluation", {})
        subject, image = evaluation.get("subject-kfold", {}), evaluation.get("image-kfold", {})
        for column, block in (("CK+ 7 emotions", subject.get("emotions_7")),
                              ("CK+ emotion frames, 8-way", subject.get("emotions_7")),
                              ("CK+ 8 classes", subject.get("classes_8")),
                              ("CK+ 8 classes, image folds", image.get("classes_8")),
                              ("FER2013 PublicTest", evaluation.get("fer2013-publictest"))):
            if column not in floor and share(block) is not None:
                floor[column] = share(block)
    return floor


def below_floor(names, models_dir: Path = MODELS_DIR) -> list[str]:
    """The named models that, by their cards, score under always answering the most frequent class
    on people they never saw: on CK+'s 8 classes by subject ("neutral", 64 %), or on most of the
    cross-dataset sets they were measured on. Whatever they answer is not to be trusted."""
    cards = {}
    for name in names:
        try:
            cards[name] = read_card(name, models_dir)
        except ModelUnavailable:
            continue
    floor = majority_guess(cards.values()).get("CK+ 8 classes")

    def below(name: str, card: dict) -> bool:
        score = headline(card)["CK+ 8 classes"]
        sets = [r for r in card.get("cross_dataset", {}).values() if isinstance(r, dict)]
        under = sum(r["accuracy"] < r["floor"]["accuracy"] for r in sets)
        return (floor is not None and score is not None and score < floor) or under > len(sets) / 2

    return [name for name, card in cards.items() if below(name, card)]


def _percent(value: float | None) -> str:
    return "—" if value is None or value != value else f"{100 * value:.1f} %"


def _readable(value) -> str:
    """A card value in a sentence: lists comma-separated, mappings as "key: value" pairs."""
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {_readable(v)}" for k, v in value.items())
    return str(value)


def cross_dataset_markdown(results: dict) -> list[str]:
    """The cross-dataset benchmark of a card as Markdown: one row per set, then how often each
    class was predicted against its true share."""
    sets = {name: r for name, r in results.items() if isinstance(r, dict)}
    lines = ["", "## People it never saw: the cross-dataset benchmark", "",
             "Argmax over each set's classes; a photo without a face found counts as wrong; photos the model trained "
             "on (exact copies: FER2013 PublicTest repeats some FER2013 train faces) are left out. Floor: always "
             "answering the set's most frequent class.", "",
             "| set | images | left out: trained on | faces found | accuracy | macro-F1 | floor accuracy | "
             "floor macro-F1 |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['title']} | {r['images']:,} | {r.get('left_out_trained_on', 0):,} | {_percent(r['face_rate'])} | "
              f"{_percent(r['accuracy'])} | {_percent(r['macro_f1'])} | {_percent(r['floor']['accuracy'])} | "
              f"{_percent(r['floor']['macro_f1'])} |" for r in sets.values()]
    lines += ["", "How often each class is predicted (of the faces found), against its true share:", ""]
    for r in sets.values():
        shares = ", ".join(f"{c} {_percent(r['predicted_share'][c])} ({_percent(r['true_share'][c])})"
                           for c in r["classes"])
        lines.append(f"- {r['title']}: {shares}")
    if results.get("command"):
        lines += ["", f"Command: `{results['command']}`"]
    return lines


def targets_markdown(card: dict) -> list[str]:
    """emorec's targets (``config.EMOREC_TARGETS``) against the card's own numbers: met, missed or
    not measured; what was tried for a missed one is in ``tried`` (and docs/models.md)."""
    from emorec.config import EMOREC_TARGETS

    def measured(path: tuple[str, ...]):
        value = card
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def shown(value: float, path: tuple[str, ...]) -> str:
        if path == ("file_size_bytes",):
            return f"{value / 1e6:.1f}"
        return f"{value:g}" if value > 1 else _percent(value)

    lines = ["", "## Targets", "", "| target | measured | bound | |", "|---|---|---|---|"]
    for title, path, bound, direction in EMOREC_TARGETS:
        value = measured(path)
        met = None if value is None else (value >= bound if direction == ">=" else value <= bound)
        lines.append(f"| {title} | {'—' if value is None else shown(value, path)} | {direction} {shown(bound, path)} | "
                     f"{'not measured' if met is None else 'met' if met else '**missed**'} |")
    if card.get("tried"):
        lines += ["", *(f"- {note}" for note in card["tried"])]
    return lines


def card_markdown(card: dict) -> str:
    """The card as a page people read."""
    lines = [f"# Model card: {card['name']}", "", card.get("description", ""), ""]
    lines += ["| | |", "|---|---|"]
    for key, label in (("classes", "Classes"), ("input_shape", "Input (h, w, channels)"), ("face_crop", "Face crop"),
                       ("parameters", "Parameters"), ("file_size_bytes", "File size (bytes)"),
                       ("temperature", "Temperature"), ("threshold", "\"Not sure\" below confidence"),
                       ("tta_flip", "Averages the face and its mirror image"),
                       ("latency_ms_per_face", "CPU latency per face (ms, as served)"),
                       ("latency_measured", "Latency measured on")):
        if key in card:
            value = ", ".join(card[key]) if key == "classes" else card[key]
            lines.append(f"| {label} | {value} |")
    data = card.get("data")
    if data:
        lines += ["", "## Training data", "",
                  f"{data.get('images', '?')} images from {', '.join(data.get('sources', []))}, "
                  f"{data.get('subjects', 0)} subjects."]
        extra = data.get("extra") or {}
        lines += [f"- {key.replace('_', ' ')}: {value}" for key, value in extra.items()]
    training = card.get("training")
    if training:
        lines += ["", "## Training", ""] + [f"- {key.replace('_', ' ')}: {_readable(value)}"
                                            for key, value in training.items()]
    calibration = card.get("calibration")
    if calibration:
        lines += ["", "## Calibration", "",
                  f"Temperature {calibration['temperature']:.3f}, "
                  f"fitted on {calibration.get('fitted_on', 'held-out data')}; "
                  f"expected calibration error {calibration['ece_before']:.3f} before, "
                  f"{calibration['ece_after']:.3f} after"
                  + (f" ({calibration['ece_after_measured']})." if calibration.get("ece_after_measured") else ".")]
        wild = calibration.get("fer2013_heldout")
        if wild:
            lines[-1] += (f" On FER2013's held-out faces (in the wild): {wild['ece_before']:.3f} before, "
                          f"{wild['ece_after']:.3f} after.")
    for protocol, result in card.get("evaluation", {}).items():
        lines += ["", f"## Evaluation: {protocol}", "", result.get("description", "")]
        for key, title in (("classes_8", "8 classes"),
                           ("emotions_7", "7 emotions (argmax over the emotions: neutral ignored)")):
            block = result.get(key)
            if block:
                acc, f1 = block["accuracy"], block["macro_f1"]
                interval = (f" (pooled {_percent(acc['pooled'])}, 95 % interval over subjects "
                            f"{_percent(acc['pooled_ci95'][0])} to {_percent(acc['pooled_ci95'][1])})"
                            if "pooled_ci95" in acc else "")
                lines.append(f"- {title}: accuracy {_percent(acc['mean'])} ± {_percent(acc['std'])}{interval}, "
                             f"macro-F1 {_percent(f1['mean'])} ± {_percent(f1['std'])} "
                             f"({block['images']} test images over {block['folds']} folds)")
        if "accuracy" in result and not isinstance(result["accuracy"], dict):
            lines.append(f"- accuracy {_percent(result['accuracy'])}, macro-F1 {_percent(result.get('macro_f1'))}")
        served = result.get("emotions_7_served")
        if served:
            lines.append(f"- the same emotion frames as the app answers them (8-way, \"neutral\" is wrong): accuracy "
                         f"{_percent(served['mean'])} ± {_percent(served['std'])}")
        if "ece_without_temperature" in result:
            lines.append(f"- expected calibration error (served probabilities): {result['ece']:.3f}; without the "
                         f"temperature: {result['ece_without_temperature']:.3f}")
        elif "ece" in result:
            lines.append(f"- expected calibration error: {result['ece']}")
        mixing = result.get("weight_mixing")
        if mixing:
            lines += ["", f"Weight mixing: the shipped model is {mixing['share']:g} x fine-tuned + "
                          f"{1 - mixing['share']:g} x pretrained weights, the {mixing['criterion']} over all folds. "
                          "The accuracy above scores each fold at the share the other folds chose "
                          f"({', '.join(f'{s:g}' for s in mixing.get('fold_shares', []))}). "
                          "The scan, CK+ pooled over the folds, the other domains averaged over the folds' "
                          "networks:", ""]
            columns = {"ckplus_8": "CK+ 8 classes", "ckplus_7": "CK+ 7 emotions",
                       "fer2013_heldout": f"FER2013 held-out ({mixing.get('fer2013_labels', 'FER2013')} labels)",
                       "lfw_validation": "LFW validation people", "london": "London"}
            columns = {key: title for key, title in columns.items() if key in mixing["scan"][0]}
            lines += ["| fine-tuned share | " + " | ".join(columns.values()) + " |", "|---|" + "---|" * len(columns)]
            lines += [f"| {row['share']:g} | " + " | ".join(_percent(row[key]) for key in columns) + " |"
                      for row in mixing["scan"]]
            held_out = mixing.get("leave_one_domain_out")
            if held_out:
                lines += ["", "Each domain left out of the choice in turn (how the choice does on photos it was not "
                              "made on):", ""]
                lines += [f"- {domain.replace('_', ' ')}: the others choose {r['share']:g}, which scores "
                          f"{_percent(r['accuracy'])} there (the best any share scores there: {_percent(r['best'])})"
                          for domain, r in held_out.items()]
        if result.get("command"):
            lines += ["", f"Command: `{result['command']}`"]
    if card.get("cross_dataset"):
        lines += cross_dataset_markdown(card["cross_dataset"])
    if card.get("variant") == "emorec":
        lines += targets_markdown(card)
    commands = card.get("commands", {})
    if commands:
        lines += ["", "## Reproduce", ""] + [f"- {what}: `{command}`" for what, command in commands.items()]
    return "\n".join(lines) + "\n"
