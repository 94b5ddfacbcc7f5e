"""EGBAD's networks on image patches: encoder E, generator G, and a discriminator D on (patch, latent) pairs.

A patch x is encoded to z = E(x) and mapped back as x_hat = G(z) in one forward pass (no latent search).
The paper's score A(x) = (1 - alpha) ||x - x_hat||_1 + alpha ||f_D(x, z) - f_D(x_hat, z)||_1 becomes the
``residual`` and ``distance`` evidence maps, beside the feature memory of E's features (``PatchAnomalyModel``). At test time E and G are
their weight averages (``WeightAverage``).
"""

from __future__ import annotations

import torch
from torch import nn

from ganad_plugin.models.components.blocks import DcganDecoder, DcganEncoder, WeightAverage, init_dcgan_weights
from ganad_plugin.models.components.patch_model import PatchAnomalyModel
from ganad_plugin.models.components.settings import Evidence, PatchNetwork


class JointDiscriminator(nn.Module):
    """BiGAN discriminator: (patch [N, C, p, p], latent [N, nz, 1, 1]) -> (logit [N], features [N, hidden]).

    The patch goes through a DCGAN encoder stack, the latent through a linear layer; the joint layer's
    activations are the features for feature matching and scoring. Spectral normalisation bounds every
    layer (no batch norm, which would mix the real and generated pairs of a batch), and dropout keeps D from
    winning early on a small data set.
    """

    def __init__(
        self, patch_size: int, channels: int, n_features: int, latent_dim: int,
        *, dropout: float, spectral_norm: bool = True, hidden: int = 512,
    ) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda module: module)
        patch_encoder = DcganEncoder(
            patch_size, channels, n_features, 1, batch_norm=False, spectral_norm=spectral_norm, dropout=dropout
        )
        self.patch_features = patch_encoder.features
        patch_dim = patch_encoder.feature_channels * 4 * 4
        self.latent_features = nn.Sequential(sn(nn.Linear(latent_dim, hidden)), nn.LeakyReLU(0.2), nn.Dropout(dropout))
        self.joint = nn.Sequential(sn(nn.Linear(patch_dim + hidden, hidden)), nn.LeakyReLU(0.2), nn.Dropout(dropout))
        self.to_logit = sn(nn.Linear(hidden, 1))

    def forward(self, patches: torch.Tensor, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        joint = torch.cat([self.patch_features(patches).flatten(1), self.latent_features(latent.flatten(1))], dim=1)
        features = self.joint(joint)
        return self.to_logit(features).flatten(), features


class EgbadModel(PatchAnomalyModel):
    """Images [B, C, H, W] in [0, 1] -> ``InferenceBatch(pred_score [B], anomaly_map [B, 1, H, W])``.

    Training works on random patches through ``encoder``, ``generator`` and ``discriminator`` directly;
    evaluation uses the weight averages ``encoder_average`` and ``generator_average``, which the Lightning
    module updates after each step (``weight_average_decay = 0`` makes them copies of the live networks).
    """

    def __init__(
        self,
        *,
        network: PatchNetwork = PatchNetwork(latent_dim=64),
        evidence: Evidence = Evidence(),
        discriminator_dropout: float = 0.2, discriminator_spectral_norm: bool = True,
        weight_average_decay: float = 0.99,
        paper_alpha: float = 0.1,
        channels: int = 3,
    ) -> None:
        super().__init__(network=network, evidence=evidence, channels=channels)
        if not 0.0 <= paper_alpha <= 1.0:
            msg = f"paper_alpha must be in [0, 1], got {paper_alpha}"
            raise ValueError(msg)
        self.paper_alpha = paper_alpha
        shape = (network.patch_size, channels, network.n_features, network.latent_dim)
        self.encoder = DcganEncoder(*shape)
        self.generator = DcganDecoder(*shape)
        self.discriminator = JointDiscriminator(
            *shape, dropout=discriminator_dropout, spectral_norm=discriminator_spectral_norm
        )
        for module in (self.encoder, self.generator, self.discriminator):
            module.apply(init_dcgan_weights)
        self.encoder_average = WeightAverage(self.encoder, weight_average_decay)
        self.generator_average = WeightAverage(self.generator, weight_average_decay)

    def feature_encoder(self) -> DcganEncoder:
        return self.encoder_average.average

    def patch_evidence(
        self, patches: torch.Tensor, with_distance: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(G(E(x)), the D-feature distance ||f_D(x, E(x)) - f_D(G(E(x)), E(x))||_1 per patch, or None)."""
        latent = self.encoder_average(patches)
        reconstructions = self.generator_average(latent)
        if not with_distance:
            return reconstructions, None
        _, features_real = self.discriminator(patches, latent)
        _, features_reconstructed = self.discriminator(reconstructions, latent)
        return reconstructions, (features_real - features_reconstructed).abs().mean(dim=1)

    def paper_image_score(
        self, inputs: torch.Tensor, reconstructions: torch.Tensor, distance: torch.Tensor
    ) -> torch.Tensor:
        """EGBAD's A(x) = (1 - alpha) ||x - G(E(x))||_1 + alpha ||f_D(x, E(x)) - f_D(G(E(x)), E(x))||_1."""
        return self.residual_and_distance(inputs, reconstructions, distance, self.paper_alpha)
