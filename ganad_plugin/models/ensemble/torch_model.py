"""The ensemble's torch model: trained member models, each standardised on normal training images, averaged.

Each member maps images [B, C, H, W] in [0, 1] to ``InferenceBatch(pred_score [B], anomaly_map [B, 1, H, W])`` on
its own scale (a default config's z-scores, a paper preset's raw distances). ``fit_normal`` learns each member's
score mean and spread, and its map's, on normal training images; the ensemble's score is the mean of the members'
standardised scores, its map the mean of their standardised maps. The statistics are buffers: in the checkpoint
and in the one exported graph that holds every member.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from anomalib.data import InferenceBatch
from torch import nn

HELD_OUT_EVERY = 4  # the members' feature memories keep three training images in four and calibrate on the fourth


class EnsembleModel(nn.Module):
    """Images [B, C, H, W] in [0, 1] -> ``InferenceBatch(pred_score [B], anomaly_map [B, 1, H, W])``.

    Args:
        members: trained (calibrated) member torch models.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            msg = f"an ensemble needs at least two members, got {len(members)}"
            raise ValueError(msg)
        self.members = nn.ModuleList(members)
        count = len(members)
        self.register_buffer("score_mean", torch.zeros(count))
        self.register_buffer("score_std", torch.ones(count))
        self.register_buffer("map_mean", torch.zeros(count))
        self.register_buffer("map_std", torch.ones(count))
        self.register_buffer("fitted", torch.tensor(False))
        self.score_mean: torch.Tensor
        self.score_std: torch.Tensor
        self.map_mean: torch.Tensor
        self.map_std: torch.Tensor
        self.fitted: torch.Tensor

    @property
    def calibrated(self) -> bool:
        """Whether every member is calibrated and the members' normal statistics are fitted (``fit_normal``)."""
        return bool(self.fitted) and all(getattr(member, "calibrated", True) for member in self.members)

    def member_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores [B, M], maps [B, M, H, W]) of the members on their own scales."""
        outputs = [member(images) for member in self.members]
        scores = torch.stack([output.pred_score.reshape(-1) for output in outputs], dim=1)
        return scores, torch.cat([output.anomaly_map for output in outputs], dim=1)

    @torch.no_grad()
    def fit_normal(self, batches: Iterable[torch.Tensor], max_images: int = 256) -> int:
        """Fit each member's score and map mean and spread on normal images (batches [B, C, H, W] in [0, 1], in the
        members' calibration order): every fourth image, those the members held out of their feature memories (on
        the others a memory member scores near 0, which would make the normal spread look too small). Returns the
        number of images used."""
        scores, map_sums, map_squares, pixels, seen = [], 0.0, 0.0, 0, 0
        for images in batches:
            images = images[: max_images - seen]
            held_out = [i for i in range(len(images)) if (seen + i) % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
            seen += len(images)
            if held_out:
                batch_scores, maps = self.member_outputs(images[held_out])
                scores.append(batch_scores)
                map_sums = map_sums + maps.double().sum(dim=(0, 2, 3))
                map_squares = map_squares + maps.double().pow(2).sum(dim=(0, 2, 3))
                pixels += maps.shape[0] * maps.shape[2] * maps.shape[3]
            if seen >= max_images:
                break
        if len(scores) == 0 or sum(len(s) for s in scores) < 2:
            msg = f"the ensemble's statistics need at least {2 * HELD_OUT_EVERY} normal training images, got {seen}"
            raise RuntimeError(msg)
        all_scores = torch.cat(scores)
        if not torch.isfinite(all_scores).all():
            msg = "a member gave non-finite scores on normal training images: the ensemble cannot be standardised"
            raise FloatingPointError(msg)
        map_mean = map_sums / pixels
        self.score_mean.copy_(all_scores.mean(dim=0))
        self.score_std.copy_(all_scores.std(dim=0).clamp_min(1e-6))
        self.map_mean.copy_(map_mean.float())
        self.map_std.copy_((map_squares / pixels - map_mean**2).clamp_min(0).sqrt().float().clamp_min(1e-6))
        self.fitted.fill_(True)
        return seen

    def forward(self, images: torch.Tensor) -> InferenceBatch:
        scores, maps = self.member_outputs(images)
        score = ((scores - self.score_mean) / self.score_std).mean(dim=1)
        anomaly_map = ((maps - self.map_mean[None, :, None, None]) / self.map_std[None, :, None, None]).mean(
            dim=1, keepdim=True
        )
        return InferenceBatch(pred_score=score, anomaly_map=anomaly_map)
