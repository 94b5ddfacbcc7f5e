"""Probe: each model's maps without the paper's distance map, on the same checkpoint (not shipped).

    python benchmarks/distance_weight_probe.py [--models EGBAD AnoGAN GANomaly] [--categories label weave mesh] [--seed 0]

The scorer sums the standardised evidence maps with weights refitted to the product from synthetic defects
(``weights_from_defects: scaled``, normalised to sum 1), and the paper's distance map comes out at about 0.01 of
the sum in the checkpoints of ``benchmarks/accuracy.py``; for EGBAD and AnoGAN it is the discriminator's feature
distance, and the discriminator costs 13-17 % of their IR's time (``module_share_probe.py``, docs/speed.md). Here
each category's seed checkpoint scores the validation category built from that category's `train/good` alone
(held-back good images and synthetic defects, ``ganad_plugin.validation_set``; never a test split) as it is, and with
the distance map's weight set to 0: the ranking a model built without the map would give (each of the other maps'
weights is fitted on its own; the normalisation only rescales the sum). The checkpoints saw some of the held-back
images in training, so the absolute figures are optimistic; the comparison is on the same weights and images.
"""

from __future__ import annotations

import argparse

import torch
from sample_sets import REPO, category_root, load_test_set

import ganad_plugin.models
from ganad_plugin.edge.metrics import auroc
from ganad_plugin.validation_set import build_validation_category


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["EGBAD", "AnoGAN", "GANomaly"])
    parser.add_argument("--categories", nargs="+", default=["label", "weave", "mesh"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("| model | category | fitted distance weight | image AUROC with / without it | pixel AUROC with / without it |")
    print("|---|---|---|---|---|")
    for model_name in args.models:
        for category in args.categories:
            ckpt = next((REPO / "results" / "bench_accuracy" / model_name.lower() / category /
                         f"seed{args.seed}").rglob("model.ckpt"))
            root = build_validation_category(category_root(category), REPO / "results" / "validation" / category)
            images, labels, masks = load_test_set(root, 10_000, 256)
            net = getattr(ganad_plugin.models, model_name).load_from_checkpoint(ckpt).eval().model
            weights = net.scorer.calibration.fitted_weights
            distance = list(net.evidence_names).index("distance")
            fitted = float(weights[distance])
            figures = []
            for zeroed in (False, True):
                if zeroed:
                    weights[distance] = 0.0
                with torch.no_grad():
                    outputs = [net(images[i : i + 8]) for i in range(0, len(images), 8)]
                scores = torch.cat([o.pred_score for o in outputs]).numpy()
                maps = torch.cat([o.anomaly_map for o in outputs])[:, 0].numpy()
                figures.append((auroc(scores, labels), auroc(maps.ravel(), masks.ravel())))
            print(f"| {model_name} | {category} | {fitted:.3f} | {figures[0][0]:.4f} / {figures[1][0]:.4f} | "
                  f"{figures[0][1]:.4f} / {figures[1][1]:.4f} |", flush=True)

if __name__ == "__main__":
    main()
