"""Image and pixel AUROC of each model's default config on each sample_data category, trained as a user would.

    python benchmarks/accuracy.py [--models GANomaly EGBAD AnoGAN] [--categories weave flange]
                                  [--set model.weight_average_decay=0.0 ...]

Runs `ganad train --config configs/<model>.yaml --data.category <category>` (train, then test on the category's
test split) for each pair, on the machine's CPU, and prints a table of image AUROC, pixel AUROC, pixel AUPRO and
the wall-clock seconds of the whole command. Checkpoints stay under results/bench_accuracy/<model>/<category>/
(with --set: results/bench_accuracy/<model>-<settings>/<category>/). --set changes one config value for an
ablation, as `--model.weight_average_decay 0.0` would on the command line.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METRICS = ("image_AUROC", "pixel_AUROC", "pixel_AUPRO")


def run(model: str, category: str, root: str, settings: list[str]) -> tuple[float, dict[str, float]]:
    tag = "-".join([model.lower(), *(setting.replace("=", "_") for setting in settings)])
    out = REPO / "results" / "bench_accuracy" / tag / category
    overrides = [part for setting in settings for part in (f"--{setting.split('=', 1)[0]}", setting.split("=", 1)[1])]
    command = [sys.executable, "-m", "ganad_plugin.cli", "train", "--config", str(REPO / "configs" / f"{model.lower()}.yaml"),
               "--data.root", root, "--data.category", category, "--default_root_dir", str(out),
               "--trainer.enable_progress_bar", "false", *overrides]
    print(" ".join(command[1:]), flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    log = result.stdout + result.stderr
    (out / "train.log").parent.mkdir(parents=True, exist_ok=True)
    (out / "train.log").write_text(log)
    if result.returncode != 0:
        print(log[-3000:])
        raise SystemExit(f"{model} on {category} failed (log: {out / 'train.log'})")
    found = {name: re.search(rf"{name}\s*│\s*([0-9.]+)", log) for name in METRICS}
    return seconds, {name: float(match.group(1)) if match else float("nan") for name, match in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="*", default=["GANomaly", "EGBAD", "AnoGAN"])
    parser.add_argument("--categories", nargs="*", default=["weave", "flange"])
    parser.add_argument("--root", default="sample_data")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config changes for an ablation")
    args = parser.parse_args()
    bad = [setting for setting in args.set if "=" not in setting]
    if bad:
        parser.error(f"--set takes KEY=VALUE, got {bad}")
    rows = []
    for model in args.models:
        for category in args.categories:
            seconds, metrics = run(model, category, args.root, args.set)
            rows.append((model, category, seconds, metrics))
            print(f"  {model} {category}: {metrics} in {seconds:.0f} s", flush=True)
    print(f"\n{'model':<10}{'category':<10}{'image AUROC':>13}{'pixel AUROC':>13}{'pixel AUPRO':>13}{'train+test s':>14}")
    for model, category, seconds, metrics in rows:
        print(f"{model:<10}{category:<10}{metrics['image_AUROC']:>13.3f}{metrics['pixel_AUROC']:>13.3f}"
              f"{metrics['pixel_AUPRO']:>13.3f}{seconds:>14.0f}")


if __name__ == "__main__":
    main()
