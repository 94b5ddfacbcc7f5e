"""AnoGAN's networks on image patches: generator G, discriminator D, and f-AnoGAN's encoder E; the latent search.

A patch x is explained by a latent z: it starts at E(x) (f-AnoGAN's encoder) or at random (the paper), then
``latent_search_steps`` Adam steps lower L(z) = (1 - lambda) * ||x - G(z)||_1 + lambda * ||f_D(x) - f_D(G(z))||_1
for every patch of every image at once (one [N, nz] latent tensor, one optimiser). Evidence per pixel: the
signed residual x - G(z) and the patch's feature distance ||f_D(x) - f_D(G(z))||_1, each averaged over the
four patches that cover the pixel. With no search steps the model is one forward pass, and exports.
"""

from __future__ import annotations

import torch
from anomalib.data import InferenceBatch
from torch import nn

from ganad_plugin.models.components.blocks import DcganDecoder, DcganDiscriminator, DcganEncoder, init_dcgan_weights
from ganad_plugin.models.components.patches import PatchGrid
from ganad_plugin.models.components.scoring import AnomalyScorer, per_patch_to_map, signed_residual

from .loss import search_loss


class AnoganModel(nn.Module):
    """Images [B, 3, H, W] in [0, 1] -> ``InferenceBatch(pred_score [B], anomaly_map [B, 1, H, W])``.

    Args:
        latent_search_steps: Gamma, Adam steps on z per test batch (0: E(x) is used as it is).
        latent_search_lr: the search's Adam learning rate.
        residual_weight_lambda: lambda of L(z) and of the map's weighting of the two evidence maps.
        encoder_start: start the search from E(x) (f-AnoGAN) instead of a random z (the paper).
    """

    def __init__(
        self,
        patch_size: int = 32,
        n_features: int = 32,
        latent_dim: int = 64,
        latent_search_steps: int = 0,
        latent_search_lr: float = 0.05,
        residual_weight_lambda: float = 0.1,
        encoder_start: bool = True,
        smoothing_sigma_px: float = 3.0,
        background_sigma_px: float = 16.0,
        channels: int = 3,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.latent_dim = latent_dim
        self.latent_search_steps = latent_search_steps
        self.latent_search_lr = latent_search_lr
        self.residual_weight_lambda = residual_weight_lambda
        self.encoder_start = encoder_start
        self.grid = PatchGrid(patch_size)
        self.generator = DcganDecoder(patch_size, channels, n_features, latent_dim)
        self.discriminator = DcganDiscriminator(patch_size, channels, n_features, spectral_norm=True)
        self.encoder = DcganEncoder(patch_size, channels, n_features, latent_dim)
        for module in (self.generator, self.discriminator, self.encoder):
            module.apply(init_dcgan_weights)
        self.scorer = AnomalyScorer(
            signed=(True, False),
            weights=(1.0 - residual_weight_lambda, residual_weight_lambda),
            smoothing_sigma_px=smoothing_sigma_px,
            background_sigma_px=background_sigma_px,
        )

    @staticmethod
    def to_tanh_range(images: torch.Tensor) -> torch.Tensor:
        return images * 2 - 1

    def discriminator_features(self, patches: torch.Tensor) -> torch.Tensor:
        return self.discriminator(patches)[1]

    def start_latent(self, patches: torch.Tensor) -> torch.Tensor:
        if self.encoder_start:
            return self.encoder(patches)
        return torch.randn(patches.shape[0], self.latent_dim, 1, 1, device=patches.device, dtype=patches.dtype)

    def search_latent(self, patches: torch.Tensor, latent: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Batched latent search: ``steps`` (default ``latent_search_steps``) Adam steps on L(z), all patches at
        once, G and D frozen. Works under ``torch.no_grad`` / ``inference_mode`` (anomalib's test step)."""
        steps = self.latent_search_steps if steps is None else steps
        if steps <= 0:
            return latent
        frozen = [p for p in (*self.generator.parameters(), *self.discriminator.parameters()) if p.requires_grad]
        with torch.inference_mode(False), torch.enable_grad():
            # inference tensors cannot take part in autograd: work on ordinary copies
            patches, latent = patches.clone(), latent.detach().clone().requires_grad_(True)
            features = self.discriminator_features(patches).detach()
            optimiser = torch.optim.Adam([latent], lr=self.latent_search_lr)
            for parameter in frozen:
                parameter.requires_grad_(False)
            try:
                for _ in range(steps):
                    reconstructions = self.generator(latent)
                    loss = search_loss(
                        patches, reconstructions, features, self.discriminator_features(reconstructions),
                        self.residual_weight_lambda,
                    )
                    optimiser.zero_grad(set_to_none=True)
                    loss.sum().backward()  # per-patch losses: each latent gets only its own gradient
                    optimiser.step()
            finally:
                for parameter in frozen:
                    parameter.requires_grad_(True)
        return latent.detach()

    def evidence(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] -> [B, 2, H, W]: signed pixel residual, D-feature distance."""
        height, width = images.shape[-2:]
        patches = self.grid.split(self.to_tanh_range(images))
        latent = self.search_latent(patches, self.start_latent(patches))
        reconstructions = self.generator(latent)
        feature_distance = (
            (self.discriminator_features(patches) - self.discriminator_features(reconstructions)).abs().mean(dim=(1, 2, 3))
        )
        residual = self.grid.merge(signed_residual(patches, reconstructions), (height, width))
        feature_map = self.grid.merge(per_patch_to_map(feature_distance, self.patch_size), (height, width))
        return torch.cat([residual, feature_map], dim=1)

    def forward(self, images: torch.Tensor) -> InferenceBatch:
        pred_score, anomaly_map = self.scorer(self.evidence(images))
        return InferenceBatch(pred_score=pred_score, anomaly_map=anomaly_map)
