"""anomalib's PostProcessor with thresholds a line can live with: few good parts flagged, masks that are not specks.

anomalib picks each threshold to maximise F1 on the validation split. Built from training images (the configs'
``synthetic`` split), that split's defects are faint Perlin-shaped blends; the F1-best threshold on them sits low, and
on a line it flags a large share of good parts and paints specks over every good surface. ``LinePostProcessor``
keeps anomalib's F1 thresholds and normalisation, and raises each threshold, where needed, to what the validation
split's good images say:

  image  at least the score only ``image_false_alarm_rate`` of good parts exceed, estimated from the held-back good
         images' scores (a dozen: no tail quantile) as a one-sided normal tolerance bound, mean + k * std, with k
         such that, with probability ``floor_confidence``, at most that share of good parts exceed it. The plain
         normal quantile (k = z) ignores how little a dozen images say about the spread and flags several times
         the share it is set for (docs/accuracy.md, "The good-part floor"),
  pixel  at least the (1 - ``pixel_false_alarm_rate``) quantile of the good images' map values.

Only validation images enter (good ones and synthetic defects from training images); the thresholds live in the same
buffers as anomalib's, so checkpoints and the exported graph carry them unchanged.
"""

from __future__ import annotations

import math

import torch
from anomalib.data import Batch
from anomalib.post_processing import PostProcessor
from lightning.pytorch import LightningModule, Trainer
from scipy import stats

from .distributed import gathered

PIXELS_KEPT_PER_IMAGE = 4096  # good-image map values kept per image for the pixel quantile (a strided subsample)


class LinePostProcessor(PostProcessor):
    """PostProcessor whose thresholds are at least the good-part ones (see the module docstring).

    Args:
        image_false_alarm_rate: share of good parts the image threshold may flag (estimated); 0 turns the floor off.
        pixel_false_alarm_rate: share of good parts' pixels the pixel threshold may mark; 0 turns the floor off.
        floor_confidence: the confidence that the image floor is above ``1 - image_false_alarm_rate`` of good parts.
        **kwargs: anomalib's PostProcessor arguments.
    """

    def __init__(self, image_false_alarm_rate: float = 0.01, pixel_false_alarm_rate: float = 0.001,
                 floor_confidence: float = 0.9, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.5 <= floor_confidence < 1:
            msg = f"floor_confidence must be in [0.5, 1), got {floor_confidence}"
            raise ValueError(msg)
        self.floor_confidence = floor_confidence
        for name, rate in {"image_false_alarm_rate": image_false_alarm_rate,
                           "pixel_false_alarm_rate": pixel_false_alarm_rate}.items():
            if not 0 <= rate < 0.5:
                msg = f"{name} must be in [0, 0.5), got {rate}"
                raise ValueError(msg)
        self.image_false_alarm_rate = image_false_alarm_rate
        self.pixel_false_alarm_rate = pixel_false_alarm_rate
        self._good_scores: list[torch.Tensor] = []
        self._good_pixels: list[torch.Tensor] = []

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        del trainer, pl_module
        self._good_scores, self._good_pixels = [], []

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Batch, *args,
                                **kwargs) -> None:
        super().on_validation_batch_end(trainer, pl_module, outputs, *args, **kwargs)
        if outputs.gt_label is None:
            return
        good = outputs.gt_label == 0
        if outputs.pred_score is not None:
            self._good_scores.append(outputs.pred_score[good].detach().float().flatten().cpu())
        if outputs.anomaly_map is not None and good.any():
            maps = outputs.anomaly_map[good].detach().float().flatten(1)
            stride = max(1, maps.shape[1] // PIXELS_KEPT_PER_IMAGE)
            self._good_pixels.append(maps[:, ::stride].flatten().cpu())

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_epoch_end(trainer, pl_module)
        if not self.enable_thresholding:
            return
        # under DDP each process scored its share of the validation split: the thresholds pool all of them
        scores = gathered(torch.cat(self._good_scores) if self._good_scores else torch.empty(0))
        if self.image_false_alarm_rate > 0 and len(scores) >= 2:
            k = tolerance_factor(len(scores), 1 - self.image_false_alarm_rate, self.floor_confidence)
            raise_to(self._image_threshold, float(scores.mean() + k * scores.std()))
        pixels = gathered(torch.cat(self._good_pixels) if self._good_pixels else torch.empty(0))
        if self.pixel_false_alarm_rate > 0 and len(pixels):
            raise_to(self._pixel_threshold, float(torch.quantile(pixels[:16_000_000], 1 - self.pixel_false_alarm_rate)))
        self._good_scores, self._good_pixels = [], []


def tolerance_factor(count: int, coverage: float, confidence: float) -> float:
    """k of the one-sided normal tolerance bound mean + k * std from ``count`` samples: with probability
    ``confidence`` the bound is above ``coverage`` of the population (noncentral t; k falls towards the plain normal
    quantile as ``count`` grows)."""
    root = math.sqrt(count)
    return float(stats.nct.ppf(confidence, count - 1, stats.norm.ppf(coverage) * root) / root)


def raise_to(threshold: torch.Tensor, floor: float) -> None:
    """Set a threshold buffer to ``floor`` where it is lower or not set (NaN)."""
    if torch.isnan(threshold) or float(threshold) < floor:
        threshold.fill_(floor)
