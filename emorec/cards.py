"""Model cards: what a shipped model expects, how it was made and how it scored.

``ModelCard`` is the typed view of ``models/<name>/card.json`` (``registry`` reads and writes the
files). From cards come the numbers a model is known by (``headline``), the floor it has to clear
(``majority_guess``), the tables the CLI, the README and the Compare page show, and ``card.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from emorec.config import EMOREC_TARGETS, NOT_SURE_BELOW, FaceDefaults
from emorec.cross_dataset import SETS
from emorec.metrics import floor_scores, served_emotion_accuracy


@dataclass(frozen=True)
class ModelCard:
    """A model card. ``evaluation`` holds one result per protocol (``subject-kfold``,
    ``image-kfold``, ``fer2013-publictest``, ``subject-holdout``), ``cross_dataset`` one result per
    benchmark set (and the ``command`` that measured them); keys the card holds beyond these fields
    are kept in ``other``."""

    name: str
    classes: tuple[str, ...] = ()
    input_shape: tuple[int, ...] = ()
    face_crop: bool = True
    margin: float = FaceDefaults.margin
    temperature: float = 1.0
    threshold: float = NOT_SURE_BELOW
    mirror_averaged: bool = False
    description: str = ""
    variant: str | None = None
    parameters: int | None = None
    file_size_bytes: int | None = None
    latency_ms_per_face: float | None = None
    latency_measured: str | None = None
    weight_mixing: float | None = None
    study_reported: dict | None = None
    data: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)
    evaluation: dict[str, dict] = field(default_factory=dict)
    cross_dataset: dict = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)
    tried: tuple[str, ...] = ()
    other: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict) -> ModelCard:
        """The card ``card.json`` holds; TypeError or ValueError when a field is of the wrong kind."""
        names = {f.name for f in dataclasses.fields(cls)} - {"other"}
        known = {k: v for k, v in values.items() if k in names and v is not None}
        for key in ("classes", "input_shape", "tried"):
            if key in known:
                known[key] = tuple(known[key])
        for key in ("data", "training", "calibration", "evaluation", "cross_dataset", "commands"):
            if not isinstance(known.get(key, {}), dict):
                raise TypeError(f"{key} is not a mapping")
        return cls(**{"name": "?", **known}, other={k: v for k, v in values.items() if k not in names})

    def result(self, protocol: str) -> dict:
        """The evaluation under ``protocol``; empty when it was not run."""
        return self.evaluation.get(protocol) or {}

    def benchmark_sets(self) -> dict[str, dict]:
        """The cross-dataset results, by set name."""
        return {name: r for name, r in self.cross_dataset.items() if isinstance(r, dict)}

    @property
    def size_mb(self) -> float | None:
        return round(self.file_size_bytes / 1e6, 2) if self.file_size_bytes else None


# ---------------------------------------------------------------------------------------------
# The numbers a model is known by, and the floor


def headline(card: ModelCard, predictions: pd.DataFrame | None = None) -> dict:
    """Subject-independent CK+ accuracy (7 and 8 classes; with its ``predictions`` by subject, also
    the emotion frames scored as the app answers, neutral included), the image-level folds the 2019
    study used (to show what they inflate), FER2013 PublicTest accuracy, latency and size."""
    subject, image = card.result("subject-kfold"), card.result("image-kfold")

    def accuracy(block: dict | None) -> float | None:
        return block.get("accuracy", {}).get("mean") if block else None

    return {
        "CK+ 7 emotions": accuracy(subject.get("emotions_7")),
        "CK+ emotion frames, 8-way": None if predictions is None else served_emotion_accuracy(predictions)["mean"],
        "CK+ 8 classes": accuracy(subject.get("classes_8")),
        "CK+ 8 classes, image folds": accuracy(image.get("classes_8")),
        "FER2013 PublicTest": card.result("fer2013-publictest").get("accuracy"),
        "latency ms/face": card.latency_ms_per_face,
        "size MB": card.size_mb,
    }


def majority_guess(cards) -> dict:
    """What always answering a test set's most frequent class scores, per headline column (from the
    class supports the cards record): the floor a model has to clear, e.g. 64 % "neutral" on CK+."""
    def share(block: dict | None) -> float | None:
        supports = [c["support"] for c in (block or {}).get("per_class", {}).values()]
        return round(max(supports) / sum(supports), 4) if supports else None

    floor: dict[str, float] = {}
    for card in cards:
        subject, image = card.result("subject-kfold"), card.result("image-kfold")
        for column, block in (("CK+ 7 emotions", subject.get("emotions_7")),
                              ("CK+ emotion frames, 8-way", subject.get("emotions_7")),
                              ("CK+ 8 classes", subject.get("classes_8")),
                              ("CK+ 8 classes, image folds", image.get("classes_8")),
                              ("FER2013 PublicTest", card.result("fer2013-publictest"))):
            if column not in floor and share(block) is not None:
                floor[column] = share(block)
    return floor


def below_floor(cards: dict[str, ModelCard]) -> list[str]:
    """The models that, by their cards, score under always answering the most frequent class on
    people they never saw: on CK+'s 8 classes by subject ("neutral", 64 %), or on most of the
    cross-dataset sets they were measured on. Whatever they answer is not to be trusted."""
    floor = majority_guess(cards.values()).get("CK+ 8 classes")

    def below(card: ModelCard) -> bool:
        score = headline(card)["CK+ 8 classes"]
        sets = card.benchmark_sets().values()
        under = sum(r["accuracy"] < r["floor"]["accuracy"] for r in sets)
        return (floor is not None and score is not None and score < floor) or under > len(sets) / 2

    return [name for name, card in cards.items() if below(card)]


FLOOR_ROW = "always the most frequent class"


def model_table(cards: dict[str, ModelCard], predictions: dict[str, pd.DataFrame | None],
                unreadable: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per model with its headline numbers and what the 2019 study reported for it, a row
    per model whose card cannot be read (``unreadable``: name -> why, as its ``status``), then the
    floor row (``python -m emorec models``)."""
    rows = [{"model": name, "classes": len(card.classes), **headline(card, predictions.get(name)),
             "study reported (image split)": (card.study_reported or {}).get("accuracy")}
            for name, card in cards.items()]
    rows += [{"model": name, "status": why} for name, why in (unreadable or {}).items()]
    floor = majority_guess(cards.values())
    if floor:
        rows.append({"model": FLOOR_ROW, "classes": "—", **floor})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# The cross-dataset table (CLI, README, cards, Compare)

