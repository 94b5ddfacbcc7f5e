"""What the three torch models share: tiling images into patches, three evidence maps per image, scoring.

Each model says what it reconstructs (``patch_evidence``) and which of its encoders describes a patch
(``feature_encoder``); this base class turns that into per-pixel evidence:
  0. the signed residual x - G(.) (the reconstruction evidence of all three papers),
  1. the model's own per-patch distance (GANomaly's ||z - z_hat||^2, EGBAD's and AnoGAN's D-feature distance),
  2. the distance from the encoder's last feature map (run convolutionally over the whole image, stride 8 for
     32-px patches) to the nearest normal feature (``FeatureMemory``),
and ``AnomalyScorer`` smooths, standardises and combines them into the anomaly map and the image score.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from anomalib.data import InferenceBatch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from .blocks import DcganEncoder
from .memory import FeatureMemory
from .patches import PatchGrid
from .scoring import AnomalyScorer, signed_residual


class PatchAnomalyModel(nn.Module):
    """Images [B, C, H, W] in [0, 1] -> ``InferenceBatch(pred_score [B], anomaly_map [B, 1, H, W])``.

    Args:
        patch_size: side of the square patches the networks see.
        latent_dim: size of a patch's code.
        feature_channels: channels of the feature encoder's last feature map.
        evidence_weights: weights of (residual, model distance, memory distance) in the combined z-score.
        smoothing_sigma_px, background_sigma_px: ``AnomalyScorer``'s smoothing.
        memory_size: normal features kept (``FeatureMemory``).
    """

    def __init__(
        self,
        patch_size: int,
        latent_dim: int,
        feature_channels: int,
        evidence_weights: tuple[float, float, float],
        smoothing_sigma_px: float,
        background_sigma_px: float,
        memory_size: int,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.latent_dim = latent_dim
        self.grid = PatchGrid(patch_size)
        self.memory = FeatureMemory(feature_channels, memory_size)
        self.scorer = AnomalyScorer(
            signed=(True, False, False),
            weights=tuple(evidence_weights),
            smoothing_sigma_px=smoothing_sigma_px,
            background_sigma_px=background_sigma_px,
        )

    @staticmethod
    def to_tanh_range(images: torch.Tensor) -> torch.Tensor:
        return images * 2 - 1

    def split(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] -> patches [B * N, C, p, p] in [-1, 1]."""
        return self.grid.split(self.to_tanh_range(images))

    def feature_encoder(self) -> DcganEncoder:
        """The patch encoder whose features the memory compares (the one used at test time)."""
        raise NotImplementedError

    def patch_evidence(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patches -> (reconstructions [N, C, p, p], model distance [N])."""
        raise NotImplementedError

    def dense_features(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] -> the patch encoder's last feature map [B, channels, h, w].

        The encoder's convolutions run over the whole image rather than patch by patch: one feature per place,
        stride 8 for a 32-px patch (h = H / 8), each seeing a 22-px neighbourhood.
        """
        return self.feature_encoder().features(self.to_tanh_range(images))

    def evidence(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] -> [B, 3, H, W]: signed residual, model distance, memory distance."""
        size = images.shape[-2:]
        patches = self.split(images)
        reconstructions, distance = self.patch_evidence(patches)
        residual = self.grid.merge(signed_residual(patches, reconstructions), size)
        per_patch = self.grid.merge(distance[:, None, None, None].expand(-1, 1, self.patch_size, self.patch_size), size)
        memory = F.interpolate(self.memory(self.dense_features(images)), size=size, mode="bilinear", align_corners=False)
        return torch.cat([residual, per_patch, memory], dim=1)

    @torch.no_grad()
    def fit_normal(self, batches: Iterable[torch.Tensor], max_images: int = 256) -> int:
        """Fill the memory and calibrate the scorer from normal images (batches [B, C, H, W] in [0, 1]).

        Every fourth image is held out of the memory and calibrates the scales instead: a memory image's own
        features are at distance 0, which would make the normal spread look far too small. Returns the number of
        images used.
        """
        features, held_out, seen = [], [], 0
        for images in batches:
            for image in images[: max_images - seen]:
                if seen % 4 == 3:
                    held_out.append(image)
                else:
                    features.append(self.dense_features(image[None]).flatten(2).squeeze(0).T)
                seen += 1
            if seen >= max_images:
                break
        if not held_out:
            msg = f"calibration needs at least 4 normal images, got {seen} (is train/good empty or nearly so?)"
            raise RuntimeError(msg)
        self.memory.fit(torch.cat(features))
        evidence = torch.cat([self.evidence(torch.stack(held_out[i : i + 8])) for i in range(0, len(held_out), 8)])
        self.scorer.calibration.fit(self.scorer.smooth(evidence))
        return seen

    def forward(self, images: torch.Tensor) -> InferenceBatch:
        pred_score, anomaly_map = self.scorer(self.evidence(images))
        return InferenceBatch(pred_score=pred_score, anomaly_map=anomaly_map)
