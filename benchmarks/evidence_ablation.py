"""What each evidence map is worth, on the same trained weights: residual, the model's own distance, memory.

    python benchmarks/evidence_ablation.py --model GANomaly --category flange --ckpt <model.ckpt>

Loads a trained checkpoint (e.g. one written by benchmarks/accuracy.py), scores the whole test split once, and
prints image and pixel AUROC for each evidence map alone and for the weightings of (residual, model distance,
memory distance) listed in WEIGHTINGS, using the checkpoint's own feature memory and normal-image calibration.
The first weighting is the model's configured one; "(1 - w, w, 0)" is the model without the memory.
With --memory-sizes 32768 8192 2048 it then refills the memory (and recalibrates) from the training images at
each size, as training does, and prints the configured weighting's AUROC for each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from anogan_search import load_test_set, load_train_images

import ganad_plugin.models
from ganad_plugin.edge.metrics import auroc
from ganad_plugin.models.components.memory import FeatureMemory

WEIGHTINGS = {
    "residual only": (1.0, 0.0, 0.0),
    "model distance only": (0.0, 1.0, 0.0),
    "memory only": (0.0, 0.0, 1.0),
    "residual + model distance (no memory)": None,  # the configured first two weights, memory 0
    "residual + memory, equal weights": (1.0, 0.0, 1.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=["GANomaly", "EGBAD", "AnoGAN"])
    parser.add_argument("--category", required=True)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--root", default="sample_data")
    parser.add_argument("--memory-sizes", nargs="*", type=int, default=[])
    parser.add_argument("--selection", choices=["coreset", "random"], default="coreset", help="for --memory-sizes")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = getattr(ganad_plugin.models, args.model).load_from_checkpoint(args.ckpt).eval()
    net = model.model
    images, labels, masks = load_test_set(Path(args.root) / args.category, 10**6, 256)
    standardised = standardised_evidence(net, images)
    configured = tuple(net.scorer.calibration.weights.tolist())
    weightings = {"configured": configured, **WEIGHTINGS}
    weightings["residual + model distance (no memory)"] = (*configured[:2], 0.0)
    print(f"{args.model} {args.category} {args.ckpt}\n{len(images)} test images ({int(labels.sum())} defective)")
    print(f"{'evidence':40s} {'weights':>26s} {'image AUROC':>12s} {'pixel AUROC':>12s}")
    for name, weights in weightings.items():
        w = torch.tensor(weights) / sum(weights)
        maps = (standardised * w[None, :, None, None]).sum(dim=1).numpy()
        image = auroc(maps.reshape(len(maps), -1).max(axis=1), labels)
        pixel = auroc(maps, masks)
        shown = "(" + ", ".join(f"{x:.2f}" for x in weights) + ")"
        print(f"{name:40s} {shown:>26s} {image:12.3f} {pixel:12.3f}", flush=True)
    if args.memory_sizes:
        normal = load_train_images(Path(args.root) / args.category, 10**6, 256)
    for size in args.memory_sizes:
        net.memory = FeatureMemory(net.memory.bank.shape[1], size, args.selection)
        with torch.no_grad():
            net.fit_normal(normal.split(16))
            maps = torch.cat([net(images[i : i + 8]).anomaly_map for i in range(0, len(images), 8)])[:, 0].numpy()
        image = auroc(maps.reshape(len(maps), -1).max(axis=1), labels)
        print(f"{args.selection + ' memory of ' + str(size):40s} {'':>26s} {image:12.3f} {auroc(maps, masks):12.3f}", flush=True)


def standardised_evidence(net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The smoothed evidence maps [N, 3, H, W] as z-scores against the normal-image calibration."""
    with torch.inference_mode():
        smoothed = torch.cat([net.scorer.smooth(net.evidence(images[i : i + 8])) for i in range(0, len(images), 8)])
    calibration = net.scorer.calibration
    return (smoothed - calibration.mean[None, :, None, None]) / calibration.std[None, :, None, None]


if __name__ == "__main__":
    main()
