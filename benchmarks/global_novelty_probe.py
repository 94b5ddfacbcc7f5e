"""Probe: does an image-level novelty term help the line detectors on validation built from training images?

    python benchmarks/global_novelty_probe.py [--models GANomaly] [--categories weave flange stone mesh label]

The default configs score an image by its most unusual places (the top 0.25 % of the anomaly map). An image whose
places are each normal but whose whole is not (a held-out digit class made of strokes every digit shares; on a
line, a wrong part variant or a large faint change spread over the image) has no such place. This probe adds, to
the shipped image score, the distance of the image's whole description to its nearest normal training image's
(SPADE's first stage, Cohen and Hoshen 2020, on the model's own encoder instead of a pretrained one): the encoder's
features at every place (``dense_features``), each of unit length, averaged over the image (``mean``) or their mean
and spread per channel (``mean+spread``); the distance 1 - cos to the nearest of the memory's training images'
descriptions; standardised on the held-out training images that calibrate the maps. Score: the shipped image score,
itself standardised on those held-out images, plus ``w`` times that distance. The maps (pixel AUROC) are unchanged.

Reads the checkpoints and caches that ``benchmarks/selection.py`` left for the shipped variant ("current, head
averaged 0.99, head pair 0+1"; run it first with that variant), and the validation categories' held-back images
only: never a test split. Prints image AUROC per category and weight, and their mean.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from probe_maps import image_scores, shipped
from torch.nn import functional as F

from ganad_plugin.edge.metrics import auroc

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def descriptions(net: torch.nn.Module, images: torch.Tensor, kind: str) -> torch.Tensor:
    """Images [N, C, H, W] -> their whole-image descriptions [N, D], unit length."""
    with torch.inference_mode():
        features = torch.cat([F.normalize(net.dense_features(chunk), dim=1) for chunk in images.split(8)])
    parts = [features.mean(dim=(2, 3))]
    if kind == "mean+spread":
        parts.append(features.std(dim=(2, 3)))
    return F.normalize(torch.cat(parts, dim=1), dim=1)


def nearest_distance(queries: torch.Tensor, bank: torch.Tensor) -> np.ndarray:
    return (1 - (queries @ bank.T).max(dim=1).values).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["GANomaly"])
    parser.add_argument("--categories", nargs="*", default=["weave", "flange", "stone", "mesh", "label"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    results: dict[tuple[str, str, float], list[float]] = {}
    for model_name in args.models:
        for category in args.categories:
            found = shipped(model_name, category)
            net, train, test, labels = found.net, found.train, found.test, found.labels
            calibration_scores, test_scores = image_scores(found, found.calibration), image_scores(found, found.maps)
            level, spread = calibration_scores.mean(), calibration_scores.std() + 1e-6
            first = train[:256]
            memory_images = first[[i for i in range(len(first)) if i % 4 != 3]]
            line = f"{model_name:9s} {category:7s} shipped {auroc(test_scores, labels):.3f}"
            for kind in ("mean", "mean+spread"):
                bank = descriptions(net, memory_images, kind)
                calibration = nearest_distance(descriptions(net, first[3::4], kind), bank)
                novelty = (nearest_distance(descriptions(net, test, kind), bank) - calibration.mean()) / (
                    calibration.std() + 1e-6)
                line += f" | {kind}: alone {auroc(novelty, labels):.3f}"
                for weight in WEIGHTS:
                    value = auroc((test_scores - level) / spread + weight * novelty, labels)
                    results.setdefault((model_name, kind, weight), []).append(value)
                    line += f" w{weight:g} {value:.3f}"
            print(line, flush=True)
    print("\nmean image AUROC over the categories (pixel AUROC unchanged: the maps are the shipped ones)")
    for (model_name, kind, weight), values in results.items():
        print(f"{model_name:9s} {kind:12s} w {weight:<5g} {np.mean(values):.3f}  ({', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