CKPLUS_COLUMN = "ckplus-subject"  # CK+ by subject, from the card's cross-validation
COLUMN_TITLES = {CKPLUS_COLUMN: "CK+ by subject", "fer2013-whole": "FER2013 PublicTest",
                 "ferplus-whole": "FER+ PublicTest",
                 "lfw-detect": "LFW new people (face found)", "lfw-whole": "LFW new people (whole image)",
                 "london-detect": "London (face found)"}  # short headings for tables


def ckplus_headline(card: ModelCard) -> dict | None:
    """CK+ by subject (8 classes, mean over the folds, as every other table gives it) from the card's
    cross-validation, as a benchmark set's scores, with its floor (from the class counts it was
    scored on)."""
    scores = card.result("subject-kfold").get("classes_8")
    if not scores:
        return None
    labels = np.repeat(list(scores["per_class"]), [int(c["support"]) for c in scores["per_class"].values()])
    return {"accuracy": scores["accuracy"]["mean"], "macro_f1": scores["macro_f1"]["mean"], "face_rate": 1.0,
            "floor": floor_scores(labels, list(scores["per_class"]))}


def benchmark_table(cards: dict[str, ModelCard], metric: str = "accuracy") -> pd.DataFrame:
    """One row per model (and the floor), one column per set: ``metric`` (accuracy, macro_f1 or
    face_rate), CK+ by subject first; NaN where a model was not measured."""
    rows, floor = {}, {}
    columns = [CKPLUS_COLUMN, *(spec.name for spec in SETS)]
    for name, card in cards.items():
        measured = card.benchmark_sets()
        ckplus = ckplus_headline(card)
        if ckplus:
            measured[CKPLUS_COLUMN] = ckplus
        rows[name] = {column: measured[column][metric] for column in columns if column in measured}
        for column in columns:
            if column in measured and metric != "face_rate":  # a constant answer finds no face: no floor there
                floor.setdefault(column, measured[column]["floor"][metric])
    if floor:
        rows[FLOOR_ROW] = floor
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table.reindex(columns=[c for c in columns if c in table.columns])


# ---------------------------------------------------------------------------------------------
# card.md, section by section


def _percent(value: float | None) -> str:
    return "—" if value is None or value != value else f"{100 * value:.1f} %"


def _readable(value) -> str:
    """A card value in a sentence: lists comma-separated, mappings as "key: value" pairs."""
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {_readable(v)}" for k, v in value.items())
    return str(value)


