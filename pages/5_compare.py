"""Compare: every shipped model side by side, from their cards; and on your own labelled photos."""

import emorec  # noqa: F401  (first: see emorec/__init__.py)

import tempfile
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from emorec import config, cross_dataset, data, metrics, plots, registry
from emorec.calibration import with_temperature
from emorec.cards import CKPLUS_COLUMN, benchmark_table, headline, majority_guess
from emorec.predict import classify_labelled_photos
from emorec.config import EMOTIONS, LABELS
from ui.loaders import listed_models, model_cards, model_history, model_predictions, recognizers
from ui.navigation import page_setup
from ui.widgets import in_grid, labelled_score_columns, local_path, warn_seen_in_training

page_setup(__file__)

st.title("⚖️ Compare models")
cards = model_cards()
if not cards:
    st.info("No model card in models/ yet: train and evaluate a model first (see the README).")
    st.stop()


def mean_std(block: dict | None, key: str = "accuracy") -> str:
    if not block:
        return "—"
    value = block[key]
    return f"{value['mean']:.1%} ± {value['std']:.1%}"


def interval(predictions: pd.DataFrame | None, classes: tuple[str, ...]) -> str:
    if predictions is None:
        return "—"
    low, high = metrics.accuracy_ci95(predictions, classes)
    return f"{low:.1%} – {high:.1%}"


def metrics_table() -> pd.DataFrame:
    rows = []
    for name, card in cards.items():
        subject, image = card.result("subject-kfold"), card.result("image-kfold")
        fer = card.result("fer2013-publictest")
        predictions = model_predictions(name, "subject-kfold")
        head = headline(card, predictions)
        served = head["CK+ emotion frames, 8-way"]
        rows.append({
            "model": name,  # headline numbers first (the subject/image contrast side by side), details after
            "CK+ 8 classes, by subject": mean_std(subject.get("classes_8")),
            "CK+ 8 classes, by image": mean_std(image.get("classes_8")),
            "CK+ 7 emotions, by subject": mean_std(subject.get("emotions_7")),
            "FER2013 PublicTest": f"{fer['accuracy']:.1%}" if fer else "—",
            "95 % interval (8)": interval(predictions, LABELS),
            "macro-F1 (8)": mean_std(subject.get("classes_8"), "macro_f1"),
            "95 % interval (7)": interval(predictions, EMOTIONS),
            "macro-F1 (7)": mean_std(subject.get("emotions_7"), "macro_f1"),
            "emotion frames, 8-way": "—" if served is None else f"{served:.1%}",
            "macro-F1 (8), by image": mean_std(image.get("classes_8"), "macro_f1"),
            "CK+ 7 emotions, by image": mean_std(image.get("emotions_7")),
            "parameters": f"{card.parameters:,}" if card.parameters else "—",
            "size MB": "—" if head["size MB"] is None else f"{head['size MB']:.1f}",
            "latency ms/face": "—" if head["latency ms/face"] is None else f"{head['latency ms/face']:.1f}",
        })
        reported = card.study_reported
        if reported:
            rows.append({"model": f"{name} — 2019 study", "CK+ 8 classes, by image": f"{reported['accuracy']:.0%} "
                         "(image-level split, as reported)"})
    floor = majority_guess(cards.values())
    percent = lambda key: f"{floor[key]:.1%}" if key in floor else ""  # noqa: E731
    rows.append({"model": "always the most frequent class", "CK+ 8 classes, by subject": percent("CK+ 8 classes"),
                 "CK+ 7 emotions, by subject": percent("CK+ 7 emotions"),
                 "emotion frames, 8-way": percent("CK+ 7 emotions"),
                 "CK+ 8 classes, by image": percent("CK+ 8 classes, image folds"),
                 "FER2013 PublicTest": percent("FER2013 PublicTest")})
    return pd.DataFrame(rows).fillna("")


