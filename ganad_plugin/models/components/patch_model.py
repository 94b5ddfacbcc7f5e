"""What the three torch models share: tiling images into patches, named evidence maps per image, scoring.

Each model says what it reconstructs and its paper's own distance (``patch_evidence``), and which of its encoders
describes a patch (``feature_encoder``); this base class turns that into the evidence maps that ``Evidence``
switches on, in ``EVIDENCE_NAMES`` order:
  residual  the signed residual x - G(.) (the reconstruction evidence of all three papers),
  distance  the paper's own per-patch distance (GANomaly's ||z - z_hat||^2, EGBAD's and AnoGAN's D-feature
            distance), spread over the patch's pixels,
  memory    the distance from the encoder's last feature map (run convolutionally over the whole image, stride 8
            for 32-px patches) to the nearest normal feature (``FeatureMemory``),
  colour    the distance of each place's local colour mean and spread from those of normal images
            (``ColourStatistics``; no network),
  defect    the defect probability of a small segmentation network trained, after the GAN, to find synthetic
            defects drawn on the normal training images (``DefectHead``),
and ``AnomalyScorer`` smooths, standardises and combines them into the anomaly map and the image score. A map with
weight 0 is neither computed nor in the exported graph.

With ``Evidence.paper_score`` the model is the paper's instead (``paper_forward``): one pass of the networks over the
whole image resized to the patch size, the paper's own score, and the residual as the map.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import torch
from anomalib.data import InferenceBatch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from .blocks import DcganEncoder
from .colour_statistics import ColourStatistics
from .defect_head import DefectHead, with_drawn_defects
from .memory import FeatureMemory
from .patches import PatchGrid
from .scoring import AnomalyScorer, signed_residual
from .settings import Evidence, PatchNetwork

logger = logging.getLogger(__name__)

CALIBRATION_BATCH = 8  # held-out images scored at once while calibrating


class PatchAnomalyModel(nn.Module):
    """Images [B, C, H, W] in [0, 1] -> ``InferenceBatch(pred_score [B], anomaly_map [B, 1, H, W])``.

    Args:
        network: the networks' patch size, width and latent size.
        evidence: which evidence maps, their weights, smoothing and the image score's pooling.
        channels: image channels.
    """

    def __init__(self, *, network: PatchNetwork, evidence: Evidence, channels: int = 3) -> None:
        super().__init__()
        self.patch_size = network.patch_size
        self.latent_dim = network.latent_dim
        self.grid = PatchGrid(network.patch_size, evidence.patch_window)
        self.paper_score = evidence.paper_score
        active = evidence.active()
        self.evidence_names = tuple(active)
        self.colour_residual = evidence.colour_residual
        self.memory_colour_weight = evidence.memory_colour_weight
        self.memory_pooling = evidence.memory_pooling
        encoder_dims = DcganEncoder.channels_of_features(network.patch_size, channels, network.n_features)
        colour_dims = 2 * channels if evidence.memory_colour_weight > 0 else 0
        self.memory = (
            FeatureMemory(encoder_dims + colour_dims, evidence.memory_size, direction_dims=encoder_dims)
            if "memory" in active
            else None
        )
        self.colour = (
            ColourStatistics(channels, evidence.colour_sigma_px, evidence.colour_cells,
                             evidence.colour_surround_sigma_px) if "colour" in active else None
        )
        heads = evidence.defect_heads if "defect" in active else 0
        self.defect = DefectHead(channels, evidence.defect_width, evidence.defect_reference, evidence.defect_fine,
                                 evidence.defect_fine_width) if heads else None
        # a pair (or more) of heads, each trained from its own seed, whose probabilities are averaged: the others
        # beside the first, so that a checkpoint of one head loads as it was saved
        self.defect_others = nn.ModuleList(
            DefectHead(channels, evidence.defect_width, evidence.defect_reference, evidence.defect_fine,
                       evidence.defect_fine_width)
            for _ in range(heads - 1))
        self.defect_steps = evidence.defect_steps
        self.defect_average = evidence.defect_average
        self.defect_cosine = evidence.defect_schedule == "cosine"
        residual_channels = channels if evidence.colour_residual else 1
        self.scorer = None if self.paper_score else AnomalyScorer(
            signed=tuple(name == "residual" for name in active),
            channels=tuple(residual_channels if name == "residual" else 1 for name in active),
            weights=tuple(active.values()),
            smoothing_sigma_px=evidence.smoothing_sigma_px,
            smoothed=tuple(name != "defect" or evidence.defect_smoothing for name in active),
            background_sigma_px=evidence.background_sigma_px,
            score_top_fraction=evidence.score_top_fraction,
            position_cells=evidence.position_cells,
            position_border_px=evidence.position_border_px,
            position_spread=evidence.position_spread and evidence.position_cells > 0,
            position_period=network.patch_size // 2 if evidence.position_periodic else 0,
            weights_from_defects=evidence.weights_from_defects,
        )

    @staticmethod
    def to_tanh_range(images: torch.Tensor) -> torch.Tensor:
        return images * 2 - 1

    def feature_encoder(self) -> DcganEncoder:
        """The patch encoder whose features the memory compares (the one used at test time)."""
        raise NotImplementedError

    def patch_evidence(
        self, patches: torch.Tensor, with_distance: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Patches [N, C, p, p] in [-1, 1] -> (reconstructions [N, C, p, p], the paper's distance [N], or None
        with ``with_distance`` False: then the networks that only the distance needs, EGBAD's and AnoGAN's
        discriminator, do not run)."""
        raise NotImplementedError

    def paper_image_score(
        self, inputs: torch.Tensor, reconstructions: torch.Tensor, distance: torch.Tensor
    ) -> torch.Tensor:
        """The paper's score of whole images [N] from ``patch_evidence``'s outputs (default: its distance)."""
        del inputs, reconstructions
        return distance

    @staticmethod
    def residual_and_distance(
        inputs: torch.Tensor, reconstructions: torch.Tensor, distance: torch.Tensor, share: float
    ) -> torch.Tensor:
        """(1 - share) ||x - G(.)||_1 + share * distance per image [N], the residual a mean over pixels and channels:
        EGBAD's and AnoGAN's score (and AnoGAN's search loss)."""
        return (1 - share) * (inputs - reconstructions).abs().mean(dim=(1, 2, 3)) + share * distance

    def whole_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] -> the paper's network input [B, C, p, p]: the whole image resized to the patch size
        (an average over blocks where the size divides, else bilinear), the same in training and at test time."""
        height, width = images.shape[-2:]
        p = self.patch_size
        if height % p == 0 and width % p == 0:
            return F.avg_pool2d(images, kernel_size=(height // p, width // p))
        return F.interpolate(images, size=(p, p), mode="bilinear", align_corners=False)

    def paper_forward(self, images: torch.Tensor) -> InferenceBatch:
        """The paper's model: the score of the whole image, and the residual |x - G(.)| (mean over channels, in
        [0, 1] units) as the anomaly map at the input's size."""
        inputs = self.to_tanh_range(self.whole_images(images))
        reconstructions, distance = self.patch_evidence(inputs)
        residual = (inputs - reconstructions).abs().mean(dim=1, keepdim=True) / 2
        anomaly_map = F.interpolate(residual, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return InferenceBatch(pred_score=self.paper_image_score(inputs, reconstructions, distance),
                              anomaly_map=anomaly_map)

    def dense_features(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] -> the patch encoder's last feature map [B, channels, H / 8, W / 8].

        The encoder's convolutions run over the whole image rather than patch by patch: one feature per place.
        """
        return self.feature_encoder().features(self.to_tanh_range(images))

    def memory_features(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] -> what the memory compares at each place [B, dim, H / 8, W / 8]: the
        encoder's feature, then (with ``memory_colour_weight``) the local colour mean and standard deviation over
        the 16-px window around the place, each channel in [0, 1] units, times that weight. With ``memory_pooling``
        each feature is first the mean of those of its neighbourhood (that many places a side)."""
        features = self.dense_features(images)
        if self.memory_pooling > 1:
            features = F.avg_pool2d(features, self.memory_pooling, stride=1, padding=self.memory_pooling // 2,
                                    count_include_pad=False)
        if self.memory_colour_weight == 0:
            return features
        stride = images.shape[-1] // features.shape[-1]
        window = dict(kernel_size=2 * stride, stride=stride, padding=stride // 2, count_include_pad=False)
        mean = F.avg_pool2d(images, **window)
        spread = (F.avg_pool2d(images * images, **window) - mean * mean).clamp_min(0).sqrt()
        colour = torch.cat([mean, spread], dim=1)[..., : features.shape[-2], : features.shape[-1]]
        return torch.cat([features, colour * self.memory_colour_weight], dim=1)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] -> the GAN's reconstruction of them [B, C, H, W] in [0, 1]: the patches'
        reconstructions put back together (each pixel a weighted mean of its four patches')."""
        reconstructions, _ = self.patch_evidence(self.grid.split(self.to_tanh_range(images)), with_distance=False)
        return (self.grid.merge(reconstructions, images.shape[-2:]) + 1) / 2

    def evidence(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] -> the active evidence maps [B, E, H, W], in ``evidence_names`` order."""
        size = images.shape[-2:]
        maps = []
        reference = None
        defect_reference = self.defect is not None and self.defect.reference
        if {"residual", "distance"} & set(self.evidence_names) or defect_reference:
            patches = self.grid.split(self.to_tanh_range(images))
            reconstructions, distance = self.patch_evidence(patches, with_distance="distance" in self.evidence_names)
            if defect_reference:
                reference = (self.grid.merge(reconstructions, size) + 1) / 2
            if "residual" in self.evidence_names:
                maps.append(self.grid.merge(signed_residual(patches, reconstructions, self.colour_residual), size))
            if "distance" in self.evidence_names:
                per_pixel = distance[:, None, None, None].expand(-1, 1, self.patch_size, self.patch_size)
                maps.append(self.grid.merge(per_pixel, size))
        if self.memory is not None:
            distances = self.memory(self.memory_features(images))
            maps.append(F.interpolate(distances, size=size, mode="bilinear", align_corners=False))
        if self.colour is not None:
            maps.append(self.colour(images))
        if self.defect is not None:
            heads = self.defect_heads()
            probability = heads[0].probability(images, reference)
            for head in heads[1:]:
                probability = probability + head.probability(images, reference)
            maps.append(probability / len(heads))
        return torch.cat(maps, dim=1)

    def defect_heads(self) -> list[DefectHead]:
        """The defect heads whose probabilities the defect map averages (none without the map)."""
        return [] if self.defect is None else [self.defect, *self.defect_others]

    @property
    def calibrated(self) -> bool:
        """Whether the memory and colour statistics (if any) are filled, the defect head (if any) trained and the
        evidence scales fitted (``fit_normal``)."""
        if self.scorer is None:
            return True  # the paper's score has nothing to fit
        memory_ready = self.memory is None or bool(self.memory.filled)
        colour_ready = self.colour is None or bool(self.colour.filled)
        defect_ready = all(bool(head.filled) for head in self.defect_heads())
        return memory_ready and colour_ready and defect_ready and bool(self.scorer.calibration.calibrated)

    @torch.no_grad()
    def fit_normal(self, batches: Iterable[torch.Tensor], max_images: int = 256) -> int:
        """Fill the memory and the colour statistics and calibrate the scorer from normal images (batches
        [B, C, H, W] in [0, 1]).

        With a memory, every fourth image is held out of it and calibrates the scales instead: a memory image's own
        features are at distance 0, which would make the normal spread look far too small. The colour statistics
        (a mean and covariance, nothing to overfit) are fitted on every image; the defect head trains on the
        memory's three in four only, so that the held-out ones show its response to normal images it has not seen.
        With ``Evidence.weights_from_defects`` the held-out images, with synthetic defects drawn on them, then refit
        the maps' weights (``EvidenceCalibration.fit_weights``).
        Returns the number of images used (0 for the paper's score, which has nothing to fit).
        """
        if self.scorer is None:
            return 0
        features, held_out, seen, every_image, to_head, lenders = [], [], 0, [], [], []
        for images in batches:
            every_image.append(images[: max_images - seen])
            images = images[: max_images - seen]
            fitting = [i for i in range(len(images)) if (seen + i) % 4 != 3]
            learns = self.memory is not None or self.defect is not None  # else every image calibrates
            held_out += [images[i] for i in range(len(images)) if not learns or i not in fitting]
            to_memory = fitting if self.memory is not None else []
            lenders += [images[i] for i in fitting] if learns else []
            if self.defect is not None:
                to_head += [images[i] for i in fitting]
            if to_memory:
                features.append(self.memory_features(images[to_memory]).permute(0, 2, 3, 1).flatten(0, 2))
            seen += len(images)
            if seen >= max_images:
                break
        if not held_out:
            msg = f"calibration needs at least 4 normal images, got {seen} (is train/good empty or nearly so?)"
            raise RuntimeError(msg)
        # the calibration runs after the last epoch, where the progress bar stands still: say what takes the time
        started = time.perf_counter()
        if self.memory is not None:
            bank = torch.cat(features)
            self.memory.fit(bank)
            logger.info("feature memory: %d of %d normal features kept, in %.1f s", min(len(bank), len(self.memory.bank)),
                        len(bank), time.perf_counter() - started)
        if self.colour is not None:
            self.colour.fit(every_image)
        heads = self.defect_heads()
        for seed, head in enumerate(heads):
            head_started = time.perf_counter()
            logger.info("defect head %d of %d: training on defects drawn on %d normal images (at most %d batches)",
                        seed + 1, len(heads), len(to_head), self.defect_steps)
            head.fit(torch.stack(to_head), self.defect_steps, seed=seed, average=self.defect_average,
                     cosine=self.defect_cosine, reconstruct=self.reconstruct if head.reference else None)
            logger.info("defect head %d of %d trained in %.1f s", seed + 1, len(heads), time.perf_counter() - head_started)
        calibration_started = time.perf_counter()
        self.scorer.calibration.fit(self.scorer.smooth(self.evidence_of(torch.stack(held_out))))
        if self.scorer.calibration.fitted_weights is not None:
            drawn, masks = with_drawn_defects(torch.stack(held_out), torch.stack(lenders or held_out))
            self.scorer.calibration.fit_weights(self.scorer.smooth(self.evidence_of(drawn)), masks)
        weights = " and weights (on defects drawn on them)" if self.scorer.calibration.fitted_weights is not None else ""
        logger.info("evidence scales%s fitted on %d held-out normal images in %.1f s; calibration %.1f s in all",
                    weights, len(held_out), time.perf_counter() - calibration_started, time.perf_counter() - started)
        return seen

    def evidence_of(self, images: torch.Tensor) -> torch.Tensor:
        """``evidence`` of many images [N, C, H, W], ``CALIBRATION_BATCH`` at a time."""
        return torch.cat([self.evidence(chunk) for chunk in images.split(CALIBRATION_BATCH)])

    def forward(self, images: torch.Tensor) -> InferenceBatch:
        if self.scorer is None:
            return self.paper_forward(images)
        pred_score, anomaly_map = self.scorer(self.evidence(images))
        return InferenceBatch(pred_score=pred_score, anomaly_map=anomaly_map)
