"""The image loader: every format and mode in, 8-bit RGB out; every bad input a typed, readable error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from emorec.images import ImageError, array_to_rgb, load_image, to_model_input


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def gradient(mode: str = "RGB", size=(40, 30)) -> Image.Image:
    x = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :].repeat(size[1], 0)
    rgb = np.stack([x, x[::-1, ::-1], np.full_like(x, 90)], axis=2)
    return Image.fromarray(rgb).convert(mode)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_formats_decode_to_rgb(fmt):
    image = load_image(encoded(gradient(), fmt))
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F"])
def test_modes_convert_to_8bit_rgb(mode):
    source = gradient("L") if mode in ("I;16", "I", "F") else gradient()
    if mode == "I;16":
        image = Image.fromarray((np.asarray(source, np.uint16) * 257).astype(np.uint16))
    else:
        image = source.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I", "F") else "PNG"
    decoded = load_image(encoded(image, fmt))
    assert decoded.shape == (30, 40, 3) and decoded.dtype == np.uint8
    if mode in ("L", "I;16"):  # gray levels kept, 16-bit scaled back to 8-bit
        assert np.abs(decoded[:, :, 0].astype(int) - np.asarray(gradient("L"), int)).max() <= 1


def test_transparent_pixels_become_white():
    rgba = Image.fromarray(np.zeros((4, 4, 4), np.uint8))  # fully transparent black
    assert (load_image(encoded(rgba, "PNG")) == 255).all()
    palette = rgba.convert("P")  # palette with a transparent entry (tRNS)
    assert "transparency" in Image.open(io.BytesIO(encoded(palette, "PNG"))).info
    assert (load_image(encoded(palette, "PNG")) == 255).all()


def test_exif_orientation_is_applied():
    image = gradient()  # 40 wide, 30 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    decoded = load_image(encoded(image, "JPEG", exif=exif.tobytes()))
    assert decoded.shape == (40, 30, 3)


def test_first_gif_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    data = io.BytesIO()
    frames[0].save(data, format="GIF", save_all=True, append_images=frames[1:])
    assert tuple(load_image(data.getvalue())[0, 0]) == (255, 0, 0)


def test_paths_and_arrays(tmp_path):
    path = tmp_path / "a.png"
    gradient().save(path)
    assert load_image(path).shape == (30, 40, 3)
    assert load_image(str(path)).shape == (30, 40, 3)
    assert load_image(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert load_image(np.ones((5, 6, 1), np.float32)).max() == 255
    assert array_to_rgb(np.full((2, 2), 65535, np.uint16)).max() == 255
    # a dark 16-bit image stays dark, as viewers show it
    assert array_to_rgb(np.full((2, 2), 200, np.uint16)).max() == 1
    assert to_model_input(load_image(path), (48, 48, 1)).shape == (48, 48, 1)


def truncated(fmt: str) -> bytes:
    data = encoded(gradient(size=(200, 150)), fmt)
    return data[: len(data) // 2]


def corrupt_png() -> bytes:
    data = bytearray(encoded(gradient(size=(200, 150)), "PNG"))
    middle = len(data) // 2
    data[middle:middle + 64] = np.random.default_rng(1).integers(0, 255, 64, dtype=np.uint8).tobytes()
    return bytes(data)


def damaged_tiff() -> bytes:
    """A TIFF whose StripOffsets tag (273) claims the RATIONAL type: Pillow raises TypeError."""
    data = bytearray(encoded(Image.new("RGB", (40, 30)), "TIFF"))
    for offset in range(8, len(data) - 12):
        if (data[offset:offset + 2] == (273).to_bytes(2, "little")
                and data[offset + 2:offset + 4] in (b"\x03\x00", b"\x04\x00")):
            data[offset + 2:offset + 4] = (5).to_bytes(2, "little")
            break
    return bytes(data)


def bomb() -> bytes:
    return encoded(Image.new("L", (9000, 8000)), "PNG")  # 72 megapixels, 70 kB


BAD_INPUTS = {
    "empty-bytes": (lambda tmp: b"", "empty"),
    "empty-file": (lambda tmp: (tmp / "e.jpg").write_bytes(b"") and None or tmp / "e.jpg", "empty"),
    "missing-path": (lambda tmp: tmp / "nope.jpg", "missing"),
    "text": (lambda tmp: b"hello, this is not a picture\n" * 10, "not-an-image"),
    "html-as-jpg": (lambda tmp: b"<!doctype html><html><body>404</body></html>", "not-an-image"),
    "random-bytes": (lambda tmp: np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8).tobytes(),
                     "not-an-image"),
    "truncated-png": (lambda tmp: truncated("PNG"), "truncated"),
    "truncated-jpeg": (lambda tmp: truncated("JPEG"), "truncated"),
    "corrupt-png": (lambda tmp: corrupt_png(), "truncated"),
    "unsupported-ico": (lambda tmp: encoded(gradient(size=(32, 32)), "ICO"), "unsupported"),
    "unsupported-pcx": (lambda tmp: encoded(gradient(), "PCX"), "unsupported"),
    "too-large": (lambda tmp: bomb(), "too-large"),
    "zero-size-array": (lambda tmp: np.zeros((0, 10, 3), np.uint8), "zero-size"),
    "five-channels": (lambda tmp: np.zeros((4, 4, 5), np.uint8), "bad-array"),
    "nan-array": (lambda tmp: np.full((4, 4), np.nan), "bad-array"),
    "1d-array": (lambda tmp: np.zeros(16, np.uint8), "bad-array"),
    "damaged-tiff": (lambda tmp: damaged_tiff(), "truncated"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_gives_a_typed_readable_error(tmp_path, case):
    make, kind = BAD_INPUTS[case]
    with pytest.raises(ImageError) as error:
        load_image(make(tmp_path), name="photo.jpg")
    assert error.value.kind == kind
    message = str(error.value)
    assert "Traceback" not in message and len(message) < 300
    assert "photo.jpg" in message or "image" in message.lower() or "array" in message.lower()
