"""Defect regions from an anomaly mask, and overlays a person can look at."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np


class Scored(Protocol):
    """What an overlay shows of a result (``runtime.ImageResult`` has these)."""

    score: float
    label: bool
    anomaly_map: np.ndarray
    mask: np.ndarray


def find_regions(mask: np.ndarray, anomaly_map: np.ndarray, min_area_px: int = 16) -> list[dict]:
    """Connected components of ``mask`` [H, W] bool with at least ``min_area_px`` pixels.

    Each region: ``bbox`` [x, y, w, h] and ``area`` in pixels, ``peak_score`` (max of ``anomaly_map`` inside).
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    regions = []
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area < min_area_px:
            continue
        peak = float(anomaly_map[labels == label].max())
        regions.append({"bbox": [x, y, w, h], "area": area, "peak_score": round(peak, 4)})
    return sorted(regions, key=lambda region: -region["peak_score"])


def overlay(image_rgb: np.ndarray, anomaly_map: np.ndarray, mask: np.ndarray, score: float, label: bool) -> np.ndarray:
    """Heat map blended on the image, mask outlines, and the verdict; returns BGR uint8 for ``cv2.imwrite``.

    ``anomaly_map`` is the normalised map (threshold at 0.5), at the image's size.
    """
    heat = cv2.applyColorMap(np.clip(anomaly_map * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    blended = cv2.addWeighted(bgr, 0.6, heat, 0.4, 0)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(blended, contours, -1, (255, 255, 255), 1)
    verdict = "NG" if label else "OK"
    colour = (0, 0, 255) if label else (0, 200, 0)
    scale = max(0.4, image_rgb.shape[1] / 600)
    cv2.putText(blended, f"{verdict} {score:.2f}", (5, int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 2)
    return np.hstack([bgr, blended])


def save_overlay(target: Path, image_rgb: np.ndarray, result: Scored) -> None:
    """Write ``overlay`` of ``result`` on ``image_rgb`` to ``target`` (PNG), creating its folder. The file appears
    whole or not at all (written beside it, then renamed), so a full disk leaves no half picture."""
    target.parent.mkdir(parents=True, exist_ok=True)
    picture = overlay(image_rgb, result.anomaly_map, result.mask, result.score, result.label)
    encoded, data = cv2.imencode(".png", picture)
    if not encoded:
        msg = f"could not encode overlay {target}"
        raise OSError(msg)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_bytes(data.tobytes())
        os.replace(partial, target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        msg = f"could not write overlay {target}: {error.strerror or error}"
        raise OSError(error.errno, msg) from error
