"""Widgets and layout pieces the pages share: the model picker, table column settings, grids,
warnings, paths typed by the user and the WebRTC settings."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from emorec import config, registry
from emorec.cards import below_floor
from emorec.config import DEFAULT_MODEL
from ui.loaders import listed_models, recognizers


def local_path(text: str) -> Path:
    """A path typed by the user, ``~`` expanded (``os.path.expanduser`` never raises, unlike
    ``Path.expanduser`` on an unknown ``~user``)."""
    return Path(os.path.expanduser(text.strip()))


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
    weak = below_floor(registry.read_cards(usable, config.MODELS_DIR))
    if weak:
        st.caption(f"{' and '.join(weak)} score{'s' if len(weak) == 1 else ''} below always answering the most "
                   "frequent expression on people they never saw (Compare page): shown for comparison, not to be "
                   "trusted.")
    return available, main


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


def rtc_configuration() -> dict:
    """WebRTC ICE servers: none on localhost; a deployment sets ``rtc_configuration`` in
    .streamlit/secrets.toml (see the README)."""
    try:
        return dict(st.secrets["rtc_configuration"])
    except (KeyError, FileNotFoundError, st.errors.StreamlitSecretNotFoundError):
        return {"iceServers": []}
