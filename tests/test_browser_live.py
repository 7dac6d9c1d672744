"""The Live page in headless Chromium with a fake camera: the stream starts and frames are processed."""

from __future__ import annotations

import time

import pytest

from tests.browser import browser_page, chromium_path, face_video, running_app, server_errors
from tests.conftest import save_tiny_model

pytestmark = pytest.mark.browser


def frames_processed(page) -> int:
    """The "Frames processed" metric, found by its label (the page redraws its metrics while streaming)."""
    metric = page.locator("[data-testid='stMetric']", has_text="Frames processed")
    values = metric.locator("[data-testid='stMetricValue']").all_inner_texts()
    return int(values[0].replace(",", "")) if values else 0


def test_webcam_stream_is_processed(tmp_path):
    chromium_path()
    models = tmp_path / "models"
    save_tiny_model(models, "tiny", convolutional=True)  # any model: this test is about the video pipeline
    log = tmp_path / "server.log"
    with running_app(tmp_path, log, models_dir=models) as app, browser_page() as page:
        url = app.url
        page.goto(f"{url}/live")
        page.get_by_text("Live webcam").first.wait_for(timeout=60_000)
        page.frame_locator("iframe[title*='streamlit_webrtc']").first.get_by_role("button", name="START").click()
        deadline = time.time() + 60
        while frames_processed(page) < 5 and time.time() < deadline:
            time.sleep(1)
        first = frames_processed(page)
        time.sleep(4)
        assert first >= 5 and frames_processed(page) > first, "the frame counter did not rise"
        # STOP keeps the run's figures on the page (they were reset to 0) until the next START.
        page.frame_locator("iframe[title*='streamlit_webrtc']").first.get_by_role("button", name="STOP").click()
        page.get_by_text("The last run's figures").first.wait_for(timeout=30_000)
        assert frames_processed(page) > first
        assert not page.errors, page.errors
    assert not server_errors(log), server_errors(log)


def test_webcam_face_is_classified_while_streaming(tmp_path):
    """A face in front of the camera: labels drawn, the probability chart redrawn on every update
    (a still face gives the same chart again and again), no error while it streams."""
    chromium_path()
    models = tmp_path / "models"
    save_tiny_model(models, "tiny", convolutional=True)
    log = tmp_path / "server.log"
    with running_app(tmp_path, log, models_dir=models) as app, browser_page(face_video(tmp_path / "face.y4m")) as page:
        page.goto(f"{app.url}/live")
        page.get_by_text("Live webcam").first.wait_for(timeout=60_000)
        page.frame_locator("iframe[title*='streamlit_webrtc']").first.get_by_role("button", name="START").click()
        page.get_by_text("Main face:").first.wait_for(timeout=60_000)
        first = frames_processed(page)
        time.sleep(6)
        assert frames_processed(page) > first, "the frame counter stopped"
        assert not page.locator("[data-testid='stException']").count(), (
            page.locator("[data-testid='stException']").all_inner_texts())
        assert not page.errors, page.errors
    assert not server_errors(log), server_errors(log)
