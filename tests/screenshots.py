"""Screenshots of every page for the README, taken from the running app (``make screenshots``).

Only public-domain pictures appear (scikit-image's astronaut); the Dataset page is captured above
its sample grid, since CK+ images may not be redistributed.
"""

from __future__ import annotations

import emorec  # noqa: F401  (first: see emorec/__init__.py)

import tempfile
import time
from pathlib import Path

from PIL import Image
from skimage import data as skdata

from tests.browser import browser_page, running_app
from tests.conftest import ROOT, SHARED_DATA

OUT = ROOT / "docs"


def shoot(page, name: str, clip_to: str | None = None) -> None:
    time.sleep(3)
    path = OUT / f"{name}.png"
    if clip_to:
        box = page.get_by_text(clip_to).first.bounding_box()
        page.screenshot(path=path, clip={"x": 0, "y": 0, "width": 1280, "height": box["y"]})
    else:
        page.screenshot(path=path)
    print(f"wrote {path}")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    data_dir = SHARED_DATA / "ckplus"
    with (tempfile.TemporaryDirectory() as scratch, running_app(data_dir, Path(scratch) / "server.log") as app,
          browser_page() as page):
        url = app.url
        page.set_viewport_size({"width": 1280, "height": 1800})  # Streamlit scrolls inside the page: make it tall
        photo = Path(scratch) / "astronaut.jpg"
        Image.fromarray(skdata.astronaut()).save(photo)
        page.goto(url)
        page.get_by_text("workbench").first.wait_for(timeout=60_000)
        shoot(page, "home")
        page.goto(f"{url}/dataset")
        page.get_by_text("Per subject").first.wait_for(timeout=60_000)
        shoot(page, "dataset", clip_to="Samples")
        page.goto(f"{url}/classify")
        page.get_by_text("Classify photos").first.wait_for(timeout=60_000)
        page.locator("input[type=file]").first.set_input_files(str(photo))
        page.get_by_text("face(s); labels from").first.wait_for(timeout=120_000)
        shoot(page, "classify")
        page.goto(f"{url}/live")
        page.get_by_text("Live webcam").first.wait_for(timeout=60_000)
        page.frame_locator("iframe[title*='streamlit_webrtc']").first.get_by_role("button", name="START").click()
        time.sleep(8)
        shoot(page, "live")
        page.goto(f"{url}/tuning")
        page.get_by_text("Top configurations").first.wait_for(timeout=60_000)
        shoot(page, "tuning")
        page.goto(f"{url}/compare")
        page.get_by_text("Metrics").first.wait_for(timeout=60_000)
        shoot(page, "compare")


if __name__ == "__main__":
    main()
