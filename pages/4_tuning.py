"""Tuning explorer: Talos scan results, filtered, ranked and explained."""

import emorec  # noqa: F401  (first: see emorec/__init__.py)

import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from emorec import config, plots
from emorec import tune_results
from emorec.config import CHANCE, LABELS, VARIANT_NAMES, default_data_dir
from emorec.data import DatasetError
from ui.loaders import load_scan, shipped_scans
from ui.navigation import page_setup

page_setup(__file__)

st.title("🎛️ Tuning explorer")
st.caption("Talos hyper-parameter scans: which configurations worked, and which parameters mattered.")


def choose_scan(label: str, key: str, default_index: int = 0) -> tune_results.TalosResults | None:
    """A shipped scan or an uploaded Talos CSV; errors shown inline."""
    scans = shipped_scans()
    options = [*scans, "Upload a Talos CSV…"]
    choice = st.selectbox(label, options, index=min(default_index, len(options) - 1), key=key)
    try:
        if choice in scans:
            return load_scan(str(scans[choice]))
        upload = st.file_uploader("Talos results CSV", type=["csv"], key=f"{key}-upload")
        return tune_results.read_results(upload.getvalue(), upload.name) if upload else None
    except tune_results.TalosTableError as error:
        st.error(str(error))
        return None


def filter_rows(results: tune_results.TalosResults, metric: str) -> pd.DataFrame:
    """The rows within the chosen metric range and parameter values; the filters belong to their
    scan (keys carry its name), so another scan starts unfiltered."""
    frame = results.frame
    with st.expander("Filters", expanded=False):
        finite = frame[metric][np.isfinite(frame[metric])]
        low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 0.0)
        if low < high:
            chosen = st.slider(f"{metric} range", low, high, (low, high), key=f"{results.name}:{metric}-range")
            frame = frame[frame[metric].between(*chosen)]
        columns = st.columns(2)  # wide enough that every value's chip shows whole
        for i, param in enumerate(results.params):
            values = sorted(results.frame[param].dropna().unique().tolist(), key=str)
            if 1 < len(values) <= 12:
                kept = columns[i % 2].multiselect(param, values, default=values, key=f"{results.name}:filter-{param}")
                frame = frame[frame[param].isin(kept)]
    return frame


results = choose_scan("Scan", "scan")
if results is None:
    if not st.session_state.get("scan-upload"):  # an uploaded table that failed has said why above
        st.info("Choose a scan, or upload a Talos results CSV (any Talos version).")
    st.stop()

# Each scan keeps its own metric, also while another scan is shown (Streamlit forgets a widget not drawn).
remembered = st.session_state.setdefault("metric-by-scan", {})
metric = st.selectbox("Metric", results.metrics, key=f"{results.name}:metric",
                      index=results.metrics.index(remembered.get(results.name, results.metrics[0])))
remembered[results.name] = metric
incomplete = int(results.incomplete.sum())
if incomplete:
    st.warning(f"{incomplete} row(s) of {results.name} lack values every other row has (a file cut off while it was "
               "written?); filtering by a value they lack leaves them out.")
ascending = metric.endswith("loss")
summary = tune_results.summarize(results, metric)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Configurations", f"{summary.configurations:,}")
c2.metric(f"Best {metric}", f"{summary.best:.3f}")
c3.metric(f"Median {metric}", f"{summary.median:.3f}")
counted = summary.chance_metric or metric  # a loss has no chance line: the table's validation accuracy says it
balanced = "balanced" in counted  # 1/classes is chance for balanced accuracy; plain accuracy's floor is the data's
uniform = f"1/{len(LABELS)}"
floor = "chance" if balanced else f"a uniform guess ({uniform})"
c4.metric(f"At or below {'chance' if balanced else uniform}", f"{summary.below_chance:.0%}",
          help=f"Runs whose {counted} is at most {uniform}. For balanced accuracy that is chance: the run learned "
               "nothing. Plain accuracy on unbalanced data has a higher floor (always answering the largest class "
               "scores its share), so runs stuck there show up as the repeated scores below instead.")
if summary.below_chance > 0.25:
    st.warning(f"{summary.below_chance:.0%} of these runs end with {counted} at or below {floor}: the scan, not "
               "the parameters, is suspect.")
