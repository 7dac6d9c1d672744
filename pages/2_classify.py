"""Classify: upload or capture photos; every face classified by the chosen models, side by side."""

import emorec  # noqa: F401  (first: see emorec/__init__.py)

import errno
import hashlib
import itertools
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from emorec import config, registry
from emorec.config import IMAGE_SUFFIXES, MAX_BATCH_PHOTOS, FaceDefaults
from emorec.data import DatasetError, expected_labels_csv, label_from_name
from emorec.drawing import draw_faces
from emorec.metrics import score_labelled
from emorec.explain import occlusion_map, overlay
from emorec.files import content_digest
from emorec.plots import confusion_heatmap
from emorec.predict import labelled_photo_rows, photo_row
from emorec.images import ImageError, load_image
from ui.loaders import classify
from ui.navigation import page_setup
from ui.widgets import (in_grid, labelled_score_columns, local_path, model_picker, percent_columns,
                        warn_seen_in_training)

page_setup(__file__)

UPLOAD_TYPES = sorted(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)

st.title("🙂 Classify photos")
recognizers, default_model = model_picker()
small_faces = st.toggle("Find small faces (group photos; slower)",
                        help=f"Detect faces down to {FaceDefaults.min_small_face:.0%} of the photo's shorter side "
                             f"instead of {FaceDefaults.min_face:.0%}.")
min_face = FaceDefaults.min_small_face if small_faces else None


def probability_table(result, face_index: int) -> pd.DataFrame:
    """Every model's probabilities for one face; a whole-frame model's column says it saw the whole photo."""
    return pd.DataFrame({name + (" (whole photo)" if name in result.whole_frame_models
                                 else ""): preds[face_index].probabilities
                         for name, preds in result.predictions.items()})


def show_face(image, result, index: int, key: str) -> None:
    """One face: its crop (as the main model sees it, for face models), every model's probabilities,
    disagreements, and an explanation on demand."""
    chosen = recognizers[default_model]
    prediction = result.predictions[default_model][index]
    face_model = default_model not in result.whole_frame_models
    x, y, w, h = result.faces[index].box
    crop = chosen.crop(image, result.faces[index]) if face_model else image[y:y + h, x:x + w]
    table = probability_table(result, index)
    if len(table.columns) <= 2:
        left, middle, right = st.columns([1, 2, 2])
    else:  # the table needs the room: the chart goes under it, at full width
        (left, middle), right = st.columns([1, 4]), st.container()
    left.image(crop, caption=f"face {index + 1}" + (f" as {default_model} sees it" if face_model else ""), width=140,
               clamp=True)
    left.markdown(f"**{prediction.label}** {prediction.probabilities[prediction.label]:.0%}"
                  + ("" if prediction.sure else "  \n:orange[not sure]"))
    middle.dataframe(table.style.format("{:.0%}").highlight_max(axis=0, color="#c9f2d0"), width="stretch")
    long = table.reset_index(names="label").melt(id_vars="label", var_name="model", value_name="probability")
    chart = px.bar(long, x="probability", y="label", color="model", barmode="group", orientation="h", height=300,
                   range_x=[0, 1])
    chart.update_yaxes(autorange="reversed")  # top to bottom in the table's order
    chart.update_layout(margin=dict(l=0, r=0, t=10, b=0), legend=dict(orientation="h", y=-0.2))
    right.plotly_chart(chart, width="stretch", key=f"chart-{key}-{index}")
    disagreement = result.disagreements(index)
    if disagreement:
        st.warning("Models disagree: " + ", ".join(f"{m} says **{label}**" for m, label in disagreement.items()))
    unsure = [name for name, preds in result.predictions.items() if not preds[index].sure]
    if unsure:
        st.caption("Not sure (top probability below the model's threshold): " + ", ".join(unsure))
    if not face_model:  # its answer and its reasons are about the whole photo: the caption above says so once
        return
    why = st.expander(f"Why did {default_model} say {prediction.label}?", key=f"why-{key}-{index}", on_change="rerun")
    if why.open:  # the occlusion map classifies a few hundred masked copies of the face: only when asked for
        heat = occlusion_map(chosen.classify, crop, chosen.classes.index(prediction.label))
        why.image(overlay(crop, heat), caption="Red: regions whose hiding lowers this answer most (occlusion).",
                  width=220)


