"""Colour statistics: how far each place's local colour and contrast lie from those of normal images.

A stain, a faded or darkened region and foreign material of another colour change a surface's local colour mean
and spread while its texture may survive, so the generator reconstructs them and the encoder's feature direction
barely moves; on a random natural texture (stone, wood, fabric), which no patch model reconstructs exactly, such
defects are otherwise what stands out least. This map needs no learning: each place's local mean and standard
deviation of every channel (a Gaussian window) is compared with their distribution over the normal training
images by Mahalanobis distance. The distribution is one mean and covariance for the whole image (a stationary
surface), or one per cell of a grid over the image (an aligned part or print, whose colours depend on the place),
each cell's covariance shrunk towards the whole image's so that a cell seen on few distinct values stays sane.

With a surround window, each place also has its local mean and spread less their average over a wide window of the
same image: a stain or a worn patch is a change against its own surroundings, while whole images of a product vary in
tint, brightness and contrast (lighting, batches of material), which widens the distribution of the plain statistics
over the normal images and hides a faint change inside that range.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from .scoring import GaussianSmoothing

RIDGE = 1e-4  # added to the covariance's diagonal: a spread of 1 % of the range, about the camera's noise
SHRINKAGE = 0.25  # share of the whole image's covariance in each cell's
SUBSAMPLE = 4  # every 4th place a side enters the fit: neighbouring windows overlap and add nothing


class ColourStatistics(nn.Module):
    """Images [B, C, H, W] in [0, 1] -> Mahalanobis distance of each place's local colour statistics [B, 1, H, W].

    Args:
        channels: image channels (statistics: 2 * channels, the local mean and standard deviation of each).
        sigma_px: the Gaussian window's standard deviation, in pixels.
        cells: the distribution is learnt per cell of a grid of this many cells a side (bilinearly interpolated
            between cell centres); 1: one distribution for the whole image.
        surround_sigma_px: the wide window's standard deviation, in pixels; 0: no surround statistics.
    """

    def __init__(self, channels: int, sigma_px: float, cells: int = 1, surround_sigma_px: float = 0.0) -> None:
        super().__init__()
        if sigma_px <= 0:
            msg = f"evidence.colour_sigma_px must be > 0, got {sigma_px}"
            raise ValueError(msg)
        if cells < 1:
            msg = f"evidence.colour_cells must be at least 1 (1: one distribution for the image), got {cells}"
            raise ValueError(msg)
        if surround_sigma_px < 0:
            msg = f"evidence.colour_surround_sigma_px must be >= 0 (0: off), got {surround_sigma_px}"
            raise ValueError(msg)
        self.channels = channels
        self.window = GaussianSmoothing(sigma_px)
        self.surround = GaussianSmoothing(surround_sigma_px) if surround_sigma_px > 0 else None
        dims = (4 if self.surround is not None else 2) * channels
        self.register_buffer("centre", torch.zeros(dims, cells, cells))
        # W with W^T W = the inverse covariance, per cell
        self.register_buffer("whitening", torch.eye(dims)[:, :, None, None].repeat(1, 1, cells, cells))
        self.register_buffer("filled", torch.tensor(False))
        self.centre: torch.Tensor
        self.whitening: torch.Tensor
        self.filled: torch.Tensor

    def statistics(self, images: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> each place's local mean and standard deviation per channel [B, 2C, H, W], and with a
        surround window each less its wide average [B, 4C, H, W]."""
        # written with products and sums only, as the feature memory is: the INT8 export keeps those in float by type
        mean = self.window(images)
        spread = (self.window(images * images) + mean * mean * -1.0).clamp_min(0).sqrt()
        local = torch.cat([mean, spread], dim=1)
        if self.surround is None:
            return local
        return torch.cat([local, local + self.surround(local) * -1.0], dim=1)

    @torch.no_grad()
    def fit(self, batches: Iterable[torch.Tensor]) -> None:
        """Each cell's statistics mean and covariance over normal images (batches [B, C, H, W] in [0, 1])."""
        dims, cells = self.centre.shape[0], self.centre.shape[-1]
        total = torch.zeros(dims, cells, cells, dtype=torch.float64)
        outer = torch.zeros(dims, dims, cells, cells, dtype=torch.float64)
        count = 0
        for images in batches:
            if images.shape[1] != self.channels:
                msg = f"colour statistics expect {self.channels}-channel images, got {tuple(images.shape)}"
                raise ValueError(msg)
            if len(images) == 0:
                continue
            samples = self.statistics(images)[..., ::SUBSAMPLE, ::SUBSAMPLE].double()
            products = (samples[:, :, None] * samples[:, None]).flatten(1, 2)
            total += F.adaptive_avg_pool2d(samples, cells).sum(dim=0)
            outer += F.adaptive_avg_pool2d(products, cells).sum(dim=0).view(dims, dims, cells, cells)
            count += len(images)
        if count == 0:
            msg = "colour statistics need at least one normal image to fit, got none"
            raise ValueError(msg)
        mean, second = total / count, outer / count  # per cell
        covariance = second - mean[:, None] * mean[None]
        overall_mean = mean.mean(dim=(1, 2))
        overall = second.mean(dim=(2, 3)) - torch.outer(overall_mean, overall_mean)
        covariance = (1 - SHRINKAGE) * covariance + SHRINKAGE * overall[:, :, None, None]
        covariance = covariance + RIDGE * torch.eye(dims, dtype=torch.float64)[:, :, None, None]
        # covariance = L L^T, so W = L^-1 whitens: |W (s - centre)| is the Mahalanobis distance
        cholesky = torch.linalg.cholesky(covariance.permute(2, 3, 0, 1))
        whitening = torch.linalg.inv(cholesky).permute(2, 3, 0, 1)
        self.centre.copy_(mean.float())
        self.whitening.copy_(whitening.float())
        self.filled.fill_(True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        statistics = self.statistics(images)
        dims, cells = self.centre.shape[0], self.centre.shape[-1]
        centre, whitening = self.centre[None], self.whitening[None]  # [1, D, cells, cells], [1, D, D, cells, cells]
        if cells > 1:
            # corner-aligned, as the scorer's per-place levels: OpenVINO and torch then agree at the borders
            size = statistics.shape[-2:]
            centre = F.interpolate(centre, size=size, mode="bilinear", align_corners=True)
            whitening = F.interpolate(whitening.flatten(1, 2), size=size, mode="bilinear",
                                      align_corners=True).view(1, dims, dims, *size)
        whitened = (whitening * (statistics + centre * -1.0)[:, None]).sum(dim=2)  # W (s - centre) at every place
        return (whitened * whitened).sum(dim=1, keepdim=True).sqrt()
