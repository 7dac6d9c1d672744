"""The app's pages driven by Streamlit's AppTest (no browser)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, shared_data


def open_app(monkeypatch, data_dir: Path) -> AppTest:
    monkeypatch.setenv("EMOREC_DATA", str(data_dir))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    assert not app.exception
    return app


def test_home_links_every_page(monkeypatch, tmp_path):
    from pages.common import PAGES

    app = open_app(monkeypatch, tmp_path)
    assert "emorec" in app.title[0].value
    text = " ".join(m.value for m in app.markdown)
    assert "subject" in text
    assert len(PAGES) >= 2


def test_dataset_page_shows_counts(monkeypatch, class_folder_dataset):
    app = open_app(monkeypatch, class_folder_dataset)
    app.switch_page("pages/1_dataset.py").run()
    assert not app.exception
    assert [m.value for m in app.metric] == ["18", "3", "6", "18"]
    counts = app.dataframe[0].value
    assert counts.loc["total", "images"] == 18


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_dataset_page_without_data_explains(monkeypatch, tmp_path, where):
    folder = tmp_path / where
    if where == "empty":
        folder.mkdir()
    app = open_app(monkeypatch, folder)
    app.switch_page("pages/1_dataset.py").run()
    assert not app.exception
    assert str(folder) in app.warning[0].value
    text = " ".join(m.value for m in app.markdown)
    assert "cohn-kanade-images" in text and "FER2013" in text


def test_dataset_page_follows_the_text_input(monkeypatch, tmp_path, class_folder_dataset):
    app = open_app(monkeypatch, tmp_path / "nothing-here")
    app.switch_page("pages/1_dataset.py").run()
    app.text_input[0].set_value(str(class_folder_dataset)).run()
    assert not app.exception
    assert app.metric[0].value == "18"


@pytest.mark.data
def test_dataset_page_on_ckplus(monkeypatch):
    app = open_app(monkeypatch, shared_data("ckplus"))
    app.switch_page("pages/1_dataset.py").run()
    assert not app.exception
    assert app.metric[0].value == "920" and app.metric[2].value == "123"
