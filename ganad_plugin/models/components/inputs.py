"""Checks of a category's images before any training time is spent.

anomalib reads images through PIL when a batch is loaded, so a corrupt file fails mid-fit, a truncated JPEG is
learnt as a good part, a 16-bit image is clipped to near white, and a missing or misshapen mask surfaces only at
the test after training. ``check_category`` reads every image and mask of the datamodule's splits once (about
a second for a 200-image category) and raises ``TrainingInputError`` naming the file and what is wrong, or
returns notes on what anomalib will convert on its own (grey or RGBA among colour images, small images).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ganad_plugin.edge.images import InputError, decode_file, image_paths


class TrainingInputError(ValueError):
    """A training, validation or test image (or mask) that cannot be used; the message names the file."""


def _decode(path: Path, what: str) -> np.ndarray:
    """``images.decode_file``, its error restated for training: which file, and what it is to the category."""
    try:
        return decode_file(path)
    except InputError as error:
        msg = f"{path}: {what} is unusable: {str(error).removeprefix(f'{path}: ')}"
        raise TrainingInputError(msg) from error


def _channels(image: np.ndarray) -> str:
    return {2: "grey", 3: {1: "grey", 3: "colour", 4: "colour with alpha"}.get(image.shape[-1], "?")}.get(
        image.ndim, "?"
    )


def check_images(
    images: Iterable[tuple[Path, Path | None]], smallest_side_px: int
) -> list[str]:
    """Read each (image, mask or None) pair; raise ``TrainingInputError`` on the first unusable one; return notes.

    Refused: missing, empty, corrupt or truncated files, 16-bit images (anomalib's PIL reader would clip them),
    masks missing or of another size than their image. Noted: grey or alpha images mixed with colour ones (read
    as RGB), images with a side below ``smallest_side_px`` (upscaled by the model's resize).
    """
    kinds: Counter[str] = Counter()
    small = []
    for path, mask_path in images:
        image = _decode(Path(path), "image")
        if image.dtype != np.uint8:
            msg = (
                f"{path}: image has {image.dtype} pixels; anomalib's reader clips 16-bit images to near white. "
                "Convert the category to 8-bit first (e.g. cv2.imwrite(p, (cv2.imread(p, -1) // 257).astype('uint8')))"
            )
            raise TrainingInputError(msg)
        kinds[_channels(image)] += 1
        if min(image.shape[:2]) < smallest_side_px:
            small.append(f"{Path(path).name} {image.shape[1]}x{image.shape[0]}")
        if mask_path is not None:
            mask = _decode(Path(mask_path), f"mask of {Path(path).name}")
            if mask.shape[:2] != image.shape[:2]:
                msg = (
                    f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} px but its image {path} is "
                    f"{image.shape[1]}x{image.shape[0]} px"
                )
                raise TrainingInputError(msg)
    notes = []
    if len(kinds) > 1:
        mix = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        notes.append(f"images of mixed kinds ({mix}): all are read as RGB (grey replicated, alpha dropped)")
    if small:
        notes.append(
            f"{len(small)} image(s) have a side below {smallest_side_px} px and are upscaled by the model's resize, "
            f"e.g. {small[0]}"
        )
    return notes


def mvtec_layout(category_dir: Path) -> list[tuple[Path, Path | None]]:
    """The (image, mask or None) pairs of an MVTec-style category folder, checked for what anomalib's ``MVTecAD``
    would otherwise meet with a download attempt (a missing folder) or a cryptic error (a missing mask)."""
    if not category_dir.is_dir():
        msg = (
            f"{category_dir}: no such category folder (check --data.root and --data.category; anomalib's MVTecAD "
            "would try to download the MVTec AD dataset into it)"
        )
        raise TrainingInputError(msg)
    train = image_paths(category_dir / "train" / "good") if (category_dir / "train" / "good").is_dir() else []
    if not train:
        msg = f"{category_dir / 'train' / 'good'}: no training images (an MVTec-style category needs train/good/*.png)"
        raise TrainingInputError(msg)
    pairs: list[tuple[Path, Path | None]] = [(path, None) for path in train]
    test = category_dir / "test"
    for defect in sorted(p for p in test.iterdir() if p.is_dir()) if test.is_dir() else []:
        for path in image_paths(defect):
            if defect.name == "good":
                pairs.append((path, None))
                continue
            mask = category_dir / "ground_truth" / defect.name / f"{path.stem}_mask.png"
            if not mask.is_file():
                msg = f"{path}: defective test image without its mask {mask}"
                raise TrainingInputError(msg)
            pairs.append((path, mask))
    return pairs


def check_category(datamodule: object, smallest_side_px: int) -> list[str]:
    """``check_images`` over the category's files: for an MVTec-style folder (``root / category``) every file of it
    (``mvtec_layout``: the validation split is drawn from these, whatever the split), else the training and test
    splits the datamodule has set up. The training split must hold images."""
    train = getattr(datamodule, "train_data", None)
    if train is None or len(train.samples) == 0:
        root = getattr(datamodule, "root", "?")
        category = getattr(datamodule, "category", "")
        msg = f"{Path(str(root)) / str(category)}: no training images found (expected <category>/train/good/*.png)"
        raise TrainingInputError(msg)
    root, category = getattr(datamodule, "root", None), getattr(datamodule, "category", None)
    if root is not None and category is not None and (Path(str(root)) / str(category) / "train" / "good").is_dir():
        return check_images(mvtec_layout(Path(str(root)) / str(category)), smallest_side_px)
    pairs: list[tuple[Path, Path | None]] = []
    for split in ("train_data", "test_data"):
        dataset = getattr(datamodule, split, None)
        samples = getattr(dataset, "samples", None)
        if samples is None or "image_path" not in samples:
            continue
        masks = samples["mask_path"] if "mask_path" in samples else [None] * len(samples)
        labels = samples["label_index"] if "label_index" in samples else [0] * len(samples)
        any_masks = any(isinstance(m, str) and m for m in masks)
        for image_path, mask_path, label in zip(samples["image_path"], masks, labels, strict=True):
            has_mask = isinstance(mask_path, str) and bool(mask_path)
            if int(label) == 1 and any_masks and not has_mask:
                msg = f"{image_path}: defective test image without a mask (the other defective images have one)"
                raise TrainingInputError(msg)
            pairs.append((Path(image_path), Path(mask_path) if has_mask and int(label) == 1 else None))
    return check_images(pairs, smallest_side_px)
