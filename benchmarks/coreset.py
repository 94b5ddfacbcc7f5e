"""The feature memory's coreset selection against anomalib's ``KCenterGreedy``, on features of the memory's shape.

    python benchmarks/coreset.py [--features 84000] [--dim 128] [--size 16384] [--threads 2]

Both pick ``--size`` of ``--features`` unit-length features (a seeded mixture of 400 directions, the shape of a
sample_data category's calibration: 84 images x 1024 places x 128 channels) by greedy k-center selection.
Printed for each: the seconds of the selection and the coverage radius (the largest distance from any feature to
its nearest kept one, in the full space; smaller is better). Rows:
  memory            ``memory.coreset_indices`` (Gaussian projection to 32 dimensions, distances as products)
  KCenterGreedy     anomalib's, as PatchCore calls it (its own sparse projection, eps 0.9)
  KCenterGreedy/32  anomalib's, given the memory's 32-dimensional projection (it then projects no further)
Results: docs/evidence.md.
"""

from __future__ import annotations

import argparse
import time

import torch
from anomalib.models.components.sampling import KCenterGreedy
from torch.nn import functional as F  # noqa: N812

from ganad_plugin.models.components.memory import PROJECTION_DIM, coreset_indices


def mixture(count: int, dim: int, centres: int, generator: torch.Generator) -> torch.Tensor:
    means = torch.randn(centres, dim, generator=generator)
    picks = torch.randint(centres, (count,), generator=generator)
    return F.normalize(means[picks] + 0.4 * torch.randn(count, dim, generator=generator), dim=1)


def coverage_radius(features: torch.Tensor, kept: torch.Tensor) -> float:
    nearest = torch.cat([(chunk @ kept.T).amax(dim=1) for chunk in features.split(8192)])
    return float((2 - 2 * nearest).clamp_min(0).sqrt().max())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", type=int, default=84000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    features = mixture(args.features, args.dim, 400, generator)
    projection = torch.randn(args.dim, PROJECTION_DIM, generator=generator) / PROJECTION_DIM**0.5
    ratio = (args.size + 0.5) / args.features  # KCenterGreedy takes a ratio and rounds its size down

    def ours() -> torch.Tensor:
        return coreset_indices(features, args.size, torch.Generator().manual_seed(0))

    def anomalib_default() -> torch.Tensor:
        return torch.tensor(KCenterGreedy(features, ratio).select_coreset_idxs())

    def anomalib_projected() -> torch.Tensor:
        # a 3-D embedding makes KCenterGreedy skip its own projection
        return torch.tensor(KCenterGreedy((features @ projection)[:, :, None], ratio).select_coreset_idxs())

    print(f"python benchmarks/coreset.py --features {args.features} --dim {args.dim} --size {args.size} "
          f"--threads {args.threads}")
    rows = []
    for name, select in (("memory", ours), ("KCenterGreedy", anomalib_default), ("KCenterGreedy/32", anomalib_projected)):
        start = time.perf_counter()
        chosen = select()
        seconds = time.perf_counter() - start
        rows.append((name, seconds, coverage_radius(features, features[chosen]), len(set(chosen.tolist()))))
    reference = rows[0][1]
    print(f"\n{'selection':<18}{'seconds':>9}{'x memory':>10}{'coverage radius':>17}{'kept':>8}")
    for name, seconds, radius, kept in rows:
        print(f"{name:<18}{seconds:>9.1f}{seconds / reference:>10.2f}{radius:>17.3f}{kept:>8}")


if __name__ == "__main__":
    main()
