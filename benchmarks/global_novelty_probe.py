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
import dataclasses

import numpy as np
import torch
from sample_sets import REPO, category_root, load_test_set, load_train_images, newest_first
from selection import VARIANTS, colour_evidence, drawn_defects, trained_network
from torch.nn import functional as F

from ganad_plugin.edge.metrics import auroc
from ganad_plugin.models.components.scoring import AnomalyScorer
from ganad_plugin.models.components.settings import Evidence
from ganad_plugin.validation_set import build_validation_category

SHIPPED = "current, head averaged 0.99, head pair 0+1"
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


def shipped_scores(maps: tuple[torch.Tensor, torch.Tensor], drawn_maps: torch.Tensor, drawn_masks: torch.Tensor,
                   evidence: Evidence, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The shipped image scores of the calibration images and of the test images (``selection.score_variant``)."""
    active = evidence.active()
    scorer = AnomalyScorer(
        signed=tuple(name == "residual" for name in active),
        channels=tuple(channels if name == "residual" else 1 for name in active),
        weights=tuple(active.values()), smoothing_sigma_px=evidence.smoothing_sigma_px,
        background_sigma_px=evidence.background_sigma_px, score_top_fraction=evidence.score_top_fraction,
        position_cells=evidence.position_cells, position_border_px=evidence.position_border_px,
        position_spread=evidence.position_spread, weights_from_defects=evidence.weights_from_defects)
    with torch.inference_mode():
        scorer.calibration.fit(scorer.smooth(maps[0]))
        scorer.calibration.fit_weights(scorer.smooth(drawn_maps), drawn_masks)
        return tuple(torch.cat([scorer(m[i : i + 8])[0] for i in range(0, len(m), 8)]).numpy() for m in maps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["GANomaly"])
    parser.add_argument("--categories", nargs="*", default=["weave", "flange", "stone", "mesh", "label"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    settings = dict(VARIANTS[SHIPPED])
    for name in ("head_seed", "head_seeds", "head_average"):
        settings.pop(name)
    evidence = dataclasses.replace(Evidence(), **settings)
    results: dict[tuple[str, str, float], list[float]] = {}
    for model_name in args.models:
        for category in args.categories:
            validation = build_validation_category(category_root(category), REPO / "results" / "validation" / category)
            out = REPO / "results" / "selection" / "seed0" / model_name.lower() / category / "bf16_training"
            heads = REPO / "results" / "selection" / "seed0" / "heads" / category
            train = load_train_images(validation, 10**6, 256)
            test, labels, _ = load_test_set(validation, 10**6, 256)
            checkpoint = torch.load(newest_first(out)[0], map_location="cpu", weights_only=False)
            net = trained_network(model_name, checkpoint["state_dict"], checkpoint["hyper_parameters"]["network"],
                                  evidence)
            raw = torch.load(out / "raw_evidence_True_0.0.pt")
            drawn_raw = torch.load(out / "drawn_raw_evidence_True_0.0_16384_flat_1.pt")
            steps = min(evidence.defect_steps, 12 * len([i for i in range(len(train[:256])) if i % 4 != 3]))
            members = [torch.load(heads / f"defect_evidence_{steps}_bf16_seed{seed}_average0.99_drawn.pt")
                       for seed in (0, 1)]
            defect = tuple(torch.stack(m).mean(dim=0) for m in zip(*members, strict=True))
            drawn_images, drawn_masks = drawn_defects(train)
            colour = colour_evidence(evidence.colour_sigma_px, evidence.colour_cells, train, test)
            drawn_colour = colour_evidence(evidence.colour_sigma_px, evidence.colour_cells, train, drawn_images)[1]
            maps = tuple(torch.cat(parts, dim=1) for parts in zip(raw, colour, defect[:2], strict=True))
            drawn_maps = torch.cat([drawn_raw, drawn_colour, defect[2]], dim=1)
            calibration_scores, test_scores = shipped_scores(maps, drawn_maps, drawn_masks, evidence, test.shape[1])
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
