"""What the benchmark scripts share: their common arguments, where a category's data is (committed or generated on
demand), training a config with the CLI as a user would, and an MVTec-layout category's images as tensors."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ganad_plugin.edge.images import list_images, read_rgb
from ganad_plugin.sample_data import CATEGORIES, GENERATED_CATEGORIES, generate_category

REPO = Path(__file__).resolve().parents[1]
TEST_METRICS = ("image_AUROC", "image_F1Score", "pixel_AUROC", "pixel_AUPRO")


def category_root(category: str) -> Path:
    """The folder of a category: sample_data/<category> if committed, else results/generated/<category>, generated
    (deterministically) the first time it is asked for."""
    if category in CATEGORIES:
        return REPO / "sample_data" / category
    if category not in GENERATED_CATEGORIES:
        msg = f"unknown category {category!r}; choose from {sorted(CATEGORIES) + sorted(GENERATED_CATEGORIES)}"
        raise SystemExit(msg)
    folder = REPO / "results" / "generated" / category
    if not (folder / "ground_truth").is_dir():
        print(f"generating {folder}", flush=True)
        generate_category(folder.parent, category)
    return folder


def train_with_cli(model: str, category: str, root: Path, out: Path, *, seed: int = 42, settings: tuple[str, ...] = (),
                   reuse: bool = False) -> tuple[Path, float, dict[str, float]]:
    """`ganad train --config configs/<model>.yaml` on one category, then its test: (checkpoint, seconds of the whole
    command, the test metrics printed). ``settings`` are KEY=VALUE config changes; with ``reuse`` an existing
    checkpoint under ``out`` is returned without training (seconds and metrics then NaN / empty)."""
    if reuse and (checkpoints := newest_first(out)):
        log = out / "train.log"
        return checkpoints[0], float("nan"), parse_metrics(log.read_text()) if log.is_file() else {}
    overrides = [part for setting in settings for part in (f"--{setting.split('=', 1)[0]}", setting.split("=", 1)[1])]
    command = [sys.executable, "-m", "ganad_plugin.cli", "train", "--config", str(REPO / "configs" / f"{model.lower()}.yaml"),
               "--data.root", str(root), "--data.category", category, "--default_root_dir", str(out),
               "--seed_everything", str(seed), "--trainer.enable_progress_bar", "false", *overrides]
    print(" ".join(command[1:]), flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    log = result.stdout + result.stderr
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.log").write_text(log)
    if result.returncode != 0:
        print(log[-3000:])
        raise SystemExit(f"{model} on {category} failed (log: {out / 'train.log'})")
    return newest_first(out)[0], seconds, parse_metrics(log)


def parse_metrics(log: str) -> dict[str, float]:
    """The test metrics a `ganad train` log prints, and its fit's seconds (anomalib's timer) as ``fit_seconds``."""
    found = {name: re.search(rf"{name}\s*│\s*([0-9.]+)", log) for name in TEST_METRICS}
    metrics = {name: float(match.group(1)) for name, match in found.items() if match}
    if fit := re.search(r"Training took ([0-9.]+) seconds", log):
        metrics["fit_seconds"] = float(fit.group(1))
    return metrics


def newest_first(out: Path) -> list[Path]:
    """The checkpoints of the runs whose root is ``out`` (anomalib's ``<model>/<data>/<category>/<version>/`` under
    it), the latest written first (the version folders v0, v1, ... v10 do not sort by name). Runs whose root is a
    folder inside ``out`` (``selection.py``'s training variants, beside the config's own run) are not among them: a
    search of every depth returned the newest variant's checkpoint for the config's."""
    return sorted(out.glob("*/*/*/*/weights/lightning/model.ckpt"), key=lambda path: path.stat().st_mtime,
                  reverse=True)


def checkpoint_parser(description: str | None) -> argparse.ArgumentParser:
    """A parser with --model, --category, --ckpt and --root (the data root, sample_data by default)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=["GANomaly", "EGBAD", "AnoGAN"])
    parser.add_argument("--category", required=True)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--root", default="sample_data")
    return parser


def load_test_set(root: Path, per_kind: int, size: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    images, labels, masks = [], [], []
    for kind in sorted(p.name for p in (root / "test").iterdir() if p.is_dir()):
        for path in list_images(root / "test" / kind)[:per_kind]:
            images.append(cv2.resize(read_rgb(path), (size, size), interpolation=cv2.INTER_AREA))
            labels.append(kind != "good")
            mask_path = root / "ground_truth" / kind / f"{path.stem}_mask.png"
            mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) if kind != "good" else None
            masks.append(np.zeros((size, size), bool) if mask is None else cv2.resize(mask, (size, size)) > 127)
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return batch, np.array(labels), np.stack(masks)


def test_kinds(root: Path, per_kind: int) -> np.ndarray:
    """The defect kind (test folder name) of each image ``load_test_set`` loads, in its order."""
    kinds = sorted(p.name for p in (root / "test").iterdir() if p.is_dir())
    return np.array([kind for kind in kinds for _ in list_images(root / "test" / kind)[:per_kind]])


def load_train_images(root: Path, count: int, size: int) -> torch.Tensor:
    images = [cv2.resize(read_rgb(path), (size, size), interpolation=cv2.INTER_AREA)
              for path in list_images(root / "train" / "good")[:count]]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def write_generated_block(page: Path, name: str, body: str, title: str) -> None:
    """Put ``body`` between the markers ``<!-- <name>: begin -->`` and ``<!-- <name>: end -->`` of a docs page
    (appended, or the page created with ``title``, when they are not there yet); the rest of the page is left as it
    is. The command that made the figures opens the body."""
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    block = f"{begin}\n{body}\n{end}"
    text = page.read_text() if page.exists() else f"# {title}\n\n"
    pattern = f"{re.escape(begin)}.*?{re.escape(end)}"
    text = re.sub(pattern, lambda _: block, text, flags=re.DOTALL) if begin in text else text.rstrip() + "\n\n" + block + "\n"
    page.write_text(text)
