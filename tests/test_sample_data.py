"""sample_data/: layout, masks, size, determinism and variety."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from ganad_plugin.sample_data import CATEGORIES, SplitSizes, generate_category

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def test_committed_set_has_mvtec_layout_with_a_mask_per_defect_image() -> None:
    assert set(CATEGORIES) <= {p.name for p in SAMPLE.iterdir() if p.is_dir()}
    for category, (_, defects) in CATEGORIES.items():
        root = SAMPLE / category
        assert len(list((root / "train/good").glob("*.png"))) >= 100
        assert len(list((root / "test/good").glob("*.png"))) >= 20
        assert len(defects) >= 2
        for defect in defects:
            images = sorted((root / "test" / defect).glob("*.png"))
            assert len(images) >= 20, (category, defect)
            for image in images:
                mask = cv2.imread(str(root / "ground_truth" / defect / f"{image.stem}_mask.png"), cv2.IMREAD_GRAYSCALE)
                assert mask is not None and mask.shape == (256, 256)
                assert 0 < (mask > 0).sum() < mask.size / 4, f"{image}: empty or huge mask"


def test_committed_set_is_at_most_10_mb() -> None:
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total <= 10 * 1024 * 1024, total


def test_generator_reproduces_committed_images_byte_for_byte(tmp_path: Path) -> None:
    # the first images of each split come from the same per-split random streams as the committed set
    for category in CATEGORIES:
        generate_category(tmp_path, category, SplitSizes(train_good=2, test_good=2, test_per_defect=2))
        for fresh in (tmp_path / category).rglob("*.png"):
            committed = SAMPLE / category / fresh.relative_to(tmp_path / category)
            assert hashlib.sha256(fresh.read_bytes()).digest() == hashlib.sha256(committed.read_bytes()).digest(), fresh


def test_normal_images_vary() -> None:
    for category in CATEGORIES:
        images = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(np.float32) for p in sorted((SAMPLE / category / "train/good").glob("*.png"))[:10]]
        differences = [np.abs(a - b).mean() for a, b in zip(images, images[1:], strict=False)]
        assert min(differences) > 3.0, f"{category}: two normal images are nearly identical"


def test_generated_categories_are_deterministic_with_masks_and_colour_where_promised(tmp_path: Path) -> None:
    from ganad_plugin.sample_data import GENERATED_CATEGORIES

    sizes = SplitSizes(train_good=2, test_good=1, test_per_defect=2)
    for category, (_, defects) in GENERATED_CATEGORIES.items():
        first = generate_category(tmp_path / "a", category, sizes)
        second = generate_category(tmp_path / "b", category, sizes)
        for image in first.rglob("*.png"):
            assert image.read_bytes() == (second / image.relative_to(first)).read_bytes(), image
        assert len(defects) >= 3
        for defect in defects:
            for image in (first / "test" / defect).glob("*.png"):
                mask = cv2.imread(str(first / "ground_truth" / defect / f"{image.stem}_mask.png"), cv2.IMREAD_GRAYSCALE)
                assert 0 < (mask > 0).sum() < mask.size / 4, (category, defect, image.name)
        good = cv2.imread(str(next((first / "train" / "good").glob("*.png"))), cv2.IMREAD_UNCHANGED)
        assert good.ndim == (2 if category == "mesh" else 3), f"{category}: grey or colour as documented"
