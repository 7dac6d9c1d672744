"""Image input: one loader for bytes, paths and arrays, and the conversion to a model's input.

Whatever a user uploads, ``load_image`` returns an 8-bit RGB array the right way up, or raises
``ImageError`` with a message meant for that user: never a raw decoder traceback.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from emorec.config import MAX_IMAGE_PIXELS

SUPPORTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "MPO")

ImageSource = bytes | bytearray | str | Path | np.ndarray | Image.Image


class ImageError(ValueError):
    """An input that is not a usable image. ``kind`` names the problem for tests and logs:
    empty, missing, unreadable, not-an-image, truncated, unsupported, too-large, zero-size, bad-array."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def load_image(source: ImageSource, name: str | None = None) -> np.ndarray:
    """Decode ``source`` into an (H, W, 3) uint8 RGB array: EXIF orientation applied, first frame of
    animations, any mode (gray, RGBA, palette, 16-bit, CMYK...) converted to 8-bit RGB."""
    if isinstance(source, np.ndarray):
        return array_to_rgb(source)
    label = name or (str(source) if isinstance(source, (str, Path)) else "The file")
    if isinstance(source, Image.Image):
        return _decoded(source, label)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError("missing", f"{label}: no such file.")
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ImageError("unreadable", f"{label} cannot be read ({error.strerror or error}).") from None
    else:
        data = bytes(source)
    if not data:
        raise ImageError("empty", f"{label} is empty (0 bytes).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in SUPPORTED_FORMATS:
                raise ImageError("unsupported",
                                 f"{label} is an {image.format} image; supported: PNG, JPEG, WebP, BMP, TIFF, GIF.")
            return _decoded(image, label)
    except UnidentifiedImageError:
        raise ImageError("not-an-image",
                         f"{label} is not an image (or not in a format emorec reads: "
                         "PNG, JPEG, WebP, BMP, TIFF, GIF).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("too-large", f"{label} has too many pixels to be decoded safely.") from None
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, IndexError, KeyError, struct.error) as error:
        # Damaged files surface from Pillow's decoders as any of these.
        raise ImageError("truncated", f"{label} is damaged or incomplete and cannot be decoded ({error}).") from None


def _decoded(image: Image.Image, label: str) -> np.ndarray:
    width, height = image.size
    if width == 0 or height == 0:
        raise ImageError("zero-size", f"{label} has no pixels ({width}x{height}).")
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError("too-large",
                         f"{label} is {width}x{height}: more than {MAX_IMAGE_PIXELS // 1_000_000} megapixels.")
    image.seek(0)  # the first frame of a GIF or a multi-page TIFF
    image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return array_to_rgb(np.asarray(image))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def array_to_rgb(array: np.ndarray) -> np.ndarray:
    """An array of any common shape and dtype as (H, W, 3) uint8: gray and one-channel repeated,
    alpha dropped, 16-bit and float ranges scaled to 0..255."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError("bad-array", f"An image array must be HxW, HxWx1, HxWx3 or HxWx4; got shape {array.shape}.")
    if array.size == 0:
        raise ImageError("zero-size", f"The image has no pixels (shape {array.shape}).")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ImageError("bad-array", f"An image array must hold numbers, not {array.dtype}.")
    if array.dtype != np.uint8:
        values = array.astype(np.float64)
        if not np.isfinite(values).all():
            raise ImageError("bad-array", "The image array holds NaN or infinite values.")
        if np.issubdtype(array.dtype, np.floating) and values.min() >= 0 and values.max() <= 1:
            values *= 255.0  # floats in 0..1
        elif array.dtype == np.uint16 or values.max() > 255:  # 16-bit (PIL reads some as int32), as viewers show it
            values *= 255.0 / max(65535.0, values.max())
        array = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def to_model_input(image: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """Resize a gray or RGB uint8 image to (height, width) with area interpolation and give it the
    model's number of channels (1 = gray, 3 = RGB)."""
    height, width, channels = input_shape
    return with_channels(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), channels)


def with_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """A gray or RGB uint8 image as (H, W, channels): 1 = gray, 3 = RGB."""
    if image.ndim == 3 and image.shape[2] == 3 and channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    elif image.ndim == 2 and channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return image.reshape(image.shape[0], image.shape[1], channels)
