"""What training augmentation buys when the line's light and position drift: the same split, changed, before and after.

    python benchmarks/robustness.py [--model GANomaly] [--categories weave flange] [--split validation|test]

For each category the model's config is trained twice with `ganad train` (seed 0): as shipped, and with
`--data.train_augmentations ganad_plugin.augmentation.LineAugmentation` (kind "texture" for textures, "part" for
aligned parts, as listed in KINDS). Each checkpoint then scores the same images as they are and changed as a line
changes them: brighter and darker by 10 % of the range, contrast down by 15 %, moved by 4 px (cropped at the top
and left and resized back). Image and pixel AUROC of each (raw torch model). With --split validation (the default)
the images are the validation category built from train/good (held-back good images and synthetic defects; what
per-kind defaults are chosen on), with --split test the category's test split (the figure reported in
docs/robustness.md, run once). --write writes the page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from sample_sets import REPO, category_root, load_test_set, train_with_cli, write_generated_block
from torch.nn import functional as F

import ganad_plugin.models
from ganad_plugin.edge.metrics import auroc
from ganad_plugin.validation_set import build_validation_category

KINDS = {"weave": "texture", "stone": "texture", "mesh": "texture", "flange": "part", "label": "part"}
SHIFT_PX = 4


def changes(images: torch.Tensor, masks: np.ndarray) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
    """The images (and their masks) as they are and as a drifting line changes them."""
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    # moved: the view cropped by SHIFT_PX at the top and left and resized back (a roll would wrap the far edge round
    # and draw a seam across every image, a defect of its own)
    size = images.shape[-2:]
    shifted = F.interpolate(images[..., SHIFT_PX:, SHIFT_PX:], size=size, mode="bilinear", align_corners=False)
    shifted_masks = np.stack([cv2.resize(m[SHIFT_PX:, SHIFT_PX:].astype(np.uint8), size[::-1],
                                         interpolation=cv2.INTER_NEAREST) > 0 for m in masks])
    return {
        "as is": (images, masks),
        "brighter +0.1": ((images + 0.1).clamp(0, 1), masks),
        "darker -0.1": ((images - 0.1).clamp(0, 1), masks),
        "contrast x0.85": ((mean + (images - mean) * 0.85).clamp(0, 1), masks),
        f"shifted {SHIFT_PX} px": (shifted, shifted_masks),
    }


def score(ckpt: Path, model_name: str, images: torch.Tensor, labels: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    model = getattr(ganad_plugin.models, model_name).load_from_checkpoint(ckpt, map_location="cpu")
    net = model.model.eval()
    with torch.inference_mode():
        outputs = [net(images[i : i + 8]) for i in range(0, len(images), 8)]
    scores = torch.cat([o.pred_score for o in outputs]).numpy()
    maps = torch.cat([o.anomaly_map for o in outputs])[:, 0].numpy()
    return auroc(scores, labels), auroc(maps, masks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="GANomaly", choices=["GANomaly", "EGBAD", "AnoGAN"])
    parser.add_argument("--categories", nargs="*", default=["weave", "flange"])
    parser.add_argument("--split", choices=["validation", "test"], default="validation")
    parser.add_argument("--write", action="store_true", help="write docs/robustness.md")
    args = parser.parse_args()
    torch.set_num_threads(2)
    lines = ["| category | augmentation | " + " | ".join(changes(torch.zeros(1, 3, 8, 8), np.zeros((1, 8, 8)))) + " |"]
    lines.append("|" + "---|" * (len(lines[0].split("|")) - 2))
    for category in args.categories:
        source = category_root(category)
        root = (build_validation_category(source, REPO / "results" / "validation" / category)
                if args.split == "validation" else source)
        images, labels, masks = load_test_set(root, 10**6, 256)
        for augmented in (False, True):
            settings = ("data.train_augmentations=ganad_plugin.augmentation.LineAugmentation",
                        f"data.train_augmentations.init_args.kind={KINDS[category]}") if augmented else ()
            tag = f"{args.model.lower()}-{'augmented' if augmented else 'plain'}"
            out = REPO / "results" / "robustness" / args.split / tag / category
            ckpt, _, _ = train_with_cli(args.model, category, root.parent, out, seed=0, settings=settings, reuse=True)
            cells = []
            for name, (changed, changed_masks) in changes(images, masks).items():
                image_auroc, pixel_auroc = score(ckpt, args.model, changed, labels, changed_masks)
                cells.append(f"{image_auroc:.2f} / {pixel_auroc:.2f}")
                print(f"{category} {tag} {name}: image {image_auroc:.3f} pixel {pixel_auroc:.3f}", flush=True)
            lines.append(f"| {category} | {KINDS[category] if augmented else 'none'} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print("\n" + table)
    if args.write:
        command = " ".join(["python benchmarks/robustness.py", *sys.argv[1:]])
        write_generated_block(
            REPO / "docs" / "robustness.md", f"robustness.py {args.split}",
            f"Made by `{command}` (2 CPU cores, seed 0, {args.model}). Each cell: image / pixel AUROC of the same "
            f"images ({args.split} split), changed as the column says.\n\n{table}",
            "Robustness to a drifting line, before and after training augmentation")


if __name__ == "__main__":
    main()
