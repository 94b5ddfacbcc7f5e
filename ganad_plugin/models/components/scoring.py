"""Turning evidence maps into one anomaly map and one image score.

A signed map (the residual x - G(.)) is smoothed before its magnitude is taken, so that a reconstruction's small
misalignments of fine texture average out while a defect's consistent deviation survives; distance maps are
taken on a log scale. Each map is then standardised with the mean and standard deviation it has on normal
training images (``EvidenceCalibration``, buffers in the checkpoint and the exported graph), and the anomaly map
is their weighted mean: a z-score per pixel. The image score is the mean of the map's highest pixels
(``image_score``). What each choice was measured to be worth: ``docs/evidence.md``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


WEIGHTS_FROM_DEFECTS = ("off", "scaled", "capped", "signal")  # the forms of EvidenceCalibration.fit_weights


class GaussianSmoothing(nn.Module):
    """Separable Gaussian blur of each channel, edge-mirrored to keep the size.

    A kernel that is short against the map runs as two 1-D convolutions, channels folded into the batch so that plain
    (not grouped) convolutions do the work (OpenVINO's CPU plugin stalled on the grouped form in bf16). A wide one (a
    background scale: 289 taps at sigma 48 px) runs as two matrix products with the blur's matrix along each axis,
    the mirrored edges folded into it: the same result to float rounding, several times faster (OpenVINO) to 30x
    (torch) at 256 px, since a single-channel convolution with a long kernel uses a CPU's vector units poorly and a
    matrix product well. The kernel is a non-persistent buffer rebuilt from ``sigma_px``, so checkpoints load cleanly.
    """

    # the matrix form when the kernel spans at least this fraction of the map's shorter side: chosen by the exported
    # graph's timings (``python benchmarks/smoothing_speed.py``, docs/speed.md), where a short kernel runs faster
    # as convolutions (torch eager would switch earlier)
    MATRIX_FROM_SPAN = 1 / 4

    def __init__(self, sigma_px: float) -> None:
        super().__init__()
        radius = max(1, int(round(3 * sigma_px)))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(offsets**2) / (2 * sigma_px**2))
        kernel = kernel / kernel.sum()
        self.register_buffer("kernel", kernel.view(1, 1, 1, -1), persistent=False)
        self.radius = radius
        self.kernel: torch.Tensor
        self._taps = kernel.double().numpy()  # for the matrices, built outside any trace
        self._matrices: dict[tuple[int, str], torch.Tensor] = {}

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = maps.shape
        # mirrored edges where the map is larger than the kernel's reach; a wide kernel (a background scale) on a
        # small image repeats the edge instead, since a reflection cannot reach past the far side
        mode = "reflect" if min(height, width) > self.radius else "replicate"
        if self.uses_matrices(height, width):
            rows = self.matrix(height, mode).to(maps)
            columns = rows if width == height else self.matrix(width, mode).to(maps)
            return rows @ maps @ columns.transpose(0, 1)
        single = maps.reshape(batch * channels, 1, height, width)
        padded = F.pad(single, (self.radius, self.radius, self.radius, self.radius), mode=mode)
        smoothed = F.conv2d(F.conv2d(padded, self.kernel), self.kernel.transpose(2, 3))
        return smoothed.reshape(batch, channels, height, width)

    def uses_matrices(self, height: int, width: int) -> bool:
        """Whether a map of ``height`` x ``width`` is blurred by matrix products (else by convolutions)."""
        return self.kernel.shape[-1] >= self.MATRIX_FROM_SPAN * min(height, width)

    def matrix(self, size: int, mode: str) -> torch.Tensor:
        """The blur along one axis of ``size`` pixels as a [size, size] matrix M (blurred = M @ values), the edge
        handling ``mode`` ("reflect": mirrored without repeating the edge pixel; "replicate") folded in.

        Built with numpy, so that an export records it as one constant rather than the ops that build it; cached per
        size outside an export (an exporter refuses module attributes assigned while it traces)."""
        size = int(size)  # a traced shape (TorchScript) is a tensor: the matrix is a constant of that size
        key = (size, mode)
        if key in self._matrices:
            return self._matrices[key]
        sources = np.arange(size)[:, None] + np.arange(-self.radius, self.radius + 1)  # the pixel each tap reads
        if mode == "reflect":
            sources = np.abs(sources)
            sources = np.where(sources > size - 1, 2 * (size - 1) - sources, sources)
        else:
            sources = sources.clip(0, size - 1)
        matrix = np.zeros((size, size))
        np.add.at(matrix, (np.arange(size)[:, None], sources), np.broadcast_to(self._taps, sources.shape))
        matrix = torch.from_numpy(matrix.astype(np.float32))
        if not torch.compiler.is_exporting():
            self._matrices[key] = matrix
        return matrix


class EvidenceCalibration(nn.Module):
    """Per-evidence mean and standard deviation on normal images, for ``num_evidence`` evidence maps, and the
    weights that combine the standardised maps (a weighted mean; equal weights by default).

    With ``position_cells`` > 0 the normal level is also learnt per place, on a grid of that many cells a side
    (bilinearly interpolated to the map's size): image borders and an aligned part's rims and holes, which are
    high on every good image, then stop reading as defects. With ``position_border_px`` only the places near the
    image's edge get their own level: the padding of the networks and of the patch grid biases every map there,
    whatever the product, while inside the image a part that moves would only blur its levels. With
    ``position_spread`` the places that vary more than the map as a whole on normal images (an aligned part's rims)
    also get their own spread, so that they count less; quieter places keep the map's own.

    With ``position_period`` > 0 the level (and, with ``position_spread``, the spread) also gets a part that repeats
    every that many pixels from the image's top-left corner, learnt from every repetition inside the image (its
    border left out) of every normal image: the patch grids' seams, which repeat every half patch whatever the
    product, and which a grid of cells learnt from a few images resolves only coarsely. It is learnt first and the
    cells' levels and spreads on what it leaves.

    With ``weights_from_defects`` other than ``"off"`` the weights are refitted to the product
    (``fit_weights``) from maps of normal images with synthetic defects drawn on them, and kept in the checkpoint.
    """

    # a place's spread is the map's times its local over global ratio, within these bounds: never below the map's (a
    # quiet place is not amplified), and a place 4x as variable as the map is still seen
    SPREAD_RATIO_MAX = 4.0

    def __init__(self, num_evidence: int, weights: tuple[float, ...] | None = None, position_cells: int = 0,
                 position_border_px: float = 0.0, position_spread: bool = False, position_period: int = 0,
                 weights_from_defects: str = "off") -> None:
        super().__init__()
        weights = weights or (1.0,) * num_evidence
        if len(weights) != num_evidence or min(weights) < 0 or sum(weights) <= 0:
            msg = f"evidence weights must be {num_evidence} non-negative numbers with a positive sum, got {weights}"
            raise ValueError(msg)
        if position_cells < 0 or position_border_px < 0:
            msg = f"position_cells and position_border_px must be >= 0, got {position_cells}, {position_border_px}"
            raise ValueError(msg)
        if position_spread and not position_cells:
            msg = "position_spread needs position_cells > 0 (the grid its spreads are learnt on)"
            raise ValueError(msg)
        if position_period < 0:
            msg = f"position_period must be >= 0 (0: off), got {position_period}"
            raise ValueError(msg)
        if weights_from_defects not in WEIGHTS_FROM_DEFECTS:
            msg = f"weights_from_defects must be one of {WEIGHTS_FROM_DEFECTS}, got {weights_from_defects!r}"
            raise ValueError(msg)
        self.position_border_px = position_border_px
        total = sum(weights)
        self.register_buffer("weights", torch.tensor([w / total for w in weights]), persistent=False)
        self.weights: torch.Tensor
        self.weights_from_defects = weights_from_defects
        self.fitted_weights: torch.Tensor | None
        if weights_from_defects != "off":
            self.register_buffer("fitted_weights", self.weights.clone())
        else:
            self.fitted_weights = None
        self.register_buffer("mean", torch.zeros(num_evidence))
        self.register_buffer("std", torch.ones(num_evidence))
        self.register_buffer("calibrated", torch.tensor(False))
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.calibrated: torch.Tensor
        self.position_offset: torch.Tensor | None
        if position_cells:
            self.register_buffer("position_offset", torch.zeros(num_evidence, position_cells, position_cells))
        else:
            self.position_offset = None
        self.position_scale: torch.Tensor | None
        if position_spread:
            self.register_buffer("position_scale", torch.ones(num_evidence, position_cells, position_cells))
        else:
            self.position_scale = None
        self.period_offset: torch.Tensor | None
        self.period_scale: torch.Tensor | None
        if position_period:
            self.register_buffer("period_offset", torch.zeros(num_evidence, position_period, position_period))
        else:
            self.period_offset = None
        if position_period and position_spread:
            self.register_buffer("period_scale", torch.ones(num_evidence, position_period, position_period))
        else:
            self.period_scale = None

    @torch.no_grad()
    def fit(self, evidence: torch.Tensor) -> None:
        """``evidence`` [B, num_evidence, H, W] from normal images."""
        num_evidence = evidence.shape[1]
        self.mean.copy_(evidence.transpose(0, 1).reshape(num_evidence, -1).mean(dim=1))
        if self.period_offset is not None:
            periodic = self.fold((evidence - self.mean[None, :, None, None]).mean(dim=0))
            self.period_offset.copy_(periodic - periodic.mean(dim=(1, 2), keepdim=True))
        if self.position_offset is not None:
            aperiodic = evidence - self.periodic(self.period_offset, evidence, 0.0)
            local = F.adaptive_avg_pool2d(aperiodic.mean(dim=0, keepdim=True), self.position_offset.shape[-2:])[0]
            self.position_offset.copy_((local - self.mean[:, None, None]) * self.border_cells(evidence.shape[-2:]))
        centred = evidence - self.level(evidence)
        self.std.copy_(centred.transpose(0, 1).reshape(num_evidence, -1).std(dim=1).clamp_min(1e-6))
        if self.period_scale is not None:
            # against the inside's own spread, not the map's: the border, left out of the fold, varies more
            variance = self.fold((centred * centred).mean(dim=0))
            ratio = (variance / variance.mean(dim=(1, 2), keepdim=True).clamp_min(1e-12)).sqrt()
            self.period_scale.copy_(ratio.clamp(1.0, self.SPREAD_RATIO_MAX))
            centred = centred / self.periodic(self.period_scale, evidence, 1.0)
        if self.position_scale is not None:
            cells = self.position_scale.shape[-2:]
            local = F.adaptive_avg_pool2d((centred * centred).mean(dim=0, keepdim=True), cells)[0].sqrt()
            ratio = (local / self.std[:, None, None]).clamp(1.0, self.SPREAD_RATIO_MAX)
            self.position_scale.copy_(1 + (ratio - 1) * self.border_cells(evidence.shape[-2:]))
        self.calibrated.fill_(True)

    @torch.no_grad()
    def fit_weights(self, evidence: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Refit the weights from ``evidence`` [B, E, H, W] of normal images with synthetic defects where ``masks``
        [B, 1, H, W] is 1 (after ``fit``, which standardises them): each map's configured weight times its signal
        (``defect_signal``), in the form ``weights_from_defects`` names; where no defect was drawn (a tiny image
        set, every tile left clean), the configured weights. Returns the signals [E]."""
        inside = masks > 0.5
        if not bool(inside.any()) or bool(inside.all()):
            self.fitted_weights.copy_(self.weights)
            return torch.zeros_like(self.weights)
        signal = defect_signal(self.standardise(evidence), masks)
        useful = signal.clamp_min(0)
        if self.weights_from_defects == "scaled":
            weights = self.weights * useful
        elif self.weights_from_defects == "capped":
            weights = self.weights * (useful / (0.5 * useful.max()).clamp_min(1e-6)).clamp_max(1.0)
        else:  # "signal"
            weights = useful
        if float(weights.sum()) <= 0:  # no map sees the drawn defects: the configured weights stand
            weights = self.weights
        self.fitted_weights.copy_(weights / weights.sum())
        return signal

    def fold(self, maps: torch.Tensor) -> torch.Tensor:
        """[E, H, W] -> the mean over the whole periods inside the map, one period left out at each edge [E, P, P]."""
        period = self.period_offset.shape[-1]
        rows, cols = maps.shape[-2] // period - 2, maps.shape[-1] // period - 2
        if rows < 1 or cols < 1:
            msg = f"position_period {period} needs maps of at least {3 * period} px a side, got {tuple(maps.shape[-2:])}"
            raise ValueError(msg)
        inside = maps[:, period : (rows + 1) * period, period : (cols + 1) * period]
        return inside.reshape(maps.shape[0], rows, period, cols, period).mean(dim=(1, 3))

    @staticmethod
    def periodic(pattern: torch.Tensor | None, evidence: torch.Tensor, neutral: float) -> torch.Tensor:
        """A per-period pattern [E, P, P] repeated over ``evidence``'s size [1, E, H, W] (``neutral`` if none)."""
        if pattern is None:
            return torch.full((1, evidence.shape[1], 1, 1), neutral, dtype=evidence.dtype, device=evidence.device)
        height, width = evidence.shape[-2:]
        period = pattern.shape[-1]
        repeats = (-(-int(height) // period), -(-int(width) // period))
        return pattern.repeat(1, *repeats)[None, :, :height, :width]

    def border_cells(self, size: torch.Size) -> torch.Tensor:
        """1 for the grid cells that get their own level, 0 for those that keep the global one [cells, cells]: all
        cells, or with ``position_border_px`` only those that start within that distance of the image's edge."""
        cells = self.position_offset.shape[-1]
        if self.position_border_px <= 0:
            return torch.ones(cells, cells)
        index = torch.arange(cells)
        from_edge = torch.minimum(index, cells - 1 - index)
        rows = from_edge * (size[0] / cells) < self.position_border_px
        cols = from_edge * (size[1] / cells) < self.position_border_px
        return (rows[:, None] | cols[None, :]).float()

    def level(self, evidence: torch.Tensor) -> torch.Tensor:
        """The normal level of each evidence map [1, E, 1, 1] or, per place, [1, E, H, W]."""
        level = self.mean[None, :, None, None]
        if self.period_offset is not None:
            level = level + self.periodic(self.period_offset, evidence, 0.0)
        if self.position_offset is None:
            return level
        # corner-aligned: OpenVINO and torch then agree at the borders (half-pixel modes extrapolate differently)
        offset = F.interpolate(self.position_offset[None], size=evidence.shape[-2:], mode="bilinear", align_corners=True)
        return level + offset

    def spread(self, evidence: torch.Tensor) -> torch.Tensor:
        """The normal spread of each evidence map [1, E, 1, 1] or, with ``position_spread``, per place [1, E, H, W]."""
        spread = self.std[None, :, None, None]
        if self.period_scale is not None:
            spread = spread * self.periodic(self.period_scale, evidence, 1.0)
        if self.position_scale is None:
            return spread
        scale = F.interpolate(self.position_scale[None], size=evidence.shape[-2:], mode="bilinear", align_corners=True)
        return spread * scale

    def standardise(self, evidence: torch.Tensor) -> torch.Tensor:
        """[B, E, H, W] -> each evidence map as a z-score against the normal images [B, E, H, W]."""
        return (evidence - self.level(evidence)) / self.spread(evidence)

    def forward(self, evidence: torch.Tensor) -> torch.Tensor:
        """[B, E, H, W] -> weighted mean z-score over the evidence maps [B, 1, H, W]."""
        weights = self.weights if self.fitted_weights is None else self.fitted_weights
        return (self.standardise(evidence) * weights[None, :, None, None]).sum(dim=1, keepdim=True)


def defect_signal(standardised: torch.Tensor, masks: torch.Tensor, max_pixels: int = 2**21) -> torch.Tensor:
    """Standardised maps [B, E, H, W] of images with defects where ``masks`` [B, 1, H, W] is 1 -> each map's
    separation of defect from normal pixels [E], as the binormal d' of its pixel AUROC A: 2 erfinv(2A - 1), the
    difference of the two means in units of their spread were both normal with one spread (0 at chance). From ranks,
    so that a few strong defects do not outweigh many faint ones; d' is the weight an optimal linear combination of
    independent maps of equal spread gives each. At most ``max_pixels`` pixels, evenly strided, are ranked."""
    inside = (masks > 0.5).flatten()
    if not bool(inside.any()) or bool(inside.all()):
        msg = "defect_signal needs masks with both defect and normal pixels"
        raise ValueError(msg)
    maps = standardised.transpose(0, 1).flatten(1)  # [E, B*H*W], the mask's pixel order
    step = max(1, -(-inside.numel() // max_pixels))
    maps, inside = maps[:, ::step], inside[::step]
    positives, negatives = int(inside.sum()), int((~inside).sum())
    ranks = maps.argsort(dim=1).argsort(dim=1).double() + 1
    area = (ranks[:, inside].sum(dim=1) - positives * (positives + 1) / 2) / (positives * negatives)
    return (2 * torch.erfinv(area.clamp(0.5, 0.999) * 2 - 1)).float()


class AnomalyScorer(nn.Module):
    """Smooth evidence maps, standardise them against normal images, and reduce to a map and a score.

    Args:
        signed: one flag per evidence map: True where the map is signed (its magnitude is taken after
            smoothing), False where it is a non-negative distance (its logarithm is taken after smoothing).
        channels: channels of each evidence map in the input (default: 1 each); a signed map's magnitude is taken
            over its channels.
        weights: relative weight of each evidence map in the combined z-score (default: equal).
        smoothing_sigma_px: Gaussian smoothing of each evidence map, in pixels of the model input; the
            residual of a GAN is noisy at single pixels while defects span several.
        smoothed: one flag per evidence map: False leaves that map unsmoothed (default: every map smoothed).
        background_sigma_px: a signed map's local mean at this wider scale is subtracted before its
            magnitude is taken (a difference of Gaussians), so that a reconstruction that is slightly too
            bright or dark over a whole region does not read as a defect; 0 turns it off.
        score_top_fraction: the image score is the mean of this share of the map's highest pixels (0: maximum).
        position_cells: learn each map's normal level per place on a grid of this many cells a side (0: one level).
        position_border_px: with ``position_cells``, only places within this distance of the image's edge get their
            own level (0: every place).
        position_spread: with ``position_cells``, the places that vary more on normal images also get their own
            spread (``EvidenceCalibration``).
        position_period: also learn a level (and with ``position_spread`` a spread) that repeats every this many
            pixels (the patch grids' seams; 0: off).
        weights_from_defects: how the weights are refitted to the product from synthetic defects
            (``EvidenceCalibration.fit_weights``; ``"off"``: never).
    """

    def __init__(
        self,
        *,
        signed: tuple[bool, ...],
        channels: tuple[int, ...] | None = None,
        weights: tuple[float, ...] | None = None,
        smoothing_sigma_px: float = 4.0,
        smoothed: tuple[bool, ...] | None = None,
        background_sigma_px: float = 0.0,
        score_top_fraction: float = 0.0,
        position_cells: int = 0,
        position_border_px: float = 0.0,
        position_spread: bool = False,
        position_period: int = 0,
        weights_from_defects: str = "off",
    ) -> None:
        super().__init__()
        num_evidence = len(signed)
        self.channels = channels or (1,) * num_evidence
        if len(self.channels) != num_evidence or min(self.channels) < 1:
            msg = f"channels must give each of the {num_evidence} evidence maps at least 1 channel, got {channels}"
            raise ValueError(msg)
        self.signed_flags = tuple(signed)
        self.smoothed_flags = (True,) * num_evidence if smoothed is None else tuple(smoothed)
        if len(self.smoothed_flags) != num_evidence:
            msg = f"smoothed must give one flag for each of the {num_evidence} evidence maps, got {smoothed}"
            raise ValueError(msg)
        self.blur = GaussianSmoothing(smoothing_sigma_px) if smoothing_sigma_px > 0 else nn.Identity()
        self.background = GaussianSmoothing(background_sigma_px) if background_sigma_px > 0 else None
        self.calibration = EvidenceCalibration(num_evidence, weights, position_cells, position_border_px,
                                               position_spread, position_period, weights_from_defects)
        self.score_top_fraction = score_top_fraction

    def smooth(self, evidence: torch.Tensor) -> torch.Tensor:
        """Evidence [B, sum(channels), H, W] -> one smoothed map per evidence [B, E, H, W] (but those ``smoothed``
        leaves as they are): the magnitude of a signed map (over its channels: the root mean square), the logarithm
        of a distance map."""
        maps = []
        for group, signed, blurred in zip(evidence.split(self.channels, dim=1), self.signed_flags,
                                          self.smoothed_flags, strict=True):
            smoothed = self.blur(group) if blurred else group
            if signed:
                if self.background is not None:
                    smoothed = smoothed - self.background(group)
                maps.append((smoothed * smoothed).mean(dim=1, keepdim=True).sqrt())
            else:
                # distances are compared on a log scale: their spread covers decades, and the calibration constants
                # then stay small enough for an FP16 export (a raw latent distance's mean can exceed FP16's 65504)
                maps.append(torch.log(smoothed.clamp_min(1e-6)))
        return torch.cat(maps, dim=1)

    def forward(self, evidence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Evidence [B, E, H, W] -> (pred_score [B], anomaly_map [B, 1, H, W])."""
        anomaly_map = self.calibration(self.smooth(evidence))
        return image_score(anomaly_map, self.score_top_fraction), anomaly_map


def image_score(anomaly_map: torch.Tensor, fraction: float) -> torch.Tensor:
    """Anomaly maps [B, 1, H, W] -> the mean of each map's top ``fraction`` of pixels [B] (0: the maximum)."""
    flat = anomaly_map.flatten(1)
    count = max(1, round(float(flat.shape[1]) * fraction))  # float(): a traced size is a tensor, without round()
    return flat.topk(count, dim=1).values.mean(dim=1)


def signed_residual(patches: torch.Tensor, reconstructions: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """Input minus reconstruction [N, C, p, p] x2 -> [N, C, p, p] (per_channel) or averaged over channels
    [N, 1, p, p]."""
    residual = patches - reconstructions
    return residual if per_channel else residual.mean(dim=1, keepdim=True)
