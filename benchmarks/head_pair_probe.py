"""Probe: does averaging two defect heads steady the map? (docs/selection.md, thirteenth run)

    python benchmarks/head_pair_probe.py [weave stone label mesh flange]

On the checkpoints and cached maps of ``benchmarks/selection.py`` (GANomaly, seed 0: run its thirteenth run first),
scores the current defaults with the defect head's probability map taken from: each of the two 792-batch heads the
selection trained (seeds 0 and 1); their mean (two heads, twice the training); and the mean of two heads of 396
batches each (the same training as one head; seeds 0+1 and 2+3, trained here and cached beside the others).
Prints each category's image and pixel AUROC on its validation category and the means over the categories.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import selection

from ganad_plugin.models.components.settings import Evidence


def mean_map(*heads: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(calibration maps, test maps) averaged over ``heads``."""
    return tuple(torch.stack(maps).mean(dim=0) for maps in zip(*heads, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("categories", nargs="*", default=["weave", "stone", "label", "mesh", "flange"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    evidence = Evidence()
    results: dict[str, list[tuple[float, float]]] = {}
    for category in args.categories:
        validation = selection.build_validation_category(
            selection.category_root(category), selection.REPO / "results" / "validation" / category, seed=0)
        train = selection.load_train_images(validation, 10**6, 256)
        test, labels, masks = selection.load_test_set(validation, 10**6, 256)
        out = selection.REPO / "results" / "selection" / "seed0" / "ganomaly" / category
        caches = [out / "raw_evidence_True_0.0.pt", *(out / f"defect_evidence_792_bf16_seed{s}.pt" for s in (0, 1))]
        if not all(cache.is_file() for cache in caches):
            raise SystemExit(f"{out}: no cached maps; run benchmarks/selection.py's thirteenth run on {category} first")
        raw = torch.load(caches[0])
        colour = selection.colour_evidence(evidence.colour_sigma_px, evidence.colour_cells, train, test)
        full = [torch.load(cache) for cache in caches[1:]]
        halves = []
        for seed in range(4):
            cache = out / f"defect_evidence_396_bf16_seed{seed}.pt"
            if not cache.is_file():
                start = time.perf_counter()
                torch.save(selection.defect_evidence(396, train, test, seed=seed), cache)
                print(f"{category}: head of 396 batches, seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
            halves.append(torch.load(cache))
        heads = {"792 batches, seed 0": full[0], "792 batches, seed 1": full[1],
                 "mean of both 792-batch heads": mean_map(*full),
                 "mean of two 396-batch heads, seeds 0+1": mean_map(halves[0], halves[1]),
                 "mean of two 396-batch heads, seeds 2+3": mean_map(halves[2], halves[3])}
        for name, defect in heads.items():
            maps = tuple(torch.cat([net, col, head], dim=1) for net, col, head in zip(raw, colour, defect, strict=True))
            image, pixel, _ = selection.score_variant(maps, evidence, test.shape[1], labels, masks)
            results.setdefault(name, []).append((image, pixel))
            print(f"{category:7s} {name:40s} image {image:.3f} pixel {pixel:.3f}", flush=True)
    print(f"\nmean over {', '.join(args.categories)}:")
    for name, values in results.items():
        image, pixel = np.mean(values, axis=0)
        print(f"{name:40s} image {image:.4f} pixel {pixel:.4f}")


if __name__ == "__main__":
    main()
