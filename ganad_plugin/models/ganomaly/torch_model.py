"""GANomaly's networks on image patches: encoder G_E, decoder G_D, second encoder E, discriminator D.

An image is tiled into patches (``PatchGrid``); each patch x is encoded to z = G_E(x), reconstructed as
x_hat = G_D(z) and re-encoded as z_hat = E(x_hat). The paper's score is the latent distance ||z - z_hat||^2; here it
is the ``distance`` evidence map beside the residual x - x_hat and the feature memory of G_E's features
(``PatchAnomalyModel``).
"""

from __future__ import annotations

import torch
from torch import nn

from ganad_plugin.models.components.blocks import DcganDecoder, DcganDiscriminator, DcganEncoder, init_dcgan_weights
from ganad_plugin.models.components.patch_model import PatchAnomalyModel
from ganad_plugin.models.components.settings import Evidence, PatchNetwork


class GanomalyGenerator(nn.Module):
    """Encoder-decoder-encoder: patch [N, C, p, p] -> (x_hat, z [N, nz, 1, 1], z_hat)."""

    def __init__(self, *, network: PatchNetwork, channels: int) -> None:
        super().__init__()
        shape = (network.patch_size, channels, network.n_features, network.latent_dim)
        self.encoder = DcganEncoder(*shape)
        self.decoder = DcganDecoder(*shape)
        self.encoder_reconstructed = DcganEncoder(*shape)

    def forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        latent = self.encoder(patches)
        reconstructions = self.decoder(latent)
        return reconstructions, latent, self.encoder_reconstructed(reconstructions)


class GanomalyModel(PatchAnomalyModel):
    """Images [B, C, H, W] in [0, 1] -> ``InferenceBatch(pred_score [B], anomaly_map [B, 1, H, W])``.

    Training works on random patches through ``generator`` and ``discriminator`` directly.
    """

    def __init__(
        self, *, network: PatchNetwork = PatchNetwork(latent_dim=128), evidence: Evidence = Evidence(), channels: int = 3
    ) -> None:
        super().__init__(network=network, evidence=evidence, channels=channels)
        self.generator = GanomalyGenerator(network=network, channels=channels)
        self.discriminator = DcganDiscriminator(network.patch_size, channels, network.n_features)
        self.generator.apply(init_dcgan_weights)
        self.discriminator.apply(init_dcgan_weights)

    def feature_encoder(self) -> DcganEncoder:
        return self.generator.encoder

    def patch_evidence(
        self, patches: torch.Tensor, with_distance: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(x_hat, the paper's latent distance ||z - z_hat||^2 per patch, or None)."""
        reconstructions, latent, latent_reconstructed = self.generator(patches)
        if not with_distance:
            return reconstructions, None
        return reconstructions, (latent - latent_reconstructed).pow(2).mean(dim=(1, 2, 3))
