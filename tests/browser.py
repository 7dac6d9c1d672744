"""Helpers for browser tests: the app served by a real Streamlit server, driven by Playwright in
Debian's headless Chromium (no browser download)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.conftest import ROOT

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningApp(NamedTuple):
    url: str
    pid: int

    def peak_rss_mb(self) -> float:
        """The server's peak resident memory so far (VmHWM)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@contextmanager
def running_app(data_dir: Path, log_path: Path, models_dir: Path | None = None):
    """Serve app.py on a free port until the block ends; yields a ``RunningApp`` (url, pid)."""
    port = free_port()
    env = {**os.environ, "EMOREC_DATA": str(data_dir)}
    if models_dir is not None:
        env["EMOREC_MODELS"] = str(models_dir)
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 90
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                        break
                except OSError:
                    if server.poll() is not None or time.time() > deadline:
                        raise RuntimeError(f"the app did not start:\n{log_path.read_text()[-3000:]}") from None
                    time.sleep(0.5)
            yield RunningApp(url, server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)


def face_video(path: Path, frames: int = 10) -> Path:
    """A still face as a Y4M video (scikit-image's astronaut, 640x480), for Chromium's fake camera
    (``--use-file-for-fake-video-capture``): the fake device's own test pattern has no face."""
    import numpy as np
    from PIL import Image
    from skimage import data as skdata

    ycbcr = Image.fromarray(skdata.astronaut()).resize((640, 480)).convert("YCbCr")
    y, cb, cr = (np.asarray(plane) for plane in ycbcr.split())
    chroma = [np.asarray(Image.fromarray(plane).resize((320, 240))) for plane in (cb, cr)]
    frame = b"FRAME\n" + y.tobytes() + chroma[0].tobytes() + chroma[1].tobytes()
    path.write_bytes(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n" + frame * frames)
    return path


@contextmanager
def browser_page(camera_video: Path | None = None):
    """A Playwright page in headless Chromium that records console errors in ``page.errors``; its
    fake camera shows ``camera_video`` (Y4M) when given, else Chromium's test pattern."""
    from playwright.sync_api import sync_playwright

    flags = CHROMIUM_FLAGS + ([f"--use-file-for-fake-video-capture={camera_video}"] if camera_video else [])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=flags)
        # Tall, because Streamlit mounts elements (tables, widgets) only once they scroll into view.
        page = browser.new_page(viewport={"width": 1280, "height": 2400})
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        try:
            yield page
        finally:
            browser.close()


def server_errors(log_path: Path) -> list[str]:
    """Lines of the server log that show an exception."""
    return [line for line in log_path.read_text().splitlines() if "Traceback" in line or "Error" in line]
