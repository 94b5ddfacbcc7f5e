"""The defect head: synthetic training defects, that it learns to find them, and its place among the evidence maps
(trained by ``fit_normal``, off at weight 0, exported in the graph)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from ganad_plugin.models import Evidence, PatchNetwork
from ganad_plugin.models.components.defect_head import (
    LINE_SHARE,
    DefectHead,
    _defect_kind,
    _reference_batches,
    draw_training_defect,
)
from ganad_plugin.models.ganomaly.torch_model import GanomalyModel

from .test_evidence import assert_ir_matches_torch

SMALL = PatchNetwork(n_features=8, latent_dim=16)


def speckle(count: int, size: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """A random grey speckle texture [N, C, size, size] in [0, 1]: mid grey with dark and bright grains."""
    generator = torch.Generator().manual_seed(seed)
    grains = torch.rand(count, 1, size, size, generator=generator)
    texture = 0.5 + 0.3 * (grains > 0.9).float() - 0.3 * (grains < 0.1).float()
    return texture.expand(-1, channels, -1, -1).clone()


@pytest.mark.parametrize("channels", [1, 3])
def test_a_training_defect_changes_the_image_where_its_mask_says(channels: int) -> None:
    rng = np.random.default_rng(0)
    images = speckle(4, 64, channels).permute(0, 2, 3, 1).numpy()
    for _ in range(20):
        out, mask = draw_training_defect(rng, images[0], images)
        assert out.shape == images[0].shape and mask.shape == (64, 64)
        assert 0.0 <= out.min() and out.max() <= 1.0
        changed = np.abs(out - images[0]).max(axis=-1) > 0.1
        # almost every visibly changed pixel is in the mask, a thin line's soft edge too
        assert (changed & (mask == 0)).sum() <= max(2, 0.05 * changed.sum())
    masks = [draw_training_defect(rng, images[0], images)[1].sum() for _ in range(20)]
    assert sum(m > 0 for m in masks) >= 15


def test_the_line_share_sets_how_many_drawn_defects_are_lines_and_the_default_draws_as_before() -> None:
    """``line_share`` (the selection's twenty-fourth run) is the share of lines among the kinds drawn; at the shipped
    quarter the draw is the four kinds alike from the same random stream as before the setting existed, so that a
    head trained before it is trained again the same."""
    kinds = {share: [_defect_kind(np.random.default_rng(seed), share) for seed in range(2000)]
             for share in (0.0, 0.5, 1.0)}
    assert 3 not in kinds[0.0] and set(kinds[1.0]) == {3}
    assert 0.45 < kinds[0.5].count(3) / 2000 < 0.55 and {0, 1, 2} <= set(kinds[0.5])
    assert [_defect_kind(np.random.default_rng(seed), LINE_SHARE) for seed in range(50)] == [
        int(np.random.default_rng(seed).integers(4)) for seed in range(50)]
    images = speckle(2, 64, 3).permute(0, 2, 3, 1).numpy()
    all_lines = draw_training_defect(np.random.default_rng(3), images[0], images, line_share=1.0)[1]
    assert 0 < all_lines.mean() < 0.1  # a line or two: a thin share of the crop


def test_the_head_trains_on_images_that_are_not_square_nor_as_large_as_a_crop() -> None:
    wide = torch.rand(4, 3, 96, 160)  # a crop of 128 px is clipped to 96 x 128; other images lend windows that size
    head = DefectHead(3, width=8)
    assert np.isfinite(head.fit(wide, steps=30, seed=1))
    assert head.probability(wide[:1]).shape == (1, 1, 96, 160)


def test_the_head_learns_to_find_a_darker_patch_on_a_random_texture() -> None:
    torch.manual_seed(0)
    head = DefectHead(3, width=16)
    # 64 images for 600 batches: 24 capped the fit at 288 (STEPS_PER_IMAGE), where whether the patch rose above a
    # normal image's highest place depended on the float arithmetic's order (it failed in float32 on one thread, on
    # a CPU without bf16 units, for two seeds of four); with 600 it clears it by 1.8-3.6 logits on seeds 0-3, one or
    # two threads
    normal = speckle(64, 64)
    loss = head.fit(normal, steps=600)
    assert np.isfinite(loss) and bool(head.filled)
    test = speckle(8, 64, seed=1)
    defective = test.clone()
    defective[:, :, 24:36, 24:36] *= 0.6  # a worn spot: the texture kept, 40 % darker
    with torch.no_grad():
        normal_logits, defect_logits = head(test), head(defective)
    inside = defect_logits[:, :, 26:34, 26:34].mean()
    assert inside > normal_logits.amax(dim=(1, 2, 3)).mean()  # above the highest place of a normal image


def test_fit_normal_trains_the_head_on_images_it_does_not_calibrate_on_and_the_map_exports(
        caplog: pytest.LogCaptureFixture) -> None:
    """With the GAN's reconstruction as the head's reference (the plain head's fit and export run in every config's
    fit and export in the CLI tests). The calibration, which runs after the last epoch where the progress bar stands
    still, says what it is doing."""
    torch.manual_seed(0)
    # the defect map alone: an untrained tiny generator's residual has a near-zero spread that magnifies rounding
    # (see test_evidence's export test), which is not what this test is about; the reconstruction still enters
    # (per-place spreads off: they narrow the map's range, and with it this check's tolerance, below the rounding an
    # untrained head's log-probability carries; their export is checked in test_evidence)
    evidence = Evidence(residual_weight=0, distance_weight=0, memory_weight=0, colour_weight=0, defect_weight=1.0,
                        defect_steps=2, defect_reference=True, position_border_px=16.0, position_spread=False)
    net = GanomalyModel(network=SMALL, evidence=evidence).eval()
    assert net.evidence_names == ("defect",)
    assert net.defect.reference
    assert not net.calibrated
    seen, references, averages, schedules = [], [], [], []
    fit = net.defect.fit

    def watched_fit(images: torch.Tensor, steps: int, seed: int = 0, reconstruct=None, average: float = 0.0,
                    cosine: bool = False) -> float:
        seen.append(images)
        references.append(reconstruct)
        averages.append(average)
        schedules.append(cosine)
        return fit(images, steps, seed=seed, reconstruct=reconstruct, average=average, cosine=cosine)

    net.defect.fit = watched_fit  # type: ignore[method-assign]
    normal = torch.rand(8, 3, 64, 64)
    with caplog.at_level(logging.INFO, logger="ganad_plugin"):
        net.fit_normal([normal])
    said = caplog.text
    assert "defect head 1 of 2: training on defects drawn on 6 normal images" in said  # the default pair
    assert "defect head 2 of 2 trained in" in said and "fitted on 2 held-out normal images" in said
    assert net.calibrated and len(seen[0]) == 6  # every fourth image calibrates instead
    assert not any(torch.equal(image, normal[3]) or torch.equal(image, normal[7]) for image in seen[0])
    assert references[0] == net.reconstruct
    assert averages == [Evidence().defect_average]  # the configured weight average reaches the head's training
    assert schedules == [Evidence().defect_schedule == "cosine"] == [True]  # and the default cosine schedule
    assert_ir_matches_torch(net, (64, 64), relative_tolerance=1e-3)


def test_a_head_with_a_reference_sees_each_crop_beside_its_own_reconstruction() -> None:
    """The references are reconstructions of the whole images with their drawn defects, cropped at the same places
    as the images and masks; a quarter of each batch is clean."""
    rng = np.random.default_rng(0)
    pictures = speckle(5, 200).permute(0, 2, 3, 1).numpy()
    calls = []

    def negative(images: torch.Tensor) -> torch.Tensor:  # a stand-in reconstruction whose crops can be checked
        calls.append(tuple(images.shape))
        return 1 - images

    batches = list(_reference_batches(rng, pictures, 7, negative, torch.device("cpu")))
    assert len(batches) == 7
    assert len(calls) == 3  # the clean images, then each round's drawn ones (5 images: one batch each)
    assert all(shape == (5, 3, 200, 200) for shape in calls)
    for images, masks, references in batches:
        assert images.shape == references.shape == (16, 128, 128, 3) and masks.shape == (16, 128, 128)
        np.testing.assert_allclose(references, 1 - images, atol=1e-6)
        clean = masks.reshape(16, -1).max(axis=1) == 0
        assert clean[:4].all()  # NORMAL_SHARE of the batch from the clean images
        assert (~clean[4:]).sum() >= 8  # nearly every other crop holds some drawn defect
    head = DefectHead(3, width=8, reference=True)
    with pytest.raises(ValueError, match="reconstruct"):
        head.fit(torch.rand(2, 3, 64, 64), steps=1)
    with pytest.raises(ValueError, match="reference"):
        head(torch.rand(1, 3, 64, 64))


def test_a_weight_averaged_head_is_the_moving_average_of_its_second_half() -> None:
    """Three steps with decay 0.5: the average starts at the second step's weights (after the first half) and takes
    half of the third step's; the same images and seed train the same batches, so the heads of two and three plain
    steps are the weights it averages."""
    images = speckle(4, 64)
    heads = {}
    for steps, average in ((1, 0.0), (2, 0.0), (3, 0.0), (3, 0.5), (1, 0.99)):
        heads[steps, average] = DefectHead(3, width=8)
        heads[steps, average].fit(images, steps=steps, seed=3, average=average)
    first, second, third = (dict(heads[steps, 0.0].named_parameters()) for steps in (1, 2, 3))
    assert any(not torch.equal(second[name], third[name]) for name in second)  # the third step moved the weights
    for name, averaged in heads[3, 0.5].named_parameters():
        torch.testing.assert_close(averaged, 0.5 * second[name] + 0.5 * third[name])
    for name, weights in heads[1, 0.99].named_parameters():  # a single step: nothing to average, the step's weights
        torch.testing.assert_close(weights, first[name])


def test_a_cosine_schedule_takes_the_full_rate_first_and_half_of_it_halfway() -> None:
    """Over two steps the half cosine gives the first step the full rate and the second half of it: with the same
    batches and Adam's step proportional to the rate, the second step moves the weights half as far."""
    images = speckle(4, 64)
    heads = {}
    for steps, cosine in ((1, False), (2, False), (1, True), (2, True)):
        heads[steps, cosine] = DefectHead(3, width=8)
        heads[steps, cosine].fit(images, steps=steps, seed=3, cosine=cosine)
    first, second = (dict(heads[steps, False].named_parameters()) for steps in (1, 2))
    for name, weights in heads[1, True].named_parameters():
        torch.testing.assert_close(weights, first[name])
    for name, weights in heads[2, True].named_parameters():
        torch.testing.assert_close(weights - first[name], 0.5 * (second[name] - first[name]), atol=1e-6, rtol=1e-3)


def test_a_pair_of_heads_trains_from_seeds_0_and_1_and_the_map_is_their_mean() -> None:
    evidence = Evidence(residual_weight=0, distance_weight=0, memory_weight=0, colour_weight=0, defect_weight=1.0,
                        defect_steps=3, defect_heads=2)
    net = GanomalyModel(network=SMALL, evidence=evidence).eval()
    assert len(net.defect_heads()) == 2
    normal = torch.rand(8, 3, 64, 64)
    net.fit_normal([normal])
    assert net.calibrated
    first, second = net.defect_heads()
    assert any(not torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters(), strict=True))
    # the second head is the head that seed 1 trains on the same images, nothing else
    alone = DefectHead(3, evidence.defect_width, fine=evidence.defect_fine, fine_width=evidence.defect_fine_width)
    alone.fit(normal[[0, 1, 2, 4, 5, 6]], 3, seed=1, average=evidence.defect_average,
              cosine=evidence.defect_schedule == "cosine")
    for mine, theirs in zip(alone.state_dict().values(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(mine, theirs)
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = (first.probability(images) + second.probability(images)) / 2
        torch.testing.assert_close(net.evidence(images), expected)


def test_the_head_is_on_by_default_off_at_weight_0_and_its_settings_are_checked() -> None:
    assert GanomalyModel(network=SMALL, evidence=Evidence(memory_size=64)).defect is not None
    assert GanomalyModel(network=SMALL, evidence=Evidence(memory_size=64, defect_weight=0)).defect is None
    assert GanomalyModel(network=SMALL, evidence=Evidence(paper_score=True)).defect is None
    with pytest.raises(ValueError, match="defect_steps"):
        Evidence(defect_weight=1.0, defect_steps=0)
    with pytest.raises(ValueError, match="defect_heads"):
        Evidence(defect_heads=0)
    for decay in (-0.1, 1.0):
        with pytest.raises(ValueError, match="defect_average"):
            Evidence(defect_average=decay)
    narrow = GanomalyModel(network=SMALL, evidence=Evidence(memory_size=64, defect_width=16))
    assert [head.logit.in_channels for head in narrow.defect_heads()] == [16, 16]
    for width in (0, 3):
        with pytest.raises(ValueError, match="defect_width"):
            Evidence(defect_width=width)
    fine = GanomalyModel(network=SMALL, evidence=Evidence(memory_size=64, defect_width=16, defect_fine=3,
                                                          defect_fine_width=0))
    full_resolution = [[layer[0].stride for layer in head.body].index((2, 2)) for head in fine.defect_heads()]
    assert full_resolution == [3, 3]  # three convolutions before the first strided one
    assert [head.body[1][0].out_channels for head in fine.defect_heads()] == [8, 8]  # 0: half the width
    narrow_fine = GanomalyModel(network=SMALL, evidence=Evidence(memory_size=64, defect_width=16, defect_fine=3,
                                                                 defect_fine_width=4))
    for head in narrow_fine.defect_heads():
        assert [layer[0].out_channels for layer in head.body[:4]] == [4, 4, 4, 16]  # then the strided one to 16
        assert head(torch.rand(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="defect_fine"):
        Evidence(defect_fine=0)
    with pytest.raises(ValueError, match="defect_fine_width"):
        Evidence(defect_fine_width=-1)
    with pytest.raises(ValueError, match="defect_schedule"):
        Evidence(defect_schedule="linear")


def test_settings_saved_before_the_defect_head_existed_load_with_it_off(tmp_path) -> None:
    earlier = Evidence.__new__(Evidence)  # as a checkpoint of the earlier code pickled it: no defect fields
    for name, value in vars(Evidence()).items():
        if not name.startswith("defect_"):
            object.__setattr__(earlier, name, value)
    torch.save({"hyper_parameters": {"evidence": earlier}}, tmp_path / "old.ckpt")
    loaded = torch.load(tmp_path / "old.ckpt", weights_only=True)["hyper_parameters"]["evidence"]
    assert loaded.defect_weight == 0.0 and "defect" not in loaded.active()
    assert loaded.defect_average == 0.0  # a head trained before the average existed kept its last step's weights
    assert loaded.defect_heads == 1
    assert loaded.defect_width == 32  # the width every head had before the setting existed
    assert loaded.defect_schedule == "constant"  # the learning rate every head had before the setting existed
    assert loaded.defect_fine == 1  # one full-resolution convolution, as every head before the setting
    assert loaded.defect_fine_width == 0  # of half the head's width
    assert GanomalyModel(network=SMALL, evidence=loaded).defect is None
