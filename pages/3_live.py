"""Live: the webcam with faces and expressions drawn on the video (streamlit-webrtc)."""

import emorec  # noqa: F401  (first: see emorec/__init__.py)

import itertools
import queue

import av
import pandas as pd
import plotly.express as px
import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from emorec.config import LIVE_CLASSIFY_EVERY
from emorec.live import LiveAnnotator, LiveStats
from ui.navigation import page_setup
from ui.widgets import model_picker, rtc_configuration

page_setup(__file__)

st.title("🎥 Live webcam")
st.caption("Press START and allow the camera. Frames are processed on this machine; nothing is recorded. "
           "No camera, or the browser refuses it? Take a photo on the **Classify** page instead.")

recognizers_by_name, main = model_picker(several=False)
interval = st.slider("Classify every … seconds (faces are tracked in between)", 0.05, 1.0, LIVE_CLASSIFY_EVERY, 0.05)

# One queue per browser session: the video thread puts the newest LiveStats, the page reads it.
stats_queue: queue.Queue = st.session_state.setdefault("live-stats", queue.Queue(maxsize=1))
annotator = LiveAnnotator(recognizers_by_name[main], classify_every=interval, stats_queue=stats_queue)


def annotate(frame: av.VideoFrame) -> av.VideoFrame:
    """Runs in the video thread, once per frame."""
    return av.VideoFrame.from_ndarray(annotator.process(frame.to_ndarray(format="rgb24")), format="rgb24")


context = webrtc_streamer(
    key="live",
    mode=WebRtcMode.SENDRECV,
    rtc_configuration=rtc_configuration(),
    media_stream_constraints={"video": {"width": 640, "height": 480}, "audio": False},
    video_frame_callback=annotate,
    async_processing=True,
)

frames, fps, faces = st.columns(3)
frames_metric, fps_metric, faces_metric = frames.empty(), fps.empty(), faces.empty()
chart = st.empty()


def show(stats: LiveStats, update: int = 0) -> None:
    """Draw the newest statistics; ``update`` keys the chart, which one run redraws many times."""
    frames_metric.metric("Frames processed", f"{stats.frames:,}")
    fps_metric.metric("Frames per second", f"{stats.fps:.1f}")
    faces_metric.metric("Faces", stats.faces)
    if stats.main_probabilities:
        table = pd.DataFrame({"label": list(stats.main_probabilities),
                              "probability": list(stats.main_probabilities.values())})
        figure = px.bar(table, x="probability", y="label", orientation="h", range_x=[0, 1], height=300,
                        title=f"Main face: {stats.main_label}")
        figure.update_yaxes(autorange="reversed")  # top to bottom in the model's class order
        chart.plotly_chart(figure, width="stretch", key=f"live-chart-{update}")


if context.state.playing:
    for update in itertools.count():
        try:
            latest = stats_queue.get(timeout=2.0)
        except queue.Empty:
            if not context.state.playing:
                break
            continue
        st.session_state["live-last"] = latest  # kept after STOP, until the next START replaces it
        show(latest, update)
else:
    last = st.session_state.get("live-last")
    show(last or LiveStats(0, 0.0, 0))
    if last:
        st.caption("The last run's figures; START begins a new run.")
