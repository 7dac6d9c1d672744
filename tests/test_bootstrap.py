"""Import order: TensorFlow loaded before pylibsrtp (streamlit-webrtc) segfaults the process, so
every entry point imports ``emorec`` first. These tests run each entry point in a fresh process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_emorec_loads_pylibsrtp_and_not_tensorflow():
    result = run_python("import emorec, sys; print('pylibsrtp' in sys.modules, 'tensorflow' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]


def test_tensorflow_then_webrtc_survives_after_emorec():
    result = run_python("import emorec, tensorflow, streamlit_webrtc; print('alive')")
    assert result.returncode == 0 and "alive" in result.stdout, f"exit {result.returncode}: {result.stderr[-2000:]}"


ENTRY_POINTS = ["app.py", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("[0-9]*.py"))]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_entry_point_starts_with_emorec_import(entry):
    """The first import of every page and of the app is ``import emorec``."""
    lines = [line for line in (ROOT / entry).read_text().splitlines() if line.startswith(("import ", "from "))]
    assert lines[0].startswith("import emorec"), f"{entry}: first import is {lines[0]!r}"


@pytest.mark.parametrize("entry", ENTRY_POINTS + ["emorec/__main__.py"])
def test_entry_point_then_tensorflow_and_webrtc_do_not_crash(entry):
    """Import what the entry point imports (in bare mode, outside a Streamlit server), then
    TensorFlow and streamlit-webrtc, in one fresh process: exit 139 here is the segfault."""
    module = entry.removesuffix(".py").replace("/", ".")
    code = (
        "import sys, runpy; sys.argv = ['emorec', '--help']\n"
        f"try: runpy.run_path({entry!r}, run_name='__entry__')\n"
        "except SystemExit: pass\n"
        "import tensorflow, streamlit_webrtc; print('alive')"
    )
    result = run_python(code)
    assert result.returncode == 0 and "alive" in result.stdout, (
        f"{module}: exit {result.returncode}: {result.stderr[-2000:]}")
