"""Which evidence map makes a good part score high: each map's share of the image score, per image of a folder.

    python benchmarks/good_part_evidence.py --model EGBAD --ckpt <model.ckpt> --folder <category>/test/good [--top 5]

The checkpoint's scorer standardises each evidence map against normal images and sums them with its weights; the
image score is the mean of the top ``score_top_fraction`` of that sum. Here each weighted, standardised map is
pooled alone the same way, for the ``--top`` highest-scoring images of the folder and as the median over all of
them, so that a good part flagged NG can be traced to the map that flags it. Reads only the folder it is given
(good parts, to explain a false alarm); chooses nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import ganad_plugin.models
from ganad_plugin.edge.images import list_images, read_rgb
from ganad_plugin.models.components.scoring import image_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=["GANomaly", "EGBAD", "AnoGAN"])
    parser.add_argument("--ckpt", required=True, type=Path)
    parser.add_argument("--folder", required=True, type=Path)
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    module = getattr(ganad_plugin.models, args.model).load_from_checkpoint(args.ckpt).eval()
    net = module.model
    if net.scorer is None:
        raise SystemExit(f"{args.ckpt}: a paper-preset checkpoint has no evidence maps to split its score into")
    files = list_images(args.folder)
    if not files:
        raise SystemExit(f"{args.folder}: no images")
    images = torch.stack([torch.from_numpy((read_rgb(f).astype(np.float32) / 255).transpose(2, 0, 1)) for f in files])
    calibration = net.scorer.calibration
    weights = calibration.weights if calibration.fitted_weights is None else calibration.fitted_weights
    with torch.inference_mode():
        weighted = calibration.standardise(net.scorer.smooth(net.evidence_of(images))) * weights[None, :, None, None]
        fraction = net.scorer.score_top_fraction
        scores = image_score(weighted.sum(dim=1, keepdim=True), fraction).numpy()
        parts = torch.stack([image_score(weighted[:, e : e + 1], fraction) for e in range(weighted.shape[1])], 1).numpy()
    names = list(net.evidence_names)
    print(f"{args.model} {args.ckpt}: weights " + ", ".join(f"{n} {float(w):.3f}" for n, w in zip(names, weights, strict=True)))
    print("\n| image | mean grey level | image score | " + " | ".join(names) + " |")
    print("|---" * (3 + len(names)) + "|")
    for index in np.argsort(-scores)[: args.top]:
        grey = float(images[index].mean()) * 255
        print(f"| {files[index].name} | {grey:.1f} | {scores[index]:.2f} | "
              + " | ".join(f"{v:.2f}" for v in parts[index]) + " |")
    print(f"| median of {len(files)} | {float(images.mean(dim=(1, 2, 3)).median()) * 255:.1f} | {np.median(scores):.2f} | "
          + " | ".join(f"{v:.2f}" for v in np.median(parts, axis=0)) + " |")


if __name__ == "__main__":
    main()
