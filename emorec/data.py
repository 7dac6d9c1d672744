"""Expression datasets as one manifest, subject-independent splits and dataset statistics.

Three layouts people actually have are understood:

1. class folders ``<root>/<class>/<file>`` (optionally one level of split folders above them,
   such as FER2013's ``train/`` and ``validation/``), or one class folder alone (``.../fear/``);
   CK+ names ``S005_001_00000011.png`` give subject, sequence and frame;
2. the official CK+ distribution: ``cohn-kanade-images/S005/001/*.png`` with
   ``Emotion/S005/001/S005_001_00000011_emotion.txt``;
3. the FER2013 CSV (``emotion,pixels[,Usage]``).

Every reader returns the same pandas DataFrame (see ``MANIFEST_COLUMNS``).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.model_selection import StratifiedGroupKFold

from emorec.config import FER2013_CODES, IMAGE_SUFFIXES, LABEL_ALIASES, LABELS, MAX_ZIP_BYTES, SEED
from emorec.files import content_digest
from emorec.images import ImageError, load_image

MANIFEST_COLUMNS = ["path", "label", "subject", "sequence", "frame", "source", "split"]
LAYOUTS = (
    "class folders: `<root>/<class>/<image>` (optionally `<root>/<split>/<class>/<image>`), or one class folder "
    "`.../<class>/<image>`",
    "official CK+: `<root>/cohn-kanade-images/S005/001/*.png` with `<root>/Emotion/S005/001/*_emotion.txt`",
    "FER2013 CSV: a .csv file with the columns `emotion,pixels[,Usage]`",
)  # paths in backticks: the Dataset page shows them as Markdown, where * would mean italics
SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "test", "publictest", "privatetest"}
CKPLUS_NAME = re.compile(r"^(S\d+)_(\d+)_(\d+)", re.IGNORECASE)


class DatasetError(ValueError):
    """A dataset folder or file that cannot be read; the message names the path and says why."""


def canonical_label(name: str) -> str:
    """Map a class name such as ``happy`` or ``Happiness`` to its canonical label."""
    label = LABEL_ALIASES.get(name.strip().lower())
    if label is None:
        raise DatasetError(f"Unknown label {name!r}: expected one of {', '.join(LABELS)} "
                           "(or an alias such as happy, angry, sad).")
    return label


def _manifest(rows: list[dict], where: Path) -> pd.DataFrame:
    if not rows:
        raise DatasetError(f"No labelled images found in {where}.")
    frame = pd.DataFrame(rows)
    for column in MANIFEST_COLUMNS:
        if column not in frame:
            frame[column] = None
    ordered = MANIFEST_COLUMNS + [c for c in frame.columns if c not in MANIFEST_COLUMNS]
    return frame[ordered].sort_values(["label", "path"], kind="stable").reset_index(drop=True)


def parse_ckplus_name(name: str) -> tuple[str | None, int | None, int | None]:
    """Subject, sequence and frame from a CK+ file name such as ``S005_001_00000011.png``."""
    match = CKPLUS_NAME.match(name)
    if not match:
        return None, None, None
    return match.group(1).upper(), int(match.group(2)), int(match.group(3))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_folder_rows(root: Path, source: str, split: str | None) -> list[dict]:
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    unknown = [d.name for d in class_dirs if d.name.strip().lower() not in LABEL_ALIASES]
    if unknown:
        raise DatasetError(
            f"{root}: folder names {', '.join(map(repr, unknown))} are not expression labels "
            f"(expected {', '.join(LABELS)} or aliases such as happy, angry, sad)."
        )
    return [row for class_dir in class_dirs for row in _images_of_class(class_dir, source, split)]


def _images_of_class(class_dir: Path, source: str, split: str | None) -> list[dict]:
    """The rows of one class folder's images, labelled by the folder's name."""
    label = canonical_label(class_dir.name)
    return [dict(path=str(path), label=label,
                 **dict(zip(("subject", "sequence", "frame"), parse_ckplus_name(path.name))),
                 source=source, split=split) for path in _images_in(class_dir)]


def read_class_folders(root: str | Path) -> pd.DataFrame:
    """Layout 1: ``<root>/<class>/<image>``, or ``<root>/<split>/<class>/<image>``."""
    root = Path(root)
    subdirs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    source = root.name
    if subdirs and all(d.name.lower() in SPLIT_NAMES for d in subdirs):
        rows = [row for d in sorted(subdirs) for row in _class_folder_rows(d, source, d.name)]
    else:
        rows = _class_folder_rows(root, source, None)
    return _manifest(rows, root)


def read_class_folder(folder: str | Path) -> pd.DataFrame:
    """One class folder alone, ``.../fear/<image>``: its own name is the label of its images (as
    Classify's batch reads a folder called "happy")."""
    folder = Path(folder)
    return _manifest(_images_of_class(folder, folder.parent.name, None), folder)


def read_ckplus_official(root: str | Path, last_frames: int = 1, neutral: bool = True) -> pd.DataFrame:
    """Layout 2: the CK+ distribution.

    For every sequence with an Emotion file, its last ``last_frames`` frames (the peak is the last
    frame); with ``neutral``, the first frame of every sequence, labelled or not, as neutral.
    """
    root = Path(root)
    images_root, emotion_root = root / "cohn-kanade-images", root / "Emotion"
    if not images_root.is_dir() or not emotion_root.is_dir():
        raise DatasetError(f"{root} is not the CK+ layout: it needs cohn-kanade-images/ and Emotion/.")
    rows = []
    for sequence_dir in sorted(p for p in images_root.glob("*/*") if p.is_dir() and p.name.isdigit()):
        frames = _images_in(sequence_dir)
        if not frames:
            continue
        subject, sequence = sequence_dir.parent.name.upper(), int(sequence_dir.name)
        base = dict(subject=subject, sequence=sequence, source="ckplus", split=None)
        if neutral:
            rows.append(dict(base, path=str(frames[0]), label="neutral", frame=parse_ckplus_name(frames[0].name)[2]))
        emotion_files = list((emotion_root / sequence_dir.parent.name / sequence_dir.name).glob("*_emotion.txt"))
        if not emotion_files:
            continue
        label = _read_emotion_code(emotion_files[0])
        for path in frames[-last_frames:]:
            rows.append(dict(base, path=str(path), label=label, frame=parse_ckplus_name(path.name)[2]))
    return _manifest(rows, root)


def _read_emotion_code(path: Path) -> str:
    text = path.read_text(errors="replace").strip()
    try:
        code = int(float(text.split()[0]))
        if not 0 <= code < len(LABELS):
            raise ValueError(code)
        return LABELS[code]
    except (ValueError, IndexError, OverflowError):
        raise DatasetError(f"{path}: expected an emotion code 0..7, found {text[:40]!r}.") from None


def read_fer2013_csv(path: str | Path) -> pd.DataFrame:
    """Layout 3: the FER2013 CSV. Images stay in the ``pixels`` column (48x48 gray)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"pixels": str})
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DatasetError(f"{path} is not a readable FER2013 CSV: {error}") from None
    missing = {"emotion", "pixels"} - set(table.columns)
    if missing:
        raise DatasetError(f"{path} is not a FER2013 CSV: missing column(s) {', '.join(sorted(missing))}.")
    codes = pd.to_numeric(table["emotion"], errors="coerce")
    bad = table.index[~codes.isin(range(len(FER2013_CODES)))]
    if len(bad):
        raise DatasetError(f"{path}: emotion must be a code 0..6; row {bad[0] + 2} has {table['emotion'][bad[0]]!r}.")
    rows = [
        dict(path=f"{path}#{i}", label=FER2013_CODES[int(code)], source="fer2013",
             split=table["Usage"][i] if "Usage" in table else None, pixels=table["pixels"][i])
        for i, code in enumerate(codes)
    ]
    return _manifest(rows, path)


def fer2013_pixels(pixels: str) -> np.ndarray:
    """One FER2013 ``pixels`` string as a 48x48 uint8 image."""
    try:
        values = np.array([int(v) for v in pixels.split()])
    except ValueError:
        raise DatasetError("A FER2013 row holds pixels that are not numbers.") from None
    if values.size and (values.min() < 0 or values.max() > 255):
        raise DatasetError("A FER2013 row holds pixel values outside 0..255.")
    values = values.astype(np.uint8)
    if values.size != 48 * 48:
        raise DatasetError(f"A FER2013 row has {values.size} pixels, expected 2304 (48x48).")
    return values.reshape(48, 48)


def load_dataset(where: str | Path) -> pd.DataFrame:
    """Read any understood layout into a manifest, or raise ``DatasetError`` naming the path."""
    try:
        return _load_dataset(Path(where))
    except OSError as error:  # unreadable folders, special files, over-long names
        raise DatasetError(f"{str(where)[:200]} cannot be read: {error.strerror or error}.") from None


def _load_dataset(where: Path) -> pd.DataFrame:
    if not where.exists():
        raise DatasetError(f"{where} does not exist.")
    if not where.is_dir():
        if where.is_file() and where.suffix.lower() == ".csv":
            return read_fer2013_csv(where)
        raise DatasetError(f"{where} is a file; expected a dataset folder or a FER2013 .csv.")
    if (where / "cohn-kanade-images").is_dir():
        return read_ckplus_official(where)
    csvs = sorted(where.glob("*.csv"))
    if not any(d.is_dir() for d in where.iterdir()):
        if len(csvs) == 1:
            return read_fer2013_csv(csvs[0])
        if where.name.strip().lower() in LABEL_ALIASES and _images_in(where):
            return read_class_folder(where)
        raise DatasetError(f"{where} holds no dataset. Understood layouts:\n- " + "\n- ".join(LAYOUTS))
    try:
        return read_class_folders(where)
    except DatasetError as error:
        raise DatasetError(f"{error}\nUnderstood layouts:\n- " + "\n- ".join(LAYOUTS)) from None


# ---------------------------------------------------------------------------------------------
# Subject-independent splits


def label_indices(labels: pd.Series | list[str]) -> np.ndarray:
    """Canonical labels as their positions in ``LABELS`` (the models' output order)."""
    return np.array([LABELS.index(label) for label in labels], np.int32)


def groups_of(manifest: pd.DataFrame) -> pd.Series:
    """The group of each row: its subject, or its own path when the subject is unknown (FER2013)."""
    return manifest["subject"].where(manifest["subject"].notna(), manifest["path"])


def subject_kfold(manifest: pd.DataFrame, n_splits: int = 10,
                  seed: int = SEED) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Train/test row positions of k folds grouped by subject and stratified by label."""
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    yield from folds.split(manifest, manifest["label"], groups_of(manifest))


def shared_subjects(train: pd.DataFrame, test: pd.DataFrame) -> set[str]:
    """Subjects present on both sides of a split (empty for an honest split)."""
    return set(train["subject"].dropna()) & set(test["subject"].dropna())


def assert_subject_independent(train: pd.DataFrame, test: pd.DataFrame) -> None:
    """Raise if any subject is on both sides: the leak that inflated the 2019 study's numbers."""
    leaked = shared_subjects(train, test)
    if leaked:
        raise AssertionError(f"Subjects on both sides of the split: {', '.join(sorted(leaked))}")


# ---------------------------------------------------------------------------------------------
# Statistics


def class_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images, sequences and subjects per class (and images per split, when the dataset has
    splits), in canonical label order, with a total row."""
    present = [label for label in LABELS if label in set(manifest["label"])]
    sequences = manifest.dropna(subset=["subject", "sequence"]).drop_duplicates(["label", "subject", "sequence"])
    table = pd.DataFrame(
        {
            "images": manifest.groupby("label").size(),
            "sequences": sequences.groupby("label").size(),
            "subjects": manifest.groupby("label")["subject"].nunique(),
        }
    )
    if manifest["split"].notna().any():
        table = table.join(pd.crosstab(manifest["label"], manifest["split"]).add_prefix("images in "))
    table = table.reindex(present).fillna(0).astype(int)
    table.loc["total"] = table.sum()
    table.loc["total", "sequences"] = len(sequences.drop_duplicates(["subject", "sequence"]))
    table.loc["total", "subjects"] = manifest["subject"].nunique()
    table.index.name = "label"
    return table


def images_per_subject(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images per subject and class (subjects as rows), for datasets that name subjects."""
    known = manifest.dropna(subset=["subject"])
    return pd.crosstab(known["subject"], known["label"]).reindex(columns=[label for label in LABELS
                                                                          if label in set(known["label"])])


def image_sizes(manifest: pd.DataFrame) -> pd.DataFrame:
    """How many images have each (width, height, mode), read from the file headers only."""
    sizes = []
    for path, pixels in zip(manifest["path"], manifest.get("pixels", pd.Series([None] * len(manifest)))):
        if isinstance(pixels, str):
            sizes.append((48, 48, "L"))
            continue
        try:
            with Image.open(path) as image:
                sizes.append((*image.size, image.mode))
        except (OSError, ValueError, Image.DecompressionBombError):
            sizes.append((None, None, "unreadable"))
    table = pd.DataFrame(sizes, columns=["width", "height", "mode"])
    return table.value_counts(dropna=False).rename("images").reset_index()


def dataset_summary(manifest: pd.DataFrame) -> dict:
    """Plain-JSON statistics of a training set, saved beside a model so the app can show them."""
    counts = class_counts(manifest)
    return {
        "sources": sorted(str(s) for s in manifest["source"].dropna().unique()),
        "images": int(len(manifest)),
        "subjects": int(manifest["subject"].nunique()),
        "per_class": {label: {k: int(v) for k, v in counts.loc[label].items()}
                      for label in counts.index if label != "total"},
    }


def read_image(row: pd.Series) -> np.ndarray:
    """The pixels of one manifest row as a uint8 array (gray or RGB), from its file or CSV pixels;
    an unreadable file is a ``DatasetError`` with the loader's message."""
    name = Path(row["path"]).name
    try:
        if isinstance(row.get("pixels"), str):
            return fer2013_pixels(row["pixels"])
        return load_image(row["path"], name)
    except (DatasetError, ImageError) as error:
        raise DatasetError(f"{name}: {error}" if isinstance(error, DatasetError) else str(error)) from None


def image_digests(manifest: pd.DataFrame) -> list[str]:
    """``files.content_digest`` of every image of a manifest (a FER2013 CSV row: of its pixels)."""
    pixels = manifest["pixels"] if "pixels" in manifest else [None] * len(manifest)
    return [content_digest(p.encode() if isinstance(p, str) else Path(path).read_bytes())
            for path, p in zip(manifest["path"], pixels)]


def sample_rows(manifest: pd.DataFrame, per_class: int, seed: int = SEED) -> pd.DataFrame:
    """Up to ``per_class`` random rows of each class, in canonical label order (for sample grids)."""
    picked = manifest.sample(frac=1.0, random_state=seed).groupby("label").head(per_class)
    order = {label: i for i, label in enumerate(LABELS)}
    return picked.sort_values("label", key=lambda labels: labels.map(order), kind="stable")


def label_from_name(name: str) -> str | None:
    """The expression a file name announces, as people name them: ``happy_anna.jpg``,
    ``afraid mom.png``, ``Surprised-GF.jpeg`` (the first word that is a label or an alias); else
    the class folder it lies in (``happy/anna.jpg``, nearest folder first)."""
    path = Path(name)
    for part in (path.stem, *(parent.name for parent in path.parents)):
        for word in re.split(r"[^a-zA-Z]+", part):
            label = LABEL_ALIASES.get(word.lower())
            if label:
                return label
    return None


def expected_labels_csv(text: str) -> dict[str, str]:
    """``file,label`` rows (a header is optional) as {file name: canonical label}."""
    labels = {}
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as error:
        raise DatasetError(f"The labels CSV cannot be read: {error}.") from None
    for row in rows:
        if len(row) < 2 or row[0].strip().lower() in ("file", "filename", "path", "name"):
            continue
        labels[Path(row[0].strip()).name] = canonical_label(row[1])
    if not labels:
        raise DatasetError("The labels CSV has no rows of the form file,label.")
    return labels


def extract_zip(data: bytes, destination: Path, max_bytes: int = MAX_ZIP_BYTES) -> Path:
    """Unpack an uploaded zip of a dataset safely (no paths outside ``destination``, bounded size)
    and return the folder that holds the dataset (the single top folder, if there is one)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise DatasetError("The upload is not a zip archive.") from None
    members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    if sum(m.file_size for m in members) > max_bytes:
        raise DatasetError(f"The zip unpacks to more than {max_bytes // 1_000_000} MB.")
    root = destination.resolve()
    for member in members:
        target = (root / member.filename).resolve()
        if root not in target.parents:
            raise DatasetError(f"The zip holds an unsafe path: {member.filename}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
        except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError, OSError) as error:
            raise DatasetError(f"The zip cannot be unpacked at {member.filename} ({error}).") from None
    entries = [p for p in root.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
    return (entries[0] if len(entries) == 1 and entries[0].is_dir() and entries[0].name.lower() not in LABEL_ALIASES
            else root)


# ---------------------------------------------------------------------------------------------
# Faces from the wild: FER+ votes, and the people of LFW expressions and the London set

FERPLUS_EXTRA = ("unknown", "NF")  # FER+ votes that are not an expression: unsure, not a face
LFW_VALIDATION_PEOPLE = Path(__file__).parent / "splits" / "lfw-validation-people.txt"
FERPLUS_MIN_MATCHED = 0.5  # FER+ votes must label at least this share of the FER2013 images given


def read_ferplus(labels_csv: str | Path) -> pd.DataFrame:
    """FER+ votes (``ferplus/labels.csv``): one row per FER2013 JPEG with its ``path`` (relative to
    the data folder above ``ferplus/``, e.g. ``fer2013/train/angry/x.jpg``), ``split`` and ten
    annotators' votes per class (columns in ``LABELS`` order, then unknown, NF)."""
    labels_csv = Path(labels_csv)
    if not labels_csv.is_file():
        raise DatasetError(f"{labels_csv} does not exist: the FER+ votes are ferplus/labels.csv of the data folder.")
    try:
        table = pd.read_csv(labels_csv)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DatasetError(f"{labels_csv} is not a readable FER+ votes file: {error}") from None
    missing = {"path", "split", *LABELS, *FERPLUS_EXTRA} - set(table.columns)
    if missing:
        raise DatasetError(f"{labels_csv} is not a FER+ votes file: missing column(s) {', '.join(sorted(missing))}.")
    return table[["path", "split", *LABELS, *FERPLUS_EXTRA]]


def ferplus_key(path: str | Path) -> str:
    """What joins a FER2013 image to its FER+ votes: its split, class folder and file name
    (``train/angry/Training_1.jpg``), wherever the FER2013 folder lies."""
    return "/".join(Path(path).parts[-3:])


def ferplus_votes_for(manifest: pd.DataFrame, labels_csv: str | Path) -> pd.DataFrame:
    """The FER+ votes of each FER2013 image of ``manifest``, row for row (NaN where FER+ has none:
    faces it dropped). ``DatasetError`` when the votes label too few of the images: the votes and
    the images given are not of the same FER2013."""
    votes = read_ferplus(labels_csv)
    matched = votes.set_index(votes["path"].map(ferplus_key)).reindex(manifest["path"].map(ferplus_key))
    share = matched["split"].notna().mean() if len(matched) else 0.0
    if share < FERPLUS_MIN_MATCHED:
        raise DatasetError(f"{labels_csv} labels only {share:.0%} of the {len(manifest):,} FER2013 images given: "
                           "the votes are for another FER2013 folder "
                           "(expected paths like fer2013/train/<class>/<file>).")
    return matched.reset_index(drop=True)


def ferplus_targets(votes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Soft targets (each face's votes over the eight classes, summing to 1) and a mask of the faces
    an expression won (faces whose most votes went to unknown or not-a-face, or without votes, are
    left out)."""
    expression = votes[list(LABELS)].fillna(0).to_numpy(float)
    keep = expression.max(axis=1) > votes[list(FERPLUS_EXTRA)].fillna(0).to_numpy(float).max(axis=1)
    return expression / np.maximum(expression.sum(axis=1, keepdims=True), 1), keep


def ferplus_majority(votes: pd.DataFrame) -> pd.Series:
    """Each face's label by FER+'s votes as FER+ is scored: the class with the most votes among the
    eight (ties: the first in ``LABELS``); None where unknown or not-a-face won."""
    targets, keep = ferplus_targets(votes)
    return pd.Series(np.where(keep, np.array(LABELS)[targets.argmax(axis=1)], None), index=votes.index)


def person_of(path: str | Path) -> str:
    """The person in an LFW-style file name (``Aaron_Peirsol_0002.jpg`` -> ``Aaron_Peirsol``); the
    unnamed ``facial-expressions_2868588k`` photos count as one person; a name without a trailing
    number (the London set's ``012.jpg``) is its own person."""
    stem = Path(path).stem
    if stem.startswith("facial-expressions_"):
        return "facial-expressions"
    return re.sub(r"_\d+$", "", stem) or stem


def with_people(manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest with ``subject`` filled from the file names (``person_of``) where unknown."""
    return manifest.assign(subject=manifest["subject"].where(manifest["subject"].notna(),
                                                             manifest["path"].map(person_of)))


def lfw_validation_people(path: Path = LFW_VALIDATION_PEOPLE) -> frozenset[str]:
    """The LFW people kept for validation, as drawn once and kept (``emorec/splits``)."""
    lines = path.read_text().splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def lfw_split(manifest: pd.DataFrame, validation_people: frozenset[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation positions of LFW expressions by person: ``validation_people`` (default: the
    kept list, ``lfw_validation_people``) are held out for validation only, everyone else may train.
    A fixed list, so adding or removing photos never moves a person across."""
    people = with_people(manifest)["subject"].to_numpy()
    held_out = np.isin(people, list(lfw_validation_people() if validation_people is None else validation_people))
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)
