"""The running app in headless Chromium: pages render, with no error in the page or the server log."""

from __future__ import annotations

import pytest

from tests.browser import browser_page, chromium_path, running_app, server_errors
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, request):
    chromium_path()
    data_dir = SHARED_DATA / "ckplus"
    if not data_dir.exists():
        data_dir = request.getfixturevalue("class_folder_dataset")
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_app(data_dir, log) as url:
        yield url, log
    assert not server_errors(log), server_errors(log)


@pytest.fixture(scope="module")
def class_folder_dataset(tmp_path_factory):
    from tests.conftest import write_image

    root = tmp_path_factory.mktemp("faces")
    for subject in range(1, 4):
        for label in ("happy", "sad"):
            write_image(root / label / f"S{subject:03d}_001_00000001.png")
    return root


def test_home_and_dataset_pages(app_url):
    url, _ = app_url
    with browser_page() as page:
        page.goto(url)
        page.get_by_text("facial-expression recognition workbench").wait_for(timeout=60_000)
        page.get_by_role("link", name="Dataset").first.click()
        page.get_by_text("Per class").wait_for(timeout=60_000)
        page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=30_000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
        assert not page.errors, page.errors
