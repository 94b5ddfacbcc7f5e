"""Reading inspection images for the edge runtime: any of PNG, JPEG, BMP, TIFF; grey, colour or with alpha."""

from __future__ import annotations

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
    if path.stat().st_size == 0:
        msg = f"{path}: empty file"
        raise InputError(msg)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        msg = f"{path}: not a readable image (corrupt or truncated?)"
        raise InputError(msg)
    return to_rgb(image, str(path))


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


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted; raises ``InputError`` when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        msg = f"{folder}: not a folder"
        raise InputError(msg)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        msg = f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found"
        raise InputError(msg)
    return files
