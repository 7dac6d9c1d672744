"""Image input: one loader for bytes, paths and arrays, and the conversion to a model's input."""

from __future__ import annotations

import cv2
import numpy as np


def to_model_input(image: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """Resize a gray or RGB uint8 image to (height, width) with area interpolation and give it the
    model's number of channels (1 = gray, 3 = RGB)."""
    height, width, channels = input_shape
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if resized.ndim == 3 and channels == 1:
        resized = cv2.cvtColor(resized, cv2.COLOR_RGB2GRAY)
    elif resized.ndim == 2 and channels == 3:
        resized = cv2.cvtColor(resized, cv2.COLOR_GRAY2RGB)
    return resized.reshape(height, width, channels)
