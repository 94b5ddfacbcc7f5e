"""Feature memory: how far each place of an image lies, in the model's own encoder features, from normal ones.

A generator's residual says how badly one place was reconstructed; it is high wherever the part has rare, sharp
structure (a flange's bright rim, a bolt hole), on good parts too. The distance from a place's encoder feature to
its nearest normal feature instead asks whether such a place was ever seen: a rim has near neighbours among the
training features, a scratch across it does not. The features are the model's own patch encoder, trained with
the GAN and run convolutionally over the whole image (no pretrained network): its last feature map, one feature
every 8 px for 32-px patches (``PatchAnomalyModel.dense_features``). Features are compared by direction (unit
length, so the distance is sqrt(2 - 2 cos)): their lengths vary with lighting.

The bank keeps a greedy k-center coreset of the normal features (``coreset_indices``), as PatchCore does for
its pretrained features: each kept feature is the one farthest from those kept so far, so rare normal structure
is covered rather than left to a random draw, which otherwise reads as a defect on good parts.

What it is worth (``benchmarks/evidence_ablation.py --memory-size 16384`` on the six checkpoints of one
``benchmarks/accuracy.py`` run, same weights in each row; image / pixel AUROC; the "as trained" column is the
checkpoint's own random-subset memory as ``accuracy.py`` scored it):
                     reconstruction only  memory only    as trained: random, coreset, weight 8,  coreset, weight 4,
                                          (coreset)      weight 8, maximum   map maximum         top 0.25 % (shipped)
    GANomaly weave   0.800 / 0.863        0.800 / 0.955  0.734 / 0.944      0.818 / 0.961       0.858 / 0.965
             flange  0.646 / 0.777        0.897 / 0.991  0.822 / 0.979      0.906 / 0.991       0.888 / 0.990
    EGBAD    weave   0.766 / 0.825        0.801 / 0.962  0.770 / 0.962      0.805 / 0.968       0.858 / 0.971
             flange  0.552 / 0.865        0.818 / 0.983  0.763 / 0.964      0.853 / 0.982       0.856 / 0.979
    AnoGAN   weave   0.625 / 0.607        0.731 / 0.928  0.611 / 0.903      0.723 / 0.930       0.746 / 0.931
             flange  0.522 / 0.711        0.810 / 0.969  0.695 / 0.933      0.801 / 0.963       0.802 / 0.956
(reconstruction only and memory only: top 0.25 % image score. AnoGAN's rows are from before its reconstruction
term; with it, memory only gave 0.823 / 0.859 image AUROC, weave / flange: ``models/anogan/README.md``.) The coreset gave +0.03 to +0.11 image AUROC over the
trained random subset on every row; refilled the same way (``--selection random``), AnoGAN weave's random subset
gives 0.645 / 0.900 against the coreset's 0.723 / 0.930 (memory alone 0.672 against 0.731). Memory weight (the
reconstruction evidence's is 1), mean image AUROC over the six with the top-0.25 % score: 0: 0.65, 1: 0.77, 2:
0.81, 4: 0.835, 8: 0.83, 16: 0.82. Weave prefers a low weight (its stains show in the residual, not in the
direction of the features) and flange a high one (its residual is high on every sharp rim); 4 is the best
compromise. Coreset banks of 8192 features gave image AUROC within -0.01..+0.004 of 16384 (map maximum, weight 8;
4096: -0.03..+0.005), at half the matrix product. An earlier memory of whole-patch latent codes gave 0.58-0.74
image AUROC alone; a memory of 8-px-shifted window codes beside the features was no better than the features alone
on 5 of 6 checkpoints, at twice the cost, and was dropped.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

SELECTIONS = ("coreset", "random")
PROJECTION_DIM = 32  # coreset distances are taken in a random projection of this size: 4x-16x cheaper, same ranking
BANK_CHUNK = 4096  # bank rows compared at once: bounds the similarity matrix of a batch (B x h*w x chunk floats)


class FeatureMemory(nn.Module):
    """A fixed-size bank of unit-length normal feature vectors [size, dim] and each query's nearest distance.

    The bank has a fixed shape so that checkpoints load and the exported graph stays static; ``fit`` fills it
    with a subset of the features given (or all of them, repeated, when there are fewer): by ``selection``,
    "coreset" (greedy k-center, ``coreset_indices``) or "random".
    """

    def __init__(self, dim: int, size: int = 16384, selection: str = "coreset") -> None:
        super().__init__()
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
        """Fill the bank from normal features [N, dim] (any length: they are normalised here)."""
        if features.ndim != 2 or features.shape[1] != self.bank.shape[1] or features.shape[0] == 0:
            msg = f"expected normal features [N > 0, {self.bank.shape[1]}], got {tuple(features.shape)}"
            raise ValueError(msg)
        size = self.bank.shape[0]
        features = F.normalize(features, dim=1)
        generator = torch.Generator().manual_seed(seed)
        if features.shape[0] > size and self.selection == "coreset":
            chosen = coreset_indices(features, size, generator)
        else:
            order = torch.randperm(features.shape[0], generator=generator)
            chosen = order[:size] if features.shape[0] >= size else order.repeat(-(-size // features.shape[0]))[:size]
        self.bank.copy_(features[chosen.to(features.device)])
        self.filled.fill_(True)

    def forward(self, feature_maps: torch.Tensor) -> torch.Tensor:
        """Feature maps [B, dim, h, w] -> distance of each place to its nearest normal feature [B, 1, h, w]."""
        batch, _, height, width = feature_maps.shape
        queries = F.normalize(feature_maps, dim=1).flatten(2).transpose(1, 2)  # [B, h*w, dim]
        nearest = torch.stack([(queries @ chunk.T).amax(dim=2) for chunk in self.bank.split(BANK_CHUNK)]).amax(0)
        # sqrt(2 - 2 cos) written as a product and a sum (no subtraction): INT8 export keeps both in float by type
        squared = (nearest * -2.0 + 2.0).clamp_min(0)
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
    squared_norms = (features * features).sum(dim=1)
    nearest = torch.full((count,), float("inf"), dtype=features.dtype, device=features.device)
    chosen = torch.empty(size, dtype=torch.long)
    pick = int(torch.randint(count, (1,), generator=generator))
    for i in range(size):
        chosen[i] = pick
        distances = squared_norms - 2 * (features @ features[pick]) + squared_norms[pick]
        torch.minimum(nearest, distances, out=nearest)
        pick = int(nearest.argmax())
    return chosen
