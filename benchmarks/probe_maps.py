"""The shipped model's evidence on a validation category, from what ``benchmarks/selection.py`` cached: for probes.

``shipped(model, category)`` reads the selection run's checkpoint (its ``bf16 training`` fit, the config on a CPU
with bf16 units), its cached network maps and the category's cached pair of defect heads (the shipped variant
"current, head averaged 0.99, head pair 0+1"; run ``selection.py`` with that variant and ``--training 'bf16
training'`` first), refits the colour statistics, and fits the shipped scorer (scales and weights) as ``fit_normal``
does. Only the validation category's held-back images are scored: never a test split.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from sample_sets import REPO, category_root, load_test_set, load_train_images, newest_first, test_kinds
from selection import VARIANTS, colour_evidence, drawn_defects, evidence_scorer, trained_network

from ganad_plugin.models.components.scoring import AnomalyScorer
from ganad_plugin.models.components.settings import Evidence
from ganad_plugin.validation_set import build_validation_category

SHIPPED = "current, head averaged 0.99, head pair 0+1"


@dataclass
class ShippedMaps:
    """One model's evidence on one validation category, with the shipped scorer fitted to it."""

    evidence: Evidence
    net: torch.nn.Module  # the trained networks (memory, colour and heads not refilled)
    train: torch.Tensor  # the validation category's training images [N, C, H, W] in [0, 1]
    test: torch.Tensor  # its held-back images, good and with drawn defects
    labels: np.ndarray  # [T] True where a defect was drawn
    masks: np.ndarray  # [T, H, W]
    kinds: np.ndarray  # [T] the defect kind ("good" for none)
    calibration: torch.Tensor  # raw maps of the held-out training images that calibrate [K, E', H, W]
    maps: torch.Tensor  # raw maps of the test images [T, E', H, W]
    scorer: AnomalyScorer  # fitted: scales on ``calibration``, weights on the drawn defects

    def smoothed(self, maps: torch.Tensor) -> torch.Tensor:
        """Raw maps -> the scorer's smoothed maps, one per evidence [N, E, H, W]."""
        with torch.inference_mode():
            return torch.cat([self.scorer.smooth(maps[i : i + 8]) for i in range(0, len(maps), 8)])


def shipped(model_name: str, category: str,
            defect: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> ShippedMaps:
    """``model_name``'s shipped evidence on ``category``'s validation; ``defect``: other defect maps in place of the
    cached pair of heads' (of the calibration images, the test images and the drawn defects, as
    ``selection.defect_evidence`` returns them)."""
    settings = dict(VARIANTS[SHIPPED])
    for name in ("head_seed", "head_seeds", "head_average"):
        settings.pop(name)
    evidence = dataclasses.replace(Evidence(), **settings)
    validation = build_validation_category(category_root(category), REPO / "results" / "validation" / category)
    out = REPO / "results" / "selection" / "seed0" / model_name.lower() / category / "bf16_training"
    heads = REPO / "results" / "selection" / "seed0" / "heads" / category
    train = load_train_images(validation, 10**6, 256)
    test, labels, masks = load_test_set(validation, 10**6, 256)
    checkpoint = torch.load(newest_first(out)[0], map_location="cpu", weights_only=False)
    net = trained_network(model_name, checkpoint["state_dict"], checkpoint["hyper_parameters"]["network"], evidence)
    raw = torch.load(out / "raw_evidence_True_0.0.pt")
    drawn_raw = torch.load(out / "drawn_raw_evidence_True_0.0_16384_flat_1.pt")
    steps = min(evidence.defect_steps, 12 * len([i for i in range(len(train[:256])) if i % 4 != 3]))
    if defect is None:
        members = [torch.load(heads / f"defect_evidence_{steps}_bf16_seed{seed}_average0.99_drawn.pt")
                   for seed in (0, 1)]
        defect = tuple(torch.stack(m).mean(dim=0) for m in zip(*members, strict=True))
    drawn_images, drawn_masks = drawn_defects(train)
    colour = colour_evidence(evidence.colour_sigma_px, evidence.colour_cells, train, test)
    drawn_colour = colour_evidence(evidence.colour_sigma_px, evidence.colour_cells, train, drawn_images)[1]
    calibration, maps = (torch.cat(parts, dim=1) for parts in zip(raw, colour, defect[:2], strict=True))
    drawn_maps = torch.cat([drawn_raw, drawn_colour, defect[2]], dim=1)
    scorer = evidence_scorer(evidence, test.shape[1])
    found = ShippedMaps(evidence, net, train, test, labels, masks, test_kinds(validation, 10**6), calibration, maps,
                        scorer)
    with torch.inference_mode():
        scorer.calibration.fit(found.smoothed(calibration))
        scorer.calibration.fit_weights(found.smoothed(drawn_maps), drawn_masks)
    return found


def image_scores(found: ShippedMaps, maps: torch.Tensor) -> np.ndarray:
    """The shipped image scores of raw maps [N, E', H, W]."""
    with torch.inference_mode():
        return torch.cat([found.scorer(maps[i : i + 8])[0] for i in range(0, len(maps), 8)]).numpy()
