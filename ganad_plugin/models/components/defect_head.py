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

With ``reference`` the head sees, beside each image, the GAN's reconstruction of it (DRAEM's discriminative network
sees its reconstructive network's output the same way): it then learns where an image departs from what the GAN
makes of it, and which departures are the GAN's own (a part's sharp rims and hole edges, which no patch GAN
reconstructs exactly) rather than a defect. The reconstruction is of the image with its drawn defects, as at test
time.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from .blocks import WeightAverage
from .hardware import cpu_has_bf16
from .settings import AdamSettings

NORMAL_SHARE = 0.25  # share of each training batch left without a defect
BATCH_SIZE = 16
CROP_PX = 128  # the head trains on crops (it is convolutional): a quarter of a 256-px image's cost a sample
LEARNING_RATE = 1e-3
STEPS_PER_IMAGE = 12  # a small training set trains the head for fewer batches: at most this many per image
FOCAL_GAMMA = 2.0
FOCAL_WEIGHT = 10.0  # the focal term against the Dice term
MASK_ALPHA = 0.15  # a place is in the defect where the defect covers at least this share of it (a line's soft edge too)
LINE_SHARE = 0.25  # share of the training defects that are lines (the other three kinds share the rest equally)
FAINTEST = 0.15  # a drawn defect's opacity is drawn from [FAINTEST, 1]


def _conv(inputs: int, outputs: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, stride, dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))


