"""Plotly figures built from emorec's tables (no Streamlit here: the pages only place them)."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def parallel_coordinates(frame: pd.DataFrame, params: list[str], metric: str) -> go.Figure:
    """One line per configuration across its parameters, coloured by ``metric``; text parameters
    are placed on evenly spaced ticks labelled with their values."""
    dimensions = []
    for column in [*params, metric]:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values):
            dimensions.append(dict(label=column, values=values))
        else:
            categories = sorted(values.astype(str).unique())
            codes = values.astype(str).map({c: i for i, c in enumerate(categories)})
            dimensions.append(dict(label=column, values=codes, tickvals=list(range(len(categories))),
                                   ticktext=categories))
    figure = go.Figure(go.Parcoords(
        line=dict(color=frame[metric], colorscale="Viridis", showscale=True, colorbar=dict(title=metric)),
        dimensions=dimensions,
    ))
    figure.update_layout(margin=dict(l=60, r=40, t=40, b=20), height=460)
    return figure


def effect_plot(frame: pd.DataFrame, param: str, metric: str) -> go.Figure:
    """The metric's distribution for each value of one parameter (box with every point)."""
    ordered = frame.assign(**{param: frame[param].astype(str)}).sort_values(param)
    figure = px.box(ordered, x=param, y=metric, points="all", title=f"{metric} by {param}")
    figure.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10))
    return figure


def confusion_heatmap(matrix: list[list[int]], labels: list[str], title: str) -> go.Figure:
    """A confusion matrix (rows: true, columns: predicted) with row-normalised colour and counts."""
    frame = pd.DataFrame(matrix, index=labels, columns=labels)
    shares = frame.div(frame.sum(axis=1).replace(0, 1), axis=0)
    figure = px.imshow(shares, text_auto=False, color_continuous_scale="Blues", zmin=0, zmax=1, title=title,
                       labels=dict(x="predicted", y="true", color="share of row"))
    figure.update_traces(text=frame.to_numpy(), texttemplate="%{text}")
    figure.update_layout(height=420, margin=dict(l=10, r=10, t=40, b=10),
                         coloraxis_showscale=False)  # colour: share of row
    return figure