def show_photo(name: str, data: bytes, slot: int) -> list[dict]:
    """One photo (``slot``: its place among the uploads, so the same file twice gets its own widgets);
    returns its rows for the results table (one per face and model)."""
    digest = hashlib.sha1(data).hexdigest()
    key = f"{slot}-{digest}"
    st.subheader(name)
    try:
        image = load_image(data, name)
    except ImageError as error:
        st.error(str(error))
        return [{"upload": slot, **photo_row(name, "error", str(error))}]
    whole = st.session_state.get(f"whole-{key}", False)
    result = classify(image, digest, tuple(recognizers), whole, min_face)
    if not result.faces:
        st.info(f"No face found in {name}."
                + ("" if small_faces else " Try 'Find small faces', or classify the whole image."))
        st.image(image, width=320)
        if st.button("Classify the whole image as one face", key=f"whole-button-{key}"):
            st.session_state[f"whole-{key}"] = True
            st.rerun()
        return [{"upload": slot, **row} for row in result.face_rows(name)]
    default_predictions = result.predictions[default_model]
    captions = [f"{i + 1} {p.label} {p.probabilities[p.label]:.0%}" for i, p in enumerate(default_predictions)]
    caption = f"{len(result.faces)} face(s); labels from {default_model}" + (" (whole image)" if whole else "")
    if default_model in result.whole_frame_models and not whole:
        caption += f" (whole photo: {default_model} answers once for the whole picture, not per face)"
    if not small_faces and not whole:
        caption += ". Someone missing? 'Find small faces' also looks for smaller faces (group photos)."
    st.image(draw_faces(image, [f.box for f in result.faces], captions, [p.sure for p in default_predictions]),
             caption=caption, width="stretch" if image.shape[1] > 900 else "content")
    for index in range(len(result.faces)):
        show_face(image, result, index, key)
    return [{"upload": slot, **row} for row in result.face_rows(name)]  # the same file twice: two uploads


photos_tab, batch_tab = st.tabs(["Photos", "Batch with expected labels"])

with photos_tab:
    uploads = st.file_uploader("Photos (several at once)", type=UPLOAD_TYPES, accept_multiple_files=True)
    camera = st.camera_input("Or take a photo") if st.toggle("Use the camera") else None
    photos = [(u.name, u.getvalue()) for u in uploads or []] + ([("camera photo", camera.getvalue())] if camera else [])
    if not photos:
        st.caption("Upload JPEG, PNG, WebP, BMP, TIFF or GIF photos, or take one with the camera. "
                   "Nothing leaves this machine.")
    bar = st.progress(0.0, text="Classifying…") if len(photos) > 1 else None
    summary = st.container()  # above the photos, filled once they are all classified
    rows = []
    for done, (name, data) in enumerate(photos, start=1):
        try:
            rows += show_photo(name, data, done)
        except Exception as error:  # one photo must never take the page down
            st.error(f"{name} could not be processed: {type(error).__name__}: {error}")
            rows.append({"upload": done, **photo_row(name, "error", f"{type(error).__name__}: {error}")})
        if bar:
            bar.progress(done / len(photos), text=f"Classified {done} of {len(photos)}")
    if rows:
        table = pd.DataFrame(rows)
        if "error" in table:  # beside the status it explains, not past every probability column
            table.insert(table.columns.get_loc("status") + 1, "error", table.pop("error"))
        faces = table.dropna(subset=["face"])[["upload", "face"]].drop_duplicates().shape[0] if "face" in table else 0
        summary.markdown(f"**All faces** ({faces} in {len(photos)} photo(s))")
        summary.dataframe(table, hide_index=True,
                          column_config=percent_columns(["confidence", *recognizers[default_model].classes]))
        summary.caption("One row per face and model, and one per photo without a face or that could not be read "
                        "(status). x, y: the face box's top-left corner in the photo's pixels; width, height: "
                        "its size. The class columns hold each model's probabilities.")
        csv, js = summary.columns(2)
        csv.download_button("Download (CSV)", table.to_csv(index=False), "emorec-faces.csv", "text/csv")
        js.download_button("Download (JSON)", table.to_json(orient="records", indent=1), "emorec-faces.json",
                           "application/json")


