"""AnoGAN's latent search: the paper's (random start, 500 steps) against the encoder start, side by side.

    python benchmarks/anogan_search.py [--category weave] [--ckpt <AnoGAN model.ckpt>] [--per-kind 10]

Without --ckpt it first trains AnoGAN with configs/anogan.yaml on the category (a few minutes). Then, on the same
test images (the first --per-kind of test/good and of each defect kind, so that the paper's search fits in
minutes on 2 cores), it scores them three ways with the same weights and calibration and prints test images
per second, image and pixel AUROC, the image AUROC of the reconstruction evidence alone (without the feature
memory, which does not depend on the search), and each variant's throughput as a multiple of the paper's:
    paper search     random z, Gamma = --paper-steps (500)
    encoder + steps  z from E(x), Gamma = --encoder-steps (10)
    encoder only     z from E(x), Gamma = 0 (the exported, one-pass model)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sample_sets import load_test_set, load_train_images

from ganad_plugin.edge.metrics import auroc
from ganad_plugin.models import AnoGAN
from ganad_plugin.models.components.scoring import image_score

REPO = Path(__file__).resolve().parents[1]


def train(category: str, root: str, out: Path) -> Path:
    command = [sys.executable, "-m", "ganad_plugin.cli", "train", "--config", str(REPO / "configs" / "anogan.yaml"),
               "--data.root", root, "--data.category", category, "--default_root_dir", str(out)]
    print("training:", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO)
    return max(out.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)


def score(model: AnoGAN, images: torch.Tensor, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(image scores, anomaly maps, image scores from the reconstruction evidence alone, images per second).

    The model's forward pass, spelt out so that the same evidence also gives the score without the feature
    memory (residual and D-feature distance at their configured weights): the memory is computed from E's
    features, the same for every search, so only that score shows what the search itself changes."""
    net = model.model
    calibration = net.scorer.calibration
    without_memory = calibration.weights.clone()
    without_memory[net.evidence_names.index("memory")] = 0.0
    without_memory /= without_memory.sum()
    fraction = net.scorer.score_top_fraction
    scores, maps, reconstruction_scores = [], [], []
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(images), batch_size):
            smoothed = net.scorer.smooth(net.evidence(images[first : first + batch_size]))
            anomaly_map = calibration(smoothed)
            reconstruction_map = (calibration.standardise(smoothed) * without_memory[None, :, None, None]).sum(dim=1)
            scores.append(image_score(anomaly_map, fraction).numpy())
            maps.append(anomaly_map[:, 0].numpy())
            reconstruction_scores.append(image_score(reconstruction_map[:, None], fraction).numpy())
    seconds = time.perf_counter() - start
    return np.concatenate(scores), np.concatenate(maps), np.concatenate(reconstruction_scores), len(images) / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--category", default="weave")
    parser.add_argument("--root", default="sample_data")
    parser.add_argument("--ckpt", type=Path)
    parser.add_argument("--per-kind", type=int, default=10)
    parser.add_argument("--paper-steps", type=int, default=500)
    parser.add_argument("--encoder-steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(2)
    checkpoint = args.ckpt or train(args.category, args.root, REPO / "results" / "bench_anogan" / args.category)
    model = AnoGAN.load_from_checkpoint(checkpoint).eval()
    images, labels, masks = load_test_set(Path(args.root) / args.category, args.per_kind, 256)
    # feature memory and evidence scales from normal training images with the one-pass (Gamma = 0) latent, shared
    # by all variants
    normal = load_train_images(Path(args.root) / args.category, 256, 256)
    model.model.latent_search_steps = 0
    model.model.fit_normal(normal.split(16))
    print(f"{checkpoint}\n{len(images)} test images ({int(labels.sum())} defective), batches of {args.batch_size}")

    variants = [
        ("paper search", False, args.paper_steps),
        ("encoder + steps", True, args.encoder_steps),
        ("encoder only", True, 0),
    ]
    rows = []
    for name, encoder_start, steps in variants:
        model.model.encoder_start, model.model.latent_search_steps = encoder_start, steps
        torch.manual_seed(0)  # the random start
        scores, maps, reconstruction_scores, per_second = score(model, images, args.batch_size)
        rows.append((f"{name} (G={steps})", per_second, auroc(scores, labels), auroc(maps, masks),
                     auroc(reconstruction_scores, labels)))
        print(f"  {rows[-1][0]}: {per_second:.3f} images/s", flush=True)

    paper_rate = rows[0][1]
    print(f"\n{'variant':<26}{'images/s':>10}{'x paper':>9}{'image AUROC':>13}{'pixel AUROC':>13}"
          f"{'image AUROC, no memory':>24}")
    for name, per_second, image_auroc, pixel_auroc, reconstruction_auroc in rows:
        print(f"{name:<26}{per_second:>10.3f}{per_second / paper_rate:>9.1f}{image_auroc:>13.3f}{pixel_auroc:>13.3f}"
              f"{reconstruction_auroc:>24.3f}")


if __name__ == "__main__":
    main()
