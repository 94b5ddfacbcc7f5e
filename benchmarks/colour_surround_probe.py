"""Probe: the colour-statistics map alone, with and without its surround statistics, on the validation categories.

    python benchmarks/colour_surround_probe.py [--categories stone flange weave mesh label] [--surround 0 24 48]

The shipped ``ColourStatistics`` (4-px window, 8 x 8 cells) is fitted on a validation category's training images
and scored alone: image score the mean of the top 0.25 % of its map, as the models pool, and pixel AUROC of the map;
image AUROC per defect kind. ``--surround`` gives the wide windows to try (``colour_surround_sigma_px``; 0: the
plain statistics). Validation categories only (results/validation/<category>, built from train/good): never a test
split. What it measured, and what the whole model made of it: docs/selection.md, nineteenth run.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sample_sets import REPO, category_root, load_test_set, load_train_images, test_kinds

from ganad_plugin.edge.metrics import auroc
from ganad_plugin.models.components.colour_statistics import ColourStatistics
from ganad_plugin.validation_set import build_validation_category

TOP_FRACTION = 0.0025


def score(category: str, surround: float) -> dict[str, float]:
    """Image and pixel AUROC of the colour map alone on ``category``'s validation, and image AUROC per kind."""
    validation = build_validation_category(category_root(category), REPO / "results" / "validation" / category)
    train = load_train_images(validation, 10**6, 256)
    test, labels, masks = load_test_set(validation, 10**6, 256)
    kinds = test_kinds(validation, 10**6)
    colour = ColourStatistics(test.shape[1], 4.0, 8, surround)
    with torch.inference_mode():
        colour.fit(train.split(8))
        maps = torch.cat([colour(batch) for batch in test.split(8)])[:, 0].numpy()
    flat = maps.reshape(len(maps), -1)
    top = max(1, int(flat.shape[1] * TOP_FRACTION))
    images = np.sort(flat, axis=1)[:, -top:].mean(axis=1)
    found = {"image": auroc(images, labels), "pixel": auroc(maps, masks)}
    for kind in sorted(set(kinds) - {"good"}):
        chosen = (kinds == kind) | (kinds == "good")
        found[kind] = auroc(images[chosen], labels[chosen])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categories", nargs="*", default=["stone", "flange", "weave", "mesh", "label"])
    parser.add_argument("--surround", nargs="*", type=float, default=[0.0, 24.0, 48.0])
    args = parser.parse_args()
    means: dict[float, list[tuple[float, float]]] = {surround: [] for surround in args.surround}
    for category in args.categories:
        for surround in args.surround:
            found = score(category, surround)
            means[surround].append((found["image"], found["pixel"]))
            print(f"{category:7s} surround {surround:4g} px  " + "  ".join(f"{k} {v:.2f}" for k, v in found.items()),
                  flush=True)
    for surround, pairs in means.items():
        image, pixel = np.mean(pairs, axis=0)
        print(f"mean over {len(pairs)} categories, surround {surround:g} px: image {image:.3f}, pixel {pixel:.3f}")


if __name__ == "__main__":
    main()
