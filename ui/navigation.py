"""The app's pages and the setup every page starts with: its title, icon and wide layout, and the
sidebar menu.

The app follows Streamlit's ``pages/`` convention: ``app.py`` is Home and every file in ``pages/``
is a page of its own, served at its URL (``pages/2_classify.py`` at /classify) without running
``app.py`` first. So each page calls ``page_setup(__file__)`` as its first command, and a page
opened by its URL looks just like one reached from the menu. Streamlit's own sidebar list of the
files is switched off (``client.showSidebarNavigation = false`` in .streamlit/config.toml); the
menu is built here with ``st.page_link``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent  # the folder of app.py: page paths are relative to it
APP_NAME = "emorec"


class PageInfo(NamedTuple):
    path: str
    title: str
    icon: str
    summary: str
    default: bool = False  # Home, app.py


PAGES: tuple[PageInfo, ...] = (
    PageInfo("app.py", "Home", "🏠", "What emorec does and where to start.", default=True),
    PageInfo("pages/1_dataset.py", "Dataset", "📊",
             "Statistics of an expression dataset: images, sequences and subjects per class, image sizes, samples."),
    PageInfo("pages/2_classify.py", "Classify", "🙂",
             "Upload or take photos: every face found, cropped and classified by emorec, other models beside it if "
             "you like."),
    PageInfo("pages/3_live.py", "Live", "🎥",
             "Your webcam with faces and expressions drawn live (frames per second shown)."),
    PageInfo("pages/4_tuning.py", "Tuning", "🎛️",
             "Explore Talos hyper-parameter scans: best configurations, parameter effects and importance."),
    PageInfo("pages/5_compare.py", "Compare", "⚖️",
             "The study's three variants and emorec's model side by side: honest metrics, confusion, calibration."),
)


def page_info(script: str | Path) -> PageInfo:
    """The entry of PAGES for a page's script (its ``__file__``, absolute or relative to app.py's folder)."""
    path = Path(script)
    path = (path if path.is_absolute() else ROOT / path).resolve()
    for page in PAGES:
        if (ROOT / page.path).resolve() == path:
            return page
    raise ValueError(f"{script} is not a page of the app: add it to ui.navigation.PAGES")


def page_setup(script: str | Path) -> PageInfo:
    """The first call of every page (``page_setup(__file__)``): the browser tab's title and icon,
    the wide layout and the sidebar menu (every page, by title and icon; Streamlit marks the one
    shown). Returns the page's entry of PAGES."""
    page = page_info(script)
    st.set_page_config(page_title=APP_NAME if page.default else f"{page.title} · {APP_NAME}", page_icon=page.icon,
                       layout="wide")
    with st.sidebar:
        for entry in PAGES:
            st.page_link(entry.path, label=entry.title, icon=entry.icon)
    return page
