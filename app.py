"""emorec's Streamlit app: `streamlit run app.py` (or `make run`)."""

import emorec  # noqa: F401  (first: loads pylibsrtp before TensorFlow; see emorec/__init__.py)
import streamlit as st

from ui.widgets import PAGES

st.set_page_config(page_title="emorec", page_icon="🙂", layout="wide")
st.navigation([st.Page(page.path, title=page.title, icon=page.icon, default=page.default) for page in PAGES]).run()
