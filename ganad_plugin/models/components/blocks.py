"""DCGAN building blocks shared by GANomaly, EGBAD and AnoGAN.

All three papers use the DCGAN layout: strided 4x4 convolutions that halve the resolution down to 4x4, then
a 4x4 convolution to (or from) a latent vector. Here the blocks work on square patches of ``patch_size``
pixels (a power of two, at least 16); the models tile an image into such patches (see ``patches.py``).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn


def _check_patch_size(patch_size: int) -> int:
    levels = math.log2(patch_size) if patch_size > 0 else -1
    if patch_size < 16 or levels != int(levels):
        msg = f"patch_size must be a power of two and at least 16, got {patch_size}"
        raise ValueError(msg)
    return int(levels) - 2  # stride-2 stages between patch_size and 4


class DcganEncoder(nn.Module):
    """Image patch [N, C, p, p] -> latent [N, latent_dim, 1, 1]; ``features`` also returns the last 4x4 map.

    Args:
        patch_size: side of the square input, a power of two >= 16.
        in_channels: input channels.
        n_features: channels after the first convolution; doubled at each stage.
        latent_dim: size of the output vector.
        batch_norm: batch normalisation after every convolution but the first (DCGAN).
        spectral_norm: spectral normalisation of every convolution (for discriminators).
        dropout: dropout probability after each stage (EGBAD's discriminator uses it).
    """

    def __init__(
        self,
        patch_size: int,
        in_channels: int,
        n_features: int,
        latent_dim: int,
        *,
        batch_norm: bool = True,
        spectral_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        stages = _check_patch_size(patch_size)
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda module: module)
        layers: list[nn.Module] = []
        channels = in_channels
        for stage in range(stages):
            out_channels = n_features * 2**stage
            layers.append(wrap(nn.Conv2d(channels, out_channels, 4, 2, 1, bias=False)))
            if batch_norm and stage > 0:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.feature_channels = channels
        self.to_latent = wrap(nn.Conv2d(channels, latent_dim, 4, 1, 0, bias=False))

    @staticmethod
    def channels_of_features(patch_size: int, in_channels: int, n_features: int) -> int:
        """Channels of ``features``' output for these arguments (what a feature memory must hold)."""
        stages = _check_patch_size(patch_size)
        return n_features * 2 ** (stages - 1) if stages > 0 else in_channels

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.features(patches))


class DcganDecoder(nn.Module):
    """Latent [N, latent_dim, 1, 1] -> patch [N, C, p, p] in [-1, 1] (tanh), mirroring ``DcganEncoder``."""

    def __init__(self, patch_size: int, out_channels: int, n_features: int, latent_dim: int) -> None:
        super().__init__()
        stages = _check_patch_size(patch_size)
        channels = n_features * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, channels, 4, 1, 0, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(inplace=True),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, out_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.net(latent)


class DcganDiscriminator(nn.Module):
    """Patch -> (logit [N], features [N, F, 4, 4]); the features serve the feature-matching losses."""

    def __init__(
        self,
        patch_size: int,
        in_channels: int,
        n_features: int,
        *,
        spectral_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        # batch norm and spectral norm do not mix well in D: with spectral norm, leave batch norm out
        self.encoder = DcganEncoder(
            patch_size, in_channels, n_features, 1, batch_norm=not spectral_norm,
            spectral_norm=spectral_norm, dropout=dropout,
        )

    def forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder.features(patches)
        return self.encoder.to_latent(features).flatten(), features


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), batch-norm scale N(1, 0.02) and bias 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.normal_(weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class WeightAverage(nn.Module):
    """Exponential moving average of a module's weights (and buffers), used in its place at test time.

    ``decay`` close to 1 averages over about ``1 / (1 - decay)`` recent optimiser steps, smoothing out the
    oscillation of adversarial training. ``decay = 0`` makes the average a plain copy of the live module.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            msg = f"weight-average decay must be in [0, 1), got {decay}"
            raise ValueError(msg)
        self.decay = decay
        self.average = copy.deepcopy(module).requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for averaged, live in zip(self.average.parameters(), module.parameters(), strict=True):
            averaged.lerp_(live, 1.0 - self.decay)
        for averaged, live in zip(self.average.buffers(), module.buffers(), strict=True):
            averaged.copy_(live)

    def forward(self, *args: Any) -> Any:
        return self.average(*args)
