"""GANomaly's networks on image patches: encoder G_E, decoder G_D, second encoder E, discriminator D.

An image is tiled into ``patch_size`` patches (``PatchGrid``); each patch x is encoded to z = G_E(x),
reconstructed as x_hat = G_D(z) and re-encoded as z_hat = E(x_hat). Evidence per pixel: the signed residual
x - x_hat and the patch's latent distance ||z - z_hat||^2 (the paper's score), each averaged over the four patches
that cover the pixel, and the distance from G_E's features at each place to the nearest normal feature (``FeatureMemory``;
``PatchAnomalyModel``).
"""

from __future__ import annotations

import torch
from torch import nn

from ganad_plugin.models.components.blocks import DcganDecoder, DcganDiscriminator, DcganEncoder, init_dcgan_weights
from ganad_plugin.models.components.patch_model import PatchAnomalyModel


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


class GanomalyModel(PatchAnomalyModel):
    """Images [B, 3, H, W] in [0, 1] -> ``InferenceBatch(pred_score [B], anomaly_map [B, 1, H, W])``.

    Training works on random patches through ``generator`` and ``discriminator`` directly. The reconstruction
    evidence is (1 - latent_weight) residual + latent_weight ||z - z_hat||^2, beside memory_weight memory distance.
    """

    def __init__(
        self,
        patch_size: int = 32,
        n_features: int = 32,
        latent_dim: int = 128,
        smoothing_sigma_px: float = 3.0,
        background_sigma_px: float = 16.0,
        latent_weight: float = 0.1,
        memory_weight: float = 4.0,
        memory_size: int = 16384,
        channels: int = 3,
    ) -> None:
        super().__init__(
            patch_size,
            latent_dim,
            DcganEncoder.channels_of_features(patch_size, channels, n_features),
            (1.0 - latent_weight, latent_weight, memory_weight),
            smoothing_sigma_px,
            background_sigma_px,
            memory_size,
        )
        self.generator = GanomalyGenerator(patch_size, channels, n_features, latent_dim)
        self.discriminator = DcganDiscriminator(patch_size, channels, n_features)
        self.generator.apply(init_dcgan_weights)
        self.discriminator.apply(init_dcgan_weights)

    def feature_encoder(self) -> DcganEncoder:
        return self.generator.encoder

    def patch_evidence(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_hat, the paper's latent distance ||z - z_hat||^2 per patch)."""
        reconstructions, latent, latent_reconstructed = self.generator(patches)
        return reconstructions, (latent - latent_reconstructed).pow(2).mean(dim=(1, 2, 3))
