"""What each evidence map is worth, on the same trained weights: residual, the model's own distance, memory.

    python benchmarks/evidence_ablation.py --model GANomaly --category flange --ckpt <model.ckpt>

Loads a trained checkpoint (e.g. one written by benchmarks/accuracy.py), scores the whole test split once, and
prints image AUROC (three image scores: the map's maximum, the mean of its top 0.25 % and of its top 1 %) and
pixel AUROC for each evidence map alone and for weightings of (residual, paper distance, memory distance), using
the checkpoint's own feature memory and normal-image calibration. The first row is the model's configured
weighting; "memory weight m" keeps the configured residual/model-distance split with the memory at m.
With --memory-size N (and --selection coreset|random) it first refills the memory with N features from the
training images and recalibrates, as training does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from sample_sets import checkpoint_parser, load_test_set, load_train_images

import ganad_plugin.models
from ganad_plugin.edge.metrics import auroc
from ganad_plugin.models.components.memory import FeatureMemory
from ganad_plugin.models.components.scoring import image_score

SINGLE = {"residual only": (1.0, 0.0, 0.0), "paper distance only": (0.0, 1.0, 0.0), "memory only": (0.0, 0.0, 1.0)}
MEMORY_WEIGHTS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)


def main() -> None:
    parser = checkpoint_parser(__doc__)
    parser.add_argument("--memory-size", type=int, help="refill the memory with this many features first")
    parser.add_argument("--selection", choices=["coreset", "random"], default="coreset", help="for --memory-size")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = getattr(ganad_plugin.models, args.model).load_from_checkpoint(args.ckpt).eval()
    net = model.model
    if net.evidence_names != ("residual", "distance", "memory"):
        parser.error(f"the checkpoint has evidence {net.evidence_names}; this ablation needs exactly the networks' "
                     "three maps (train with model.evidence.colour_weight=0)")
    root = Path(args.root) / args.category
    memory = f"{net.memory.bank.shape[0]} features as trained"
    if args.memory_size:
        net.memory = FeatureMemory(net.memory.bank.shape[1], args.memory_size, args.selection)
        with torch.no_grad():
            net.fit_normal(load_train_images(root, 10**6, 256).split(16))
        memory = f"refilled: {args.selection} of {args.memory_size} features"
    images, labels, masks = load_test_set(root, 10**6, 256)
    standardised = standardised_evidence(net, images)
    configured = tuple(net.scorer.calibration.weights.tolist())
    reconstruction = (configured[0] / sum(configured[:2]), configured[1] / sum(configured[:2]))
    weightings = {"configured": configured, **SINGLE}
    weightings.update({f"memory weight {m:g}": (*reconstruction, m) for m in MEMORY_WEIGHTS})
    print(f"{args.model} {args.category} {args.ckpt}\nmemory: {memory}")
    print(f"{len(images)} test images ({int(labels.sum())} defective)")
    print(f"{'evidence':24s} {'weights':>20s} {'image: max':>11s} {'top 0.25%':>10s} {'top 1%':>8s} {'pixel':>7s}")
    for name, weights in weightings.items():
        w = torch.tensor(weights) / sum(weights)
        maps = (standardised * w[None, :, None, None]).sum(dim=1, keepdim=True)
        images_auroc = [auroc(image_score(maps, share).numpy(), labels) for share in (0.0, 0.0025, 0.01)]
        maps = maps[:, 0].numpy()
        shown = "(" + ", ".join(f"{x:.2f}" for x in weights) + ")"
        print(f"{name:24s} {shown:>20s} {images_auroc[0]:11.3f} {images_auroc[1]:10.3f} {images_auroc[2]:8.3f}"
              f" {auroc(maps, masks):7.3f}", flush=True)


def standardised_evidence(net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The smoothed evidence maps [N, E, H, W] as z-scores against the normal-image calibration."""
    with torch.inference_mode():
        smoothed = torch.cat([net.scorer.smooth(net.evidence(images[i : i + 8])) for i in range(0, len(images), 8)])
    return net.scorer.calibration.standardise(smoothed)


if __name__ == "__main__":
    main()