st.subheader("Metrics")
st.dataframe(metrics_table(), hide_index=True, column_config={"model": st.column_config.TextColumn(pinned=True)})
st.caption("By subject: 10-fold cross-validation where nobody appears in both training and test data (the honest "
           "number). By image: folds by image, as the study split, so one person's faces sit on both sides. "
           "95 % interval: where the pooled accuracy would likely fall with other subjects (a bootstrap over the "
           "people, not the frames). 7 emotions: the 327 peak frames, argmax over the seven emotions (the neutral "
           "score is ignored, the usual "
           "CK+ protocol); emotion frames, 8-way: the same frames as the app answers them, where \"neutral\" is wrong. "
           "The last row is the floor: always answering the test set's most frequent class (neutral on CK+'s "
           "8 classes, surprise on its emotions, happiness on FER2013). Latency: per face as served (mirror image "
           "included), measured on the machine and day each card names.")

benchmarked = {name: card for name, card in cards.items() if card.benchmark_sets()}
if benchmarked:
    st.subheader("People it never saw")
    metric = st.radio("Number", ["accuracy", "macro_f1", "face_rate"], horizontal=True, key="cross-metric",
                      format_func={"accuracy": "Accuracy", "macro_f1": "Macro-F1", "face_rate": "Faces found"}.get)
    titles = {CKPLUS_COLUMN: "CK+ by subject (8 classes)",
              **{s.name: s.title for s in cross_dataset.SETS}}
    table = benchmark_table(benchmarked, metric).rename(columns=titles)
    st.dataframe(table.map(lambda v: "—" if pd.isna(v) else f"{v:.1%}").rename_axis("model").reset_index(),
                 hide_index=True, column_config={"model": st.column_config.TextColumn(pinned=True)})
    st.caption("Public sets no shipped model trained on, each scored with the argmax over its own classes "
               "(`python -m emorec evaluate --protocol cross-dataset`): FER2013 and FER+ PublicTest (pre-cropped web "
               "faces; FER+ relabels them by the majority of ten annotators), LFW expressions' validation people (news "
               "photos; the face found by MTCNN, or the whole image), the London set (studio photos, neutral and "
               "smiling). A photo where no face is found counts as wrong; photos a model trained on are left out "
               "(FER2013 PublicTest repeats some FER2013 train faces). LFW's validation people and the London set "
               "also chose how much of emorec's CK+ fine-tuning to keep (its card tells how that choice does on each "
               "set when the set is left out of it). CK+ by subject comes from the cross-validation above. Last row: "
               "always answering the set's most frequent class.")
    measured = [s.name for s in cross_dataset.SETS
                if any(s.name in card.cross_dataset for card in benchmarked.values())]
    chosen = st.selectbox("How often each class is predicted, against its true share, on", measured,
                          format_func=titles.get, key="cross-set")
    shares = [{"model": name, "class": c, "share": share} for name, card in benchmarked.items()
              if chosen in card.cross_dataset
              for c, share in card.cross_dataset[chosen]["predicted_share"].items()]
    truth = next(card.cross_dataset[chosen]["true_share"] for card in benchmarked.values()
                 if chosen in card.cross_dataset)
    shares += [{"model": "true share", "class": c, "share": share} for c, share in truth.items()]
    st.plotly_chart(px.bar(pd.DataFrame(shares), x="class", y="share", color="model", barmode="group", range_y=[0, 1],
                           height=340), width="stretch", key="cross-shares")

SPLITS = {"subject-kfold": "by subject (new people)", "image-kfold": "by image (the study's split)"}
split_rows = []
for name, card in cards.items():
    for protocol, result in card.evaluation.items():
        if "classes_8" in result:
            split_rows.append({"model": name, "protocol": SPLITS.get(protocol, protocol),
                               "accuracy": result["classes_8"]["accuracy"]["mean"],
                               "std": result["classes_8"]["accuracy"]["std"]})
    if card.study_reported:
        split_rows.append({"model": name, "protocol": "study, as reported",
                           "accuracy": card.study_reported["accuracy"], "std": 0})
