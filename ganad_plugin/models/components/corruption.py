"""Synthetic corruption of normal training patches, so a reconstruction model learns to remove defects.

A plain autoencoder also learns to copy what it has never seen (it reconstructed a chipped rim as chipped):
then the residual misses the defect. Training G to map corrupted patches back to the clean ones teaches it
to paint normal structure over anything unusual. The corruptions are generic shapes (ellipses, thin lines)
blended towards a random grey level: no knowledge of any data set's defects.
"""

from __future__ import annotations

import torch


def corrupt_patches(patches: torch.Tensor, probability: float) -> torch.Tensor:
    """Corrupt a ``probability`` share of patches [N, C, p, p] (values in [-1, 1]); returns a new tensor."""
    if probability <= 0:
        return patches
    count, _, size, _ = patches.shape
    device = patches.device
    coords = torch.arange(size, device=device, dtype=patches.dtype)
    yy, xx = coords[:, None], coords[None, :]

    def uniform(low: float, high: float) -> torch.Tensor:
        return (torch.rand(count, 1, 1, device=device) * (high - low) + low).to(patches.dtype)

    # an ellipse of random size and orientation
    cy, cx, angle = uniform(0, size), uniform(0, size), uniform(0, 3.1416)
    ry, rx = uniform(1.5, size / 3), uniform(1.5, size / 3)
    dy, dx = yy - cy, xx - cx
    u = dx * torch.cos(angle) + dy * torch.sin(angle)
    v = -dx * torch.sin(angle) + dy * torch.cos(angle)
    ellipse = (u / rx) ** 2 + (v / ry) ** 2 <= 1
    # a thin line segment between two random points
    y0, x0, y1, x1 = uniform(0, size), uniform(0, size), uniform(0, size), uniform(0, size)
    length_sq = ((y1 - y0) ** 2 + (x1 - x0) ** 2).clamp_min(1.0)
    t = (((yy - y0) * (y1 - y0) + (xx - x0) * (x1 - x0)) / length_sq).clamp(0, 1)
    distance = torch.hypot(yy - (y0 + t * (y1 - y0)), xx - (x0 + t * (x1 - x0)))
    line = distance <= uniform(0.5, 1.8)

    use_line = torch.rand(count, 1, 1, device=device) < 0.5
    shape = torch.where(use_line, line, ellipse)
    chosen = torch.rand(count, 1, 1, device=device) < probability
    mask = (shape & chosen)[:, None].to(patches.dtype)  # [N, 1, p, p]
    level = torch.rand(count, 1, 1, 1, device=device, dtype=patches.dtype) * 2 - 1
    strength = torch.rand(count, 1, 1, 1, device=device, dtype=patches.dtype) * 0.7 + 0.3
    return patches + mask * strength * (level - patches)
