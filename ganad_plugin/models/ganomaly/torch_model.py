"""GANomaly's networks on image patches: encoder G_E, decoder G_D, second encoder E, discriminator D.

An image is tiled into ``patch_size`` patches (``PatchGrid``); each patch x is encoded to z = G_E(x),
reconstructed as x_hat = G_D(z) and re-encoded as z_hat = E(x_hat). Evidence per pixel: the signed residual
x - x_hat and the patch's latent distance ||z - z_hat||^2 (the paper's score), each averaged over the four
patches that cover the pixel. ``AnomalyScorer`` smooths, standardises and combines them.
"""

from __future__ import annotations

import torch
from anomalib.data import InferenceBatch
from torch import nn

from ganad_plugin.models.components.blocks import DcganDecoder, DcganDiscriminator, DcganEncoder, init_dcgan_weights
from ganad_plugin.models.components.patches import PatchGrid
from ganad_plugin.models.components.scoring import AnomalyScorer, per_patch_to_map, signed_residual


class GanomalyGenerator(nn.Module):
    """Encoder-decoder-encoder: patch [N, C, p, p] -> (x_hat, z [N, nz, 1, 1], z_hat)."""

    def __init__(self, patch_size: int, channels: int, n_features: int, latent_dim: int) -> None:
        super().__init__()
        self.encoder = DcganEncoder(patch_size, channels, n_features, latent_dim)
        self.decoder = DcganDecoder(patch_size, channels, n_features, latent_dim)
        self.encoder_reconstructed = DcganEncoder(patch_size, channels, n_features, latent_dim)

    def forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        latent = self.encoder(patches)
        reconstructions = self.decoder(latent)
        return reconstructions, latent, self.encoder_reconstructed(reconstructions)


class GanomalyModel(nn.Module):
    """Images [B, 3, H, W] in [0, 1] -> ``InferenceBatch(pred_score [B], anomaly_map [B, 1, H, W])``.

    Training works on random patches through ``generator`` and ``discriminator`` directly.
    """

    def __init__(
        self,
        patch_size: int = 32,
        n_features: int = 32,
        latent_dim: int = 128,
        smoothing_sigma_px: float = 3.0,
        background_sigma_px: float = 16.0,
        channels: int = 3,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.grid = PatchGrid(patch_size)
        self.generator = GanomalyGenerator(patch_size, channels, n_features, latent_dim)
        self.discriminator = DcganDiscriminator(patch_size, channels, n_features)
        self.scorer = AnomalyScorer(
            signed=(True, False), smoothing_sigma_px=smoothing_sigma_px, background_sigma_px=background_sigma_px
        )
        self.generator.apply(init_dcgan_weights)
        self.discriminator.apply(init_dcgan_weights)

    @staticmethod
    def to_tanh_range(images: torch.Tensor) -> torch.Tensor:
        return images * 2 - 1

    def evidence(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] -> [B, 2, H, W]: signed pixel residual, latent distance."""
        height, width = images.shape[-2:]
        patches = self.grid.split(self.to_tanh_range(images))
        reconstructions, latent, latent_reconstructed = self.generator(patches)
        latent_distance = (latent - latent_reconstructed).pow(2).mean(dim=(1, 2, 3))
        residual = self.grid.merge(signed_residual(patches, reconstructions), (height, width))
        latent_map = self.grid.merge(per_patch_to_map(latent_distance, self.patch_size), (height, width))
        return torch.cat([residual, latent_map], dim=1)

    def forward(self, images: torch.Tensor) -> InferenceBatch:
        pred_score, anomaly_map = self.scorer(self.evidence(images))
        return InferenceBatch(pred_score=pred_score, anomaly_map=anomaly_map)
