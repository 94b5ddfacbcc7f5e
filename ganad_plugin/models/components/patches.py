"""Tiling an image into DCGAN-sized patches and putting per-patch results back together.

The GAN blocks see ``patch_size`` squares. At test time an image is covered by four non-overlapping grids
offset by half a patch (so every pixel is seen by four patches, in different positions within them); each
grid is a pure reshape, which keeps the graph exportable to ONNX/OpenVINO for any static image size.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F  # noqa: N812


def check_image_fits(patch_size: int, height: int, width: int, what: str = "image") -> None:
    """Refuse an image size whose sides do not hold two patches (the grids' half-patch offsets need them)."""
    if min(height, width) < 2 * patch_size:
        msg = (
            f"{what} of {height}x{width} px is too small for patch_size={patch_size}: "
            f"each side must be at least {2 * patch_size} px"
        )
        raise ValueError(msg)


PATCH_WINDOWS = ("flat", "tent")


class PatchGrid:
    """Split [B, C, H, W] images into patches and merge per-patch maps back to [B, 1, H, W].

    Works for any H, W >= ``patch_size`` (square or not): the image is reflect-padded by half a patch on
    the top and left and up to a whole number of patches on the bottom and right.

    ``window`` weighs each patch's pixels as they are merged: ``"flat"``, each pixel the plain mean of its four
    patches'; ``"tent"``, a separable triangle that is highest at a patch's centre and near 0 at its edges, so
    that each pixel is taken mostly from the patch it is central in (meant against the seam a flat merge leaves in the
    residual every half patch: it shrinks it a little, ``benchmarks/seam_probe.py``). The triangles of the two grids
    offset by half a patch sum to 1 along each axis, so the tent needs no normalisation.
    """

    def __init__(self, patch_size: int, window: str = "flat") -> None:
        if window not in PATCH_WINDOWS:
            msg = f"patch window must be one of {PATCH_WINDOWS}, got {window!r}"
            raise ValueError(msg)
        self.patch_size = patch_size
        self.half = patch_size // 2
        self.window = window
        if window == "tent":
            centre = (torch.arange(patch_size, dtype=torch.float32) + 0.5 - self.half).abs()
            tent = 1 - centre / self.half
            self.weights = (tent[:, None] * tent[None, :])[None, None]  # [1, 1, p, p]
        else:
            self.weights = None

    def _padded_size(self, size: int) -> int:
        return -(-size // self.patch_size) * self.patch_size + self.patch_size

    def _offsets(self) -> list[tuple[int, int]]:
        return [(0, 0), (0, self.half), (self.half, 0), (self.half, self.half)]

    def split(self, images: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B * N, C, p, p], grid by grid, row-major within a grid."""
        _, _, height, width = images.shape
        check_image_fits(self.patch_size, height, width)
        p, h = self.patch_size, self.half
        pad_bottom = self._padded_size(height) - height - h
        pad_right = self._padded_size(width) - width - h
        padded = F.pad(images, (h, pad_right, h, pad_bottom), mode="reflect")
        groups = []
        for top, left in self._offsets():
            rows = (padded.shape[2] - top) // p
            cols = (padded.shape[3] - left) // p
            crop = padded[:, :, top : top + rows * p, left : left + cols * p]
            groups.append(self._to_patches(crop, rows, cols))
        return torch.cat(groups, dim=0)

    def merge(self, patch_maps: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Average per-patch maps [B * N, C, p, p] (as ``split`` ordered them) into [B, C, H, W], weighted by the
        grid's window."""
        height, width = image_size
        p, h = self.patch_size, self.half
        padded_h, padded_w = self._padded_size(height), self._padded_size(width)
        total = None
        start = 0
        for top, left in self._offsets():
            rows, cols = (padded_h - top) // p, (padded_w - left) // p
            count = rows * cols
            batch = patch_maps.shape[0] // self.patches_per_image(height, width)
            group = patch_maps[start : start + batch * count]
            if self.weights is not None:
                group = group * self.weights.to(group)
            start += batch * count
            canvas = self._from_patches(group, batch, rows, cols)
            canvas = F.pad(canvas, (left, padded_w - left - cols * p, top, padded_h - top - rows * p))
            total = canvas if total is None else total + canvas
        # every pixel of the cropped region is covered by exactly one patch of each of the four grids, whose tent
        # weights there sum to 1
        merged = total[:, :, h : h + height, h : h + width]
        return merged if self.weights is not None else merged / 4

    def patches_per_image(self, height: int, width: int) -> int:
        padded_h, padded_w = self._padded_size(height), self._padded_size(width)
        return sum(((padded_h - t) // self.patch_size) * ((padded_w - l) // self.patch_size) for t, l in self._offsets())

    def _to_patches(self, crop: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        batch, channels = crop.shape[:2]
        p = self.patch_size
        grid = crop.reshape(batch, channels, rows, p, cols, p).permute(0, 2, 4, 1, 3, 5)
        return grid.reshape(batch * rows * cols, channels, p, p)

    def _from_patches(self, patches: torch.Tensor, batch: int, rows: int, cols: int) -> torch.Tensor:
        p = self.patch_size
        channels = patches.shape[1]
        grid = patches.reshape(batch, rows, cols, channels, p, p).permute(0, 3, 1, 4, 2, 5)
        return grid.reshape(batch, channels, rows * p, cols * p)


def random_patches(images: torch.Tensor, patch_size: int, per_image: int, structured_share: float = 0.0) -> torch.Tensor:
    """``per_image`` random square crops from each image of [B, C, H, W] -> [B * per_image, C, p, p].

    ``structured_share`` of the crops are drawn with probability proportional to the image gradient energy
    inside them, the rest uniformly. On an object on a plain background most uniform crops are background, and
    the rare structures (holes, rims, edges) are then reconstructed worst and dominate normal images' maps.
    """
    batch, _, height, width = images.shape
    if min(height, width) < patch_size:
        msg = f"training image of {height}x{width} px is smaller than patch_size={patch_size}"
        raise ValueError(msg)
    if not 0.0 <= structured_share <= 1.0:
        msg = f"structured_share must be in [0, 1], got {structured_share}"
        raise ValueError(msg)
    device = images.device
    tops = torch.randint(0, height - patch_size + 1, (batch, per_image), device=device)
    lefts = torch.randint(0, width - patch_size + 1, (batch, per_image), device=device)
    structured = round(structured_share * per_image)
    if structured > 0:
        energy = _patch_gradient_energy(images, patch_size)  # [B, H - p + 1, W - p + 1]
        positions = torch.multinomial(energy.flatten(1), structured, replacement=True)
        tops[:, :structured] = positions // energy.shape[2]
        lefts[:, :structured] = positions % energy.shape[2]
    offsets = torch.arange(patch_size, device=device)
    rows = (tops[..., None] + offsets)[..., :, None]  # [B, K, p, 1]
    cols = (lefts[..., None] + offsets)[..., None, :]  # [B, K, 1, p]
    image_index = torch.arange(batch, device=device)[:, None, None, None]
    crops = images.permute(0, 2, 3, 1)[image_index, rows, cols]  # [B, K, p, p, C]
    return crops.reshape(batch * per_image, patch_size, patch_size, -1).permute(0, 3, 1, 2).contiguous()


def _patch_gradient_energy(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Mean gradient magnitude inside each patch position, plus a floor so every position stays possible."""
    grey = images.mean(dim=1, keepdim=True)
    magnitude = F.pad((grey[..., :, 1:] - grey[..., :, :-1]).abs(), (0, 1)) + F.pad(
        (grey[..., 1:, :] - grey[..., :-1, :]).abs(), (0, 0, 0, 1)
    )
    energy = F.avg_pool2d(magnitude, patch_size, stride=1)[:, 0]
    return energy + 0.05 * energy.mean(dim=(1, 2), keepdim=True) + 1e-8
