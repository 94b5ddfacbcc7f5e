"""How the image threshold's good-part floor should be estimated from a dozen held-back good images.

    python benchmarks/threshold_rule.py [--fits validation] [--out results/threshold_rule]
    python benchmarks/threshold_rule.py --fits accuracy --categories stone mesh label --seeds 0

`LinePostProcessor` raises anomalib's F1 image threshold to a floor estimated from the scores of the good images
the configs' synthetic validation split holds back (11 in a 110-image category), so that a chosen share (1 %) of
good parts is flagged. This probe compares ways of estimating that floor. Each fit's checkpoint scores images it
never saw (raw scores, its torch model); the probe then draws, many times, a calibration set of that many good
images from them, sets each rule's floor from it, and counts the share of the other good images above the floor and
of the defective ones caught. It also counts what the checkpoint's own baked threshold flags.

--fits validation (the default, what a rule is chosen on): the selection fits of `benchmarks/selection.py`
(results/selection/seed0/<model>/<category>), whose unseen images are the validation category's held-back good
images and the synthetic defects drawn on them (`ganad_plugin.validation_set`); no test split is read.
--fits accuracy (the report, once a rule is chosen): the checkpoints `benchmarks/accuracy.py` left, validated again by
anomalib with this checkout's `LinePostProcessor` (their weights unchanged, thresholds and normalisation re-derived
from the configs' synthetic split of training images), and the test split's good parts flagged and defects caught
at the threshold they had and at the new one. Results: docs/accuracy.md (section "The good-part floor").
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from accuracy import run_folder
from sample_sets import REPO, category_root, load_test_set, newest_first
from scipy import stats

import ganad_plugin.models
from ganad_plugin.models.components.post_processing import tolerance_factor

MODELS = ("GANomaly", "EGBAD", "AnoGAN")
RATE = 0.01  # the configs' image_false_alarm_rate


def normal_floor(good: np.ndarray, z: float) -> float:
    return float(good.mean() + z * good.std(ddof=1))


RULES = {
    # what LinePostProcessor did before the tolerance bound: the normal quantile at the sample mean and spread
    "normal 1 %": lambda good: normal_floor(good, stats.norm.ppf(1 - RATE)),
    # the next good part's predictive distribution under normality (Student's t, the spread's own uncertainty)
    "predictive t 1 %": lambda good: normal_floor(
        good, stats.t.ppf(1 - RATE, len(good) - 1) * np.sqrt(1 + 1 / len(good))),
    # a one-sided tolerance bound: above 99 % of good parts with 90 % confidence
    "tolerance 99 %/90 %": lambda good: normal_floor(good, tolerance_factor(len(good), 1 - RATE, 0.90)),
    # the predictive bound on log scores (a right-skewed score: pooled from a map's highest values)
    "log predictive t 1 %": lambda good: float(np.exp(normal_floor(
        np.log(good), stats.t.ppf(1 - RATE, len(good) - 1) * np.sqrt(1 + 1 / len(good)))))
    if (good > 0).all() else np.nan,
}


def raw_scores(net: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat([net(images[i : i + 8]).pred_score for i in range(0, len(images), 8)]).float().numpy()


def fits(kind: str, categories: list[str], seeds: list[int]) -> list[tuple[str, str, int, Path, Path]]:
    """(model, category, seed, data root of the category, checkpoint) for each fit to score."""
    found = []
    for model in MODELS:
        for category in categories:
            for seed in seeds:
                if kind == "validation":
                    root = REPO / "results" / "validation"
                    # the "bf16 training" variant: the configs' training_precision auto on this CPU
                    out = REPO / "results" / "selection" / f"seed{seed}" / model.lower() / category / "bf16_training"
                else:
                    root = category_root(category).parent
                    out = run_folder(model, category, seed, [])
                checkpoints = newest_first(out)
                if checkpoints:
                    found.append((model, category, seed, root, checkpoints[0]))
                else:
                    print(f"no checkpoint under {out}: skipped", flush=True)
    return found


def recalibrated(model_name: str, category: str, seed: int, root: Path, checkpoint: Path) -> None:
    """The checkpoint's threshold before and after anomalib's validation with this checkout's `LinePostProcessor`
    (the configs' synthetic split of the category's training images, seeded with the run's seed), each with the
    share of the test split's good parts it flags and of its defects it catches."""
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from lightning.pytorch import seed_everything

    model = getattr(ganad_plugin.models, model_name).load_from_checkpoint(checkpoint, map_location="cpu")
    images, labels, _ = load_test_set(root / category, 10**6, 256)
    scores = raw_scores(model.model.eval(), images)
    before = float(model.post_processor._image_threshold)  # the baked threshold (raw units)
    seed_everything(seed, verbose=False)
    datamodule = MVTecAD(root=root, category=category, train_batch_size=4, eval_batch_size=16, num_workers=0,
                         val_split_mode="synthetic", val_split_ratio=0.2, seed=0)
    Engine(logger=False, enable_progress_bar=False, default_root_dir=REPO / "results" / "threshold_rule" / "engine",
           ).validate(model=model, datamodule=datamodule, verbose=False)
    after = float(model.post_processor._image_threshold)
    good, defects = scores[~labels], scores[labels]
    print(f"| {category} | {model_name} | {seed} | {int((good > before).sum())}/{len(good)}, "
          f"{(defects > before).mean():.2f} | {int((good > after).sum())}/{len(good)}, {(defects > after).mean():.2f} |",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fits", choices=["validation", "accuracy"], default="validation")
    parser.add_argument("--categories", nargs="+", default=["weave", "flange", "stone"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--calibration", type=int, default=11,
                        help="good images a floor is estimated from (a 110-image category's fit holds back 11)")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "threshold_rule")
    args = parser.parse_args()
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.fits == "accuracy":
        print("test split: good parts flagged, share of defects caught\n"
              "| category | model | seed | as trained | recalibrated with this checkout |\n|---|---|---|---|---|")
        for fit in fits(args.fits, args.categories, args.seeds):
            recalibrated(*fit)
        return
    rng = np.random.default_rng(0)
    rows, baked = [], []
    for model_name, category, seed, root, checkpoint in fits(args.fits, args.categories, args.seeds):
        model = getattr(ganad_plugin.models, model_name).load_from_checkpoint(checkpoint, map_location="cpu")
        images, labels, _ = load_test_set(root / category, 10**6, 256)
        scores = raw_scores(model.model.eval(), images)
        stored = float(model.post_processor._image_threshold)  # the baked threshold (raw units)
        good, defects = scores[~labels], scores[labels]
        baked.append((model_name, category, seed, int((good > stored).sum()), len(good), float((defects > stored).mean())))
        print(f"{model_name} {category} seed {seed}: {len(good)} good, {len(defects)} defective images unseen; at the "
              f"baked threshold {baked[-1][3]} good flagged, {baked[-1][5]:.2f} of the defects caught", flush=True)
        np.savez(args.out / f"{args.fits}_{model_name}_{category}_seed{seed}.npz", scores=scores, labels=labels,
                 stored=stored)
        # resampled: a calibration set of good images drawn from the unseen ones, the rest judged
        for draw in range(args.draws):
            order = rng.permutation(len(good))
            calibration, judged = good[order[: args.calibration]], good[order[args.calibration :]]
            for rule, estimate in RULES.items():
                floor = estimate(calibration)
                rows.append({"model": model_name, "category": category, "seed": seed, "draw": draw, "rule": rule,
                             "good_flagged": float((judged > floor).mean()), "caught": float((defects > floor).mean())})
    if not rows:
        msg = f"no {args.fits} checkpoints found: run benchmarks/{'selection' if args.fits == 'validation' else 'accuracy'}.py first"
        raise SystemExit(msg)
    with (args.out / f"{args.fits}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    categories = [c for c in args.categories if any(r["category"] == c for r in rows)]
    print(f"\n{args.fits} fits, each floor alone from {args.calibration} good images drawn {args.draws} times: share "
          f"of the other good images flagged, share of defects caught (mean over draws and fits; per category: flagged, "
          f"caught)")
    print("| rule | good flagged | defects caught | " + " | ".join(categories) + " |")
    print("|---|---|---|" + "---|" * len(categories))
    for rule in RULES:
        mine = [r for r in rows if r["rule"] == rule]
        cells = [f"{np.mean([r['good_flagged'] for r in mine if r['category'] == c]):.3f}, "
                 f"{np.mean([r['caught'] for r in mine if r['category'] == c]):.2f}" for c in categories]
        print(f"| {rule} | {np.mean([r['good_flagged'] for r in mine]):.3f} | {np.mean([r['caught'] for r in mine]):.3f} | "
              + " | ".join(cells) + " |")
    flagged, good_count = sum(b[3] for b in baked), sum(b[4] for b in baked)
    print(f"| baked threshold (the fits' own) | {flagged}/{good_count} | {np.mean([b[5] for b in baked]):.3f} | "
          + " | ".join(f"{sum(b[3] for b in baked if b[1] == c)}/{sum(b[4] for b in baked if b[1] == c)}, "
                       f"{np.mean([b[5] for b in baked if b[1] == c]):.2f}" for c in categories) + " |")


if __name__ == "__main__":
    main()
