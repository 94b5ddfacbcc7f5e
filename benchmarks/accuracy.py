"""Each model's default config on each category, trained as a user would, over seeds, beside anomalib's Ganomaly.

    python benchmarks/accuracy.py [--models GANomaly EGBAD AnoGAN] [--categories weave flange stone mesh label]
                                  [--seeds 0 1 2] [--no-baseline] [--set KEY=VALUE ...] [--write] [--kinds]
                                  [--redraw]

For each category (sample_data/, or generated into results/generated/), seed and model: `ganad train --config
configs/<model>.yaml` (train, then anomalib's test: image AUROC and F1, pixel AUROC and AUPRO), then the
checkpoint scores the test split in-process to measure what a line sees: the share of good parts flagged NG at the
threshold baked into the checkpoint (it came from training images: the configs' synthetic validation split), the
share of defective parts caught there and at a 1 % false-alarm rate, and test images per second (torch, 2 cores).
anomalib's own Ganomaly (256 x 256, its defaults) trains in the same run for the same seconds as our GANomaly
took (Lightning's max_time) and is scored the same way (image only: it has no map).
With --write, after every run: this run's rows merged into docs/accuracy.csv (every run), then docs/accuracy.png (bar
chart), the table in docs/accuracy.md and each model README's table between their generated markers redrawn from
all of them (--redraw: only that, from docs/accuracy.csv). --set changes one
config value for an ablation (`model.evidence.memory_weight=0`). --kinds trains nothing: it scores the test split
again with the checkpoints a run left and prints the image AUROC of each defect kind. --compare REV trains nothing:
for every model, category and seed that docs/accuracy.csv holds from another run than the file at git revision REV
did (a build rerun since), the figures then -> now on the same seeds (with --write also into docs/accuracy.md).
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sample_sets import (
    REPO,
    category_root,
    load_test_set,
    newest_first,
    test_kinds,
    train_with_cli,
    write_generated_block,
)

import ganad_plugin.models
from ganad_plugin.edge.metrics import auroc
from ganad_plugin.models.components.hardware import cpu_has_bf16

BASELINE = "anomalib Ganomaly"
MODELS = ["GANomaly", "EGBAD", "AnoGAN"]  # the tables' order, whichever models and categories a run trained
CATEGORIES = ["weave", "flange", "stone", "mesh", "label"]
TEXT_FIELDS = {"model", "category", "made_by"}
COLUMNS = ("image_auroc", "image_f1", "pixel_auroc", "pixel_aupro", "false_alarm_rate", "caught_at_threshold",
           "caught_at_1pct_false_alarms", "train_s", "test_images_per_s")


def test_outputs(model: torch.nn.Module, images: torch.Tensor) -> list:
    """The full model's outputs (pre- and post-processing) on the test images, in batches of 16."""
    model.eval()
    with torch.inference_mode():
        return [model(images[i : i + 16]) for i in range(0, len(images), 16)]


def line_figures(model: torch.nn.Module, root: Path) -> dict[str, float]:
    """Score the test split with the full model (pre- and post-processing): false alarms and catches at the baked
    threshold, catches at a 1 % false-alarm rate, images per second."""
    images, labels, _ = load_test_set(root, 10**6, 256)
    start = time.perf_counter()
    outputs = test_outputs(model, images)
    seconds = time.perf_counter() - start
    scores = torch.cat([o.pred_score for o in outputs]).float().numpy()
    flagged = torch.cat([o.pred_label for o in outputs]).bool().numpy()
    good_scores = np.sort(scores[~labels])
    at_1pct = good_scores[min(len(good_scores) - 1, int(np.ceil(0.99 * len(good_scores))) - 1)]
    return {
        "false_alarm_rate": float(flagged[~labels].mean()),
        "caught_at_threshold": float(flagged[labels].mean()),
        "caught_at_1pct_false_alarms": float((scores[labels] > at_1pct).mean()),
        "test_images_per_s": len(images) / seconds,
        "image_auroc_inprocess": auroc(scores, labels),
    }


