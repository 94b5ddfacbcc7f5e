"""For the benchmark scripts that score checkpoints directly: their common arguments, and an MVTec-layout category's
images as tensors."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from ganad_plugin.edge.images import list_images, read_rgb


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


def load_train_images(root: Path, count: int, size: int) -> torch.Tensor:
    images = [cv2.resize(read_rgb(path), (size, size), interpolation=cv2.INTER_AREA)
              for path in list_images(root / "train" / "good")[:count]]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