for _, row in summary.repeated.iterrows():
    st.warning(f"{int(row['runs']):,} runs ({row['share']:.0%}) ended at exactly {metric} = {row[metric]:.4f}: "
               "different configurations with one identical score usually mean a model that predicts the same class "
               "for every image.")
in_range, outliers = tune_results.without_outliers(results.frame[metric])
histogram = px.histogram(in_range, x=metric, nbins=50, height=260)
if metric.endswith("accuracy"):
    histogram.add_vline(x=CHANCE, line_dash="dot", annotation_position="top left",
                        annotation_text=f"chance (balanced, {len(LABELS)} classes)" if balanced
                                        else f"uniform guess ({uniform})")
st.plotly_chart(histogram, width="stretch", key="histogram")
if outliers:
    st.caption(f"{outliers} run(s) with {metric} above {in_range.max():.3g} (diverged runs, up to "
               f"{results.frame[metric].max():,.0f}) are left out of the histogram and the charts below, which they "
               "would squash into one bar or line; the tables keep them.")

filtered = filter_rows(results, metric)
st.caption(f"{len(filtered):,} of {len(results.frame):,} configurations after filtering.")
if filtered.empty:
    st.warning("No configuration passes the filters.")
    st.stop()

plotted = filtered[filtered[metric] <= in_range.max()] if outliers else filtered  # the charts' rows
importance = tune_results.parameter_importance(
    tune_results.TalosResults(filtered, results.metrics, results.params, results.dialect, results.name), metric)
varying = [p for p in results.params if filtered[p].nunique() > 1]
ranked_params = ([p for p in importance["parameter"] if p in varying]
                 + [p for p in varying if p not in set(importance["parameter"])])

st.subheader("Top configurations")
st.dataframe(tune_results.readable(filtered.sort_values(metric, ascending=ascending).head(10), results,
                           [metric, *ranked_params]),
             hide_index=True)
st.caption("The metric in use first, then the parameters that matter most (below).")

st.subheader("Parameters against the metric")
shown = st.multiselect("Axes (most important first)", results.params, default=ranked_params[:5])
if shown:
    st.plotly_chart(plots.parallel_coordinates(plotted, shown, metric), width="stretch", key="parcoords")

left, right = st.columns(2)
with left:
    st.markdown("**Which parameters matter**", help="The share of the metric's variance that a parameter's values "
                "explain (η², one-way ANOVA): 0 = no effect, 1 = the parameter decides the score alone.")
    if importance.empty:
        st.caption("Not enough variation to tell.")
    else:
        st.plotly_chart(px.bar(importance, x="eta_squared", y="parameter", orientation="h", height=380,
                               hover_data=["p_value", "values"],
                               labels={"eta_squared": "share of the score's spread it explains"}),
                        width="stretch", key="importance")
with right:
    time_column = next((c for c in ("duration", "execution_time", "round_epochs") if c in filtered), None)
    if time_column:
        st.markdown(f"**{time_column} against {metric}**")
        st.plotly_chart(px.scatter(plotted, x=time_column, y=metric, height=380, opacity=0.6), width="stretch",
                        key="time")

if results.params:
    param = st.selectbox("Effect of one parameter", results.params,
                         index=results.params.index(importance["parameter"].iloc[0]) if not importance.empty else 0)
    st.plotly_chart(plots.effect_plot(plotted, param, metric), width="stretch", key="effect")

st.subheader("All configurations")
st.dataframe(filtered, hide_index=True)
st.download_button("Download the filtered rows (CSV)", filtered.to_csv(index=False),
                   f"{Path(results.name).stem}-filtered.csv", "text/csv")

