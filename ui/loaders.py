"""Cached reading of what the pages show: datasets, models, classifications, Talos scans and model
cards. ``st.cache_data`` / ``st.cache_resource`` keep each once per server, keyed by the files'
modification times, so a file changed while the app runs is read anew."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from emorec import config, data, registry, tune_results
from emorec.cards import ModelCard
from emorec.faces import shared_detector
from emorec.predict import EmotionRecognizer, PhotoResult, checked_card, classify_photo


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


@st.cache_data(max_entries=64, show_spinner="Finding and classifying faces…")
def _classify(_image, key: str, model_names: tuple[str, ...], whole_image: bool, min_face: float | None,
              signature: tuple) -> PhotoResult:
    available, _ = recognizers(list(model_names))
    detector = shared_detector(min_face) if min_face else shared_detector()
    return classify_photo(_image, {name: available[name] for name in model_names}, whole_image, detector)


def classify(image, key: str, model_names: tuple[str, ...], whole_image: bool, min_face: float | None) -> PhotoResult:
    """``classify_photo`` cached by the photo's hash (``key``), the settings and the models' files."""
    return _classify(image, key, model_names, whole_image, min_face, tuple(map(model_signature, model_names)))


def shipped_scans() -> dict[str, Path]:
    """Talos tables shipped in models/tuning, by file name: emorec's own scan first, then the study's."""
    tables = sorted((config.MODELS_DIR / "tuning").glob("*.csv"), key=lambda p: (p.stem != config.SHIPPED_SCAN, p.stem))
    return {p.stem: p for p in tables}


@st.cache_data(show_spinner="Reading the scan…")
def _load_scan(path: str, modified: float | None) -> tune_results.TalosResults:
    return tune_results.read_results(path)


def load_scan(path: str) -> tune_results.TalosResults:
    """A shipped scan, read again when its file changes (a scan running in shards rewrites it)."""
    return _load_scan(path, modified(Path(path)))


def model_cards() -> dict[str, ModelCard]:
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