def run_folder(model_name: str, category: str, seed: int, settings: list[str]) -> Path:
    tag = "-".join([model_name.lower(), *(s.replace("=", "_") for s in settings)])
    return REPO / "results" / "bench_accuracy" / tag / category / f"seed{seed}"


def run_ours(model_name: str, category: str, seed: int, settings: list[str]) -> dict[str, float]:
    root = category_root(category)
    out = run_folder(model_name, category, seed, settings)
    ckpt, seconds, metrics = train_with_cli(model_name, category, root.parent, out, seed=seed, settings=tuple(settings))
    model = getattr(ganad_plugin.models, model_name).load_from_checkpoint(ckpt, map_location="cpu")
    figures = line_figures(model, root)
    return {"image_auroc": metrics.get("image_AUROC", np.nan), "image_f1": metrics.get("image_F1Score", np.nan),
            "pixel_auroc": metrics.get("pixel_AUROC", np.nan), "pixel_aupro": metrics.get("pixel_AUPRO", np.nan),
            "train_s": seconds, **figures}


def run_baseline(category: str, seed: int, budget_s: float) -> dict[str, float]:
    """anomalib's Ganomaly at its defaults, trained for ``budget_s`` seconds, validated on the configs' split."""
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from anomalib.models import Ganomaly
    from lightning.pytorch import seed_everything

    seed_everything(seed)
    root = category_root(category)
    datamodule = MVTecAD(root=root.parent, category=category, train_batch_size=32, eval_batch_size=16, num_workers=0,
                         val_split_mode="synthetic", val_split_ratio=0.2, seed=0)
    model = Ganomaly()
    engine = Engine(logger=False, enable_progress_bar=False, max_epochs=10_000,
                    max_time=time.strftime("00:%H:%M:%S", time.gmtime(budget_s)),
                    default_root_dir=REPO / "results" / "bench_accuracy" / "anomalib-ganomaly" / category / f"seed{seed}")
    start = time.perf_counter()
    engine.fit(model=model, datamodule=datamodule)
    seconds = time.perf_counter() - start
    metrics = engine.test(model=model, datamodule=datamodule, verbose=False)[0]
    figures = line_figures(model, root)
    return {"image_auroc": float(metrics["image_AUROC"]), "image_f1": float(metrics.get("image_F1Score", np.nan)),
            "pixel_auroc": np.nan, "pixel_aupro": np.nan, "train_s": seconds, **figures}


def kinds_table(models: list[str], categories: list[str], seeds: list[int], settings: list[str]) -> str:
    """Markdown: image AUROC of each test defect kind (its images against the good ones) for each checkpoint an
    earlier run of this script left under results/bench_accuracy; the test split scored as ``line_figures`` does."""
    lines: list[str] = []
    for category in categories:
        root = category_root(category)
        kinds = test_kinds(root, 10**6)
        images, labels, _ = load_test_set(root, 10**6, 256)
        names = sorted(set(kinds) - {"good"})
        lines = lines or ["| category | model | seed | image AUROC of each defect kind |", "|---|---|---|---|"]
        for model_name in models:
            for seed in seeds:
                checkpoints = newest_first(run_folder(model_name, category, seed, settings))
                if not checkpoints:
                    print(f"  {model_name} {category} seed {seed}: no checkpoint, run without --kinds first")
                    continue
                model = getattr(ganad_plugin.models, model_name).load_from_checkpoint(checkpoints[0], map_location="cpu")
                scores = torch.cat([o.pred_score for o in test_outputs(model, images)]).float().numpy()
                good = kinds == "good"
                cells = [f"{kind} {auroc(scores[good | (kinds == kind)], labels[good | (kinds == kind)]):.2f}"
                         for kind in names]
                lines.append(f"| {category} | {model_name} | {seed} | " + ", ".join(cells) + " |")
    return "\n".join(lines)


