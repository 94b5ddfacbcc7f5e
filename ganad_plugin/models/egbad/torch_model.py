"""EGBAD's networks on image patches: encoder E, generator G, and a discriminator D on (patch, latent) pairs.

A patch x is encoded to z = E(x) and mapped back as x_hat = G(z) in one forward pass (no latent search).
Evidence per pixel: the signed residual x - x_hat, and the patch's discriminator-feature distance
||f_D(x, z) - f_D(x_hat, z)||_1 (the paper's feature-matching score), each averaged over the four patches
that cover the pixel. At test time E and G are their weight averages when training kept them (``WeightAverage``).
"""

from __future__ import annotations

import torch
from anomalib.data import InferenceBatch
from torch import nn

from ganad_plugin.models.components.blocks import DcganDecoder, DcganEncoder, WeightAverage, init_dcgan_weights
from ganad_plugin.models.components.patches import PatchGrid
from ganad_plugin.models.components.scoring import AnomalyScorer, per_patch_to_map, signed_residual


class JointDiscriminator(nn.Module):
    """BiGAN discriminator: (patch [N, C, p, p], latent [N, nz, 1, 1]) -> (logit [N], features [N, hidden]).

    The patch goes through a DCGAN encoder stack, the latent through a linear layer; the joint layer's
    activations are the features for feature matching and scoring. Spectral normalisation bounds every
    layer (no batch norm, which would mix the real and generated pairs of a batch), and dropout keeps D from
    winning early on a small data set.
    """

    def __init__(
        self,
        patch_size: int,
        channels: int,
        n_features: int,
        latent_dim: int,
        dropout: float,
        spectral_norm: bool = True,
        hidden: int = 512,
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


class EgbadModel(nn.Module):
    """Images [B, 3, H, W] in [0, 1] -> ``InferenceBatch(pred_score [B], anomaly_map [B, 1, H, W])``.

    Training works on random patches through ``encoder``, ``generator`` and ``discriminator`` directly;
    evaluation uses the weight averages ``encoder_average`` and ``generator_average``, which the Lightning
    module updates after each step (``weight_average_decay = 0`` makes them copies of the live networks).
    """

    def __init__(
        self,
        patch_size: int = 32,
        n_features: int = 32,
        latent_dim: int = 64,
        discriminator_dropout: float = 0.2,
        discriminator_spectral_norm: bool = True,
        feature_weight: float = 0.1,
        weight_average_decay: float = 0.99,
        smoothing_sigma_px: float = 3.0,
        background_sigma_px: float = 16.0,
        channels: int = 3,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.latent_dim = latent_dim
        self.grid = PatchGrid(patch_size)
        self.encoder = DcganEncoder(patch_size, channels, n_features, latent_dim)
        self.generator = DcganDecoder(patch_size, channels, n_features, latent_dim)
        self.discriminator = JointDiscriminator(
            patch_size, channels, n_features, latent_dim, discriminator_dropout, discriminator_spectral_norm
        )
        for module in (self.encoder, self.generator, self.discriminator):
            module.apply(init_dcgan_weights)
        # (1 - alpha) residual + alpha feature distance, as the paper's A(x)
        self.scorer = AnomalyScorer(
            signed=(True, False),
            weights=(1.0 - feature_weight, feature_weight),
            smoothing_sigma_px=smoothing_sigma_px,
            background_sigma_px=background_sigma_px,
        )
        self.encoder_average = WeightAverage(self.encoder, weight_average_decay)
        self.generator_average = WeightAverage(self.generator, weight_average_decay)

    @staticmethod
    def to_tanh_range(images: torch.Tensor) -> torch.Tensor:
        return images * 2 - 1

    def evidence(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] -> [B, 2, H, W]: signed pixel residual, D-feature distance."""
        height, width = images.shape[-2:]
        patches = self.grid.split(self.to_tanh_range(images))
        latent = self.encoder_average(patches)
        reconstructions = self.generator_average(latent)
        _, features_real = self.discriminator(patches, latent)
        _, features_reconstructed = self.discriminator(reconstructions, latent)
        feature_distance = (features_real - features_reconstructed).abs().mean(dim=1)
        residual = self.grid.merge(signed_residual(patches, reconstructions), (height, width))
        feature_map = self.grid.merge(per_patch_to_map(feature_distance, self.patch_size), (height, width))
        return torch.cat([residual, feature_map], dim=1)

    def forward(self, images: torch.Tensor) -> InferenceBatch:
        pred_score, anomaly_map = self.scorer(self.evidence(images))
        return InferenceBatch(pred_score=pred_score, anomaly_map=anomaly_map)