st.subheader("Compare with another scan")
other = choose_scan("Second scan", "other", default_index=1)
shared = [m for m in (metric, *results.metrics) if other is not None and m in other.metrics]
if other is not None and shared:
    compared = shared[0]
    if compared != metric:
        st.caption(f"{other.name} has no {metric}: the scans are compared on {compared}.")
    both = pd.concat([results.frame.assign(scan=results.name), other.frame.assign(scan=other.name)], ignore_index=True)
    kept, diverged = tune_results.without_outliers(both[compared])
    if diverged:
        both = both[both[compared] <= kept.max()]
        st.caption(f"{diverged} diverged run(s) ({compared} above {kept.max():.3g}) are left out of the histogram.")
    st.plotly_chart(px.histogram(both, x=compared, color="scan", barmode="overlay", histnorm="percent", nbins=40,
                                 height=320),
                    width="stretch", key="compare-hist")
    for column, scan in zip(st.columns(2), (results, other)):
        top = scan.top(5, compared)
        column.markdown(f"**{scan.name}**: top 5")
        column.dataframe(tune_results.readable(top, scan, [compared]), hide_index=True)
        stuck = tune_results.collapsed(top, scan, compared)
        if stuck:
            column.caption(f"{stuck} of these end on a {compared} that many runs of this scan share: likely "
                           "networks that answer one class for every face, not good configurations.")
elif other is not None:
    st.info(f"{other.name} and {results.name} share no metric to compare.")

if not results.params:
    st.stop()  # a table of metrics only: nothing to train
st.subheader("Train this configuration")
ranked = filtered.sort_values(metric, ascending=ascending)
row = st.selectbox("Configuration", ranked.index[:50],
                   format_func=lambda i: f"#{i}: {metric} {ranked.loc[i, metric]:.3f} — " +
                   ", ".join(f"{p}={ranked.loc[i, p]}" for p in results.params[:6]))
params = tune_results.configuration(results, row)
st.json(params, expanded=False)
took = next((f"{ranked.loc[row, c]:,.0f} s" for c in ("duration", "execution_time")
             if c in ranked and pd.notna(ranked.loc[row, c])), None)
st.caption(f"Talos took {took} to train it in the scan (on that machine; training here also prepares the faces and "
           f"may stop early)." if took else f"About {params.get('epochs', 'the variant’s')} epochs; on 2 CPU cores "
           "an epoch of CK+ takes a few seconds for whole frames and up to half a minute for face crops.")
left, right = st.columns(2)
face_crop = left.radio("Input", ["MTCNN face crops (54x72)", "whole frames (32x25)"],
                       index=0 if "full" not in results.name else 1).startswith("MTCNN")
name = right.text_input("Register as", value=f"custom-{row}", help="A folder name under models/")
data_dir = st.text_input("Training data (CK+ class folders)", value=str(default_data_dir()))
valid_name = bool(re.fullmatch(r"[A-Za-z0-9_-]+", name)) and name not in {"tuning", *VARIANT_NAMES}
if not valid_name:
    st.error("Choose a name of letters, digits, - and _ that is not a shipped model's.")
exists = valid_name and (config.MODELS_DIR / name).exists()
replace = st.checkbox(f"Replace the model already in models/{name}", key=f"replace-{name}") if exists else True
st.caption("Training runs while this page stays as it is: changing a control here stops it (run again to resume).")
if st.button("Train", type="primary", disabled=not (valid_name and replace)):
    from emorec.workflows import train_configuration  # TensorFlow loads only when training is asked for

    bar = st.progress(0.0, text="Preparing faces…")
    try:
        card = train_configuration(params, Path(data_dir), name, face_crop, f"Tuning page: {results.name} row {row}",
                                   models_dir=config.MODELS_DIR, on_epoch=lambda done, epochs, logs: bar.progress(
                                       done / epochs, text=f"epoch {done} of {epochs} (or fewer: early stopping): "
                                                           f"val_accuracy {logs.get('val_accuracy', 0):.3f}"))
    except (DatasetError, ValueError) as error:  # ValueError: too few subjects to hold some out
        st.error(str(error))
    else:
        bar.progress(1.0, text="Done")
        held_out = card.result("subject-holdout")
        st.success(f"Registered models/{name}: on the fifth of the subjects held out ({held_out['images']} images) "
                   f"accuracy {held_out['accuracy']:.1%}, macro-F1 {held_out['macro_f1']:.1%}; always answering "
                   f"their most frequent class would score {held_out['majority_class']:.1%}. Those subjects also "
                   "chose the epoch to stop at, so this is a little optimistic. The model now appears on the "
                   "Classify page.")
