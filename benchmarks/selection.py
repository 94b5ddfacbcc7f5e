"""Choose the evidence defaults on validation categories built from training images only, never on a test split.

    python benchmarks/selection.py [--models GANomaly EGBAD] [--categories weave flange stone mesh label] [--seed 0]

For each category (committed in sample_data/, or generated on demand into results/generated/), its train/good
alone becomes a validation category (``ganad_plugin.validation_set``: a fifth of the good images held back, and
synthetic thin scratches, colour stains, foreign material, faded patches and moved pieces drawn on them). Each model
is trained there once with its default config (``ganad train``; reused when its checkpoint exists), and every
evidence variant below is scored on those same weights: the feature memory refilled and the evidence scales
refitted from the validation category's training images, as training does, then image and pixel AUROC on its
held-back images. Prints the table and writes docs/selection.md and docs/selection.csv (with --write).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sample_sets import REPO, category_root, load_test_set, load_train_images, train_with_cli

import ganad_plugin.models
from ganad_plugin.edge.metrics import auroc
from ganad_plugin.models.components.settings import Evidence
from ganad_plugin.validation_set import build_validation_category

# one change at a time against the current default, then combinations
VARIANTS: dict[str, dict] = {
    "default": {},
    "colour residual": {"colour_residual": True},
    "memory colour 1": {"memory_colour_weight": 1.0},
    "memory colour 3": {"memory_colour_weight": 3.0},
    "position cells 16": {"position_cells": 16},
    "position cells 32": {"position_cells": 32},
    "background 48 px": {"background_sigma_px": 48.0},
    "background off": {"background_sigma_px": 0.0},
    "memory weight 1": {"memory_weight": 1.0},
    "memory weight 16": {"memory_weight": 16.0},
    "image score: top 1 %": {"score_top_fraction": 0.01},
    "image score: maximum": {"score_top_fraction": 0.0},
    "GAN only (memory 0)": {"memory_weight": 0.0},
    "memory only": {"residual_weight": 0.0, "distance_weight": 0.0},
}
COMBINED = {"colour_residual": True, "memory_colour_weight": 1.0, "position_cells": 16}
VARIANTS["combined"] = COMBINED
VARIANTS["combined, GAN only"] = {**COMBINED, "memory_weight": 0.0}
VARIANTS["combined, memory only"] = {**COMBINED, "residual_weight": 0.0, "distance_weight": 0.0}


def score_variant(model_name: str, state: dict, evidence: Evidence, train: torch.Tensor, test: torch.Tensor,
                  labels: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    """Image and pixel AUROC of the trained weights in ``state`` scored with ``evidence``."""
    net = getattr(ganad_plugin.models, model_name)(evidence=evidence).model
    weights = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    weights = {k: v for k, v in weights.items() if not k.startswith(("memory.", "scorer."))}
    missing, unexpected = net.load_state_dict(weights, strict=False)
    refitted = [k for k in missing if not k.startswith(("memory.", "scorer."))]
    if refitted or unexpected:
        msg = f"checkpoint does not match {model_name}: missing {refitted}, unexpected {unexpected}"
        raise RuntimeError(msg)
    net.eval()
    with torch.inference_mode():
        net.fit_normal(train.split(16), 256)
        outputs = [net(test[start : start + 8]) for start in range(0, len(test), 8)]
    scores = torch.cat([output.pred_score for output in outputs]).numpy()
    maps = torch.cat([output.anomaly_map for output in outputs])[:, 0].numpy()
    return auroc(scores, labels), auroc(maps, masks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["GANomaly", "EGBAD"])
    parser.add_argument("--categories", nargs="*", default=["weave", "flange", "stone", "mesh", "label"])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="write docs/selection.md and docs/selection.csv")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    for category in args.categories:
        validation = build_validation_category(category_root(category), REPO / "results" / "validation" / category,
                                               seed=args.seed)
        train = load_train_images(validation, 10**6, 256)
        test, labels, masks = load_test_set(validation, 10**6, 256)
        for model_name in args.models:
            out = REPO / "results" / "selection" / f"seed{args.seed}" / model_name.lower() / category
            ckpt, seconds, _ = train_with_cli(model_name, category, validation.parent, out, seed=args.seed, reuse=True)
            state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
            for variant in args.variants:
                start = time.perf_counter()
                evidence = dataclasses.replace(Evidence(**state_evidence(ckpt)), **VARIANTS[variant])
                image, pixel = score_variant(model_name, state, evidence, train, test, labels, masks)
                rows.append({"model": model_name, "category": category, "variant": variant, "seed": args.seed,
                             "image_auroc": round(image, 4), "pixel_auroc": round(pixel, 4)})
                print(f"{model_name:9s} {category:7s} {variant:52s} image {image:.3f} pixel {pixel:.3f}"
                      f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    table = summary(rows, args.categories)
    print("\n" + table)
    if args.write:
        write(rows, table, args)


def state_evidence(ckpt: Path) -> dict:
    """The evidence settings a checkpoint was trained with (its hyper-parameters)."""
    evidence = torch.load(ckpt, map_location="cpu", weights_only=False)["hyper_parameters"]["evidence"]
    return dataclasses.asdict(evidence) if dataclasses.is_dataclass(evidence) else dict(evidence)


def summary(rows: list[dict], categories: list[str]) -> str:
    """A markdown table: each model and variant, image / pixel AUROC per category and their mean."""
    header = "| model | variant | " + " | ".join(categories) + " | mean image | mean pixel |"
    lines = [header, "|" + "---|" * (len(categories) + 4)]
    for model in dict.fromkeys(row["model"] for row in rows):
        for variant in dict.fromkeys(row["variant"] for row in rows):
            cells = [r for r in rows if r["model"] == model and r["variant"] == variant]
            by_category = {r["category"]: r for r in cells}
            shown = [f"{by_category[c]['image_auroc']:.2f} / {by_category[c]['pixel_auroc']:.2f}"
                     if c in by_category else "" for c in categories]
            mean_image = np.mean([r["image_auroc"] for r in cells])
            mean_pixel = np.mean([r["pixel_auroc"] for r in cells])
            lines.append(f"| {model} | {variant} | " + " | ".join(shown) + f" | {mean_image:.3f} | {mean_pixel:.3f} |")
    return "\n".join(lines)


def write(rows: list[dict], table: str, args: argparse.Namespace) -> None:
    docs = REPO / "docs"
    with (docs / "selection.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    command = " ".join(["python benchmarks/selection.py", *sys.argv[1:]])
    (docs / "selection.md").write_text(
        "# Choosing the defaults on validation built from training images\n\n"
        f"Made by `{command}` (2 CPU cores). Each cell: image AUROC / pixel AUROC on the validation category built\n"
        "from that category's `train/good` alone (`ganad_plugin.validation_set`: held-back good images and synthetic\n"
        "defects); no test image is read. Every variant scores the same trained weights (memory refilled, scales\n"
        f"refitted). Seed {args.seed}; per-row figures in `docs/selection.csv`.\n\n{table}\n"
    )
    print(f"wrote {docs / 'selection.md'} and {docs / 'selection.csv'}")


if __name__ == "__main__":
    main()
