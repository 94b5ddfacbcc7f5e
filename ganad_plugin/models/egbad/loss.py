"""EGBAD's losses (Zenati et al. 2018; BiGAN, Donahue et al. 2017), on image patches.

Discriminator (discrimination): binary cross-entropy, real pairs (x, E(x)) -> 1, generated pairs (G(z), z) -> 0
(``components.losses``).
Encoder and generator: the same pairs with the labels swapped (the non-saturating BiGAN objective), plus
    w_rec * ||x - G(E(x))||_1   (reconstruction consistency: ties E and G into near-inverses, which the
                                 adversarial game alone reaches only slowly on small data sets).
Anomaly score A(x) = (1 - alpha) * residual + alpha * discrimination-feature distance: the ``Evidence`` weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from ganad_plugin.models.components.losses import binary_cross_entropy


class EncoderGeneratorLoss(nn.Module):
    def __init__(self, *, w_adv: float = 1.0, w_rec: float = 10.0) -> None:
        super().__init__()
        self.w_adv, self.w_rec = w_adv, w_rec

    def forward(
        self,
        logits_real_pair: torch.Tensor,
        logits_generated_pair: torch.Tensor,
        patches: torch.Tensor,
        reconstructions: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        adversarial = 0.5 * (binary_cross_entropy(logits_real_pair, 0.0) + binary_cross_entropy(logits_generated_pair, 1.0))
        reconstruction = F.l1_loss(reconstructions, patches)
        total = self.w_adv * adversarial + self.w_rec * reconstruction
        return {"total": total, "adversarial": adversarial, "reconstruction": reconstruction}
