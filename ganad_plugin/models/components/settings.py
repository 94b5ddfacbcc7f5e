"""The settings the three models share, one group a concept, so that every config names each knob the same way.

A model takes them as keyword arguments (``network=PatchNetwork(latent_dim=128)``); on the command line and in a
config they are nested keys (``--model.evidence.memory_weight 0``; ``evidence: {memory_weight: 0}``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ganad_plugin.models.components.patches import PATCH_WINDOWS
from ganad_plugin.models.components.scoring import WEIGHTS_FROM_DEFECTS

EVIDENCE_NAMES = ("residual", "distance", "memory", "colour", "defect")
LR_SCHEDULES = ("constant", "cosine")
# Evidence settings added after checkpoints were already in use, with the value that leaves such a checkpoint as it
# was trained (``Evidence.__setstate__``)
SETTINGS_BEFORE_THEY_EXISTED = {"colour_weight": 0.0, "colour_sigma_px": 4.0, "colour_cells": 1, "paper_score": False,
                                "defect_weight": 0.0, "defect_steps": 600, "defect_reference": False,
                                "position_spread": False, "patch_window": "flat",
                                "position_periodic": False, "weights_from_defects": "off", "memory_pooling": 1,
                                "defect_average": 0.0, "defect_heads": 1,
                                "defect_smoothing": True, "defect_width": 32,
                                "colour_surround_sigma_px": 0.0, "defect_schedule": "constant", "defect_fine": 1,
                                "defect_fine_width": 0}


@dataclass(frozen=True)
class PatchNetwork:
    """Size of the DCGAN networks, which work on square patches tiled over the image.

    Args:
        patch_size: side of the square patches the networks see (a power of two, at least 16).
        n_features: channels of the first DCGAN stage (doubled at each stage).
        latent_dim: size of a patch's code z.
    """

    patch_size: int = 32
    n_features: int = 32
    latent_dim: int = 64


@dataclass(frozen=True)
class PatchSampling:
    """How training patches are drawn from each training image at each step.

    Args:
        patches_per_image: random patches drawn from each training image per step.
        structured_share: share of them drawn where the image has structure (edges, holes) rather than
            uniformly (``patches.random_patches``).
    """

    patches_per_image: int = 32
    structured_share: float = 0.0

    def __post_init__(self) -> None:
        if self.patches_per_image < 1:
            msg = f"sampling.patches_per_image must be at least 1, got {self.patches_per_image}"
            raise ValueError(msg)
        if not 0.0 <= self.structured_share <= 1.0:
            msg = f"sampling.structured_share must be in [0, 1], got {self.structured_share}"
            raise ValueError(msg)


@dataclass(frozen=True)
class AdamSettings:
    """Adam's settings, the same for every network of a model (DCGAN: 2e-4, 0.5, 0.999).

    Args:
        lr: learning rate.
        beta1: first-moment decay.
        beta2: second-moment decay.
        schedule: "constant" (DCGAN's), or "cosine": the rate falls from ``lr`` to 0 over the fit's steps.
    """

    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    schedule: str = "constant"

    def __post_init__(self) -> None:
        if self.schedule not in LR_SCHEDULES:
            msg = f"optimiser.schedule must be one of {LR_SCHEDULES}, got {self.schedule!r}"
            raise ValueError(msg)

    def rate_at(self, progress: float) -> float:
        """The learning rate at ``progress`` (0 at the first step of a fit, 1 after its last)."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
        return self.lr

    @property
    def betas(self) -> tuple[float, float]:
        return self.beta1, self.beta2


@dataclass(frozen=True)
class Evidence:
    """The evidence maps that make the anomaly map, their weights, and how the map becomes an image score.

    Each map is smoothed and standardised against normal training images; the anomaly map is their weighted
    mean. A weight of 0 leaves that map out of the model and of its exported graph.

    Args:
        residual_weight: weight of the reconstruction residual x - G(.).
        distance_weight: weight of the paper's own distance: GANomaly's ||z - z_hat||^2, EGBAD's and AnoGAN's
            discriminator-feature distance ||f_D(x) - f_D(G(.))||_1.
        memory_weight: weight of the feature memory's distance: from the encoder's feature at each place to the
            nearest normal training feature (``memory.FeatureMemory``).
        memory_size: normal features the memory keeps (in the checkpoint and the exported graph).
        memory_colour_weight: weight of a place's local colour mean and contrast (per channel, in [0, 1] units)
            appended to its encoder feature in the memory (0: the feature's direction only), so that a stain or a
            faded region whose texture survives still stands out.
        memory_pooling: each place's encoder feature is averaged with its neighbours' over this many places a side
            (odd; 1: off) before the memory compares it, as PatchCore aggregates its features: a place is then
            described by its neighbourhood's texture rather than by the exact layout of its grains, which on a random
            texture is new at every place of every image.
        colour_weight: weight of the colour-statistics map: the Mahalanobis distance of each place's local colour
            mean and spread from their distribution over normal images (``colour_statistics.ColourStatistics``),
            which sees stains, faded regions and foreign colour on a texture the networks cannot reconstruct.
        colour_sigma_px: the colour statistics' Gaussian window, in model-input pixels.
        colour_cells: the colour statistics' distribution is learnt per cell of a grid of this many cells a side
            (an aligned part or print); 1: one distribution for the whole image (a stationary texture).
        colour_surround_sigma_px: with a value above 0, the colour statistics also compare each place's local mean
            and spread with their average over a wide Gaussian window of this standard deviation (model-input
            pixels) of the same image: a stain or a worn patch against its own surroundings, whatever the tint and
            brightness of the whole image; 0: off.
        defect_weight: weight of the defect head's map: a small segmentation network trained, after the GAN, to find
            synthetic defects drawn on the normal training images (``defect_head.DefectHead``), which learns a
            random texture the networks cannot reconstruct; 0: off (not trained, not in the export).
        defect_steps: the defect head's training batches (16 crops of 128 px each), at most; a small training set
            trains it for fewer (``defect_head.STEPS_PER_IMAGE`` batches an image).
        defect_average: the defect head keeps the moving average of its weights over the second half of its
            training, with this decay (about ``1 / (1 - decay)`` steps), rather than its last step's (0), so that its
            map depends less on where its last batches happened to leave it (docs/selection.md, fifteenth run).
        defect_schedule: the defect heads' learning rate over their training: "cosine" falls along a half cosine to
            0, "constant" keeps it (docs/selection.md, twenty-second and twenty-third runs).
        defect_heads: defect heads trained, each from its own seed (0, 1, ...), whose probabilities the defect map
            averages: one head's map depends on its seed (flange's validation image AUROC 0.81-0.97 over four), a
            pair's less, at a second head's training and inference (docs/selection.md, fifteenth run).
        defect_width: channels of each defect head's inner layers (its full-resolution ones: ``defect_fine_width``).
            48 against 32 raised every model's validation mean image / pixel AUROC by 0.024-0.034 / 0.028-0.031, for
            about 1.6 times a head's training time (29.9 -> 47.1 s, `benchmarks/defect_head_speed.py`; docs/selection.md,
            eighteenth run).
        defect_fine: convolutions of each defect head at full resolution before it subsamples (more see a thin
            line's profile over a wider window first). Three of 24 channels against one raised every model's
            validation mean image / pixel AUROC over weave, flange and stone on two draws of heads (+0.011-0.034 /
            +0.016-0.031; stone's thin scratches 0.52-0.55 -> 0.60-0.67) for twice a head's training time
            (docs/selection.md, twenty-fifth run); the default is three of 16 (``defect_fine_width``).
        defect_fine_width: channels of those full-resolution convolutions (0: half of ``defect_width``); they cost
            the most a channel (16 times the places of a head's inner layers). Three of 16 channels against the
            earlier default, one of 24, at 1.2 times a head's training time (90 s against 77 s), raised the validation
            means over three draws of heads (+0.005-0.007 image, +0.004-0.005 pixel; lower on the first draw, higher
            on the other two); three of 8, one of 16 and three of 24 for half the steps were not better
            (docs/selection.md, twenty-sixth to twenty-eighth runs).
        defect_smoothing: the defect map is smoothed like the others (``smoothing_sigma_px``); False leaves it as
            the heads give it, already coherent (they work at a quarter of the input's resolution and their logits
            are upsampled smoothly), so that a second blur does not dilute a thin or small defect's response.
        defect_reference: the defect head sees the GAN's reconstruction beside each image (in training, of the image
            with its drawn defects), so that it learns where an image departs from what the GAN makes of it.
        colour_residual: take the residual's magnitude over the colour channels (a colour change whose channels
            move apart counts) rather than of their mean.
        smoothing_sigma_px: Gaussian smoothing of each evidence map, in model-input pixels.
        background_sigma_px: scale of the residual's local mean that is subtracted before its magnitude is taken
            (0: off), so that a region-wide brightness offset of the reconstruction does not read as a defect.
        score_top_fraction: the image score is the mean of this share of the map's highest pixels (0: the
            map's maximum).
        position_cells: learn each map's normal level per place, on a grid of this many cells a side, from the
            normal images (0: one level for the whole image), so that places high on every good part (image borders,
            an aligned part's rims) do not read as defects.
        position_border_px: with ``position_cells``, only the places within this many pixels of the image's edge
            get their own level (the networks' padding biases every map there); 0: every place.
        position_spread: with ``position_cells``, the places whose maps vary more than the whole map on normal
            images (an aligned part's rims and holes, the patch tiling's seams) also get their own spread, and count
            less there.
        position_periodic: also learn each map's normal level (and with ``position_spread`` its spread) as a pattern
            that repeats every half patch, the period of the patch grids' seams, from every repetition inside the
            normal images (``scoring.EvidenceCalibration``).
        patch_window: how the patches' residuals and distances are merged into maps (``patches.PatchGrid``):
            ``"flat"``, the plain mean of each pixel's four patches', or ``"tent"``, mostly the patch it is central
            in (docs/selection.md, twelfth run: not kept).
        weights_from_defects: how much each map counts on this product, measured when the model fits its normal
            statistics: synthetic defects (the defect head's kinds) are drawn on the held-out normal images, and
            each map's signal is how far its standardised value inside them rises above the value outside
            (``scoring.defect_signal``). ``"off"``: the weights above as they are; ``"scaled"``: each weight times
            its map's signal (a map blind to defects on this product, such as a feature memory on a random texture,
            stops adding its noise); ``"capped"``: each weight times its signal against half the strongest map's,
            at most 1 (only the weak maps lose weight); ``"signal"``: the signals alone.
        paper_score: the paper's model instead of the line's (``configs/paper/``): the networks see the whole image
            resized to ``network.patch_size`` (no tiling), the image score is the paper's own (GANomaly's
            ||z - z_hat||^2, EGBAD's and AnoGAN's (1 - a) ||x - G(.)||_1 + a ||f_D(x) - f_D(G(.))||_1) and the anomaly
            map the residual |x - G(.)| resized to the input; no memory, smoothing or standardisation (the settings
            above are then unused).
    """

    residual_weight: float = 0.9
    distance_weight: float = 0.1
    memory_weight: float = 2.0
    memory_size: int = 16384
    memory_colour_weight: float = 0.0
    memory_pooling: int = 1
    colour_weight: float = 0.5
    colour_sigma_px: float = 4.0
    colour_cells: int = 8
    colour_surround_sigma_px: float = 0.0
    defect_weight: float = 1.0
    defect_steps: int = 800
    defect_reference: bool = False
    defect_average: float = 0.99
    defect_schedule: str = "cosine"
    defect_heads: int = 2
    defect_smoothing: bool = True
    defect_width: int = 48
    defect_fine: int = 3
    defect_fine_width: int = 16
    colour_residual: bool = True
    smoothing_sigma_px: float = 3.0
    background_sigma_px: float = 48.0
    score_top_fraction: float = 0.0025
    position_cells: int = 32
    position_border_px: float = 0.0
    position_spread: bool = True
    position_periodic: bool = False
    patch_window: str = "flat"
    weights_from_defects: str = "scaled"
    paper_score: bool = False

    def __post_init__(self) -> None:
        weights = self.weights()
        if min(weights.values()) < 0 or (sum(weights.values()) <= 0 and not self.paper_score):
            msg = f"evidence weights must be >= 0 with at least one above 0, got {weights}"
            raise ValueError(msg)
        if self.memory_weight > 0 and self.memory_size < 1:
            msg = f"evidence.memory_size must be at least 1 while memory_weight > 0, got {self.memory_size}"
            raise ValueError(msg)
        if self.memory_colour_weight < 0:
            msg = f"evidence.memory_colour_weight must be >= 0, got {self.memory_colour_weight}"
            raise ValueError(msg)
        if self.memory_pooling < 1 or self.memory_pooling % 2 == 0:
            msg = f"evidence.memory_pooling must be an odd number of places >= 1 (1: off), got {self.memory_pooling}"
            raise ValueError(msg)
        if self.colour_sigma_px <= 0:
            msg = f"evidence.colour_sigma_px must be > 0, got {self.colour_sigma_px}"
            raise ValueError(msg)
        if self.colour_cells < 1:
            msg = ("evidence.colour_cells must be at least 1 (1: one distribution for the image), "
                   f"got {self.colour_cells}")
            raise ValueError(msg)
        if self.colour_surround_sigma_px < 0:
            msg = f"evidence.colour_surround_sigma_px must be >= 0 (0: off), got {self.colour_surround_sigma_px}"
            raise ValueError(msg)
        if self.defect_weight > 0 and self.defect_steps < 1:
            msg = f"evidence.defect_steps must be at least 1 while defect_weight > 0, got {self.defect_steps}"
            raise ValueError(msg)
        if self.defect_width < 2 or self.defect_width % 2:
            msg = f"evidence.defect_width must be an even number of channels >= 2, got {self.defect_width}"
            raise ValueError(msg)
        if self.defect_fine < 1:
            msg = f"evidence.defect_fine must be at least 1 (full-resolution convolutions of a head), got {self.defect_fine}"
            raise ValueError(msg)
        if self.defect_fine_width < 0:
            msg = (f"evidence.defect_fine_width must be >= 0 (channels of a head's full-resolution convolutions; "
                   f"0: half of defect_width), got {self.defect_fine_width}")
            raise ValueError(msg)
        if self.defect_heads < 1:
            msg = (f"evidence.defect_heads must be at least 1 (defect_weight 0 turns the map off), "
                   f"got {self.defect_heads}")
            raise ValueError(msg)
        if not 0.0 <= self.defect_average < 1.0:
            msg = (f"evidence.defect_average must be a decay in [0, 1) (0: the last step's weights), "
                   f"got {self.defect_average}")
            raise ValueError(msg)
        if self.defect_schedule not in LR_SCHEDULES:
            msg = f"evidence.defect_schedule must be one of {LR_SCHEDULES}, got {self.defect_schedule!r}"
            raise ValueError(msg)
        if self.position_cells < 0 or self.position_border_px < 0:
            msg = (f"evidence.position_cells and evidence.position_border_px must be >= 0 (0: off), got "
                   f"{self.position_cells}, {self.position_border_px}")
            raise ValueError(msg)
        if self.patch_window not in PATCH_WINDOWS:
            msg = f"evidence.patch_window must be one of {PATCH_WINDOWS}, got {self.patch_window!r}"
            raise ValueError(msg)
        if self.weights_from_defects not in WEIGHTS_FROM_DEFECTS:
            msg = (f"evidence.weights_from_defects must be one of {WEIGHTS_FROM_DEFECTS}, "
                   f"got {self.weights_from_defects!r}")
            raise ValueError(msg)
        if not 0.0 <= self.score_top_fraction < 1.0:
            msg = f"evidence.score_top_fraction must be in [0, 1) (0: the maximum), got {self.score_top_fraction}"
            raise ValueError(msg)

    def __setstate__(self, state: dict) -> None:
        # a checkpoint saved before a setting existed gets the value that reproduces what it was trained with (the
        # colour-statistics map off), not today's default: its state dict has no such map
        for name, value in {**SETTINGS_BEFORE_THEY_EXISTED, **state}.items():
            object.__setattr__(self, name, value)

    def weights(self) -> dict[str, float]:
        """Every evidence map's weight, by name (``EVIDENCE_NAMES``)."""
        return {name: float(getattr(self, f"{name}_weight")) for name in EVIDENCE_NAMES}

    def active(self) -> dict[str, float]:
        """The maps with a weight above 0, in ``EVIDENCE_NAMES`` order: what the model computes (none for the paper's
        score, which is not made of maps)."""
        if self.paper_score:
            return {}
        return {name: weight for name, weight in self.weights().items() if weight > 0}


# checkpoints store the settings among their hyper-parameters; torch.load's safe mode must accept them
torch.serialization.add_safe_globals([PatchNetwork, PatchSampling, AdamSettings, Evidence])
