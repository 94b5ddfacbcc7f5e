"""Probe, not shipped: whether a hand-made line filter finds the thin scratches the models miss on random textures.

    python benchmarks/line_filter_probe.py [stone flange ...]

On the validation categories that ``benchmarks/selection.py`` builds from train/good alone (results/validation/
<category>, built by that script first), each image's grey level gets two training-free line maps, each a
maximum over 12 orientations:

- *ridge*: the second derivative across the orientation (Gaussian pre-blur ``sigma`` px), averaged along a line of
  ``length`` px in the orientation, absolute value (dark and bright lines alike);
- *opening*: a grey opening with a line of ``length`` px (the darkest or brightest value a line of that length
  fits inside), less what a 5 px disc opening or the 6 px local mean keeps: a blob shorter than the line drops out.

Each map is smoothed (2 px), standardised by its mean and spread over 24 training images, and scored per kind as
the models score (image AUROC: the mean of the top 0.25 % of a map; pixel AUROC), 10 px of border left out. It tells
whether such a map is worth adding to the evidence (docs/selection.md, "What the line filters show").
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from ganad_plugin.edge.images import list_images, read_rgb
from ganad_plugin.edge.metrics import auroc

REPO = Path(__file__).resolve().parents[1]
ORIENTATIONS = 12
BORDER_PX = 10
TOP_FRACTION = 0.0025
# (map, line length px, pre-blur px): the ridge at two scales and lengths, the opening at two lengths
SETTINGS = (("ridge", 15, 1.0), ("ridge", 45, 0.7), ("opening", 15, 0.7), ("opening", 25, 0.7))


@cache
def line_kernels(length: int) -> list[np.ndarray]:
    """One line of ``length`` px per orientation, drawn 1 px wide on a square ``length`` a side (uint8)."""
    centre = length // 2
    kernels = []
    for k in range(ORIENTATIONS):
        angle = np.pi * k / ORIENTATIONS
        dx, dy = centre * np.cos(angle), centre * np.sin(angle)
        kernel = np.zeros((length, length), np.uint8)
        cv2.line(kernel, (round(centre - dx), round(centre - dy)), (round(centre + dx), round(centre + dy)), 1, 1)
        kernels.append(kernel)
    return kernels


def ridge_map(grey: np.ndarray, length: int) -> np.ndarray:
    xx, yy = cv2.Sobel(grey, cv2.CV_32F, 2, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 2, ksize=3)
    xy = cv2.Sobel(grey, cv2.CV_32F, 1, 1, ksize=3)
    best = np.zeros_like(grey)
    for k, kernel in enumerate(line_kernels(length)):
        s, c = np.sin(np.pi * k / ORIENTATIONS), np.cos(np.pi * k / ORIENTATIONS)
        across = xx * s * s - 2 * xy * s * c + yy * c * c  # the second derivative normal to the line
        best = np.maximum(best, np.abs(cv2.filter2D(across, -1, kernel.astype(np.float32) / kernel.sum())))
    return best


def opening_map(grey: np.ndarray, length: int) -> np.ndarray:
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    def bright_lines(image: np.ndarray) -> np.ndarray:
        lines = np.max([cv2.morphologyEx(image, cv2.MORPH_OPEN, k) for k in line_kernels(length)], axis=0)
        blobs = np.maximum(cv2.morphologyEx(image, cv2.MORPH_OPEN, disc), cv2.GaussianBlur(image, (0, 0), 6))
        return lines - blobs

    return np.maximum(bright_lines(grey), bright_lines(1 - grey))


def line_map(path: Path, kind: str, length: int, blur_px: float) -> np.ndarray:
    grey = cv2.GaussianBlur(read_rgb(path).astype(np.float32).mean(axis=2) / 255, (0, 0), blur_px)
    raw = ridge_map(grey, length) if kind == "ridge" else opening_map(grey, length)
    return cv2.GaussianBlur(raw, (0, 0), 2)[BORDER_PX:-BORDER_PX, BORDER_PX:-BORDER_PX]


def top_mean(standardised: np.ndarray) -> float:
    values = np.sort(standardised.ravel())
    return float(values[-max(1, round(TOP_FRACTION * values.size)) :].mean())


def score_category(root: Path, setting: tuple[str, int, float]) -> dict[str, tuple[float, float]]:
    """{defect kind: (image AUROC, pixel AUROC)} of one line map on one validation category."""
    train = np.stack([line_map(p, *setting) for p in list_images(root / "train" / "good")[:24]])
    mean, spread = train.mean(), train.std()
    good = [(line_map(p, *setting) - mean) / spread for p in list_images(root / "test" / "good")]
    kinds = sorted(p.name for p in (root / "test").iterdir() if p.name != "good")
    results = {}
    for kind in kinds:
        paths = list_images(root / "test" / kind)
        maps = [(line_map(p, *setting) - mean) / spread for p in paths]
        masks = [cv2.imread(str(root / "ground_truth" / kind / f"{p.stem}_mask.png"), cv2.IMREAD_GRAYSCALE) > 127
                 for p in paths]
        masks = [m[BORDER_PX:-BORDER_PX, BORDER_PX:-BORDER_PX] for m in masks] + [np.zeros_like(good[0], bool)] * len(good)
        labels = np.r_[np.zeros(len(good)), np.ones(len(maps))]
        image = auroc(np.array([top_mean(m) for m in good + maps]), labels)
        results[kind] = (image, auroc(np.stack(maps + good), np.stack(masks)))
    return results


def main(categories: list[str]) -> None:
    print("| category | map | line px | blur px | per defect kind: image / pixel AUROC |")
    print("|---|---|---|---|---|")
    for category in categories:
        root = REPO / "results" / "validation" / category
        if not root.is_dir():
            sys.exit(f"{root} not found: build it with python benchmarks/selection.py --categories {category}")
        for setting in SETTINGS:
            results = score_category(root, setting)
            cells = ", ".join(f"{kind} {image:.2f} / {pixel:.2f}" for kind, (image, pixel) in results.items())
            print(f"| {category} | {setting[0]} | {setting[1]} | {setting[2]} | {cells} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["stone"])
