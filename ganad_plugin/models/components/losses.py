"""The discriminator's loss, the same in all three papers: binary cross-entropy, real -> 1, generated -> 0."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


def binary_cross_entropy(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Mean binary cross-entropy of ``logits`` [N] against one target label (0.0 or 1.0) for all of them."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class DiscriminatorLoss(nn.Module):
    """0.5 * (BCE(D(real), 1) + BCE(D(generated), 0)); EGBAD's D sees (patch, latent) pairs, the others patches."""

    def forward(self, logits_real: torch.Tensor, logits_generated: torch.Tensor) -> torch.Tensor:
        return 0.5 * (binary_cross_entropy(logits_real, 1.0) + binary_cross_entropy(logits_generated, 0.0))