def summarise(rows: list[dict], models: list[str], categories: list[str]) -> str:
    """Markdown: per category and model, mean ± spread (min-max over seeds) of each figure."""
    head = ("| category | model | seeds | image AUROC | image F1 | pixel AUROC | pixel AUPRO | good flagged NG | "
            "caught at threshold | caught at 1 % false alarms | train s | test img/s |")
    lines = [head, "|" + "---|" * 12]
    for category in categories:
        for model in [*models, BASELINE]:
            cells = [r for r in rows if r["category"] == category and r["model"] == model]
            if not cells:
                continue
            shown = []
            for column in COLUMNS:
                values = np.array([r[column] for r in cells], float)
                if np.isnan(values).all():
                    shown.append("-")
                elif column in {"train_s", "test_images_per_s"}:
                    shown.append(f"{np.nanmean(values):.0f}")
                elif len(values) == 1:
                    shown.append(f"{values[0]:.2f}")
                else:
                    shown.append(f"{np.nanmean(values):.2f} ({np.nanmin(values):.2f}-{np.nanmax(values):.2f})")
            lines.append(f"| {category} | {model} | {len(cells)} | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def write(rows: list[dict], models: list[str], categories: list[str]) -> None:
    """Merge this run's rows into docs/accuracy.csv (replacing runs of the same model, category and seed), then
    redraw the chart and the generated tables of docs/accuracy.md from every row."""
    docs = REPO / "docs"
    fields = ["model", "category", "seed", *COLUMNS, "image_auroc_inprocess", "made_by"]
    command = " ".join(["python benchmarks/accuracy.py", *sys.argv[1:]])
    machine = f"{torch.get_num_threads()} threads, {'' if cpu_has_bf16() else 'no '}bf16 units"  # the fit's speed
    rows = [{**r, "made_by": r.get("made_by") or f"{time.strftime('%Y-%m-%d')} ({machine}): `{command}`"}
            for r in rows]
    if (docs / "accuracy.csv").is_file():
        earlier = read_rows((docs / "accuracy.csv").read_text())
        fresh = {(r["model"], r["category"], r["seed"]) for r in rows}
        rows = [r for r in earlier if (r["model"], r["category"], r["seed"]) not in fresh] + rows
    models, categories = table_order(rows, models, categories)
    table = summarise(rows, models, categories)
    with (docs / "accuracy.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, [*models, BASELINE], categories, docs / "accuracy.png")
    page = docs / "accuracy.md"
    write_generated_block(page, "accuracy.py", f"{made_by(rows)}\n\nMean over seeds, (min-max) in brackets; every run "
                          "in `docs/accuracy.csv` (its `made_by` column: the run that measured it), chart "
                          f"`docs/accuracy.png`.\n\n{table}", "Accuracy")
    readmes = []
    for model in models:
        readme = REPO / "ganad_plugin" / "models" / model.lower() / "README.md"
        if readme.is_file() and any(r["model"] == model for r in rows):
            write_generated_block(readme, "accuracy.py", model_table(rows, model, categories), model)
            readmes.append(str(readme))
    print(f"wrote {page}, {docs / 'accuracy.csv'}, {docs / 'accuracy.png'} and " + ", ".join(readmes))


def table_order(rows: list[dict], models: list[str], categories: list[str]) -> tuple[list[str], list[str]]:
    """The tables' models (``MODELS`` first, then any other, the baseline left to the tables) and categories
    (``CATEGORIES`` first, only those with rows), whatever order a run's arguments and rows came in."""
    models = [m for m in dict.fromkeys([*MODELS, *models, *(r["model"] for r in rows)]) if m != BASELINE]
    categories = [c for c in dict.fromkeys([*CATEGORIES, *categories, *(r["category"] for r in rows)])
                  if any(r["category"] == c for r in rows)]
    return models, categories


def model_table(rows: list[dict], model: str, categories: list[str]) -> str:
    """Markdown for a model's README: per category its seeds, mean image AUROC (lowest seed in brackets), mean pixel
    AUROC, good parts flagged and defects caught at the baked threshold, and the range of fit seconds."""
    head = ("| category | seeds | image AUROC | pixel AUROC | good parts flagged NG | defects caught at the baked "
            "threshold | `ganad train` s |")
    lines = [head, "|" + "---|" * 7]
    for category in categories:
        cells = [r for r in rows if r["category"] == category and r["model"] == model]
        if not cells:
            continue
        image, pixel, flagged, caught, seconds = (
            np.array([r[column] for r in cells], float)
            for column in ("image_auroc", "pixel_auroc", "false_alarm_rate", "caught_at_threshold", "train_s")
        )
        lines.append(
            f"| {category} | {len(cells)} | {image.mean():.3f} ({image.min():.3f}) | {pixel.mean():.3f} | "
            f"{100 * flagged.mean():.0f} % | {100 * caught.mean():.0f} % | {seconds.min():.0f}-{seconds.max():.0f} |"
        )
    return "\n".join(lines)


def read_rows(text: str) -> list[dict]:
    """docs/accuracy.csv's rows, numbers as floats (the seed an int)."""
    return [{k: (v if k in TEXT_FIELDS else float(v) if k != "seed" else int(v)) for k, v in r.items()}
            for r in csv.DictReader(io.StringIO(text))]


def compare_table(before: list[dict], after: list[dict]) -> str:
    """Markdown: for each model and category with runs in ``after`` that replaced runs of ``before`` (same model,
    category and seed, another ``made_by``), the mean over those seeds then -> now (image AUROC also its min-max)."""
    earlier = {(r["model"], r["category"], r["seed"]): r for r in before}
    pairs: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
    for row in after:
        old = earlier.get((row["model"], row["category"], row["seed"]))
        if old is not None and old["made_by"] != row["made_by"]:
            pairs.setdefault((row["category"], row["model"]), []).append((old, row))
    head = ("| category | model | seeds | image AUROC | pixel AUROC | pixel AUPRO | good flagged NG | caught at threshold | "
            "caught at 1 % false alarms | train s | test img/s |")
    lines = [head, "|" + "---|" * 11]
    for (category, model), cells in pairs.items():
        shown = []
        for column in ("image_auroc", "pixel_auroc", "pixel_aupro", "false_alarm_rate", "caught_at_threshold",
                       "caught_at_1pct_false_alarms", "train_s", "test_images_per_s"):
            then, now = (np.array([pair[k][column] for pair in cells], float) for k in (0, 1))
            digits = {"train_s": 0, "test_images_per_s": 1, "image_auroc": 3}.get(column, 2)
            cell = f"{then.mean():.{digits}f} -> {now.mean():.{digits}f}"
            if column == "image_auroc" and len(cells) > 1:
                cell = (f"{then.mean():.3f} ({then.min():.3f}-{then.max():.3f}) -> "
                        f"{now.mean():.3f} ({now.min():.3f}-{now.max():.3f})")
            shown.append(cell)
        seeds = ", ".join(str(pair[1]["seed"]) for pair in cells)
        lines.append(f"| {category} | {model} | {seeds} | " + " | ".join(shown) + " |")
    return "\n".join(lines) if len(lines) > 2 else "No run of docs/accuracy.csv replaced one of that revision."


def made_by(rows: list[dict]) -> str:
    """The runs the table's rows come from (2 CPU cores each), with the rows each made: one line a run."""
    runs: dict[str, list[dict]] = {}
    for row in rows:
        runs.setdefault(row["made_by"], []).append(row)
    lines = ["Made by these runs (2 CPU cores), each row of the table by one of them:", ""]
    for run, cells in runs.items():
        models = ", ".join(dict.fromkeys(r["model"] for r in cells))
        categories = ", ".join(dict.fromkeys(r["category"] for r in cells))
        seeds = ", ".join(map(str, sorted({int(r["seed"]) for r in cells})))
        lines.append(f"- {run}: {models} on {categories}, seeds {seeds}")
    return "\n".join(lines)


def plot(rows: list[dict], models: list[str], categories: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    width = 0.8 / len(models)
    for axis, column, title in zip(axes, ("image_auroc", "pixel_auroc"), ("image AUROC", "pixel AUROC"), strict=True):
        for k, model in enumerate(models):
            means, spreads = [], []
            for category in categories:
                values = np.array([r[column] for r in rows if r["model"] == model and r["category"] == category], float)
                values = values[~np.isnan(values)]
                means.append(values.mean() if len(values) else 0.0)
                spreads.append([values.mean() - values.min(), values.max() - values.mean()] if len(values) else [0, 0])
            positions = np.arange(len(categories)) + (k - (len(models) - 1) / 2) * width
            axis.bar(positions, means, width, yerr=np.array(spreads).T, label=model, capsize=2)
        axis.axhline(0.95, color="grey", linestyle="--", linewidth=0.8)
        axis.set_xticks(np.arange(len(categories)), categories)
        axis.set_title(title)
        axis.set_ylim(0.3, 1.0)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--categories", nargs="*", default=CATEGORIES)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--no-baseline", action="store_true", help="leave anomalib's Ganomaly out")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config changes for an ablation")
    parser.add_argument("--write", action="store_true", help="write docs/accuracy.{md,csv,png} and the model READMEs' tables")
    parser.add_argument("--redraw", action="store_true",
                        help="train nothing: redraw docs/accuracy.{md,png} and the model READMEs' tables from "
                             "docs/accuracy.csv")
    parser.add_argument("--compare", metavar="REV",
                        help="train nothing: the figures of docs/accuracy.csv at git revision REV -> now, for the runs "
                             "rerun since (with --write also into docs/accuracy.md)")
    parser.add_argument("--kinds", action="store_true",
                        help="train nothing: print the image AUROC of each test defect kind for the checkpoints an "
                             "earlier run left (the same --models, --categories, --seeds and --set)")
    args = parser.parse_args()
    bad = [setting for setting in args.set if "=" not in setting]
    if bad:
        parser.error(f"--set takes KEY=VALUE, got {bad}")
    torch.set_num_threads(2)
    if args.redraw:
        write([], args.models, args.categories)
        return
    if args.compare:
        before = subprocess.run(["git", "show", f"{args.compare}:docs/accuracy.csv"], cwd=REPO, capture_output=True,
                                text=True, check=False)
        if before.returncode != 0:
            parser.error(f"--compare {args.compare}: no docs/accuracy.csv at that revision ({before.stderr.strip()})")
        table = compare_table(read_rows(before.stdout), read_rows((REPO / "docs" / "accuracy.csv").read_text()))
        print(table)
        if args.write:
            command = f"python benchmarks/accuracy.py --compare {args.compare} --write"
            write_generated_block(REPO / "docs" / "accuracy.md", "accuracy.py compare",
                                  f"Made by `{command}`: mean over the seeds rerun, (min-max) in brackets, the runs "
                                  f"of revision {args.compare} -> those that replaced them.\n\n{table}", "Accuracy")
        return
    if args.kinds:
        print(kinds_table(args.models, args.categories, args.seeds, args.set))
        return
    rows = []
    for seed in args.seeds:  # seeds outermost: a run stopped early has every category at the seeds it finished
        for category in args.categories:
            budget = None
            for model in args.models:
                figures = run_ours(model, category, seed, args.set)
                rows.append({"model": model, "category": category, "seed": seed, **figures})
                budget = figures["train_s"] if model == "GANomaly" or budget is None else budget
                print(f"  {model} {category} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()),
                      flush=True)
                if args.write:  # after every run: an interrupted benchmark keeps what it measured
                    write(rows, args.models, args.categories)
            if not args.no_baseline:
                figures = run_baseline(category, seed, budget)
                rows.append({"model": BASELINE, "category": category, "seed": seed, **figures})
                print(f"  {BASELINE} {category} seed {seed}: image AUROC {figures['image_auroc']:.3f}", flush=True)
                if args.write:
                    write(rows, args.models, args.categories)
    print("\n" + summarise(rows, args.models, args.categories))


if __name__ == "__main__":
    main()
