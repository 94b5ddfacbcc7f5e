"""Probe, not shipped: how far a plain local colour-statistics map gets on the validation categories.

    python benchmarks/colour_statistics_probe.py [stone mesh label weave flange]

Each place's local colour mean and spread (box window of 9, 17, 33 px, per channel) is compared with the
distribution of the same statistics over the validation category's training images (one mean and covariance for
the whole image: a stationary-texture model) by Mahalanobis distance; image score the mean of the top 0.25 %, as
the models pool. Scored on the validation categories that ``benchmarks/selection.py`` builds from train/good alone
(results/validation/<category>, built by that script first). It tells whether such a map is worth adding to the
evidence, and where (docs/selection.md, "What the second run shows").
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from ganad_plugin.edge.images import list_images, read_rgb
from ganad_plugin.edge.metrics import auroc

REPO = Path(__file__).resolve().parents[1]
WINDOWS = (9, 17, 33)


def local_statistics(image: np.ndarray, window: int) -> np.ndarray:
    """[H, W, 3] uint8 -> [H, W, 6]: local mean and standard deviation of each channel, in [0, 1] units."""
    x = image.astype(np.float32) / 255
    mean = cv2.blur(x, (window, window))
    spread = np.sqrt(np.clip(cv2.blur(x * x, (window, window)) - mean * mean, 0, None))
    return np.concatenate([mean, spread], -1)


def score_category(root: Path, window: int) -> tuple[float, float]:
    """Image and pixel AUROC of the colour-statistics map on one validation category."""
    train = [local_statistics(read_rgb(p), window)[::4, ::4].reshape(-1, 6) for p in list_images(root / "train" / "good")]
    features = np.concatenate(train)
    centre = features.mean(0)
    inverse = np.linalg.inv(np.cov(features.T) + 1e-6 * np.eye(6))
    scores, labels, maps, masks = [], [], [], []
    for kind in sorted(p.name for p in (root / "test").iterdir()):
        for path in list_images(root / "test" / kind):
            offset = local_statistics(read_rgb(path), window) - centre
            distance = np.sqrt(np.einsum("hwi,ij,hwj->hw", offset, inverse, offset))
            top = np.sort(distance.ravel())[-max(1, int(0.0025 * distance.size)) :]
            scores.append(top.mean())
            labels.append(kind != "good")
            maps.append(distance[::2, ::2])
            if kind == "good":
                masks.append(np.zeros_like(maps[-1], bool))
            else:
                mask = cv2.imread(str(root / "ground_truth" / kind / f"{path.stem}_mask.png"), cv2.IMREAD_GRAYSCALE)
                masks.append(cv2.resize(mask, distance.shape[::-1])[::2, ::2] > 127)
    return auroc(np.array(scores), np.array(labels)), auroc(np.stack(maps), np.stack(masks))


def main() -> None:
    categories = sys.argv[1:] or ["stone", "mesh", "label", "weave", "flange"]
    for category in categories:
        root = REPO / "results" / "validation" / category
        if not (root / "train" / "good").is_dir():
            sys.exit(f"{root} is missing: run python benchmarks/selection.py --categories {category} first")
        for window in WINDOWS:
            image, pixel = score_category(root, window)
            print(f"{category:7s} window {window:2d} px: image AUROC {image:.3f}  pixel AUROC {pixel:.3f}", flush=True)


if __name__ == "__main__":
    main()
