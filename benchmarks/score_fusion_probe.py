"""Probe: fuse the evidence maps' image scores rather than take the image score of the fused map?

    python benchmarks/score_fusion_probe.py [--models GANomaly EGBAD AnoGAN] [--categories weave flange stone]

The shipped image score is the mean of the top 0.25 % of the anomaly map, itself the weighted mean of the
standardised evidence maps. A small defect that stands out in one map only (a defect head's peak) is then diluted by
that map's share of the weights, while the other maps' normal noise adds up elsewhere; on flange's validation the pair
of heads alone scores image AUROC 0.96 and the whole model 0.94 (``docs/selection.md``, seventeenth run). Here each
standardised map gets its own top-0.25 % score, those scores are standardised on the calibration images (the
held-out training images) and combined with the shipped fitted weights: by their weighted mean (``fused mean``), or
their weighted mean plus the largest (``fused mean+max``). The anomaly maps, and so pixel AUROC, are unchanged.

Reads what ``benchmarks/selection.py`` cached (``probe_maps.py``); the validation categories only, never a test split.
Prints image AUROC per category, per map alone and per rule, and each rule's mean over the categories.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from probe_maps import ShippedMaps, image_scores, shipped

from ganad_plugin.edge.metrics import auroc
from ganad_plugin.models.components.scoring import image_score

RULES = ("shipped", "fused mean", "fused mean+max")


def per_map_scores(found: ShippedMaps, maps: torch.Tensor) -> torch.Tensor:
    """Raw maps [N, E', H, W] -> each standardised map's top-fraction score [N, E]."""
    standardised = found.scorer.calibration.standardise(found.smoothed(maps))
    fraction = found.evidence.score_top_fraction
    return torch.stack([image_score(standardised[:, [e]], fraction) for e in range(standardised.shape[1])], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["GANomaly", "EGBAD", "AnoGAN"])
    parser.add_argument("--categories", nargs="*", default=["weave", "flange", "stone"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    means: dict[tuple[str, str], list[float]] = {}
    for model_name in args.models:
        for category in args.categories:
            found = shipped(model_name, category)
            names = list(found.evidence.active())
            weights = found.scorer.calibration.fitted_weights
            with torch.inference_mode():
                normal, test = per_map_scores(found, found.calibration), per_map_scores(found, found.maps)
            z = ((test - normal.mean(dim=0)) / normal.std(dim=0).clamp_min(1e-6)).numpy()
            fused = z @ weights.numpy()
            rules = {"shipped": image_scores(found, found.maps), "fused mean": fused,
                     "fused mean+max": fused + z.max(axis=1)}
            alone = ", ".join(f"{name} {auroc(z[:, i], found.labels):.3f}" for i, name in enumerate(names))
            line = f"{model_name:9s} {category:7s} " + " ".join(
                f"{rule} {auroc(score, found.labels):.3f}" for rule, score in rules.items())
            print(f"{line} | alone: {alone} | weights " + ", ".join(f"{w:.2f}" for w in weights.tolist()), flush=True)
            for rule, score in rules.items():
                means.setdefault((model_name, rule), []).append(auroc(score, found.labels))
    print("\nmean image AUROC over the categories (pixel AUROC unchanged: the maps are the shipped ones)")
    for (model_name, rule), values in means.items():
        print(f"{model_name:9s} {rule:15s} {np.mean(values):.3f}  ({', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
