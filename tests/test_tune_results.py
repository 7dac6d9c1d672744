"""Talos results tables: every dialect into one clean DataFrame, broken files as clear errors."""

from __future__ import annotations

import pytest

from emorec import tune_results as tune
from emorec.config import SEARCH_SPACE
from tests.conftest import ROOT, TALOS2, shared_data


LEGACY = (",round_epochs,val_loss,val_accuracy,loss,accuracy,activation_1,batch_size,dropout,emb_output_dims,epochs,"
          "last_activation,loss,lr,optimizer\n"
          "0,30,1.95,0.0441,1.94,0.14,elu,256,0.30000000000000004,,30,"
          "softmax,categorical_crossentropy,5.000050000000001,<class 'keras.optimizers.Nadam'>\n"
          "1,6,1.93,0.2048,1.90,0.20,relu,512,0.1,,30,"
          "softmax,categorical_crossentropy,0.0001,<class 'keras.optimizers.optimizer_v2.gradient_descent.SGD'>\n")


def test_talos2_output():
    results = tune.read_results(TALOS2.encode(), "scan.csv")
    assert results.dialect == "talos-2"
    assert results.metrics == ["val_accuracy", "val_loss", "accuracy", "loss"]
    assert results.params == ["lr", "dropout", "optimizer", "neurons_layer_2", "activation_1"]
    assert results.frame["dropout"].tolist() == [0.3, 0.1, 0.5]
    assert results.top(1)["_param_hash"].item() == "cd34"
    assert results.top(1, "val_loss")["val_loss"].item() == 1.0


def test_summary_of_a_scan():
    summary = tune.summarize(tune.read_results(TALOS2.encode(), "scan.csv"))
    assert (summary.metric, summary.configurations, summary.best, summary.median) == ("val_accuracy", 3, 0.66, 0.61)
    assert summary.below_chance == 0.3333 and summary.repeated.empty
    assert summary.minutes == (30.5 + 40.0 + 30.0) / 60 and summary.median_seconds == 30.5
    by_loss = tune.summarize(tune.read_results(TALOS2.encode(), "scan.csv"), "val_loss")
    assert by_loss.best == 1.0 and by_loss.chance_metric == "val_accuracy"  # a loss has no chance line
    assert summary.chance_metric == "val_accuracy"


def test_tables_on_screen_start_with_metrics_and_parameters():
    results = tune.read_results(TALOS2.encode(), "scan.csv")
    shown = tune.readable(results.top(2), results)
    assert list(shown.columns[:9]) == results.metrics + results.params
    assert set(shown.columns) == set(results.frame.columns) and len(shown) == 2


def test_legacy_quirks():
    results = tune.read_results(LEGACY.encode(), "old.csv")
    frame = results.frame
    assert results.dialect == "talos-legacy"
    assert "Unnamed: 0" not in frame and "emb_output_dims" not in frame
    assert frame["loss_function"].tolist() == ["categorical_crossentropy"] * 2
    assert frame["loss"].tolist() == [1.94, 1.90]
    assert frame["optimizer"].tolist() == ["Nadam", "SGD"]
    assert frame["lr"].tolist() == [5.00005, 0.0001] and frame["dropout"].tolist() == [0.3, 0.1]
    assert "loss_function" in results.params and "loss" in results.metrics


def test_unknown_columns_are_kept():
    text = TALOS2.replace("_param_hash", "my_note")
    assert "my_note" in tune.read_results(text.encode()).params


def test_importance_and_repeated_outcomes():
    results = tune.read_results(TALOS2.encode())
    importance = tune.parameter_importance(results)
    assert set(importance["parameter"]) <= set(results.params) and importance["eta_squared"].between(0, 1).all()
    assert tune.repeated_outcomes(tune.read_results(LEGACY.encode()), min_share=0.5).empty  # 2 rows prove nothing
    stuck = TALOS2.replace(",0.66,", ",0.61,").replace(",0.125,", ",0.61,")
    repeated = tune.repeated_outcomes(tune.read_results(stuck.encode()))
    assert repeated["runs"].tolist() == [3] and repeated["share"].tolist() == [1.0]
    assert tune.broken_share(results, chance=1 / 8) == pytest.approx(1 / 3, abs=1e-3)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"   \n\n", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8|binary"),
        ("a;b\n1;2\n".encode("utf-16"), "not UTF-8"),
        (b"name,score\nx,1\n", "no metric column"),
        (b'a,b\n1,"unterminated\n', "not a readable CSV"),
        (b"val_accuracy,lr\n,0.1\n", "no metric column"),
        (b"val_accuracy,lr\nTrue,0.1\nFalse,0.2\n", "no metric column"),
    ],
    ids=["empty", "blank", "binary", "utf16", "no-metric", "bad-quote", "empty-metric", "bool-metric"],
)
def test_broken_files_say_what_is_wrong(content, message):
    with pytest.raises(tune.TalosTableError, match=message):
        tune.read_results(content, "upload.csv")


