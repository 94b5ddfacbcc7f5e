"""A validation category made from a category's training images only: what defaults are chosen on.

A share of ``train/good`` is held back; the rest is the validation category's ``train/good``. The held-back
images are its ``test/good``, and each synthetic defect kind is drawn once on every held-back image
(``test/<kind>`` with masks in ``ground_truth/<kind>``), in MVTec AD layout, so that any model trains and tests on
it as on a real category while no test image of the source category is read. The kinds are generic, of the sorts
real lines have: a thin scratch, a large faint colour stain, foreign material, a region that loses contrast or
shifts in brightness, and a piece of the surface moved out of place. On a grey category the defects are grey too.

    python -m ganad_plugin.validation_set --source sample_data/weave --out results/validation/weave
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from .sample_data import _colour_stain, _faint_patch, _foreign_material, _thin_scratch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
BUILT_STAMP = ".built"  # written last: a complete folder, and what it was built from


def _moved_piece(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A square piece of the surface, turned a quarter or mirrored, put back elsewhere (a misweave, a misplaced
    part of a print): the texture is normal, its place is not."""
    height, width = image.shape[:2]
    side = int(rng.uniform(0.08, 0.16) * min(height, width))
    y0, x0 = rng.integers(0, height - side), rng.integers(0, width - side)
    piece = image[y0 : y0 + side, x0 : x0 + side]
    piece = np.rot90(piece, k=int(rng.integers(1, 4))) if rng.random() < 0.5 else piece[:, ::-1]
    y1, x1 = rng.integers(side, height - 2 * side), rng.integers(side, width - 2 * side)
    out = image.copy()
    out[y1 : y1 + side, x1 : x1 + side] = piece
    mask = np.zeros((height, width), bool)
    mask[y1 : y1 + side, x1 : x1 + side] = True
    return out, mask


VALIDATION_DEFECTS: dict[str, Callable] = {
    "thin_scratch": _thin_scratch,
    "colour_stain": _colour_stain,
    "foreign_material": _foreign_material,
    "faint_patch": _faint_patch,
    "moved_piece": _moved_piece,
}


def build_validation_category(source: Path, out: Path, held_back_share: float = 0.2, seed: int = 0) -> Path:
    """Write the validation category of ``source`` (an MVTec-layout category folder) to ``out``; returns ``out``.

    Only ``source/train/good`` is read. Rebuilding with the same arguments gives the same files; a complete folder
    built from the same source and settings is kept as it is.
    """
    train = sorted(p for p in (Path(source) / "train" / "good").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(train) < 10:
        msg = f"{source}/train/good has {len(train)} images; a validation set needs at least 10"
        raise ValueError(msg)
    if not 0 < held_back_share < 1:
        msg = f"held_back_share must be in (0, 1), got {held_back_share}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    held_back = max(4, round(len(train) * held_back_share))
    out = Path(out)
    stamp = f"{Path(source).resolve()} {held_back_share} {seed} {len(train)}\n"
    if (out / BUILT_STAMP).is_file() and (out / BUILT_STAMP).read_text() == stamp:
        return out  # built before from the same images and settings (and perhaps being trained on: left alone)
    if out.exists():
        shutil.rmtree(out)
    for index in sorted(order[held_back:]):
        _write(out / "train" / "good" / f"{train[index].stem}.png", _read(train[index]))
    for index in sorted(order[:held_back]):
        image = _read(train[index])
        _write(out / "test" / "good" / f"{train[index].stem}.png", image)
        colour = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
        for kind, make in VALIDATION_DEFECTS.items():
            defective, mask = make(rng, colour.astype(np.float32) / 255)
            pixels = np.clip(np.round(defective * 255), 0, 255).astype(np.uint8)
            if image.ndim == 2:
                pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
            _write(out / "test" / kind / f"{train[index].stem}.png", pixels)
            _write(out / "ground_truth" / kind / f"{train[index].stem}_mask.png", mask.astype(np.uint8) * 255)
    (out / BUILT_STAMP).write_text(stamp)
    return out


def _read(path: Path) -> np.ndarray:
    """An image as uint8 BGR [H, W, 3], or grey [H, W] when its channels are equal (a grey camera)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        msg = f"could not read image {path}"
        raise ValueError(msg)
    grey = (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    return image[..., 0] if grey else image


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        msg = f"could not write {path}"
        raise OSError(msg)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="an MVTec-layout category folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--held-back-share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"wrote {build_validation_category(args.source, args.out, args.held_back_share, args.seed)}")


if __name__ == "__main__":
    main()
