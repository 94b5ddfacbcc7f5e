"""AnoGAN's losses (Schlegl et al. 2017) and f-AnoGAN's encoder loss (Schlegl et al. 2019), on image patches.

DCGAN training: discriminator binary cross-entropy (real -> 1, G(z) -> 0; ``components.losses``); generator
non-saturating (G(z) -> 1), plus, with w_rec > 0 (not in the paper, 0 turns it off), w_rec * ||x - G(E(x))||_1 for G
and E together: the generator also learns to reproduce real patches through the encoder, which the prior-only game
learns slowly.
Latent search (test time), per patch:
    L(z) = (1 - lambda) * R(z) + lambda * D(z)
    R(z) residual loss        = ||x - G(z)||_1
    D(z) discrimination loss  = ||f_D(x) - f_D(G(z))||_1     (feature-matching variant, f_D: D's last features)
Encoder training (izi_f, G and D frozen):
    L_izi_f = ||x - G(E(x))||^2 / n_pixels + kappa * ||f_D(x) - f_D(G(E(x)))||^2 / n_features
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from ganad_plugin.models.components.losses import binary_cross_entropy
from ganad_plugin.models.components.patch_model import PatchAnomalyModel


def search_loss(
    patches: torch.Tensor,
    reconstructions: torch.Tensor,
    features_real: torch.Tensor,
    features_reconstructed: torch.Tensor,
    latent_search_lambda: float,
) -> torch.Tensor:
    """L(z) per patch [N]: (1 - lambda) * residual + lambda * discrimination loss, both as means (the paper's score)."""
    discrimination = (features_real - features_reconstructed).abs().mean(dim=(1, 2, 3))
    return PatchAnomalyModel.residual_and_distance(patches, reconstructions, discrimination, latent_search_lambda)


class GeneratorLoss(nn.Module):
    def __init__(self, *, w_rec: float = 0.0) -> None:
        super().__init__()
        self.w_rec = w_rec

    def forward(
        self,
        logits_generated: torch.Tensor,
        patches: torch.Tensor | None = None,
        reconstructions: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        adversarial = binary_cross_entropy(logits_generated, 1.0)
        if reconstructions is None:
            return {"total": adversarial}
        reconstruction = F.l1_loss(reconstructions, patches)
        return {"total": adversarial + self.w_rec * reconstruction, "reconstruction": reconstruction}


class EncoderLoss(nn.Module):
    """izi_f: image and discriminator-feature reconstruction through the frozen G, kappa weighting features."""

    def __init__(self, *, kappa: float = 1.0) -> None:
        super().__init__()
        self.kappa = kappa

    def forward(
        self, patches: torch.Tensor, reconstructions: torch.Tensor,
        features_real: torch.Tensor, features_reconstructed: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        image = F.mse_loss(reconstructions, patches)
        features = F.mse_loss(features_reconstructed, features_real)
        return {"total": image + self.kappa * features, "image": image, "features": features}
