"""Numbered face boxes and labels drawn on a photo, for the pages and the webcam."""

from __future__ import annotations

import cv2
import numpy as np

SURE_COLOUR = (46, 160, 67)
UNSURE_COLOUR = (230, 150, 20)


def draw_faces(image: np.ndarray, boxes: list[list[int]], captions: list[str], sure: list[bool] | None = None) -> np.ndarray:
    """A copy of the RGB image with each box drawn and captioned ``"1 happiness 87%"``; line width
    and font follow the image size so labels stay readable on phone photos and webcam frames."""
    canvas = image.copy()
    scale = max(image.shape[:2]) / 640
    thickness = max(1, round(2 * scale))
    font_scale = 0.6 * scale
    for i, (box, caption) in enumerate(zip(boxes, captions)):
        x, y, w, h = box
        colour = SURE_COLOUR if sure is None or sure[i] else UNSURE_COLOUR
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, thickness)
        (text_w, text_h), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        top = y - text_h - baseline - 4 if y - text_h - baseline - 4 >= 0 else y + h
        cv2.rectangle(canvas, (x, top), (x + text_w + 6, top + text_h + baseline + 4), colour, -1)
        cv2.putText(canvas, caption, (x + 3, top + text_h + 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)
    return canvas
