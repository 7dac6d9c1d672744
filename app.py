"""emorec's Streamlit app, and its Home page: `streamlit run app.py` (or `make run`).

Streamlit's pages/ convention: this script is Home, every file in pages/ is a page of its own
(the menu and each page's setup: ui/navigation.py)."""

import emorec  # noqa: F401  (first: loads pylibsrtp before TensorFlow; see emorec/__init__.py)
import streamlit as st

from ui.navigation import PAGES, page_setup

page_setup(__file__)

st.title("emorec — facial-expression recognition workbench")
st.markdown(
    """
emorec tells **eight expressions** — neutral, anger, contempt, disgust, fear, happiness, sadness and
surprise — from face photos. It grew out of a 2019 student study on the CK+ dataset and rebuilds it
honestly: faces are found and aligned with MTCNN, models are measured **by subject** (no person is in
both the training and the test data), and every number shown comes from a command anyone can rerun.
"""
)
for page in PAGES:
    if not page.default:
        st.page_link(page.path, label=f"**{page.title}** — {page.summary}", icon=page.icon)
st.caption("Everything runs on this machine: no photo leaves it, no model is downloaded.")
