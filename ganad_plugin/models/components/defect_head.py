"""A defect head: a small segmentation network that learns, from normal images alone, where a surface is not normal.

On a random natural texture (stone, wood, fabric) no patch generator reconstructs the surface exactly, so its
residual is high everywhere, and the encoder's features of a random speckle do not separate a faint worn patch or a
thin scratch from the texture's own variety (docs/selection.md). A segmentation network trained to find synthetic
defects drawn on the normal images learns what the normal texture is by telling it from what it is not (the idea of
DRAEM, Zavrtanik et al. 2021, and CutPaste, Li et al. 2021, without their pretrained parts). It is trained after the
GAN, when the model fits its normal statistics (``PatchAnomalyModel.fit_normal``), on the same normal images that
fill the memory; its output (the probability of a defect at each place) is one more evidence map, standardised
against held-out normal images like the others.

The training defects are deliberately not the validation's (``ganad_plugin.validation_set`` draws defects with the
sample-data generator's shapes): here a defect is a region of smooth-noise shape or a curved stroke, filled with the
texture of another normal image, a plain colour, the place's own texture at lower contrast or another brightness,
or a dark, bright or coloured line. Choosing the head's settings on the validation categories therefore measures
how it generalises to defects it never saw drawn that way.
"""

from __future__ import annotations

import copy

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

NORMAL_SHARE = 0.25  # share of each training batch left without a defect
BATCH_SIZE = 16
CROP_PX = 128  # the head trains on crops (it is convolutional): a quarter of a 256-px image's cost a sample
LEARNING_RATE = 1e-3
STEPS_PER_IMAGE = 12  # a small training set trains the head for fewer batches: at most this many per image
FOCAL_GAMMA = 2.0
FOCAL_WEIGHT = 10.0  # the focal term against the Dice term
MASK_ALPHA = 0.15  # a place is in the defect where the defect covers at least this share of it (a line's soft edge too)


def _conv(inputs: int, outputs: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, stride, dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))


class DefectHead(nn.Module):
    """Images [B, C, H, W] in [0, 1] -> the logit that each place is a defect [B, 1, H, W].

    One full-resolution convolution (thin lines survive it), two strided ones to a quarter of the size, four
    dilated ones (a view of about 70 px, a scratch's length), a 1 x 1 to the logit, upsampled back.

    Args:
        channels: image channels.
        width: channels of the inner layers.
    """

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, width // 2), _conv(width // 2, width, stride=2), _conv(width, width, stride=2),
            *(_conv(width, width, dilation=d) for d in (1, 2, 4, 8)),
        )
        self.logit = nn.Conv2d(width, 1, 1)
        self.register_buffer("filled", torch.tensor(False))
        self.filled: torch.Tensor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.logit(self.body(images * 2 - 1))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    def probability(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] -> the probability that each place is a defect [B, 1, H, W] (the evidence
        map: the scorer compares it on a log scale, as it does the distances)."""
        return torch.sigmoid(self(images))

    def fit(self, images: torch.Tensor, steps: int, seed: int = 0) -> float:
        """Train on synthetic defects drawn on ``images`` (normal, [N, C, H, W] in [0, 1]) for ``steps`` batches,
        or ``STEPS_PER_IMAGE`` a training image where that is fewer; returns the last batch's loss. The same images
        and seed give the same head."""
        if len(images) == 0:
            msg = "the defect head needs at least one normal image to train on, got none"
            raise ValueError(msg)
        steps = min(steps, STEPS_PER_IMAGE * len(images))
        rng = np.random.default_rng(seed)
        with torch.random.fork_rng():  # a fresh start (a refit, at another validation of the fit, starts over)
            torch.manual_seed(seed)
            for module in self.modules():
                if isinstance(module, nn.Conv2d | nn.BatchNorm2d):
                    module.reset_parameters()
        pictures = images.detach().float().cpu().permute(0, 2, 3, 1).numpy()
        # a copy trains, channels-last and, where the CPU has bf16 units, with bf16 convolutions (2.4x faster on
        # AVX-512 BF16, docs/speed.md; weights, optimiser and loss in f32); its weights are then copied into this
        # module's own tensors, whose layout (which DDP's gradient buckets were built for) never changes
        student = copy.deepcopy(self).to(memory_format=torch.channels_last)
        optimiser = torch.optim.Adam(student.parameters(), lr=LEARNING_RATE)
        low_precision = images.device.type == "cpu" and _cpu_has_bf16()
        student.train()
        loss = torch.tensor(float("nan"))
        with torch.enable_grad():
            for _ in range(steps):
                crops = [_crop(rng, pictures[i]) for i in rng.integers(0, len(pictures), BATCH_SIZE)]
                drawn = [draw_training_defect(rng, crop, pictures) if k >= BATCH_SIZE * NORMAL_SHARE
                         else (crop, np.zeros(crop.shape[:2], np.float32)) for k, crop in enumerate(crops)]
                batch = torch.from_numpy(np.stack([image for image, _ in drawn])).permute(0, 3, 1, 2)
                masks = torch.from_numpy(np.stack([mask for _, mask in drawn]))[:, None]
                batch = batch.to(images.device).contiguous(memory_format=torch.channels_last)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low_precision):
                    logits = student(batch)
                loss = segmentation_loss(logits.float(), masks.to(images.device))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        with torch.no_grad():
            for mine, trained in zip(self.state_dict().values(), student.state_dict().values(), strict=True):
                mine.copy_(trained)
        self.eval()
        self.filled.fill_(True)
        return float(loss.detach())


def _cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic units (AVX-512 BF16 or AMX): elsewhere bf16 is emulated, and slower."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _crop(rng: np.random.Generator, image: np.ndarray, side: int = CROP_PX, width: int | None = None) -> np.ndarray:
    """A random window of ``image`` [H, W, C], ``side`` pixels high and ``width`` (default ``side``) wide, clipped
    to the image where it is smaller."""
    height, image_width = image.shape[:2]
    width = side if width is None else width
    top = int(rng.integers(0, max(height - side, 0) + 1))
    left = int(rng.integers(0, max(image_width - width, 0) + 1))
    return image[top : top + side, left : left + width]


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Focal loss (most places are normal and easy) plus a Dice term (a thin defect's few pixels count)."""
    probability = torch.sigmoid(logits)
    cross_entropy = F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
    correct = torch.where(masks > 0.5, probability, 1 - probability)
    focal = (cross_entropy * (1 - correct) ** FOCAL_GAMMA).mean()
    dice = 1 - (2 * (probability * masks).sum() + 1) / (probability.sum() + masks.sum() + 1)
    return FOCAL_WEIGHT * focal + dice