def batch_sources() -> list[tuple[str, bytes]]:
    uploads = st.file_uploader("Photos named by expression (happy_anna.jpg, afraid mom.png…)", type=UPLOAD_TYPES,
                               accept_multiple_files=True, key="batch-uploads")
    folder = st.text_input("…or a folder on this machine", placeholder="/path/to/photos")
    sources = [(u.name, u.getvalue()) for u in uploads or []]
    if folder:
        path = local_path(folder)
        try:
            if not path.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "not a folder on this machine")
            images = (p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            found = sorted(itertools.islice(images, MAX_BATCH_PHOTOS + 1))
            if not found:
                st.info(f"No {', '.join(UPLOAD_TYPES)} image under {folder[:200]}.")
            elif len(found) > MAX_BATCH_PHOTOS:
                st.warning(f"More than {MAX_BATCH_PHOTOS:,} images under {folder[:200]}: the first "
                           f"{MAX_BATCH_PHOTOS:,} found are classified. Choose a smaller folder for all of them.")
            # named from the folder itself on, so a folder called "happy" labels its photos
            sources += [(str(p.relative_to(path.parent)), p.read_bytes()) for p in found[:MAX_BATCH_PHOTOS]]
        except OSError as error:
            st.error(f"{folder[:200]} cannot be read as a folder ({error.strerror or error}).")
    return sources


with batch_tab:
    sources = batch_sources()
    labels_file = st.file_uploader("Optional labels CSV (file,label)", type=["csv"], key="labels-csv")
    expected = {}
    if labels_file is not None:
        try:
            expected = expected_labels_csv(labels_file.getvalue().decode("utf-8", errors="replace"))
        except DatasetError as error:
            st.error(str(error))
    inputs = (tuple((name, hashlib.sha1(data).hexdigest()) for name, data in sources), tuple(expected.items()),
              tuple(recognizers), min_face)  # results shown only while they answer these
    if sources and st.button(f"Classify {len(sources)} photos", type="primary"):
        rows, bar = [], st.progress(0.0, text="Classifying…")
        for done, (name, data) in enumerate(sources, start=1):
            label = expected.get(Path(name).name) or label_from_name(name)
            rows += labelled_photo_rows(name, label, lambda name=name, data=data: classify(
                load_image(data, name), hashlib.sha1(data).hexdigest(), tuple(recognizers), False, min_face),
                content_digest(data))
            bar.progress(done / len(sources), text=f"Classified {done} of {len(sources)}")
        st.session_state["batch-results"] = inputs, pd.DataFrame(rows)
    answered, results = st.session_state.get("batch-results", (None, None))
    if results is not None and answered == inputs:
        trained_on = registry.training_images_of(results.get("model", pd.Series()).dropna().unique(), config.MODELS_DIR)
        summary, matrices = score_labelled(results, trained_on)
        shown = results.drop(columns="digest", errors="ignore")  # the digest only recognises training photos
        if summary.empty:
            st.info("No photo has an expected label: name files like happy_anna.jpg or upload a labels CSV.")
        else:
            st.dataframe(summary, hide_index=True, column_config=labelled_score_columns())
            warn_seen_in_training(summary)
            st.caption("The matrices cover the photos where the model found a face.")
            for column, (model, matrix) in in_grid(matrices):
                column.plotly_chart(confusion_heatmap(matrix.to_numpy().tolist(), list(matrix.index), model),
                                    width="stretch", key=f"cm-{model}")
            mistakes = shown[shown["expected"].notna() & (shown["expected"] != shown["predicted"])]
            st.markdown(f"**Mistakes** ({len(mistakes)})")
            st.dataframe(mistakes, hide_index=True, column_config=percent_columns(["confidence"]))
        st.markdown(f"**All results** ({len(shown)} rows: one per photo and model)")
        st.dataframe(shown, hide_index=True, column_config=percent_columns(["confidence"]))
        st.download_button("Download results (CSV)", shown.to_csv(index=False), "emorec-batch.csv", "text/csv")