if split_rows:
    st.subheader("Subject split against image split")
    st.plotly_chart(px.bar(pd.DataFrame(split_rows), x="model", y="accuracy", color="protocol", barmode="group",
                           error_y="std", range_y=[0, 1], height=360), width="stretch", key="split-chart")

evaluated = {name: card.result("subject-kfold") for name, card in cards.items() if card.result("subject-kfold")}
if evaluated:
    st.subheader("Confusion matrices (subject-grouped cross-validation, 8 classes)")
    st.caption("Rows: true class, columns: predicted; counts of test frames, coloured by share of the row.")
    for column, (name, result) in in_grid(evaluated, per_row=2):
        block = result["classes_8"]
        column.plotly_chart(plots.confusion_heatmap(block["confusion_matrix"], block["classes"], name),
                            width="stretch", key=f"cm-{name}")

    st.subheader("Per-class F1")
    f1 = pd.DataFrame([{"model": name, "class": c, "F1": v["f1-score"]} for name, r in evaluated.items()
                       for c, v in r["classes_8"]["per_class"].items()])
    st.plotly_chart(px.bar(f1, x="class", y="F1", color="model", barmode="group", range_y=[0, 1], height=340,
                           category_orders={"class": list(LABELS)}), width="stretch", key="f1")

    mixing = {name: r["weight_mixing"] for name, r in evaluated.items() if r.get("weight_mixing")}
    for name, scan in mixing.items():
        st.subheader(f"{name}: posed against in-the-wild faces")
        domains = {"ckplus_8": "CK+ by subject, 8 classes", "ckplus_7": "CK+ by subject, 7 emotions",
                   "fer2013_heldout": "FER2013 faces held out", "lfw_validation": "LFW people held out",
                   "london": "London set"}
        measured = [c for c in domains if c in scan["scan"][0]]
        rows = pd.DataFrame(scan["scan"]).melt(id_vars="share", value_vars=measured, var_name="measured on",
                                               value_name="accuracy").dropna().replace({"measured on": domains})
        figure = px.line(rows, x="share", y="accuracy", color="measured on", markers=True, range_y=[0, 1], height=340,
                         labels={"share": "how much of the CK+ fine-tuning is kept (0: none, 1: all)"})
        figure.add_vline(x=scan["share"], line_dash="dot", line_color="grey")
        st.plotly_chart(figure, width="stretch", key=f"mixing-{name}")
        st.caption(f"The shipped network keeps {scan['share']:.0%} of what fine-tuning on CK+ changed (its weights are "
                   f"{scan['share']:g} x fine-tuned + {1 - scan['share']:g} x pretrained: weight mixing, WiSE-FT), the "
                   f"{scan['criterion']}. CK+ out of fold; FER2013 on the {scan['fer2013_heldout_faces']:,} "
                   "train faces pretraining held out.")

    st.subheader("Calibration (reliability)")
    reliability_rows = []
    for name in evaluated:
        predictions = model_predictions(name, "subject-kfold")
        if predictions is not None:
            served = with_temperature(predictions, cards[name].temperature)
            reliability_rows.append(metrics.reliability(served).assign(model=name))
    if reliability_rows:
        figure = px.line(pd.concat(reliability_rows), x="confidence", y="accuracy", color="model", markers=True,
                         hover_data=["images"], range_x=[0, 1], range_y=[0, 1], height=360)
        figure.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line=dict(dash="dot", color="grey"))
        st.plotly_chart(figure, width="stretch", key="reliability")
        st.caption("Out-of-fold CK+ probabilities as the app serves them (scaled by the model's temperature, if it "
                   "has one: a single number that softens or sharpens every probability). emorec's temperature is "
                   "fitted on these predictions and on FER2013 faces from the wild, "
                   "each half: posed CK+ faces alone would ask for sharper probabilities than photos from the wild "
                   "bear, so on CK+ it errs towards modesty (the card gives both domains' errors). A calibrated "
                   "model lies on the dotted diagonal: when it says 80 %, it is right 80 % of the "
                   "time. Calibration error (ECE: the mean gap between confidence and accuracy): " + ", ".join(
                       f"{n} {c['ece_before']:.3f} → {c['ece_after']:.3f} with its temperature"
                       if (c := cards[n].calibration)
                       else f"{n} {r['ece']:.3f}" for n, r in evaluated.items()))