class DefectHead(nn.Module):
    """Images [B, C, H, W] in [0, 1] -> the logit that each place is a defect [B, 1, H, W].

    Full-resolution convolutions (thin lines survive them; ``fine`` of them), two strided ones to a quarter of the
    size, four dilated ones (a view of about 70 px, a scratch's length), a 1 x 1 to the logit, upsampled back.

    Args:
        channels: image channels.
        width: channels of the inner layers.
        fine: convolutions at full resolution before the first strided one (the configs: 3 of 16 channels; more
            see a thin line's profile over a wider window before it is subsampled).
        fine_width: channels of the full-resolution convolutions (0: half of ``width``); they cost the most a
            channel, working on 16 times the places of the inner layers.
        reference: the head also sees a reference image of the same size (the GAN's reconstruction), channels
            stacked after the image's.
    """

    def __init__(self, channels: int, width: int = 32, reference: bool = False, fine: int = 1,
                 fine_width: int = 0) -> None:
        super().__init__()
        if fine < 1:
            msg = f"a defect head needs at least one full-resolution convolution (fine >= 1), got fine={fine}"
            raise ValueError(msg)
        if fine_width < 0:
            msg = f"a defect head's full-resolution channels must be >= 0 (0: half its width), got fine_width={fine_width}"
            raise ValueError(msg)
        self.reference = reference
        full = fine_width or width // 2
        self.body = nn.Sequential(
            _conv(channels * (2 if reference else 1), full), *(_conv(full, full) for _ in range(fine - 1)),
            _conv(full, width, stride=2), _conv(width, width, stride=2),
            *(_conv(width, width, dilation=d) for d in (1, 2, 4, 8)),
        )
        self.logit = nn.Conv2d(width, 1, 1)
        self.register_buffer("filled", torch.tensor(False))
        self.filled: torch.Tensor

    def forward(self, images: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        if self.reference:
            if reference is None:
                msg = "this defect head compares each image with a reference (the GAN's reconstruction): pass one"
                raise ValueError(msg)
            images_in = torch.cat([images, reference], dim=1)
        else:
            images_in = images
        logits = self.logit(self.body(images_in * 2 - 1))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    def probability(self, images: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] (and, with ``reference``, the reference images of the same shape) -> the
        probability that each place is a defect [B, 1, H, W] (the evidence map: the scorer compares it on a log
        scale, as it does the distances)."""
        return torch.sigmoid(self(images, reference))

    def fit(self, images: torch.Tensor, steps: int, seed: int = 0,
            reconstruct: Callable[[torch.Tensor], torch.Tensor] | None = None, average: float = 0.0,
            steps_per_image: int = STEPS_PER_IMAGE, cosine: bool = False, line_share: float = LINE_SHARE) -> float:
        """Train on synthetic defects drawn on ``images`` (normal, [N, C, H, W] in [0, 1]) for ``steps`` batches,
        or ``steps_per_image`` a training image where that is fewer; returns the last batch's loss. With
        ``reference``, ``reconstruct`` (images in [0, 1] -> their references, the same shape) makes each batch's
        references, after its defects are drawn. With ``average`` (a decay in [0, 1)), the head keeps the
        exponential moving average of its weights over the second half of its steps (``blocks.WeightAverage``;
        its batch-norm statistics are the last step's) rather than the last step's weights (0). With ``cosine``
        the learning rate falls from ``LEARNING_RATE`` to 0 along a half cosine over the steps (constant
        otherwise). ``line_share``: the share of the drawn defects that are lines (``draw_training_defect``). The
        same images and seed give the same head."""
        if len(images) == 0:
            msg = "the defect head needs at least one normal image to train on, got none"
            raise ValueError(msg)
        if self.reference and reconstruct is None:
            msg = "this defect head compares each image with its reconstruction: fit needs reconstruct"
            raise ValueError(msg)
        steps = min(steps, steps_per_image * len(images))
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
        # the models' learning-rate schedules (only the rate: the head's Adam keeps torch's default betas)
        rates = AdamSettings(lr=LEARNING_RATE, schedule="cosine" if cosine else "constant")
        optimiser = torch.optim.Adam(student.parameters(), lr=rates.lr)
        averaged: WeightAverage | None = None
        low_precision = images.device.type == "cpu" and cpu_has_bf16()
        student.train()
        loss = torch.tensor(float("nan"))
        batches = (_reference_batches(rng, pictures, steps, reconstruct, images.device, line_share) if self.reference
                   else _plain_batches(rng, pictures, steps, line_share))
        with torch.enable_grad():
            for step, (drawn, masks, references) in enumerate(batches):
                for group in optimiser.param_groups:
                    group["lr"] = rates.rate_at(step / steps)
                batch = _to_tensor(drawn, images.device)
                reference = None if references is None else _to_tensor(references, images.device)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low_precision):
                    logits = student(batch, reference)
                loss = segmentation_loss(logits.float(), torch.from_numpy(masks)[:, None].to(images.device))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                if average > 0 and step == steps // 2:  # the average starts from trained weights
                    averaged = WeightAverage(student, average)
                elif averaged is not None:
                    averaged.update(student)
        trained_head = student if averaged is None else averaged.average
        with torch.no_grad():
            for mine, trained in zip(self.state_dict().values(), trained_head.state_dict().values(), strict=True):
                mine.copy_(trained)
        self.eval()
        self.filled.fill_(True)
        return float(loss.detach())


Batch = tuple[np.ndarray, np.ndarray, np.ndarray | None]  # images [B, h, w, C], masks [B, h, w], references or None
REFERENCE_ROUNDS = 2  # with a reference: the defects are drawn anew (and the images reconstructed) this many times


def _to_tensor(pictures: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pictures)).permute(0, 3, 1, 2).to(device).contiguous(
        memory_format=torch.channels_last)


def _plain_batches(rng: np.random.Generator, pictures: np.ndarray, steps: int,
                   line_share: float = LINE_SHARE) -> Iterator[Batch]:
    """``steps`` batches of crops of ``pictures`` [N, H, W, C], defects drawn on all but ``NORMAL_SHARE`` of each."""
    for _ in range(steps):
        crops = [_crop(rng, pictures[i]) for i in rng.integers(0, len(pictures), BATCH_SIZE)]
        drawn = [draw_training_defect(rng, crop, pictures, line_share) if k >= BATCH_SIZE * NORMAL_SHARE
                 else (crop, np.zeros(crop.shape[:2], np.float32)) for k, crop in enumerate(crops)]
        yield np.stack([image for image, _ in drawn]), np.stack([mask for _, mask in drawn]), None


def _reference_batches(rng: np.random.Generator, pictures: np.ndarray, steps: int,
                       reconstruct: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
                       line_share: float = LINE_SHARE) -> Iterator[Batch]:
    """``steps`` batches of crops with their references. Reconstructing every batch's crops costs more than the
    head's training, and a crop's reconstruction at its own edges is not the whole image's: instead the whole
    images are reconstructed, as at test time, once clean and once per round (``REFERENCE_ROUNDS``) with defects
    drawn on every ``CROP_PX`` tile of them but ``NORMAL_SHARE``, and each batch crops images, references and masks
    at the same places; ``NORMAL_SHARE`` of each batch comes from the clean images."""

    def reconstructed(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([
                reconstruct(_to_tensor(images[start : start + 8], device)).float().permute(0, 2, 3, 1).cpu().numpy()
                for start in range(0, len(images), 8)])

    height, width = pictures.shape[1:3]
    clean = (pictures, np.zeros(pictures.shape[:3], np.float32), reconstructed(pictures))
    rounds = max(1, min(REFERENCE_ROUNDS, steps))
    for number in range(rounds):
        drawn, masks = draw_on_tiles(rng, pictures, pictures, line_share)
        defective = (drawn, masks, reconstructed(drawn))
        for _ in range(steps * (number + 1) // rounds - steps * number // rounds):
            chosen = [(clean if k < BATCH_SIZE * NORMAL_SHARE else defective, int(i))
                      for k, i in enumerate(rng.integers(0, len(pictures), BATCH_SIZE))]
            windows = [_window(rng, height, width) for _ in chosen]
            yield tuple(np.stack([source[part][i][window] for (source, i), window in zip(chosen, windows, strict=True)])
                        for part in range(3))


def draw_on_tiles(rng: np.random.Generator, pictures: np.ndarray, others: np.ndarray,
                  line_share: float = LINE_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """Whole images [N, H, W, C] with training defects (``draw_training_defect``) drawn on every ``CROP_PX`` tile
    but ``NORMAL_SHARE`` of them, at the size the head learns them; ``others`` lend their texture. Returns the images
    and their masks [N, H, W]."""
    height, width = pictures.shape[1:3]
    drawn, masks = pictures.copy(), np.zeros(pictures.shape[:3], np.float32)
    for i, top, left in itertools.product(range(len(pictures)), range(0, height, CROP_PX), range(0, width, CROP_PX)):
        if rng.random() >= NORMAL_SHARE:
            tile = np.s_[i, top : top + CROP_PX, left : left + CROP_PX]
            drawn[tile], masks[tile] = draw_training_defect(rng, drawn[tile], others, line_share)
    return drawn, masks


def with_drawn_defects(images: torch.Tensor, others: torch.Tensor, rounds: int = 2,
                       seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Normal images [N, C, H, W] in [0, 1] -> ``rounds`` copies of them with training defects drawn on their tiles
    (``draw_on_tiles``; ``others`` [M, C, H, W] lend their texture) [rounds * N, C, H, W], and the defects' masks
    [rounds * N, 1, H, W]. The same images and seed draw the same defects."""
    rng = np.random.default_rng(seed)
    pictures, lenders = (t.detach().float().cpu().permute(0, 2, 3, 1).numpy() for t in (images, others))
    drawn, masks = zip(*(draw_on_tiles(rng, pictures, lenders) for _ in range(rounds)), strict=True)
    return (torch.from_numpy(np.concatenate(drawn)).permute(0, 3, 1, 2).contiguous().to(images.device),
            torch.from_numpy(np.concatenate(masks))[:, None].to(images.device))


def _window(rng: np.random.Generator, height: int, width: int, side: int = CROP_PX,
            across: int | None = None) -> tuple[slice, slice]:
    """A random window of an image of ``height`` x ``width``, ``side`` pixels high and ``across`` (default ``side``)
    wide, clipped to the image where it is smaller."""
    across = side if across is None else across
    top = int(rng.integers(0, max(height - side, 0) + 1))
    left = int(rng.integers(0, max(width - across, 0) + 1))
    return np.s_[top : top + side], np.s_[left : left + across]


def _crop(rng: np.random.Generator, image: np.ndarray, side: int = CROP_PX, width: int | None = None) -> np.ndarray:
    """A random window of ``image`` [H, W, C] (``_window``), ``side`` pixels high and ``width`` wide."""
    return image[_window(rng, *image.shape[:2], side, width)]


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


def _defect_kind(rng: np.random.Generator, line_share: float) -> int:
    """Which kind of training defect to draw: 3 (a line) with probability ``line_share``, else 0, 1 or 2 alike."""
    if line_share == LINE_SHARE:  # one draw of four kinds alike: the stream every head before the setting drew
        return int(rng.integers(4))
    return 3 if rng.random() < line_share else int(rng.integers(3))


def draw_training_defect(rng: np.random.Generator, image: np.ndarray, others: np.ndarray,
                         line_share: float = LINE_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """One or two synthetic defects on ``image`` ([H, W, C] float in [0, 1]); ``others`` [N, H', W', C] (at least
    as large) lend their texture; ``line_share`` of them are lines. Returns the image and its mask [H, W] (1 where a
    defect is visible)."""
    height, width, channels = image.shape
    out = image.copy()
    mask = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(1, 3))):
        kind = _defect_kind(rng, line_share)
        alpha = _stroke(rng, height, width) if kind == 3 else _noise_region(rng, height, width)
        strength = rng.uniform(FAINTEST, 1.0)
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
