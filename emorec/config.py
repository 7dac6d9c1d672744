"""Configuration in one place: labels, folders and defaults shared by the package, the CLI and the app."""

from __future__ import annotations

import os
from pathlib import Path

# The eight classes of the 2019 study, in the order of CK+'s Emotion codes 0..7.
LABELS: tuple[str, ...] = (
    "neutral",
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
)
EMOTIONS: tuple[str, ...] = LABELS[1:]  # the seven emotions, without neutral

# Names people and datasets use for the canonical labels (matched case-insensitively).
LABEL_ALIASES: dict[str, str] = {
    "neutral": "neutral", "calm": "neutral", "expressionless": "neutral",
    "anger": "anger", "angry": "anger", "mad": "anger", "furious": "anger",
    "contempt": "contempt", "contemptuous": "contempt", "scornful": "contempt", "sneering": "contempt",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "afraid": "fear", "scared": "fear", "fearful": "fear", "frightened": "fear", "terrified": "fear",
    "happiness": "happiness", "happy": "happiness", "joy": "happiness", "smiling": "happiness", "smile": "happiness",
    "laughing": "happiness",
    "sadness": "sadness", "sad": "sadness", "unhappy": "sadness", "crying": "sadness",
    "surprise": "surprise", "surprised": "surprise", "shocked": "surprise", "astonished": "surprise",
    "amazed": "surprise",
}

# FER2013's CSV codes 0..6.
FER2013_CODES: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
)
# Limits on what users hand in: an image beyond MAX_IMAGE_PIXELS is refused before it is decoded
# (Pillow's own decompression-bomb guard stays on as a second line); a zip of a dataset may unpack
# to at most MAX_ZIP_BYTES; a batch folder is read up to MAX_BATCH_PHOTOS images (typing ~ must not
# read a whole home folder).
MAX_IMAGE_PIXELS = 64_000_000
MAX_ZIP_BYTES = 2_000_000_000
MAX_BATCH_PHOTOS = 1000

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VARIANT_NAMES = ("baseline", "tuned_full", "tuned_mtcnn", "emorec")  # emorec.models.VARIANTS, without loading Keras
DEFAULT_MODEL = "emorec"  # the best shipped model: the app's and the CLI's default
EMOREC_INPUT_SHAPE = (48, 48, 1)  # emorec's input: FER2013's 48x48 gray faces
# emorec's crop: the MTCNN box itself. FER2013, CK+48 and LFW faces, which emorec learns from, are framed
# that tightly (MTCNN's box spans 103-106 % of their height; docs/models.md), so served faces look the same.
EMOREC_MARGIN = 0.0
MODELS_DIR = Path(os.environ.get("EMOREC_MODELS", PROJECT_ROOT / "models"))
# models/tuning/<name>.csv: emorec's own Talos scan, what the Tuning page opens first
SHIPPED_SCAN = "emorec-mtcnn-scan"
SEARCH_SPACE = PROJECT_ROOT / "emorec" / "spaces" / "study.toml"  # the study's Talos search space
# Face crops and other derived data live outside the repository.
CACHE_DIR = Path(os.environ.get("EMOREC_CACHE", Path.home() / ".cache" / "emorec"))
BENCH_DATA = PROJECT_ROOT.parent / "shared" / "data" / "ckplus"  # the photos `bench` times, unless given --data


def default_data_dir() -> Path:
    """The dataset folder the app and CLI start from: $EMOREC_DATA, else ./data."""
    return Path(os.environ.get("EMOREC_DATA", "data"))


