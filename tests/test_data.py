"""The dataset layer: every layout, subject-independent splits, statistics and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emorec import data
from emorec.config import LABELS
from tests.conftest import shared_data, write_image


def test_aliases_map_to_canonical_labels():
    assert [data.canonical_label(n) for n in ["happy", "Happiness", "ANGRY", "sad", " surprised ", "afraid"]] == [
        "happiness", "happiness", "anger", "sadness", "surprise", "fear"]
    with pytest.raises(data.DatasetError, match="Unknown label 'bored'"):
        data.canonical_label("bored")


def test_ckplus_names_are_parsed():
    assert data.parse_ckplus_name("S005_001_00000011.png") == ("S005", 1, 11)
    assert data.parse_ckplus_name("Training_1234.jpg") == (None, None, None)


def test_class_folders(class_folder_dataset: Path):
    manifest = data.load_dataset(class_folder_dataset)
    assert list(manifest.columns[:7]) == data.MANIFEST_COLUMNS
    assert len(manifest) == 18
    assert set(manifest["label"]) == {"happiness", "anger", "neutral"}
    first = manifest[manifest["label"] == "anger"].iloc[0]
    assert (first["subject"], first["sequence"], first["frame"]) == ("S001", 2, 12)
    assert set(manifest["source"]) == {"faces"}


def test_class_folders_with_split_folders(tmp_path: Path):
    for split in ("train", "validation"):
        for label in ("happy", "sad"):
            write_image(tmp_path / "fer" / split / label / f"{split}_{label}.jpg", size=(48, 48))
    manifest = data.load_dataset(tmp_path / "fer")
    assert sorted(manifest["split"].unique()) == ["train", "validation"]
    counts = data.class_counts(manifest)
    assert counts.loc["total", "images in train"] == 2
    assert counts.loc["total", "subjects"] == 0


def write_ckplus_tree(root: Path) -> Path:
    """The official CK+ layout: two subjects, three sequences, one without an emotion label."""
    sequences = {("S005", "001"): 3, ("S010", "002"): 6, ("S010", "003"): None}  # emotion code or unlabelled
    for (subject, sequence), code in sequences.items():
        for frame in range(1, 6):
            write_image(root / "cohn-kanade-images" / subject / sequence / f"{subject}_{sequence}_{frame:08d}.png")
        if code is not None:
            emotion = root / "Emotion" / subject / sequence / f"{subject}_{sequence}_00000005_emotion.txt"
            emotion.parent.mkdir(parents=True, exist_ok=True)
            emotion.write_text(f"   {code:.7e}\n")
    return root


def test_official_ckplus_layout(tmp_path: Path):
    root = write_ckplus_tree(tmp_path / "CK+")
    manifest = data.load_dataset(root)
    assert sorted(manifest["label"]) == ["disgust", "neutral", "neutral", "neutral", "sadness"]
    peak = manifest[manifest["label"] == "disgust"].iloc[0]
    assert (peak["subject"], peak["sequence"], peak["frame"]) == ("S005", 1, 5)
    assert set(manifest[manifest["label"] == "neutral"]["frame"]) == {1}

    last3 = data.read_ckplus_official(root, last_frames=3, neutral=False)
    assert len(last3) == 6 and set(last3["frame"]) == {3, 4, 5}


def test_fer2013_csv(tmp_path: Path):
    pixels = " ".join(["128"] * 48 * 48)
    csv = tmp_path / "fer2013.csv"
    pd.DataFrame({"emotion": [3, 0, 6], "pixels": [pixels] * 3,
                  "Usage": ["Training", "PublicTest", "Training"]}).to_csv(csv, index=False)
    manifest = data.load_dataset(csv)
    assert sorted(manifest["label"]) == ["anger", "happiness", "neutral"]
    assert set(manifest["split"]) == {"Training", "PublicTest"}
    image = data.read_image(manifest.iloc[0])
    assert image.shape == (48, 48) and image.dtype.name == "uint8"
    assert len(data.load_dataset(tmp_path)) == 3  # a folder holding just the CSV works too


def test_subject_kfold_is_grouped_stratified_and_seeded(class_folder_dataset: Path):
    manifest = data.load_dataset(class_folder_dataset)
    folds = list(data.subject_kfold(manifest, n_splits=3, seed=1))
    assert len(folds) == 3
    tested = []
    for train, test in folds:
        data.assert_subject_independent(manifest.iloc[train], manifest.iloc[test])
        assert set(manifest.iloc[test]["label"]) == {"happiness", "anger", "neutral"}  # stratified
        tested += list(test)
    assert sorted(tested) == list(range(len(manifest)))
    again = list(data.subject_kfold(manifest, n_splits=3, seed=1))
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))


def test_leak_check_names_the_shared_subjects(class_folder_dataset: Path):
    manifest = data.load_dataset(class_folder_dataset)
    with pytest.raises(AssertionError, match="S001"):
        data.assert_subject_independent(manifest.iloc[:4], manifest.iloc[2:])


def test_statistics(class_folder_dataset: Path):
    manifest = data.load_dataset(class_folder_dataset)
    counts = data.class_counts(manifest)
    assert list(counts.index) == ["neutral", "anger", "happiness", "total"]
    assert counts.loc["total"].to_dict() == {"images": 18, "sequences": 18, "subjects": 6}
    assert data.images_per_subject(manifest).shape == (6, 3)
    sizes = data.image_sizes(manifest)
    assert sizes.to_dict("records") == [{"width": 64, "height": 48, "mode": "L", "images": 18}]
    summary = data.dataset_summary(manifest)
    assert summary["per_class"]["anger"] == {"images": 6, "sequences": 6, "subjects": 6}
    assert len(data.sample_rows(manifest, per_class=2)) == 6


@pytest.mark.data
def test_ckplus_counts_match_the_study():
    manifest = data.load_dataset(shared_data("ckplus"))
    counts = data.class_counts(manifest)["images"].to_dict()
    assert counts == {"neutral": 593, "anger": 45, "contempt": 18, "disgust": 59, "fear": 25,
                      "happiness": 69, "sadness": 28, "surprise": 83, "total": 920}
    assert manifest["subject"].nunique() == 123
    for train, test in data.subject_kfold(manifest):
        data.assert_subject_independent(manifest.iloc[train], manifest.iloc[test])


def file_with(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "holds no dataset"),
        (lambda p: write_image(p / "one.png"), "is a file"),
        (lambda p: file_with(p / "x.csv", b"\xff\xfe\x00garbage\x00\xff" * 50),
         "not a readable FER2013 CSV|not a FER2013 CSV"),
        (lambda p: file_with(p / "y.csv", ""), "not a readable FER2013 CSV"),
        (lambda p: file_with(p / "z.csv", "a,b\n1,2\n"), "missing column"),
        (lambda p: file_with(p / "w.csv", "emotion,pixels\n9,1 2 3\n"), "code 0..6; row 2"),
        (lambda p: write_image(p / "d" / "bored" / "a.png").parent.parent, "'bored' are not expression labels"),
        (lambda p: (p / "c" / "happy").mkdir(parents=True) or p / "c", "No labelled images"),
        (lambda p: p / ("x" * 5000), "cannot be read|does not exist"),
        (lambda p: Path("/dev/null"), "is a file"),
        (lambda p: file_with(p / "px.csv", "emotion,pixels\n3,a b c\n"), None),
    ],
    ids=["missing", "empty", "file", "binary-csv", "empty-csv", "no-columns", "bad-code", "unknown-label", "no-images",
         "long-name", "device", "bad-pixels"],
)
def test_bad_input_gives_a_clear_message(tmp_path: Path, make, message):
    where = make(tmp_path)
    if message is None:  # readable as a table; the bad rows fail when their pixels are read
        with pytest.raises(data.DatasetError, match="not numbers"):
            data.read_image(data.load_dataset(where).iloc[0])
        return
    with pytest.raises(data.DatasetError, match=message) as error:
        data.load_dataset(where)
    assert (str(where.name)[:50] in str(error.value) or "does not exist" in str(error.value)
            or "row 2" in str(error.value))


def test_zip_and_labels_csv_errors(tmp_path: Path):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("happy", b"a file")
        archive.writestr("happy/a.png", b"and a folder of the same name")
    with pytest.raises(data.DatasetError, match="cannot be unpacked"):
        data.extract_zip(buffer.getvalue(), tmp_path)
    with pytest.raises(data.DatasetError, match="not a zip"):
        data.extract_zip(b"nope", tmp_path)
    with pytest.raises(data.DatasetError, match="cannot be read"):
        data.expected_labels_csv('a.jpg,"' + "x" * 200_000 + "\n")
    assert data.expected_labels_csv("file,label\nanna.jpg,happy\n") == {"anna.jpg": "happiness"}
    assert data.label_from_name("afraid mom.png") == "fear" and data.label_from_name("IMG_001.jpg") is None
    friends = {"happy matt.png": "happiness", "afraid mom.png": "fear", "surprised_gf.png": "surprise",
               "disgusted dad.jpg": "disgust", "Sad-Anna.JPG": "sadness", "mad_uncle.webp": "anger",
               "scared kid.png": "fear", "smiling grandma.jpg": "happiness", "angry boss 2.png": "anger"}
    assert {name: data.label_from_name(name) for name in friends} == friends
    assert data.label_from_name("sad/IMG_001.jpg") == "sadness"  # class folders, as the Compare page asks for
    assert data.label_from_name("happy/angry_anna.jpg") == "anger"  # the file's own name first


def test_labels_are_the_studys_eight():
    assert LABELS == ("neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")


def test_ferplus_votes_become_soft_targets_and_a_majority(tmp_path):
    votes = tmp_path / "ferplus" / "labels.csv"
    votes.parent.mkdir()
    header = "path,split,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
    votes.write_text(header + "fer2013/train/happy/a.jpg,train,2,7,0,0,0,0,0,0,1,0\n"
                              "fer2013/train/angry/b.jpg,train,0,0,0,0,5,5,0,0,0,0\n"
                              "fer2013/train/angry/c.jpg,train,1,0,0,0,0,0,0,0,2,7\n")
    table = data.read_ferplus(votes)
    assert table["path"][0] == "fer2013/train/happy/a.jpg"
    assert list(table.columns[2:10]) == list(LABELS)  # votes in the models' class order
    targets, keep = data.ferplus_targets(table)
    assert np.allclose(targets.sum(axis=1), 1) and targets[0, LABELS.index("happiness")] == pytest.approx(7 / 9)
    assert list(keep) == [True, True, False]  # not-a-face won the third
    assert list(data.ferplus_majority(table)) == ["happiness", "anger", None]  # a tie: the first in LABELS order
    (tmp_path / "bad.csv").write_text("path,split\nx,train\n")
    with pytest.raises(data.DatasetError, match="missing column"):
        data.read_ferplus(tmp_path / "bad.csv")
    with pytest.raises(data.DatasetError, match="does not exist"):
        data.read_ferplus(tmp_path / "none.csv")
    # Votes join images by split, class folder and file name, wherever the FER2013 folder lies.
    elsewhere = pd.DataFrame({"path": ["/mnt/copy/fer2013/train/angry/b.jpg", "/x/train/happy/a.jpg"]})
    joined = data.ferplus_votes_for(elsewhere, votes)
    assert list(joined["anger"]) == [5, 0] and list(joined["happiness"]) == [0, 7]
    with pytest.raises(data.DatasetError, match="labels only 0% of the 2 FER2013 images"):
        data.ferplus_votes_for(pd.DataFrame({"path": ["/y/test/sad/z.jpg", "/y/test/sad/w.jpg"]}), votes)


def test_people_come_from_file_names_and_lfw_validation_people_never_train(tmp_path):
    assert data.person_of("lfw/anger/Aaron_Peirsol_0002.jpg") == "Aaron_Peirsol"
    assert data.person_of("london/neutral/012.jpg") == "012"
    assert data.person_of("lfw/disgust/facial-expressions_2868588k.jpg") == "facial-expressions"  # one unnamed person
    for person in range(20):
        for n, folder in enumerate(("happiness", "neutral")):
            write_image(tmp_path / "lfw" / folder / f"Person_{person:02d}_{n + 1:04d}.jpg", size=(8, 8))
    manifest = data.load_dataset(tmp_path / "lfw")
    held_out = frozenset({"Person_03", "Person_11"})
    train, validation = data.lfw_split(manifest, held_out)
    people = data.with_people(manifest)["subject"]
    assert set(people.iloc[validation]) == held_out and not set(people.iloc[train]) & held_out
    assert len(train) + len(validation) == 40
    # The kept list: real LFW names, drawn once; photos added later never move anyone across.
    kept = data.lfw_validation_people()
    assert len(kept) > 600 and "facial-expressions" not in kept and all(" " not in name for name in kept)


def test_one_class_folder_alone_is_labelled_by_its_name(tmp_path):
    """Compare reads `.../fear` as Classify's batch does: the folder's own name is its photos' label,
    whatever its neighbours are called."""
    for name in ("a.jpg", "b.png"):
        write_image(tmp_path / "Pictures" / "fear" / name)
    (tmp_path / "Pictures" / "holidays").mkdir()
    manifest = data.load_dataset(tmp_path / "Pictures" / "fear")
    assert list(manifest["label"]) == ["fear", "fear"] and len(manifest) == 2
    (tmp_path / "Pictures" / "trip").mkdir()
    write_image(tmp_path / "Pictures" / "trip" / "c.jpg")
    with pytest.raises(data.DatasetError, match="holds no dataset"):
        data.load_dataset(tmp_path / "Pictures" / "trip")  # not an expression: no label to give