histories = {name: model_history(name) for name in cards}
curves = [pd.DataFrame(h).assign(model=name) for name, h in histories.items() if h]
if curves:
    st.subheader("Training curves (final models)")
    long = pd.concat(curves)
    metric = st.radio("Curve", [c for c in ("accuracy", "loss", "val_accuracy", "val_loss") if c in long],
                      horizontal=True)
    st.plotly_chart(px.line(long, x="epoch", y=metric, color="model", markers=True, height=320), width="stretch",
                    key="curves")
    st.caption("Curves of the shipped models' last training run (emorec: its CK+ fine-tuning). Training accuracy "
               "is measured on augmented, class-weighted batches, so it is not comparable between models.")

st.subheader("Evaluate on your own labelled photos")
st.caption("A zip or a folder in class-folder layout: happy/anna.jpg, sad/ben.png, … (or one class folder). Scored as "
           "the app answers, the argmax over all eight classes: a stricter count than 'People it never saw', which "
           "chooses among each set's own classes (on London, neutral or happiness).")
upload = st.file_uploader("Zip of class folders", type=["zip"])
folder = st.text_input("…or a folder on this machine", placeholder="/path/to/labelled/photos")
whole_image = st.toggle("Photos are faces cropped already (classify each whole image)",
                        help="Face detection needs some context around a face; tightly cropped faces (such as "
                             "FER2013's) are best classified whole.")
names, _ = listed_models()
inputs = ((upload.name, upload.size) if upload else None, folder, tuple(names),
          whole_image)  # results shown only while they answer these
if not names:
    st.error("No usable model to evaluate: every model in models/ is unavailable (see the cards above).")
elif (upload or folder) and st.button("Evaluate every model", type="primary"):
    available, unusable = recognizers(names)  # loaded when asked for, not when the page opens
    for name, reason in unusable.items():
        st.warning(f"Model **{name}** is unavailable: {reason}")
    if not available:
        st.error("No usable model to evaluate: every model in models/ is unavailable (see the reasons above).")
        st.stop()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            where = data.extract_zip(upload.getvalue(), Path(scratch)) if upload else local_path(folder)
            manifest = data.load_dataset(where)
            bar = st.progress(0.0, text="Evaluating…")
            total = len(manifest)

            def progress(items):
                for done, item in enumerate(items, start=1):
                    yield item
                    bar.progress(done / total, text=f"{done} of {total} photos")

            st.session_state["own-results"] = inputs, classify_labelled_photos(manifest, available, progress,
                                                                                 whole_image)
    except data.DatasetError as error:
        st.error(str(error))
answered, results = st.session_state.get("own-results", (None, None))
if results is not None and answered == inputs:
    trained_on = registry.training_images_of(results.get("model", pd.Series()).dropna().unique(), config.MODELS_DIR)
    summary, matrices = metrics.score_labelled(results, trained_on)
    st.dataframe(summary, hide_index=True, column_config=labelled_score_columns())
    warn_seen_in_training(summary)
    if not whole_image and (summary["faces_found"] < summary["photos"]).any():
        st.caption("Photos without a found face count as wrong. Tightly cropped faces? Turn on 'Photos are faces "
                   "cropped already'.")
    for column, (name, matrix) in in_grid(matrices):
        column.plotly_chart(plots.confusion_heatmap(matrix.to_numpy().tolist(), list(matrix.index), name),
                            width="stretch", key=f"own-{name}")
    st.download_button("Download per-photo results (CSV)", results.to_csv(index=False), "emorec-evaluation.csv",
                       "text/csv")
