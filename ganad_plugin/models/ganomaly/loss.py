"""GANomaly's losses (Akcay et al. 2018, eq. 1-4), on image patches.

Generator:  L = w_adv * L_adv + w_con * L_con + w_enc * L_enc
    L_adv (adversarial, feature matching): || f(x) - f(x_hat) ||_2   with f the discriminator's last features
    L_con (contextual):                    || x - x_hat ||_1
    L_enc (encoder):                       || z - z_hat ||_2
Discriminator: binary cross-entropy, real patches -> 1, reconstructions -> 0 (``components.losses``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


class GeneratorLoss(nn.Module):
    def __init__(self, *, w_adv: float = 1.0, w_con: float = 50.0, w_enc: float = 1.0) -> None:
        super().__init__()
        self.w_adv, self.w_con, self.w_enc = w_adv, w_con, w_enc

    def forward(
        self, patches: torch.Tensor, reconstructions: torch.Tensor, latent: torch.Tensor,
        latent_reconstructed: torch.Tensor, features_real: torch.Tensor, features_fake: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        adversarial = F.mse_loss(features_fake, features_real)
        contextual = F.l1_loss(reconstructions, patches)
        encoder = F.mse_loss(latent_reconstructed, latent)
        total = self.w_adv * adversarial + self.w_con * contextual + self.w_enc * encoder
        return {"total": total, "adversarial": adversarial, "contextual": contextual, "encoder": encoder}
