"""Reading inspection images for the edge runtime: any of PNG, JPEG, BMP, TIFF; grey, colour or with alpha."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class InputError(ValueError):
    """An input image that cannot be used; the message names the file and what is wrong."""


def read_rgb(path: str | Path) -> np.ndarray:
    """Read ``path`` as RGB uint8 [H, W, 3]; grey is replicated, alpha dropped, 16-bit scaled to 8."""
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: no such file"
        raise InputError(msg)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        msg = f"{path}: unsupported extension {path.suffix!r}; expected one of {sorted(IMAGE_SUFFIXES)}"
        raise InputError(msg)
    image = decode_file(path)
    return to_rgb(image, str(path))


def decode_file(path: Path) -> np.ndarray:
    """The pixels of an image file as stored (OpenCV's channel order, 8 or 16 bits); ``InputError`` naming the file
    when it cannot be read, is empty, incomplete (``incomplete``) or does not decode. One read: the bytes checked are
    the bytes decoded."""
    try:
        data = path.read_bytes()
    except OSError as error:
        msg = f"{path}: cannot be read ({error.strerror or error})"
        raise InputError(msg) from error
    if not data:
        msg = f"{path}: empty file"
        raise InputError(msg)
    problem = incomplete(data, path.suffix.lower())
    if problem:
        msg = f"{path}: {problem}"
        raise InputError(msg)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        msg = f"{path}: not a readable image (corrupt or truncated?)"
        raise InputError(msg)
    return image


def incomplete(data: bytes, suffix: str) -> str | None:
    """Why a PNG, JPEG or BMP file's bytes are not a whole image (a truncated file, or one still being written
    into a pre-allocated space), or None. OpenCV decodes such files partly and only warns."""
    body = data.rstrip(b"\0")  # a pre-allocating writer fills with zeros what it has not written yet
    if suffix == ".png":
        if not body.startswith(b"\x89PNG\r\n\x1a\n"):
            return "not a PNG file (no PNG signature)"
        if not body.endswith(b"IEND\xaeB`\x82"):
            return "truncated PNG (no IEND chunk at the end): the file is incomplete or still being written"
    elif suffix in (".jpg", ".jpeg"):
        if not body.startswith(b"\xff\xd8"):
            return "not a JPEG file (no start-of-image marker)"
        # FF D9 cannot occur inside the entropy-coded data (FF is stuffed there), so its absence near the end
        # means the file stops inside the image
        if b"\xff\xd9" not in body[-1024:]:
            return "truncated JPEG (no end-of-image marker): the file is incomplete or still being written"
    elif suffix == ".bmp" and len(data) >= 6:
        declared = int.from_bytes(data[2:6], "little")
        if data[:2] == b"BM" and declared > len(data):
            return f"truncated BMP ({len(data)} of the {declared} bytes its header declares)"
    return None


def to_rgb(image: np.ndarray, name: str = "image", bgr: bool = True) -> np.ndarray:
    """Any OpenCV image (grey, BGR, BGRA; 8 or 16 bit) -> RGB uint8 [H, W, 3]."""
    if image.dtype == np.uint16:
        image = (image / 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        msg = f"{name}: unsupported pixel type {image.dtype}; expected 8- or 16-bit"
        raise InputError(msg)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        msg = f"{name}: unsupported shape {image.shape}; expected grey, 3-channel or 4-channel"
        raise InputError(msg)
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if bgr else image


def image_paths(folder: Path) -> list[Path]:
    """Image files under ``folder``, sorted, following symlinked sub-folders (each real folder once, so a link
    loop ends); files that vanish while listed are left out."""
    found, visited = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in visited:
            dirs.clear()
            continue
        visited.add(real)
        dirs.sort()
        found.extend(Path(root) / name for name in files if Path(name).suffix.lower() in IMAGE_SUFFIXES)
    return sorted(path for path in found if path.is_file())


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive, symlinked sub-folders too), sorted; ``InputError`` when none."""
    folder = Path(folder)
    if not folder.is_dir():
        msg = f"{folder}: not a folder"
        raise InputError(msg)
    files = image_paths(folder)
    if not files:
        msg = f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found"
        raise InputError(msg)
    return files
