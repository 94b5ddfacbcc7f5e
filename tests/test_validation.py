"""Where thresholds, normalisation and chosen defaults come from: training images only, never the test split."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from ganad_plugin.sample_data import SplitSizes, generate_category
from ganad_plugin.validation_set import VALIDATION_DEFECTS, build_validation_category

from .conftest import NARROW_HEAD, REPO, SHORT_HEAD_STEPS

POST_PROCESSOR_STATISTICS = ("_image_threshold", "_pixel_threshold", "image_min", "image_max", "pixel_min", "pixel_max")


def fitted_statistics(root: Path, val_split_mode: str, work: Path) -> dict[str, float]:
    """GANomaly fitted one epoch on ``root``/weave with the given validation split: its post-processor's
    thresholds and normalisation bounds (what the checkpoint and the IR carry)."""
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from lightning.pytorch import seed_everything

    from ganad_plugin.models import Evidence, GANomaly, PatchNetwork, PatchSampling

    seed_everything(0)
    # a small network and head: where the statistics come from does not depend on the networks' size
    model = GANomaly(network=PatchNetwork(n_features=8, latent_dim=16), sampling=PatchSampling(patches_per_image=4),
                     evidence=Evidence(memory_size=256, defect_steps=SHORT_HEAD_STEPS, **NARROW_HEAD))
    datamodule = MVTecAD(root=root, category="weave", train_batch_size=2, eval_batch_size=4, num_workers=0,
                         val_split_mode=val_split_mode, val_split_ratio=0.25, seed=0)
    Engine(max_epochs=1, logger=False, enable_progress_bar=False, default_root_dir=work).fit(model, datamodule=datamodule)
    return {name: float(getattr(model.post_processor, name)) for name in POST_PROCESSOR_STATISTICS}


def test_configs_take_their_validation_split_from_training_images() -> None:
    for config in sorted((REPO / "configs").glob("*.yaml")):
        data = yaml.safe_load(config.read_text())["data"]["init_args"]
        assert data.get("val_split_mode") in {"synthetic", "from_train"}, config.name


def test_exported_thresholds_do_not_change_when_the_test_images_do(tmp_path: Path) -> None:
    sizes = SplitSizes(train_good=12, test_good=3, test_per_defect=2)
    original, swapped = tmp_path / "original", tmp_path / "swapped"
    generate_category(original, "weave", sizes)
    generate_category(swapped, "weave", sizes, seed=1)  # other test images (and other training images ...)
    shutil.rmtree(swapped / "weave" / "train")
    shutil.copytree(original / "weave" / "train", swapped / "weave" / "train")  # ... but the same training images
    first = fitted_statistics(original, "synthetic", tmp_path / "a")
    second = fitted_statistics(swapped, "synthetic", tmp_path / "b")
    assert all(np.isfinite(list(first.values())))
    assert first == second
    # the check can fail: with the validation split taken from the test images, the statistics follow them
    assert fitted_statistics(original, "same_as_test", tmp_path / "c") != fitted_statistics(
        swapped, "same_as_test", tmp_path / "d")


def test_validation_category_reads_only_training_images_and_masks_every_defect(tmp_path: Path) -> None:
    generate_category(tmp_path / "data", "flange", SplitSizes(train_good=15, test_good=2, test_per_defect=1))
    source = tmp_path / "data" / "flange"
    for test_image in (source / "test").rglob("*.png"):
        test_image.write_bytes(b"not an image")  # any read of the test split would fail
    out = build_validation_category(source, tmp_path / "validation" / "flange", held_back_share=0.2)
    assert len(list((out / "train" / "good").glob("*.png"))) == 11
    held_back = sorted(p.name for p in (out / "test" / "good").glob("*.png"))
    assert len(held_back) == 4
    assert not set(held_back) & {p.name for p in (out / "train" / "good").glob("*.png")}
    for kind in VALIDATION_DEFECTS:
        for name in held_back:
            image = cv2.imread(str(out / "test" / kind / name), cv2.IMREAD_UNCHANGED)
            good = cv2.imread(str(out / "test" / "good" / name), cv2.IMREAD_UNCHANGED)
            mask = cv2.imread(str(out / "ground_truth" / kind / name.replace(".png", "_mask.png")), cv2.IMREAD_GRAYSCALE)
            assert image.ndim == 2, "a grey category's defects stay grey"
            assert 0 < (mask > 0).sum() < mask.size / 4, (kind, name)
            changed = np.abs(image.astype(int) - good.astype(int)) > 4
            assert changed[mask == 0].mean() < 0.02, f"{kind}: changes outside its mask (beyond a soft edge)"
            assert changed[mask > 0].mean() > 0.2, f"{kind}: its mask marks pixels it did not change"


def test_validation_category_needs_enough_training_images(tmp_path: Path) -> None:
    generate_category(tmp_path, "weave", SplitSizes(train_good=5, test_good=1, test_per_defect=1))
    with pytest.raises(ValueError, match="train/good has 5 images"):
        build_validation_category(tmp_path / "weave", tmp_path / "out")


def test_colour_residual_sees_a_colour_change_whose_channel_mean_is_unchanged() -> None:
    from ganad_plugin.models.components.scoring import signed_residual

    patches = torch.zeros(1, 3, 8, 8)
    shifted = patches.clone()
    shifted[:, 0] += 0.2
    shifted[:, 2] -= 0.2  # redder and less blue: the channels' mean stays
    assert signed_residual(shifted, patches, per_channel=False).abs().max() < 1e-6
    assert signed_residual(shifted, patches, per_channel=True).abs().max() == pytest.approx(0.2)


@pytest.mark.parametrize(("count", "coverage", "confidence", "published"),
                         [(10, 0.99, 0.90, 3.532), (20, 0.99, 0.90, 3.052), (10, 0.95, 0.95, 2.911)])
def test_tolerance_factor_matches_the_published_tables(count: int, coverage: float, confidence: float,
                                                        published: float) -> None:
    """One-sided normal tolerance factors as tabled (e.g. NIST/SEMATECH e-Handbook 7.2.6.3)."""
    from ganad_plugin.models.components.post_processing import tolerance_factor

    assert tolerance_factor(count, coverage, confidence) == pytest.approx(published, abs=2e-3)


def test_line_post_processor_raises_a_low_f1_threshold_to_the_good_parts_tail() -> None:
    from anomalib.data import ImageBatch

    from ganad_plugin.models.components.post_processing import LinePostProcessor

    generator = torch.Generator().manual_seed(0)
    good = torch.randn(40, generator=generator)
    faint = torch.randn(40, generator=generator) + 0.5  # synthetic defects that barely stand out
    processor = LinePostProcessor(image_false_alarm_rate=0.01, pixel_false_alarm_rate=0.001)
    maps = torch.rand(80, 1, 16, 16, generator=generator)
    batch = ImageBatch(image=torch.zeros(80, 3, 16, 16), gt_label=torch.cat([torch.zeros(40), torch.ones(40)]).long(),
                       pred_score=torch.cat([good, faint]), anomaly_map=maps,
                       gt_mask=torch.cat([torch.zeros(40, 16, 16), torch.ones(40, 16, 16)]).bool())
    processor.on_validation_epoch_start(None, None)
    processor.on_validation_batch_end(None, None, batch)
    processor.on_validation_epoch_end(None, None)
    floor = float(good.mean() + 2.793 * good.std())  # the 99 % / 90 % tolerance factor for 40 samples
    assert float(processor.image_threshold) == pytest.approx(floor, abs=1e-3)  # F1 alone would sit near 0
    assert float(processor.pixel_threshold) >= float(torch.quantile(maps[:40].flatten(), 0.99))
    assert (good > processor.image_threshold).float().mean() <= 0.05


@pytest.mark.parametrize(("setting", "value"), [("image_false_alarm_rate", 0.5), ("pixel_false_alarm_rate", -0.1),
                                                ("floor_confidence", 0.3), ("floor_confidence", 1.0)])
def test_line_post_processor_names_a_setting_out_of_range(setting: str, value: float) -> None:
    from ganad_plugin.models.components.post_processing import LinePostProcessor

    with pytest.raises(ValueError, match=setting):
        LinePostProcessor(**{setting: value})
