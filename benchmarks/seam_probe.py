"""Probe: does the patch tiling leave a seam in the normal maps? (docs/selection.md, eleventh and twelfth runs)

    python benchmarks/seam_probe.py [stone label mesh weave flange]

Reads the raw evidence maps that ``benchmarks/selection.py`` caches beside each validation checkpoint (GANomaly,
seed 0; run it first), of the held-out normal images that calibrate the scales. Each map is smoothed as the scorer
smooths it (3 px; the residual's magnitude over its channels after the 48-px background is removed, the distance's
logarithm), standardised by its mean and spread over those images, averaged over the images, 16 px of border left
out, and folded by position modulo a period: the range of the folded mean (in standard deviations) is how much the
normal level depends on the position within that period. The patch grids repeat every half patch (16 px): a
pattern there and not at neighbouring periods is the tiling's, not the product's (weave, mesh and stone have a
random phase in every image). ``--window tent`` reads the maps merged with the tent window instead (twelfth run).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ganad_plugin.models.components.scoring import AnomalyScorer

REPO = Path(__file__).resolve().parents[1]
PERIODS = (12, 14, 15, 16, 17, 18)
BORDER_PX = 16


def folded_range(level: torch.Tensor, period: int) -> float:
    """Range of the mean of a [H, W] map over positions modulo ``period`` in both axes."""
    size = (min(level.shape) // period) * period
    folded = level[:size, :size].reshape(size // period, period, size // period, period).mean(dim=(0, 2))
    return float(folded.max() - folded.min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("categories", nargs="*", default=["stone", "label", "mesh", "weave", "flange"])
    parser.add_argument("--window", choices=["flat", "tent"], default="flat")
    args = parser.parse_args()
    torch.set_num_threads(2)
    suffix = "" if args.window == "flat" else "_tent"
    print(f"range of the normal level folded by each period, in standard deviations ({args.window} window)")
    print("category  map       " + "  ".join(f"{period:5d}" for period in PERIODS))
    for category in args.categories:
        cache = REPO / "results" / "selection" / "seed0" / "ganomaly" / category / f"raw_evidence_True_0.0{suffix}.pt"
        if not cache.is_file():
            raise SystemExit(f"{cache}: no cached maps; run benchmarks/selection.py on {category} first")
        calibrate, _ = torch.load(cache)
        channels = calibrate.shape[1] - 2  # residual channels, then the distance and the memory
        for name, maps, signed in (("residual", calibrate[:, :channels], True),
                                   ("distance", calibrate[:, channels : channels + 1], False)):
            scorer = AnomalyScorer(signed=(signed,), channels=(maps.shape[1],), smoothing_sigma_px=3.0,
                                   background_sigma_px=48.0 if signed else 0.0)
            with torch.inference_mode():
                smoothed = scorer.smooth(maps)[:, 0]
            standardised = (smoothed - smoothed.mean()) / smoothed.std()
            level = standardised[:, BORDER_PX:-BORDER_PX, BORDER_PX:-BORDER_PX].mean(dim=0)
            print(f"{category:9s} {name:9s} " + "  ".join(f"{folded_range(level, p):5.2f}" for p in PERIODS))


if __name__ == "__main__":
    main()
