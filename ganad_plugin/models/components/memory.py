"""Patch memory: how far a patch's latent code lies from the codes of normal training patches.

A generator's residual says how badly one patch was reconstructed; it is high wherever the part has rare, sharp
structure (a bolt hole at a random angle), on good parts too. The distance from a patch's code to its nearest
normal code instead asks whether such a patch was ever seen: a bolt hole has near neighbours among the training
patches, a scratch across it does not. The codes are the model's own encoder outputs (no pretrained network).

Measured with ``benchmarks/evidence_ablation.py`` on the checkpoints of ``benchmarks/accuracy.py`` (same weights,
the model's configured evidence with and without the memory; image / pixel AUROC):
    GANomaly weave 0.744 / 0.850 -> 0.790 / 0.892     flange 0.549 / 0.851 -> 0.566 / 0.905
    EGBAD    weave 0.741 / 0.809 -> 0.767 / 0.833     flange 0.531 / 0.841 -> 0.546 / 0.887
    AnoGAN   weave 0.665 / 0.650 -> 0.743 / 0.855     flange 0.536 / 0.705 -> 0.588 / 0.784
The memory alone is the strongest evidence on the object (flange: 0.62-0.73 image, 0.85-0.93 pixel) and the
weakest on the texture (weave: 0.58-0.74 / 0.65-0.84), where the residual leads; equal weight for the two is
kept rather than a per-category choice. A smaller memory is worse (same command with ``--memory-sizes 32768
8192 2048``, GANomaly weave: image / pixel AUROC 0.805 / 0.893, 0.761 / 0.879, 0.753 / 0.854), hence the large
default.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchMemory(nn.Module):
    """A fixed-size bank of normal patch codes [size, latent_dim] and the nearest-code distance.

    The bank has a fixed shape so that checkpoints load and the exported graph stays static; ``fit`` fills it
    with a random subset of the codes given (or all of them, repeated, when there are fewer).
    """

    def __init__(self, latent_dim: int, size: int = 32768) -> None:
        super().__init__()
        if size < 1:
            msg = f"memory_size must be at least 1, got {size}"
            raise ValueError(msg)
        self.register_buffer("bank", torch.zeros(size, latent_dim))
        self.register_buffer("bank_norms", torch.zeros(size))
        self.register_buffer("filled", torch.tensor(False))
        self.bank: torch.Tensor
        self.bank_norms: torch.Tensor
        self.filled: torch.Tensor

    @torch.no_grad()
    def fit(self, codes: torch.Tensor, seed: int = 0) -> None:
        """Fill the bank from normal codes [N, latent_dim]."""
        if codes.ndim != 2 or codes.shape[1] != self.bank.shape[1] or codes.shape[0] == 0:
            msg = f"expected normal codes [N > 0, {self.bank.shape[1]}], got {tuple(codes.shape)}"
            raise ValueError(msg)
        size = self.bank.shape[0]
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(codes.shape[0], generator=generator)
        chosen = order[:size] if codes.shape[0] >= size else order.repeat(-(-size // codes.shape[0]))[:size]
        self.bank.copy_(codes[chosen.to(codes.device)])
        self.bank_norms.copy_(self.bank.pow(2).sum(dim=1))
        self.filled.fill_(True)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [N, latent_dim] -> distance to the nearest code in the bank [N] (the codes' norms until fitted)."""
        squared = codes.pow(2).sum(dim=1, keepdim=True) - 2 * codes @ self.bank.T + self.bank_norms[None]
        return squared.amin(dim=1).clamp_min(0).sqrt()