def summary_markdown(card: ModelCard, raw: dict) -> list[str]:
    """Title, description and the table of what the model expects and costs (keys the card holds)."""
    lines = [f"# Model card: {card.name}", "", card.description, "", "| | |", "|---|---|"]
    for key, label in (("classes", "Classes"), ("input_shape", "Input (h, w, channels)"), ("face_crop", "Face crop"),
                       ("parameters", "Parameters"), ("file_size_bytes", "File size (bytes)"),
                       ("temperature", "Temperature"), ("threshold", "\"Not sure\" below confidence"),
                       ("mirror_averaged", "Averages the face and its mirror image"),
                       ("latency_ms_per_face", "CPU latency per face (ms, as served)"),
                       ("latency_measured", "Latency measured on")):
        if key in raw:
            value = ", ".join(raw[key]) if key == "classes" else raw[key]
            lines.append(f"| {label} | {value} |")
    return lines


def training_markdown(card: ModelCard) -> list[str]:
    """What the model learned from, and how."""
    lines = []
    if card.data:
        lines += ["", "## Training data", "",
                  f"{card.data.get('images', '?')} images from {', '.join(card.data.get('sources', []))}, "
                  f"{card.data.get('subjects', 0)} subjects."]
        lines += [f"- {key.replace('_', ' ')}: {value}" for key, value in (card.data.get("extra") or {}).items()]
    if card.training:
        lines += ["", "## Training", ""] + [f"- {key.replace('_', ' ')}: {_readable(value)}"
                                            for key, value in card.training.items()]
    return lines


def calibration_markdown(calibration: dict) -> list[str]:
    """The temperature and the calibration error before and after it."""
    if not calibration:
        return []
    line = (f"Temperature {calibration['temperature']:.3f}, fitted on {calibration.get('fitted_on', 'held-out data')}; "
            f"expected calibration error {calibration['ece_before']:.3f} before, {calibration['ece_after']:.3f} after"
            + (f" ({calibration['ece_after_measured']})." if calibration.get("ece_after_measured") else "."))
    wild = calibration.get("fer2013_heldout")
    if wild:
        line += (f" On FER2013's held-out faces (in the wild): {wild['ece_before']:.3f} before, "
                 f"{wild['ece_after']:.3f} after.")
    return ["", "## Calibration", "", line]


def mixing_markdown(mixing: dict) -> list[str]:
    """emorec's weight-mixing scan: the share chosen, every share's scores, each domain left out."""
    lines = ["", f"Weight mixing: the shipped model is {mixing['share']:g} x fine-tuned + "
                 f"{1 - mixing['share']:g} x pretrained weights, the {mixing['criterion']} over all folds. "
                 "The accuracy above scores each fold at the share the other folds chose "
                 f"({', '.join(f'{s:g}' for s in mixing.get('fold_shares', []))}). "
                 "The scan, CK+ pooled over the folds, the other domains averaged over the folds' networks:", ""]
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
    return lines


def evaluation_markdown(protocol: str, result: dict) -> list[str]:
    """One protocol's results: accuracy and macro-F1 (8 classes, 7 emotions), calibration, mixing."""
    lines = ["", f"## Evaluation: {protocol}", "", result.get("description", "")]
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
    if result.get("weight_mixing"):
        lines += mixing_markdown(result["weight_mixing"])
    if result.get("command"):
        lines += ["", f"Command: `{result['command']}`"]
    return lines


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


def targets_markdown(raw: dict, tried: tuple[str, ...]) -> list[str]:
    """emorec's targets (``config.EMOREC_TARGETS``) against the card's own numbers: met, missed or
    not measured; what was tried for a missed one is in ``tried`` (and docs/models.md)."""
    def measured(path: tuple[str, ...]):
        value = raw
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
    lines += ["", *(f"- {note}" for note in tried)] if tried else []
    return lines


def card_markdown(raw: dict) -> str:
    """The card (as ``card.json`` holds it) as a page people read."""
    card = ModelCard.from_dict(raw)
    lines = summary_markdown(card, raw) + training_markdown(card) + calibration_markdown(card.calibration)
    for protocol, result in card.evaluation.items():
        lines += evaluation_markdown(protocol, result)
    if card.cross_dataset:
        lines += cross_dataset_markdown(card.cross_dataset)
    if card.variant == "emorec":
        lines += targets_markdown(raw, card.tried)
    if card.commands:
        lines += ["", "## Reproduce", ""] + [f"- {what}: `{command}`" for what, command in card.commands.items()]
    return "\n".join(lines) + "\n"
