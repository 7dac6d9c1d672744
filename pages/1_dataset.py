"""Dataset: statistics of an expression dataset, or of the data the shipped models learned from."""

import emorec  # noqa: F401  (first: see emorec/__init__.py)

from pathlib import Path
import pandas as pd
import plotly.express as px
import streamlit as st

from emorec import data, registry
from emorec.config import default_data_dir
from ui.loaders import image_sizes, load_manifest, modified
from ui.navigation import page_setup
from ui.widgets import local_path

page_setup(__file__)

st.title("📊 Dataset")
folder = st.text_input(
    "Dataset folder (or FER2013 CSV)",
    value=str(default_data_dir()),
    help="Set EMOREC_DATA to change the default. Class folders, the official CK+ layout and the FER2013 CSV are "
         "understood.",
)
path = local_path(folder)
if st.button("Reload", help="Read the folder again (after adding or removing images inside a class folder)."):
    load_manifest.clear()
    image_sizes.clear()


def show_dataset(manifest: pd.DataFrame) -> None:
    counts = data.class_counts(manifest)
    totals = counts.loc["total"]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Images", f"{totals['images']:,}")
    c2.metric("Classes", len(counts) - 1)
    c3.metric("Subjects", f"{totals['subjects']:,}" if totals["subjects"] else "not named")
    c4.metric("Sequences", f"{totals['sequences']:,}" if totals["sequences"] else "—")

    st.subheader("Per class")
    unnamed = [column for column in ("sequences", "subjects") if not totals[column]]  # FER2013 names neither
    st.dataframe(counts.drop(columns=unnamed), width="stretch")
    if unnamed:
        st.caption(f"The file names give no {' or '.join(unnamed)}: this dataset does not name them.")
    per_class = counts.drop(index="total").reset_index()
    st.plotly_chart(px.bar(per_class, x="label", y="images", text="images", title="Images per class"), width="stretch")

    per_subject = data.images_per_subject(manifest)
    if not per_subject.empty:
        st.subheader("Per subject")
        long = per_subject.reset_index().melt(id_vars="subject", var_name="label", value_name="images")
        st.plotly_chart(px.bar(long, x="subject", y="images", color="label", title="Images per subject"),
                        width="stretch")
        st.caption(f"{len(per_subject)} subjects, {per_subject.sum(axis=1).median():.0f} images per subject (median). "
                   "Splits must keep each subject on one side: emorec's cross-validation is grouped by subject.")

    st.subheader("Image sizes")
    if len(manifest) > 5000 and not st.toggle("Read the size of every image (slow for large datasets)"):
        st.caption(f"{len(manifest):,} images: turn the toggle on to read their headers.")
    else:
        st.dataframe(image_sizes(str(path), modified(path)), hide_index=True)

    st.subheader("Samples")
    samples = data.sample_rows(manifest, per_class=6)
    for label, rows in samples.groupby("label", sort=False):
        st.markdown(f"**{label}**")
        columns = st.columns(6)
        for column, (_, row) in zip(columns, rows.iterrows()):
            try:
                column.image(data.read_image(row), caption=Path(row["path"]).stem, width="stretch")
            except data.DatasetError as error:  # damaged or oversized sample files
                column.warning(str(error))


def show_training_data() -> None:
    stats = registry.training_stats()
    if stats:
        st.subheader("What the shipped models were trained on")
        for name, summary in stats.items():
            per_class = pd.DataFrame(summary["per_class"]).T
            extra = summary.get("extra") or {}
            st.markdown(f"**{name}** — {summary['images']:,} images from {', '.join(summary['sources'])}"
                        + (f", {summary['subjects']} subjects" if summary["subjects"] else "")
                        + "".join(f"; {key.replace('_', ' ')}: {value:,}" if isinstance(value, int)
                                  else f"; {key.replace('_', ' ')} {value}"
                                  for key, value in extra.items()))
            st.dataframe(per_class, width="stretch")
    else:
        st.info("No trained model has saved its training statistics yet.")
    st.subheader("Getting the data")
    st.markdown(
        """
- **CK+** (Extended Cohn-Kanade): 593 sequences of 123 subjects, 327 labelled with an emotion. Request it
  from its authors (research use only); point emorec at the unpacked folder (with `cohn-kanade-images/`
  and `Emotion/`) or at class folders.
- **FER2013**: 35,887 in-the-wild 48x48 faces from the ICML 2013 challenge, as `fer2013.csv` or as class
  folders (`train/`, `validation/`).

Layouts emorec understands:
"""
        + "\n".join(f"- {layout}" for layout in data.LAYOUTS)
    )


try:
    mtime = modified(path)
    manifest = load_manifest(str(path), mtime) if mtime is not None else data.load_dataset(path)
except data.DatasetError as error:
    st.warning(str(error).replace("\n", "  \n") + f"  \n(Looked in `{path.absolute()}`; set `EMOREC_DATA` to open "
               "another folder by default.)")
    show_training_data()
else:
    show_dataset(manifest)
