"""Probe: the feature memory filled with the training images at several brightness levels (not shipped).

    python benchmarks/memory_brightness_probe.py --model EGBAD --categories label weave mesh --seed 0 \
        [--levels 1 0.92,1,1.08]

Label's two darkest good test parts are flagged by the feature memory first (``good_part_evidence.py``,
docs/accuracy.md): the encoder is not brightness-invariant, and few training images are that dark. Here each
category's `benchmarks/accuracy.py` checkpoint (``results/bench_accuracy/<model>/<category>/seed<s>``) has its memory,
colour statistics and scales refitted (``fit_normal``, its trained defect heads kept as they are) on the category's
validation training images, once per set of brightness levels: the memory's candidate features are those of the
images multiplied by each level (clipped to [0, 1]); "1" is the memory as shipped. Each refit scores the validation
category built from the category's `train/good` alone (``ganad_plugin.validation_set``: held-back good images and
synthetic defects); never a test split. The checkpoints saw some of the held-back images in training, so the
absolute figures are optimistic; the comparison between levels is on the same weights and images. Prints image and
pixel AUROC, the image AUROC of each defect kind, and the highest good image's score against the defects'.
"""

from __future__ import annotations

import argparse

import torch
from sample_sets import REPO, category_root, load_test_set, load_train_images, test_kinds

import ganad_plugin.models
from ganad_plugin.edge.metrics import auroc
from ganad_plugin.validation_set import build_validation_category


def refit(net, train: torch.Tensor, levels: list[float]) -> None:
    """``net.fit_normal`` on ``train`` with the memory's candidates at each brightness level, the heads kept."""
    plain = net.memory_features
    state = {"filling": True}

    def features(images: torch.Tensor) -> torch.Tensor:
        if not state["filling"]:
            return plain(images)
        return torch.cat([plain((images * level).clamp(0, 1)) for level in levels])

    fit_memory = net.memory.fit

    def fit_then_stop(bank: torch.Tensor) -> None:
        fit_memory(bank)
        state["filling"] = False

    heads = net.defect_heads()
    fits = [head.fit for head in heads]
    net.memory_features, net.memory.fit = features, fit_then_stop
    for head in heads:
        head.fit = lambda *args, **kwargs: 0.0  # the checkpoint's trained heads stay
    try:
        with torch.no_grad():
            net.fit_normal([train[i : i + 8] for i in range(0, len(train), 8)])
    finally:
        del net.memory_features, net.memory.fit
        for head, fit in zip(heads, fits, strict=True):
            head.fit = fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="EGBAD", choices=["GANomaly", "EGBAD", "AnoGAN"])
    parser.add_argument("--categories", nargs="+", default=["label", "weave", "mesh"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levels", nargs="+", default=["1", "0.92,1,1.08"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    for category in args.categories:
        ckpt = next((REPO / "results" / "bench_accuracy" / args.model.lower() / category / f"seed{args.seed}").rglob(
            "model.ckpt"))
        root = build_validation_category(category_root(category), REPO / "results" / "validation" / category)
        train = load_train_images(root, 256, 256)
        images, labels, masks = load_test_set(root, 10_000, 256)
        kinds = test_kinds(root, 10_000)
        for levels in args.levels:
            module = getattr(ganad_plugin.models, args.model).load_from_checkpoint(ckpt).eval()
            refit(module.model, train, [float(v) for v in levels.split(",")])
            with torch.no_grad():
                outputs = [module.model(images[i : i + 8]) for i in range(0, len(images), 8)]
            scores = torch.cat([o.pred_score for o in outputs]).numpy()
            maps = torch.cat([o.anomaly_map for o in outputs])[:, 0].numpy()
            per_kind = {kind: auroc(scores[(kinds == "good") | (kinds == kind)], labels[(kinds == "good") | (kinds == kind)])
                        for kind in sorted(set(kinds) - {"good"})}
            good_top = scores[~labels].max()
            rows.append((category, levels, auroc(scores, labels), auroc(maps.ravel(), masks.ravel()), per_kind,
                         float((scores[labels] > good_top).mean())))
            print(rows[-1], flush=True)
    print(f"\n{args.model}, seed {args.seed}: validation categories (held-back good images, synthetic defects)\n")
    print("| category | brightness levels | image AUROC | pixel AUROC | defects above the highest good | per kind |")
    print("|---|---|---|---|---|---|")
    for category, levels, image, pixel, per_kind, above in rows:
        kinds_text = ", ".join(f"{k} {v:.2f}" for k, v in per_kind.items())
        print(f"| {category} | {levels} | {image:.3f} | {pixel:.3f} | {above:.2f} | {kinds_text} |")


if __name__ == "__main__":
    main()
