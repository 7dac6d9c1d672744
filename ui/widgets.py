"""What the pages share: the page list (for navigation and the Home page) and cached loaders.

Layout helpers only; the work happens in the ``emorec`` package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import emorec  # noqa: F401  (bootstrap import order first)
import pandas as pd
import streamlit as st

from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from emorec import config, data, registry, tune
from emorec.config import DEFAULT_MODEL
from emorec.predict import EmotionRecognizer, PhotoResult, checked_card, classify_photo, shared_detector


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


_switched_to_app_navigation = False


def page_setup() -> None:
    """The first call of every page. A pages/ folder makes Streamlit serve the first request of a
    fresh server the old (v1) way: a page opened by its URL runs without app.py, and the sidebar
    lists every file here. app.py's st.navigation defines the pages: switch the old way off, and
    rerun that first request through app.py (once per server, so no later click is lost)."""
    global _switched_to_app_navigation
    if PagesManager.uses_pages_directory and get_script_run_ctx() is not None:
        PagesManager.uses_pages_directory = False
        if not _switched_to_app_navigation:
            _switched_to_app_navigation = True
            st.rerun()


def local_path(text: str) -> Path:
    """A path typed by the user, ``~`` expanded (``os.path.expanduser`` never raises, unlike
    ``Path.expanduser`` on an unknown ``~user``)."""
    return Path(os.path.expanduser(text.strip()))


def modified(path: Path) -> float | None:
    """A file's or folder's modification time (a cache key), None when it cannot be read."""
    try:
        return path.stat().st_mtime
    except (OSError, ValueError):  # ValueError: a NUL character in the typed path
        return None


@st.cache_data(show_spinner="Reading the dataset…")
def load_manifest(folder: str, modified: float) -> pd.DataFrame:
    """The dataset's manifest, cached until the folder changes (``modified`` is its mtime)."""
    return data.load_dataset(Path(folder))


@st.cache_data(show_spinner="Reading image sizes…")
def image_sizes(folder: str, modified: float) -> pd.DataFrame:
    return data.image_sizes(load_manifest(folder, modified))


def model_signature(name: str) -> tuple:
    """What a model's cache entry is keyed by: its files' modification times, so a model trained or
    re-calibrated while the app runs (CLI, Tuning page) is loaded anew."""
    folder = config.MODELS_DIR / name
    return modified(folder / registry.MODEL_FILE), modified(folder / registry.CARD_FILE)


@st.cache_resource(show_spinner=False, max_entries=16)
def load_model(models_dir: str, name: str, signature: tuple) -> EmotionRecognizer | str:
    """One model, loaded once per server (and again when its files change); why not, when it cannot be."""
    try:
        return EmotionRecognizer.load(name, Path(models_dir))
    except registry.ModelUnavailable as error:
        return str(error)


def recognizers(names: list[str] | None = None) -> tuple[dict[str, EmotionRecognizer], dict[str, str]]:
    """The named models (default: every model in models/), each loaded once per server: (usable by
    name, reasons for the others)."""
    available, unavailable = {}, {}
    for name in registry.model_names(config.MODELS_DIR) if names is None else names:
        with st.spinner(f"Loading {name}…"):
            loaded = load_model(str(config.MODELS_DIR), name, model_signature(name))
        (available if isinstance(loaded, EmotionRecognizer) else unavailable)[name] = loaded
    return available, unavailable


def listed_models() -> tuple[list[str], dict[str, str]]:
    """The models a page can offer, from their files alone (no network is loaded: ``checked_card``):
    (names, reasons for the others)."""
    names, unusable = [], {}
    for name in registry.model_names(config.MODELS_DIR):
        try:
            checked_card(name, config.MODELS_DIR)
            names.append(name)
        except registry.ModelUnavailable as error:
            unusable[name] = str(error)
    return names, unusable


def model_picker(several: bool = True) -> tuple[dict, str]:
    """Which models to run and which one leads (boxes, crops, explanations); stops the page with a
    clear message when no model is usable. emorec's own model is the default; the study's variants
    are one click away (``several=False``: one model only, as the live video runs one). Only the
    chosen models are loaded, so a page opens as soon as its default model is ready."""
    names, unreadable = listed_models()
    for name, reason in unreadable.items():
        st.warning(f"Model **{name}** is unavailable: {reason}")
    if not names:
        st.error("No usable model in models/. Train one with `python -m emorec train` (see the README).")
        st.stop()
    default = DEFAULT_MODEL if DEFAULT_MODEL in names else names[0]
    if not several:
        chosen = [st.selectbox("Model", names, index=names.index(default))]
    else:
        left, right = st.columns(2)
        chosen = left.multiselect("Models", names, default=[default] if default == DEFAULT_MODEL else names,
                                  help=f"{DEFAULT_MODEL} is the best shipped model; add the study's variants to see "
                                       "them side by side on your photos (the Compare page has their scores).")
    available, unavailable = recognizers(chosen)
    for name, reason in unavailable.items():
        st.warning(f"Model **{name}** is unavailable: {reason}")
    if not available:
        if set(chosen) == set(names):  # every model tried
            st.error("No usable model in models/. Train one with `python -m emorec train` (see the README).")
        else:
            st.info("Choose at least one usable model.")
        st.stop()
    usable = list(available)
    main = usable[0] if not several else right.selectbox(
        "Main model (boxes, crops, explanations)", usable, index=usable.index(default) if default in usable else 0)
    weak = registry.below_floor(usable, config.MODELS_DIR)
    if weak:
        st.caption(f"{' and '.join(weak)} score{'s' if len(weak) == 1 else ''} below always answering the most "
                   "frequent expression on people they never saw (Compare page): shown for comparison, not to be "
                   "trusted.")
    return available, main


