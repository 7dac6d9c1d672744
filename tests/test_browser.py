"""The running app in headless Chromium: every page renders with no error in the page or the
server log, with our menu, also when opened first on a fresh server; the Dataset table, a Classify
upload and the Tuning filter work for real."""

from __future__ import annotations

import re

import pytest
from PIL import Image
from skimage import data as skdata

from tests.browser import browser_page, chromium_path, running_app, server_errors
from tests.conftest import SHARED_DATA, write_image

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    chromium_path()
    data_dir = SHARED_DATA / "ckplus"
    if not data_dir.exists():
        data_dir = tmp_path_factory.mktemp("faces")
        for subject in range(1, 4):
            for label in ("happy", "sad"):
                write_image(data_dir / label / f"S{subject:03d}_001_00000001.png")
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_app(data_dir, log) as app:
        yield app.url
    assert not server_errors(log), server_errors(log)


@pytest.fixture
def page():
    with browser_page() as page:
        yield page
        assert not page.errors, page.errors


def wait_rendered(page) -> None:
    page.wait_for_load_state("networkidle")
    page.locator("[data-testid='stApp']").wait_for(timeout=60_000)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)


PAGES = {"": "workbench", "dataset": "Dataset", "classify": "Classify photos", "live": "Live webcam",
         "tuning": "Tuning explorer", "compare": "Compare models"}
MENU = ["Home", "Dataset", "Classify", "Live", "Tuning", "Compare"]  # ui.navigation.PAGES' titles


def sidebar_menu(page) -> list[str]:
    """The text of every link in the sidebar, icons left out: ours, and any Streamlit would list."""
    return [re.sub(r"^\W+", "", text).strip() for text in page.locator("[data-testid='stSidebar'] a").all_inner_texts()]


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_renders_without_exception(app_url, page, path):
    page.goto(f"{app_url}/{path}")
    page.get_by_text(PAGES[path]).first.wait_for(timeout=90_000)
    wait_rendered(page)
    assert page.locator("[data-testid='stException']").count() == 0
    assert sidebar_menu(page) == MENU


def test_a_page_opened_first_on_a_fresh_server(tmp_path):
    """The first request to a new server is /classify: in Streamlit's pages/ convention the page runs
    by itself (app.py does not run first), so it sets itself up: our menu and no list of the files
    (app, common, …), the page's title, the wide layout, the page itself."""
    chromium_path()
    log = tmp_path / "server.log"
    with running_app(tmp_path, log) as app, browser_page() as page:
        page.goto(f"{app.url}/classify")
        page.get_by_text("Classify photos").first.wait_for(timeout=90_000)
        page.get_by_text("Main model").first.wait_for(timeout=120_000)  # the page ran to its models
        wait_rendered(page)
        assert sidebar_menu(page) == MENU
        assert page.url == f"{app.url}/classify" and page.title() == "Classify · emorec"
        assert page.locator("[data-testid='stMainBlockContainer']").bounding_box()["width"] > 900  # wide, not 736
        assert page.locator("[data-testid='stException']").count() == 0
        assert not page.errors, page.errors
    assert not server_errors(log), server_errors(log)


def test_dataset_table(app_url, page):
    page.goto(app_url)
    page.get_by_role("link", name="Dataset").first.click()
    page.get_by_text("Per class").wait_for(timeout=60_000)
    page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=30_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    images = page.locator("[data-testid='stMetric']", has_text="Images").locator("[data-testid='stMetricValue']")
    expected = "920" if (SHARED_DATA / "ckplus").exists() else "6"  # the app's dataset: CK+, or the fixture's
    assert images.first.inner_text() == expected
    bars = page.locator(".js-plotly-plot").first.locator("g.point")  # one bar per class
    assert bars.count() == (8 if expected == "920" else 2)


def test_classify_upload_shows_every_model(app_url, page, tmp_path):
    photos = [tmp_path / "astronaut.jpg"]
    Image.fromarray(skdata.astronaut()).save(photos[0])
    ckplus = SHARED_DATA / "ckplus" / "happiness"
    if ckplus.exists():
        photos.append(sorted(ckplus.glob("*.png"))[0])
    page.goto(f"{app_url}/classify")
    page.get_by_text("Classify photos").first.wait_for(timeout=60_000)
    page.get_by_text("Main model").first.wait_for(timeout=120_000)  # models loaded, uploader in place
    wait_rendered(page)  # an upload sent while the first run is still going can be lost
    page.locator("input[type=file]").first.set_input_files([str(p) for p in photos])
    for photo in photos:
        page.get_by_role("heading", name=photo.name).first.wait_for(timeout=120_000)
    page.get_by_text("face(s); labels from").nth(len(photos) - 1).wait_for(timeout=120_000)
    wait_rendered(page)
    tables = page.locator("[data-testid='stDataFrame']")
    tables.nth(len(photos) - 1).wait_for(timeout=60_000)
    assert tables.count() >= len(photos)  # one probability table (every model a column) per face
    assert page.locator("[data-testid='stException']").count() == 0


def test_tuning_filter_updates_the_chart(app_url, page):
    page.goto(f"{app_url}/tuning")
    page.get_by_text("Top configurations").first.wait_for(timeout=60_000)
    wait_rendered(page)  # a click while the script still runs can miss (seen on a busy machine)
    caption = page.get_by_text("configurations after filtering").first
    before = caption.inner_text()
    page.locator("[data-testid='stExpander'] summary").filter(has_text="Filters").first.click(timeout=60_000)
    optimizer = page.locator("[data-testid='stMultiSelect']").filter(has_text="optimizer").first
    optimizer.wait_for(timeout=60_000)
    optimizer.locator("input").click()
    page.keyboard.press("Backspace")  # drops the last selected optimizer
    page.wait_for_function(f"!document.body.innerText.includes({before!r})", timeout=60_000)
    assert page.get_by_text("configurations after filtering").first.inner_text() != before
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
