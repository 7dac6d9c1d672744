"""The command line (``emorec.cli``): the ``predict`` JSON-lines contract, errors as messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

from emorec.config import LABELS
from tests.conftest import ROOT, save_tiny_model


def run_cli(*args: str, models_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "EMOREC_MODELS": str(models_dir)}
    return subprocess.run([sys.executable, "-m", "emorec", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_predict_cli_json_lines_contract(tmp_path):
    models = tmp_path / "models"
    save_tiny_model(models, convolutional=True)
    photos = tmp_path / "photos"
    (photos / "nested").mkdir(parents=True)
    Image.fromarray(skdata.astronaut()).save(photos / "astronaut.jpg")
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(photos / "nested" / "blank.png")
    (photos / "nested" / "broken.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    (photos / "notes.txt").write_text("not an image, and not picked up from a folder")

    result = run_cli("predict", "--model", "tiny", "--json", str(photos), models_dir=models)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(line["path"]).name for line in lines] == ["astronaut.jpg", "blank.png", "broken.jpg"]
    astronaut, blank, broken = lines
    assert astronaut["error"] is None and len(astronaut["faces"]) == 1
    face = astronaut["faces"][0]
    assert set(face) == {"box", "score", "label", "probabilities", "sure"} and len(face["box"]) == 4
    assert set(face["probabilities"]) == set(LABELS) and face["label"] in LABELS
    assert face["sure"] == (face["probabilities"][face["label"]] >= 0.5)  # the card's threshold (default)
    assert blank == {"path": str(photos / "nested" / "blank.png"), "faces": [], "error": None}
    assert broken["faces"] == [] and ("damaged" in broken["error"] or "not an image" in broken["error"])

    whole = run_cli("predict", "--model", "tiny", "--whole-image", "--json", str(photos / "nested" / "blank.png"),
                    models_dir=models)
    faces = json.loads(whole.stdout)["faces"]
    assert len(faces) == 1 and faces[0]["box"] == [0, 0, 160, 120]

    human = run_cli("predict", "--model", "tiny", str(photos / "nested"), models_dir=models)
    assert "no face found" in human.stdout and "error" in human.stdout


def test_cli_errors_are_messages_not_tracebacks(tmp_path):
    missing_model = run_cli("predict", "--model", "nope", "x.jpg", models_dir=tmp_path)
    assert missing_model.returncode == 2 and "has no card" in missing_model.stderr
    assert "Traceback" not in missing_model.stderr
    bad_args = run_cli("predict", models_dir=tmp_path)
    assert bad_args.returncode == 2 and "usage" in bad_args.stderr
    missing_data = run_cli("stats", str(tmp_path / "nowhere"), models_dir=tmp_path)
    assert missing_data.returncode == 2 and "does not exist" in missing_data.stderr
    for args, message in ((["tune", "--data", str(tmp_path), "--shard", "x/4"], "--shard must be"),
                          (["tune", "--data", str(tmp_path), "--rounds", "0"], "must be at least 1"),
                          (["evaluate", "--variant", "baseline", "--data", str(tmp_path), "--folds", "1"],
                           "at least 2 folds"),
                          (["tune-merge", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o.csv")],
                           "no such file"),
                          (["stats", "/dev/null"], "is a file")):
        result = run_cli(*args, models_dir=tmp_path)
        assert (result.returncode == 2 and message in result.stderr
                and "Traceback" not in result.stderr), (args, result.stderr)
