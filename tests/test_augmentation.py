"""The albumentations bridge anomalib's datamodules take as train_augmentations."""

from __future__ import annotations

from pathlib import Path

import albumentations as A  # noqa: N812
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import Compose, Resize

from ganad_plugin.augmentation import Albumentations, LineAugmentation


def image_and_mask() -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    image = torch.zeros(3, 64, 64)
    image[:, 10:20, 40:60] = 1.0  # a bright bar, and the same bar in the mask
    mask = torch.zeros(64, 64, dtype=torch.uint8)
    mask[10:20, 40:60] = 1
    return tv_tensors.Image(image), tv_tensors.Mask(mask)


def test_image_and_mask_get_the_same_geometry() -> None:
    image, mask = image_and_mask()
    flip = Albumentations(A.Compose([A.HorizontalFlip(p=1.0), A.Affine(translate_px=(5, 5), p=1.0)]))
    out_image, out_mask = flip(image, mask)
    assert isinstance(out_image, tv_tensors.Image) and isinstance(out_mask, tv_tensors.Mask)
    assert out_image.shape == image.shape and out_mask.dtype == mask.dtype
    assert torch.equal(out_image[0] > 0.5, out_mask.bool())  # the bar moved with its mask
    assert not torch.equal(out_mask, mask)


def test_works_inside_anomalibs_compose_with_the_model_resize_and_on_an_image_alone() -> None:
    image, mask = image_and_mask()
    pipeline = Compose([LineAugmentation(kind="texture", probability=1.0), Resize((32, 32))])
    out_image, out_mask = pipeline(image, mask)
    assert out_image.shape == (3, 32, 32) and out_mask.shape == (32, 32)
    assert isinstance(pipeline(image), tv_tensors.Image)


def test_photometric_change_keeps_the_range_and_changes_the_pixels() -> None:
    image = tv_tensors.Image(torch.full((3, 32, 32), 0.5))
    brighter = Albumentations(A.RandomBrightnessContrast(brightness_limit=(0.2, 0.2), contrast_limit=0, p=1.0))(image)
    assert float(brighter.mean()) == pytest.approx(0.7, abs=0.01)
    assert float(brighter.max()) <= 1.0


def test_part_kind_never_mirrors() -> None:
    assert not any(isinstance(t, A.HorizontalFlip | A.VerticalFlip) for t in LineAugmentation(kind="part").transform)
    assert any(isinstance(t, A.HorizontalFlip) for t in LineAugmentation(kind="texture").transform)


def test_bad_settings_fail_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        LineAugmentation(kind="fabric")
    with pytest.raises(ValueError, match="brightness must lie in"):
        LineAugmentation(brightness=1.5)
    image, mask = image_and_mask()
    with pytest.raises(TypeError, match="one image and at most one mask"):
        LineAugmentation()(image, mask, mask)


def test_anomalib_datamodule_applies_it_to_training_images(tiny_dataset: Path) -> None:
    from anomalib.data import MVTecAD

    datamodule = MVTecAD(root=tiny_dataset, category="weave", train_batch_size=2, num_workers=0,
                         train_augmentations=LineAugmentation(kind="texture", brightness=0.3, probability=1.0),
                         val_split_mode="synthetic", val_split_ratio=0.25, seed=0)
    datamodule.setup()
    plain = MVTecAD(root=tiny_dataset, category="weave", train_batch_size=2, num_workers=0,
                    val_split_mode="synthetic", val_split_ratio=0.25, seed=0)
    plain.setup()
    augmented_item, plain_item = datamodule.train_data[0], plain.train_data[0]
    assert augmented_item.image.shape == plain_item.image.shape
    assert not torch.allclose(augmented_item.image, plain_item.image)
