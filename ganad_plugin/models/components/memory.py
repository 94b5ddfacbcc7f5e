"""Feature memory: how far each place of an image lies, in the model's own encoder features, from normal ones.

A generator's residual says how badly one place was reconstructed; it is high wherever the part has rare, sharp
structure (a bright rim, a bolt hole), on good parts too. The distance from a place's encoder feature to its
nearest normal feature instead asks whether such a place was ever seen. The features are the model's own patch
encoder, trained with the GAN and run convolutionally over the whole image (no pretrained network): its last
feature map, one feature every 8 px for 32-px patches (``PatchAnomalyModel.dense_features``). Features are
compared by direction (unit length, so the distance is sqrt(2 - 2 cos)): their lengths vary with lighting. A
direction is blind to a place that keeps its texture but changes colour, brightness or contrast, so the model may
append the place's local colour statistics, compared by plain distance (``Evidence.memory_colour_weight``).

The bank keeps a greedy k-center coreset of the normal features (``coreset_indices``), as PatchCore does for its
pretrained features: each kept feature is the one farthest from those kept so far, so rare normal structure is
covered rather than left to a random draw. Why this selection is ours and not anomalib's ``KCenterGreedy``, and
what the memory is worth: ``docs/evidence.md``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

SELECTIONS = ("coreset", "random")
PROJECTION_DIM = 32  # coreset distances are taken in a random projection of this size (Johnson-Lindenstrauss)
BANK_CHUNK = 4096  # bank rows compared at once: bounds the similarity matrix of a batch (B x h*w x chunk floats)


class FeatureMemory(nn.Module):
    """A fixed-size bank of normal feature vectors [size, dim] and each query's Euclidean distance to the nearest.

    The first ``direction_dims`` of each vector are scaled to unit length (an encoder feature, compared by
    direction); the rest are kept as given (e.g. a place's colour and contrast, already weighted by the caller).

    The bank has a fixed shape so that checkpoints load and the exported graph stays static; ``fit`` fills it
    with a subset of the features given (or all of them, repeated, when there are fewer): by ``selection``,
    "coreset" (greedy k-center, ``coreset_indices``) or "random".
    """

    def __init__(self, dim: int, size: int = 16384, selection: str = "coreset", direction_dims: int | None = None) -> None:
        super().__init__()
        direction_dims = dim if direction_dims is None else direction_dims
        if not 0 < direction_dims <= dim:
            msg = f"direction_dims must be in 1..{dim}, got {direction_dims}"
            raise ValueError(msg)
        self.direction_dims = direction_dims
        if size < 1:
            msg = f"memory_size must be at least 1, got {size}"
            raise ValueError(msg)
        if selection not in SELECTIONS:
            msg = f"memory selection must be one of {SELECTIONS}, got {selection!r}"
            raise ValueError(msg)
        self.selection = selection
        self.register_buffer("bank", torch.zeros(size, dim))
        self.register_buffer("filled", torch.tensor(False))
        self.bank: torch.Tensor
        self.filled: torch.Tensor

    @torch.no_grad()
    def fit(self, features: torch.Tensor, seed: int = 0) -> None:
        """Fill the bank from normal features [N, dim] (their direction part is normalised here)."""
        if features.ndim != 2 or features.shape[1] != self.bank.shape[1] or features.shape[0] == 0:
            msg = f"expected normal features [N > 0, {self.bank.shape[1]}], got {tuple(features.shape)}"
            raise ValueError(msg)
        size = self.bank.shape[0]
        features = self.prepare(features)
        generator = torch.Generator().manual_seed(seed)
        if features.shape[0] > size and self.selection == "coreset":
            chosen = coreset_indices(features, size, generator)
        else:
            order = torch.randperm(features.shape[0], generator=generator)
            chosen = order[:size] if features.shape[0] >= size else order.repeat(-(-size // features.shape[0]))[:size]
        self.bank.copy_(features[chosen.to(features.device)])
        self.filled.fill_(True)

    def prepare(self, features: torch.Tensor) -> torch.Tensor:
        """[..., dim] -> the same with the direction part scaled to unit length."""
        if self.direction_dims == features.shape[-1]:
            return F.normalize(features, dim=-1)
        direction, rest = features.split([self.direction_dims, features.shape[-1] - self.direction_dims], dim=-1)
        return torch.cat([F.normalize(direction, dim=-1), rest], dim=-1)

    def forward(self, feature_maps: torch.Tensor) -> torch.Tensor:
        """Feature maps [B, dim, h, w] -> distance of each place to its nearest normal feature [B, 1, h, w]."""
        batch, _, height, width = feature_maps.shape
        queries = self.prepare(feature_maps.flatten(2).transpose(1, 2))  # [B, h*w, dim]
        # |q - b|^2 = |q|^2 - 2 (q.b - |b|^2 / 2): the nearest row is the one with the largest q.b - |b|^2 / 2,
        # one matrix product a chunk; written with products and sums only (INT8 export keeps them in float by type)
        nearest = torch.stack([
            (queries @ chunk.T + (chunk * chunk).sum(dim=1) * -0.5).amax(dim=2) for chunk in self.bank.split(BANK_CHUNK)
        ]).amax(0)
        squared = (nearest * -2.0 + (queries * queries).sum(dim=2)).clamp_min(0)
        return squared.sqrt().reshape(batch, 1, height, width)


@torch.no_grad()
def coreset_indices(features: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Greedy k-center selection of ``size`` rows of ``features`` [N, dim]: each pick is the row farthest from
    all rows picked so far, so rare normal structure (a part's rim, a texture's knot) is kept rather than left to
    chance, and every feature lies close to some kept one.

    Distances are computed in a random Gaussian projection to ``PROJECTION_DIM`` dimensions, which preserves them
    approximately (Johnson-Lindenstrauss) at a fraction of the cost: one pass over the features per pick.
    """
    count, dim = features.shape
    if dim > PROJECTION_DIM:
        projection = torch.randn(dim, PROJECTION_DIM, generator=generator) / PROJECTION_DIM**0.5
        features = features @ projection.to(features)
    pick = int(torch.randint(count, (1,), generator=generator))
    # the loop in NumPy: its matrix-vector product and in-place updates cost a quarter of torch's per pick on a CPU
    # (16,384 picks of 50,000 features: 5 s against 21 s, docs/speed.md)
    points = features.float().cpu().numpy()
    squared_norms = np.einsum("ij,ij->i", points, points)
    nearest = np.full(count, np.inf, dtype=np.float32)
    distances = np.empty(count, dtype=np.float32)
    chosen = np.empty(size, dtype=np.int64)
    for i in range(size):
        chosen[i] = pick
        np.dot(points, points[pick], out=distances)
        distances *= -2
        distances += squared_norms + squared_norms[pick]
        np.minimum(nearest, distances, out=nearest)
        pick = int(nearest.argmax())
    return torch.from_numpy(chosen)