SEED = 1337
# How a cross-validation splits CK+ (``python -m emorec evaluate --protocol``), and its folds by default.
PROTOCOLS = {
    "subject-kfold": "10-fold cross-validation grouped by subject (nobody in both training and test data)",
    "image-kfold": "cross-validation by image, as the 2019 study split: 4 folds, each a 75/25 split of the images "
                   "(subjects leak across folds)",
}
FOLDS = {"subject-kfold": 10, "image-kfold": 4}  # image-kfold: the study's 75/25
NO_FACE = "no face"  # the answer for a photo without a detected face: wrong, in every score
CHANCE = 1 / len(LABELS)  # accuracy of guessing among the eight classes
NOT_SURE_BELOW = 0.5  # a model says "not sure" when its top probability is below this (unless its card sets one)
LIVE_CLASSIFY_EVERY = 0.2  # seconds between classifications on the Live page (faces are tracked in between)
PRETRAIN_EPOCHS = 40  # emorec's stage 1 on FER2013 train
# A further cycle of stage 1 (``pretrain --restart``): AdamW's peak rate (the first cycle's: 2e-3)
# and random erasing's factor (a face's chance is drawn from [0, factor]: a quarter of faces on average).
PRETRAIN_RESTART_LEARNING_RATE = 1e-3
PRETRAIN_ERASING = 0.5
# emorec's stage 1b (emorec.wild): from stage 1's network, faces from the wild with cleaner labels (FER+ votes
# as soft targets) and other people (LFW expressions' training people), in domain-balanced batches.
WILD_EPOCHS = 8
WILD_STEPS = 200  # batches per epoch (25,600 faces at 128)
WILD_LEARNING_RATE = 5e-4  # AdamW's peak, cosine decay to 0
WILD_LFW_SHARE = 0.2  # share of each batch drawn from LFW's training people (the rest: FER+)

# emorec's stage 2 (emorec.finetune): fine-tuning epochs, and how many FER2013 train faces are mixed
# into the CK+ faces so the network keeps faces from the wild (a higher CK+ share was tried: README).
FINETUNE_EPOCHS = 10
FINETUNE_LEARNING_RATE = 5e-4  # AdamW, cosine decay to 0
FINETUNE_BATCH = 64
FER_SLICE = 2000
# Epochs of a linear probe before fine-tuning (LP-FT): 0 fine-tunes the pretrained head directly.
PROBE_EPOCHS = 0
PROBE_LEARNING_RATE = 1e-3  # the head alone can take larger steps


# What emorec's model is asked to reach, checked in its card against the numbers measured (title,
# where the number lies in the card, the bound, whether it is a floor or a ceiling). "New people" targets
# are the model shipped before them plus 10 points, on the same sets by the same command (docs/models.md).
EMOREC_TARGETS: tuple[tuple[str, tuple[str, ...], float, str], ...] = (
    ("CK+ by subject, 8 classes", ("evaluation", "subject-kfold", "classes_8", "accuracy", "mean"), 0.92, ">="),
    ("CK+ by subject, 7 emotions", ("evaluation", "subject-kfold", "emotions_7", "accuracy", "mean"), 0.93, ">="),
    ("FER+ PublicTest, majority vote", ("cross_dataset", "ferplus-whole", "accuracy"), 0.84, ">="),
    ("FER2013 PublicTest, original labels", ("cross_dataset", "fer2013-whole", "accuracy"), 0.65, ">="),
    ("LFW new people (face found), accuracy", ("cross_dataset", "lfw-detect", "accuracy"), 0.544, ">="),
    ("LFW new people (face found), macro-F1", ("cross_dataset", "lfw-detect", "macro_f1"), 0.399, ">="),
    ("London (face found), accuracy", ("cross_dataset", "london-detect", "accuracy"), 0.801, ">="),
    ("London (face found), macro-F1", ("cross_dataset", "london-detect", "macro_f1"), 0.772, ">="),
    ("Latency per face (ms, 2 cores)", ("latency_ms_per_face",), 10.0, "<="),
    ("File size (MB)", ("file_size_bytes",), 30e6, "<="),
)


class FaceDefaults:
    """Face detection and cropping settings shared by training, evaluation, prediction and the app."""

    min_face = 0.2  # smallest face to find: 20 % of the image's shorter side
    min_small_face = 0.05  # the same with "find small faces" (group photos; slower)
    min_score = 0.85  # MTCNN confidence below which a detection is dropped
    margin = 0.15  # context around the box, as a fraction of its height
