"""What the pages share: the page list (for navigation and the Home page) and cached loaders.

Layout helpers only; the work happens in the ``emorec`` package.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import emorec  # noqa: F401  (bootstrap import order first)
import pandas as pd
import streamlit as st

from emorec import data


class PageInfo(NamedTuple):
    path: str
    title: str
    icon: str
    summary: str
    default: bool = False


PAGES: tuple[PageInfo, ...] = (
    PageInfo("pages/0_home.py", "Home", "🏠", "What emorec does and where to start.", default=True),
    PageInfo("pages/1_dataset.py", "Dataset", "📊",
             "Statistics of an expression dataset: images, sequences and subjects per class, image sizes, samples."),
)


@st.cache_data(show_spinner="Reading the dataset…")
def load_manifest(folder: str, modified: float) -> pd.DataFrame:
    """The dataset's manifest, cached until the folder changes (``modified`` is its mtime)."""
    return data.load_dataset(Path(folder))


@st.cache_data(show_spinner="Reading image sizes…")
def image_sizes(folder: str, modified: float) -> pd.DataFrame:
    return data.image_sizes(load_manifest(folder, modified))
