"""Numbered face boxes and labels drawn on a photo, for the pages and the webcam."""

from __future__ import annotations

import cv2
import numpy as np

SURE_COLOUR = (46, 160, 67)
UNSURE_COLOUR = (230, 150, 20)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw_faces(image: np.ndarray, boxes: list[list[int]], captions: list[str],
               sure: list[bool] | None = None) -> np.ndarray:
    """A copy of the RGB image with each box drawn and captioned ``"1 happiness 87%"``. Line width
    and font follow the image size so labels stay readable on phone photos and webcam frames, but a
    box's line and caption stay in proportion to its face: the caption no wider than the face (in a
    group photo neighbours' captions would overlap), and never smaller than readable when the photo
    is shown at page width: a face too narrow for its caption keeps its number only (the number of
    its row in the results table). Never off the image."""
    canvas = image.copy()
    scale = max(image.shape[:2]) / 640
    thickness = max(1, round(2 * scale))
    for i, (box, caption) in enumerate(zip(boxes, captions)):
        x, y, w, h = box
        colour = SURE_COLOUR if sure is None or sure[i] else UNSURE_COLOUR
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, max(1, min(thickness, round(w / 40))))
        caption, font_scale, text_thickness = _caption_font(caption, 0.6 * scale, max(w, 48), 0.45 * scale)
        (text_w, text_h), baseline = cv2.getTextSize(caption, FONT, font_scale, text_thickness)
        left = max(0, min(x, canvas.shape[1] - text_w - 6))
        top = y - text_h - baseline - 4 if y - text_h - baseline - 4 >= 0 else y + h
        cv2.rectangle(canvas, (left, top), (left + text_w + 6, top + text_h + baseline + 4), colour, -1)
        cv2.putText(canvas, caption, (left + 3, top + text_h + 2), FONT, font_scale, (255, 255, 255), text_thickness,
                    cv2.LINE_AA)
    return canvas


def _caption_font(caption: str, font_scale: float, widest: float, smallest: float) -> tuple[str, float, int]:
    """The caption, its font scale (shrunk to fit ``widest`` pixels, down to ``smallest``; still too
    wide there: the caption's first word, which the pages make the face number) and stroke width."""
    smallest = max(0.35, smallest)
    (text_w, _), _ = cv2.getTextSize(caption, FONT, font_scale, max(1, round(font_scale / 0.3)))
    if text_w > widest:
        font_scale = max(smallest, font_scale * widest / text_w)
        (text_w, _), _ = cv2.getTextSize(caption, FONT, font_scale, max(1, round(font_scale / 0.3)))
        if text_w > widest:
            caption = caption.split()[0]
    return caption, font_scale, max(1, round(font_scale / 0.3))
