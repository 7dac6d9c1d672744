"""Why did the model say that: occlusion sensitivity over a face crop.

Grey patches slide over the crop; where covering the face lowers the winning class's probability
most is what the decision rested on. Model-agnostic (works for every variant) and one batched
forward pass.
"""

from __future__ import annotations

import cv2
import numpy as np


def occlusion_map(classify, crop: np.ndarray, class_index: int, patch: int | None = None,
                  stride: int | None = None) -> np.ndarray:
    """A map of the crop's size in 0..1: how much hiding each region lowers the probability of
    ``class_index``. ``classify`` maps a batch of crops to probabilities."""
    height, width = crop.shape[:2]
    patch = patch or max(4, min(height, width) // 6)
    stride = stride or max(2, patch // 2)
    fill = float(crop.mean())
    positions = [(y, x) for y in range(0, height - patch + 1, stride) for x in range(0, width - patch + 1, stride)]
    batch = np.repeat(crop[None].astype(np.float32), len(positions) + 1, axis=0)
    for i, (y, x) in enumerate(positions, start=1):
        batch[i, y:y + patch, x:x + patch] = fill
    probabilities = classify(batch)[:, class_index]
    drop = np.zeros((height, width), np.float64)
    count = np.zeros((height, width), np.float64)
    for (y, x), p in zip(positions, probabilities[1:]):
        drop[y:y + patch, x:x + patch] += probabilities[0] - p
        count[y:y + patch, x:x + patch] += 1
    drop = np.where(count > 0, drop / np.maximum(count, 1), 0)
    drop = np.clip(drop, 0, None)
    return drop / drop.max() if drop.max() > 0 else drop


def overlay(crop: np.ndarray, heat: np.ndarray, size: int = 192, alpha: float = 0.45) -> np.ndarray:
    """The crop (enlarged to ``size``) with the heat map drawn over it in colour, RGB uint8."""
    rgb = crop if crop.ndim == 3 and crop.shape[2] == 3 else cv2.cvtColor(crop.reshape(crop.shape[:2]),
                                                                          cv2.COLOR_GRAY2RGB)
    aspect = rgb.shape[1] / rgb.shape[0]
    shape = (int(size * aspect), size)
    base = cv2.resize(rgb, shape, interpolation=cv2.INTER_CUBIC)
    colour = cv2.cvtColor(cv2.applyColorMap((cv2.resize(heat, shape) * 255).astype(np.uint8), cv2.COLORMAP_JET),
                          cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(base, 1 - alpha, colour, alpha, 0)
