"""Image and pixel AUROC of our GANomaly against anomalib's built-in Ganomaly, same data, image size and
wall-clock training budget, on each sample_data category.

    python benchmarks/ganomaly_accuracy.py [--categories weave flange] [--epochs 25]

Ours trains `--epochs` epochs with configs/ganomaly.yaml's settings (batch 4); anomalib's Ganomaly (256x256, its
defaults) then trains for the same number of seconds (Lightning's max_time). Prints a table and ratios.
"""

from __future__ import annotations

import argparse
import time

import torch
from anomalib.data import MVTecAD
from anomalib.engine import Engine
from anomalib.models import Ganomaly

from ganad_plugin.models import GANomaly


def evaluate(model, category: str, root: str, train_batch_size: int, **engine_args) -> tuple[float, dict]:
    datamodule = MVTecAD(root=root, category=category, train_batch_size=train_batch_size, eval_batch_size=16,
                         num_workers=0)
    engine = Engine(logger=False, enable_progress_bar=False, default_root_dir=f"results/bench/{category}", **engine_args)
    start = time.perf_counter()
    engine.fit(model=model, datamodule=datamodule)
    seconds = time.perf_counter() - start
    metrics = engine.test(model=model, datamodule=datamodule, verbose=False)[0]
    return seconds, {k: float(v) for k, v in metrics.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--categories", nargs="*", default=["weave", "flange"])
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--root", default="sample_data")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    for category in args.categories:
        torch.manual_seed(42)
        ours_s, ours = evaluate(GANomaly(), category, args.root, 4, max_epochs=args.epochs,
                                check_val_every_n_epoch=args.epochs)
        torch.manual_seed(42)
        budget = time.strftime("00:%H:%M:%S", time.gmtime(ours_s))
        # anomalib's Ganomaly at its defaults: 256 x 256, batch 32 (its labels are sized by batch_size)
        theirs_s, theirs = evaluate(Ganomaly(), category, args.root, 32, max_epochs=10_000, max_time=budget)
        rows.append((category, ours_s, ours, theirs_s, theirs))
    print(f"\n{'category':<9}{'model':<22}{'train s':>8}{'image AUROC':>13}{'pixel AUROC':>13}")
    for category, ours_s, ours, theirs_s, theirs in rows:
        print(f"{category:<9}{'ganad GANomaly':<22}{ours_s:>8.0f}{ours['image_AUROC']:>13.3f}{ours.get('pixel_AUROC', float('nan')):>13.3f}")
        print(f"{'':<9}{'anomalib Ganomaly':<22}{theirs_s:>8.0f}{theirs['image_AUROC']:>13.3f}{'(none)':>13}")
        print(f"{'':<9}{'ratio (image AUROC)':<22}{'':>8}{ours['image_AUROC'] / theirs['image_AUROC']:>13.2f}")


if __name__ == "__main__":
    main()
