"""Probe: other defect heads in the shipped model, scored on validation built from training images.

    python benchmarks/head_variant_probe.py [--variants skip wide steps1.5] [--models ...] [--categories ...]

The pair of defect heads is the strongest single evidence on every validation category but the random texture
(``score_fusion_probe.py``), and a head does not see the GAN: a variant of it is trained once per category and
scored in every model. Variants (each a pair from seeds 0 and 1, weights averaged with decay 0.99, as shipped):
- ``skip``: a 3 x 3 convolution of the full-resolution first layer's features added to the upsampled logits, so that
  a thin scratch's response is not only what survives a quarter of the resolution;
- ``wide``: inner width 48 instead of 32 (about twice the head's training time);
- ``steps1.5``: 1.5 times the training batches (the sixteenth run found half of them far worse).
Heads are cached under results/probe/heads/. Reads the selection run's caches (``probe_maps.py``); validation
categories only, never a test split. Prints image / pixel AUROC per model and category and their means.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

import numpy as np
import selection
import torch
from probe_maps import image_scores, shipped
from sample_sets import REPO, category_root, load_test_set, load_train_images
from torch import nn
from torch.nn import functional as F

from ganad_plugin.edge.metrics import auroc
from ganad_plugin.models.components import defect_head
from ganad_plugin.models.components.defect_head import DefectHead
from ganad_plugin.validation_set import build_validation_category


class SkipHead(DefectHead):
    """The shipped head plus a full-resolution path: a 3 x 3 convolution of its first layer's features, added to the
    upsampled logits."""

    def __init__(self, channels: int, width: int = 32, reference: bool = False) -> None:
        super().__init__(channels, width, reference)
        self.fine = nn.Conv2d(width // 2, 1, 3, padding=1)

    def forward(self, images: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        first = self.body[0](images * 2 - 1)
        logits = self.logit(self.body[1:](first))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False) + self.fine(first)


class WideHead(DefectHead):
    def __init__(self, channels: int, width: int = 48, reference: bool = False) -> None:
        super().__init__(channels, 48, reference)


@contextlib.contextmanager
def variant(name: str) -> Iterator[int]:
    """Patch the head class (and the step cap) for ``name``; yields the factor on the shipped steps."""
    head_class, cap = selection.DefectHead, defect_head.STEPS_PER_IMAGE
    factor = 1.0
    if name == "skip":
        selection.DefectHead = SkipHead
    elif name == "wide":
        selection.DefectHead = WideHead
    elif name == "steps1.5":
        factor = 1.5
        defect_head.STEPS_PER_IMAGE = int(cap * factor)
    else:
        msg = f"unknown variant {name!r}"
        raise ValueError(msg)
    try:
        yield factor
    finally:
        selection.DefectHead, defect_head.STEPS_PER_IMAGE = head_class, cap


def heads_of(name: str, category: str) -> tuple[torch.Tensor, ...]:
    """The variant's pair of heads' maps on ``category`` (calibration images, test images, drawn defects)."""
    validation = build_validation_category(category_root(category), REPO / "results" / "validation" / category)
    train = load_train_images(validation, 10**6, 256)
    test = load_test_set(validation, 10**6, 256)[0]
    drawn, _ = selection.drawn_defects(train)
    members = []
    for seed in (0, 1):
        cache = REPO / "results" / "probe" / "heads" / name / category / f"seed{seed}.pt"
        if cache.is_file():
            members.append(torch.load(cache))
            continue
        with variant(name) as factor:
            steps = min(int(800 * factor), defect_head.STEPS_PER_IMAGE
                        * len([i for i in range(len(train[:256])) if i % 4 != 3]))
            found = selection.defect_evidence(steps, train, test, seed=seed, extra=drawn, average=0.99)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(found, cache)
        members.append(found)
    return tuple(torch.stack(maps).mean(dim=0) for maps in zip(*members, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="*", default=["skip", "wide", "steps1.5"])
    parser.add_argument("--models", nargs="*", default=["GANomaly", "EGBAD", "AnoGAN"])
    parser.add_argument("--categories", nargs="*", default=["weave", "flange", "stone"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    means: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for category in args.categories:
        maps = {"shipped": None} | {name: heads_of(name, category) for name in args.variants}
        for model_name in args.models:
            line = f"{model_name:9s} {category:7s}"
            for name, defect in maps.items():
                found = shipped(model_name, category, defect)
                with torch.inference_mode():
                    anomaly = torch.cat([found.scorer(found.maps[i : i + 8])[1] for i in range(0, len(found.maps), 8)])
                image = auroc(image_scores(found, found.maps), found.labels)
                pixel = auroc(anomaly[:, 0].numpy(), found.masks)
                heads_alone = auroc(found.maps[:, -1].flatten(1).max(dim=1).values.numpy(), found.labels)
                means.setdefault((model_name, name), []).append((image, pixel))
                line += f" | {name} {image:.3f} / {pixel:.3f} (heads alone {heads_alone:.3f})"
            print(line, flush=True)
    print("\nmean image / pixel AUROC over the categories")
    for (model_name, name), values in means.items():
        image, pixel = np.mean(values, axis=0)
        print(f"{model_name:9s} {name:9s} {image:.3f} / {pixel:.3f}  "
              f"({', '.join(f'{i:.3f} / {p:.3f}' for i, p in values)})")


if __name__ == "__main__":
    main()