def _noise_region(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A soft region of smooth-noise shape (one or a few blobs), alpha [H, W] in [0, 1]."""
    cells = int(rng.integers(2, 9))
    field = np.zeros((height, width), np.float32)
    for octave in range(3):
        side = cells * 2**octave
        grid = rng.normal(0, 1, (side + 1, side + 1)).astype(np.float32)
        field += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC) * 0.5**octave
    region = (field > np.quantile(field, rng.uniform(0.93, 0.995))).astype(np.float32)
    return cv2.GaussianBlur(region, (0, 0), rng.uniform(0.5, 3.0))


def _stroke(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A thin curved stroke (part of a quadratic Bezier curve, 1-3 px), alpha [H, W] in [0, 1]."""
    mask = np.zeros((height, width), np.float32)
    ends = rng.uniform(0.04, 0.96, (3, 2)) * np.array([width, height])
    t = np.linspace(0, 1, 60)[:, None]
    curve = (1 - t) ** 2 * ends[0] + 2 * (1 - t) * t * ends[1] + t**2 * ends[2]
    length = rng.uniform(0.15, 0.7)
    start = rng.uniform(0, 1 - length)
    points = curve[int(start * 60) : int((start + length) * 60) + 2].astype(np.int32)
    cv2.polylines(mask, [points], False, 1.0, int(rng.integers(1, 4)), cv2.LINE_AA)
    return mask


def draw_training_defect(rng: np.random.Generator, image: np.ndarray,
                         others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One or two synthetic defects on ``image`` ([H, W, C] float in [0, 1]); ``others`` [N, H', W', C] (at least
    as large) lend their texture. Returns the image and its mask [H, W] (1 where a defect is visible)."""
    height, width, channels = image.shape
    out = image.copy()
    mask = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(1, 3))):
        kind = int(rng.integers(4))
        alpha = _stroke(rng, height, width) if kind == 3 else _noise_region(rng, height, width)
        strength = rng.uniform(0.15, 1.0)
        if kind == 0:  # another image's texture, moved and brighter or darker
            source = _crop(rng, others[rng.integers(len(others))], height, width)
            target = np.clip(source * rng.uniform(0.6, 1.4), 0, 1)
        elif kind == 1:  # a plain colour
            target = np.broadcast_to(rng.uniform(0, 1, channels).astype(np.float32), image.shape)
        elif kind == 2:  # the place's own texture, faded or brighter or darker
            local = cv2.GaussianBlur(out, (0, 0), 5).reshape(image.shape)
            if rng.random() < 0.5:
                target = local + (out - local) * rng.uniform(0.0, 0.6)
            else:
                target = np.clip(out * rng.choice([rng.uniform(0.6, 0.85), rng.uniform(1.15, 1.4)]), 0, 1)
        else:  # a line: dark, bright or a colour
            draw = rng.random()
            shade = (np.full(channels, 0.05) if draw < 0.4 else np.full(channels, 0.95) if draw < 0.6
                     else rng.uniform(0, 1, channels))
            target = np.broadcast_to(shade.astype(np.float32), image.shape)
        weight = (alpha * strength)[..., None]
        out = out * (1 - weight) + target * weight
        mask = np.maximum(mask, (alpha > MASK_ALPHA).astype(np.float32))
    return out.astype(np.float32), mask