def test_merge_of_broken_tables_says_why(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"")
    with pytest.raises(tune.TalosTableError, match="is empty"):
        tune.merge_scans([bad], tmp_path / "out.csv")
    good = tmp_path / "good.csv"
    good.write_text(TALOS2)
    with pytest.raises(tune.TalosTableError, match="cannot be written"):
        tune.merge_scans([good], tmp_path)  # a folder, not a file
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_file():
    with pytest.raises(tune.TalosTableError, match="no such file"):
        tune.read_results("/nonexistent/scan.csv")


@pytest.mark.parametrize("name, rows", [("tuning_results_2.csv", 2000), ("tuning_results_4_with_MTCNN.csv", 100)])
def test_study_tables(name, rows):
    results = tune.read_results(shared_data("talos", name))
    assert len(results.frame) == rows
    assert results.frame["optimizer"].isin(["Adam", "Nadam", "RMSprop", "SGD"]).all()
    assert "loss_function" in results.params and results.frame["val_accuracy"].between(0, 1).all()
    assert tune.repeated_outcomes(results)["val_accuracy"].iloc[0] == pytest.approx(0.2048, abs=1e-4)


def test_readable_tables_lead_with_the_chosen_columns_and_flag_collapsed_runs():
    results = tune.read_results(ROOT / "models" / "tuning" / "study-2019-full-frames.csv")
    shown = tune.readable(results.frame.head(3), results, ["val_loss", "lr", "optimizer"])
    assert (list(shown.columns[:3]) == ["val_loss", "lr", "optimizer"]
            and len(shown.columns) == len(results.frame.columns))
    stuck = results.frame[results.frame["val_accuracy"].round(4) == 0.2048].head(4)
    assert tune.collapsed(stuck, results, "val_accuracy") == 4  # the value 1,027 runs ended on
    assert tune.collapsed(results.top(5, "val_accuracy"), results, "val_accuracy") == 0  # the best runs learned




@pytest.mark.parametrize("content, message", [
    (None, "no such search-space file"), ("[params\nx=1", "not valid TOML"), ("[scan]\na = 1\n", "no \\[params\\]"),
    ("[params]\nlr = 0.1\n", "non-empty lists"),
])
def test_bad_search_space(tmp_path, content, message):
    path = tmp_path / "space.toml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(tune.SearchSpaceError, match=message):
        tune.load_space(path)


def test_shipped_space_is_the_studys():
    params, settings = tune.load_space()
    assert (params["optimizer"] == ["Adam", "Nadam", "RMSprop", "SGD"]
            and params["neurons_layer_4"] == [32, 64, 128, 256])
    assert settings["validation_subjects"] == 0.2


def test_shipped_fast_space_keeps_the_study_family():
    study, _ = tune.load_space()
    half, settings = tune.load_space(SEARCH_SPACE.with_name("study-fast.toml"))
    assert {k: v for k, v in half.items() if k not in ("batch_size", "epochs")} == \
        {k: v for k, v in study.items() if k not in ("batch_size", "epochs")}
    assert 0 < settings["input_scale"] < 1


def test_tune_report_cli(tmp_path):
    import subprocess
    import sys

    table = tmp_path / "scan.csv"
    table.write_text(TALOS2)
    cli = [sys.executable, "-m", "emorec", "tune-report", str(table), "--top", "2"]
    report = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "3 configurations (talos-2), ranked by val_accuracy" in report.stdout
    assert "1.7 min in all, median 30 s per configuration" in report.stdout
    assert "best val_accuracy 0.6600" in report.stdout and "at or below chance (1/8): 33%" in report.stdout
    top = report.stdout.split("top 2:")[1].split("parameter importance")[0]
    assert "Nadam" in top and "Adam" in top and "SGD" not in top  # the two best rows, best first
    assert top.index("Nadam") < top.index("Adam ")
    wrong = subprocess.run([*cli, "--metric", "f1"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "has no metric 'f1'" in wrong.stderr