@st.cache_data(max_entries=64, show_spinner="Finding and classifying faces…")
def _classify(_image, key: str, model_names: tuple[str, ...], whole_image: bool, min_face: float | None,
              signature: tuple) -> PhotoResult:
    available, _ = recognizers(list(model_names))
    detector = shared_detector(min_face) if min_face else shared_detector()
    return classify_photo(_image, {name: available[name] for name in model_names}, whole_image, detector)


def classify(image, key: str, model_names: tuple[str, ...], whole_image: bool, min_face: float | None) -> PhotoResult:
    """``classify_photo`` cached by the photo's hash (``key``), the settings and the models' files."""
    return _classify(image, key, model_names, whole_image, min_face, tuple(map(model_signature, model_names)))


def percent_columns(columns) -> dict:
    """``st.dataframe`` column settings showing fractions (0.87) as percentages (87%)."""
    return {column: st.column_config.NumberColumn(format="percent") for column in columns}


def labelled_score_columns() -> dict:
    """Plain headings (the technical term in the tooltip) for ``evaluate.score_labelled``'s table."""
    number = st.column_config.NumberColumn
    return {"photos": number("Photos"),
            "faces_found": number("Faces found", help="Photos where the model's face detector found a face."),
            "accuracy": number("Right (a photo without a face counts as wrong)", format="percent",
                               help="Accuracy over every photo."),
            "accuracy_on_faces": number("Right, of the photos with a face", format="percent",
                                        help="Accuracy over the photos where a face was found."),
            "macro_f1": number("Balance over classes", format="percent",
                               help="Macro-F1 over the photos with a face: the mean over classes of F1, so a model "
                                    "that answers the most common class for everything scores low."),
            "seen_in_training": number("Seen in training", help="Photos this model trained on (recognised by their "
                                       "content, whatever their names): its score on them is not skill on new people.")}


def warn_seen_in_training(summary: pd.DataFrame) -> None:
    """Say plainly when a score counts photos a model trained on."""
    seen = summary[summary["seen_in_training"].fillna(0) > 0]
    for _, row in seen.iterrows():
        st.warning(f"{int(row['seen_in_training'])} of these {int(row['photos'])} photos are ones **{row['model']}** "
                   "trained on: its score on them shows memory, not skill on people it never saw.")


def in_grid(items: dict, per_row: int = 3):
    """(column, (key, value)) for every item, ``per_row`` columns to a row (zip with one row of
    columns would drop what does not fit)."""
    pairs = list(items.items())
    for start in range(0, len(pairs), per_row):
        yield from zip(st.columns(per_row), pairs[start:start + per_row])


def shipped_scans() -> dict[str, Path]:
    """Talos tables shipped in models/tuning, by file name: emorec's own scan first, then the study's."""
    tables = sorted((config.MODELS_DIR / "tuning").glob("*.csv"), key=lambda p: (p.stem != config.SHIPPED_SCAN, p.stem))
    return {p.stem: p for p in tables}


@st.cache_data(show_spinner="Reading the scan…")
def load_scan(path: str) -> tune.TalosResults:
    return tune.read_results(path)


def model_cards() -> dict[str, dict]:
    """The readable cards of every model in models/ (tuning results excluded)."""
    cards = {}
    for name in registry.model_names(config.MODELS_DIR):
        try:
            cards[name] = registry.read_card(name, config.MODELS_DIR)
        except registry.ModelUnavailable as error:
            st.warning(str(error))
    return cards


@st.cache_data(show_spinner=False)
def _predictions(name: str, protocol: str, models_dir: str, modified: float):
    return registry.read_predictions(name, protocol, Path(models_dir))


def model_predictions(name: str, protocol: str):
    path = config.MODELS_DIR / name / f"cv-{protocol}.csv"
    return _predictions(name, protocol, str(config.MODELS_DIR), path.stat().st_mtime) if path.exists() else None


def model_history(name: str):
    return registry.read_history(name, config.MODELS_DIR)


def rtc_configuration() -> dict:
    """WebRTC ICE servers: none on localhost; a deployment sets ``rtc_configuration`` in
    .streamlit/secrets.toml (see the README)."""
    try:
        return dict(st.secrets["rtc_configuration"])
    except (KeyError, FileNotFoundError, st.errors.StreamlitSecretNotFoundError):
        return {"iceServers": []}
