"""Shared DCGAN blocks, patch tiling and scoring."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import ndimage

from ganad_plugin.models.components.blocks import DcganDecoder, DcganDiscriminator, DcganEncoder, WeightAverage
from ganad_plugin.models.components.colour_statistics import ColourStatistics
from ganad_plugin.models.components.losses import DiscriminatorLoss
from ganad_plugin.models.components.memory import FeatureMemory
from ganad_plugin.models.components.patches import PatchGrid, random_patches
from ganad_plugin.models.components.scoring import (
    AnomalyScorer,
    EvidenceCalibration,
    GaussianSmoothing,
    defect_signal,
    image_score,
)
from ganad_plugin.models.components.settings import Evidence, PatchNetwork
from ganad_plugin.models.ganomaly.torch_model import GanomalyModel


@pytest.mark.parametrize("patch_size", [16, 32, 64])
def test_dcgan_blocks_map_patches_to_latents_and_back(patch_size: int) -> None:
    patches = torch.rand(5, 3, patch_size, patch_size) * 2 - 1
    latent = DcganEncoder(patch_size, 3, 8, 20)(patches)
    assert latent.shape == (5, 20, 1, 1)
    reconstruction = DcganDecoder(patch_size, 3, 8, 20)(latent)
    assert reconstruction.shape == patches.shape and reconstruction.abs().max() <= 1
    logits, features = DcganDiscriminator(patch_size, 3, 8, spectral_norm=True)(patches)
    assert logits.shape == (5,) and features.shape[-2:] == (4, 4)


def test_patch_size_that_is_not_a_power_of_two_is_refused() -> None:
    with pytest.raises(ValueError, match="power of two"):
        DcganEncoder(24, 3, 8, 16)


@pytest.mark.parametrize("window", ["flat", "tent"])
@pytest.mark.parametrize("size", [(64, 64), (100, 77), (256, 256), (200, 320), (512, 384)])
def test_patch_grid_merge_inverts_split_for_any_size(size: tuple[int, int], window: str) -> None:
    grid = PatchGrid(32, window)
    images = torch.rand(2, 1, *size)
    patches = grid.split(images)
    assert patches.shape == (2 * grid.patches_per_image(*size), 1, 32, 32)
    torch.testing.assert_close(grid.merge(patches, size), images)


def test_tent_window_halves_the_seam_that_patch_edges_leave_in_a_flat_merge() -> None:
    grid_flat, grid_tent = PatchGrid(32, "flat"), PatchGrid(32, "tent")
    size = (128, 128)
    patches = grid_flat.split(torch.zeros(1, 1, *size))
    edge = torch.zeros(32, 32)
    edge[:4], edge[-4:], edge[:, :4], edge[:, -4:] = 1.0, 1.0, 1.0, 1.0  # a network's worse reconstruction at the edges
    flat, tent = (grid.merge(patches + edge, size)[0, 0, 16:-16, 16:-16] for grid in (grid_flat, grid_tent))
    # flat: a seam every 16 px, 0.5 high (0.75 where two cross); tent: the patch edges weigh little wherever they are
    assert float(flat.max() - flat.min()) >= 0.7
    assert float(tent.max() - tent.min()) < 0.55 * float(flat.max() - flat.min())
    assert float(tent[20].max()) < 0.5 * float(flat[20].max())
    with pytest.raises(ValueError, match="patch window"):
        PatchGrid(32, "hann")


def test_patch_grid_rejects_images_smaller_than_two_patches() -> None:
    with pytest.raises(ValueError, match="too small for patch_size=32"):
        PatchGrid(32).split(torch.rand(1, 3, 63, 200))


def test_random_patches_are_crops_of_their_image() -> None:
    images = torch.arange(2 * 1 * 40 * 50, dtype=torch.float32).reshape(2, 1, 40, 50)
    crops = random_patches(images, 16, per_image=3)
    assert crops.shape == (6, 1, 16, 16)
    for index, crop in enumerate(crops):
        source = images[index // 3, 0]
        top, left = divmod(int((crop[0, 0, 0] - source[0, 0]).item()), 50)
        torch.testing.assert_close(crop[0], source[top : top + 16, left : left + 16])


def test_smoothing_keeps_size_and_mean_of_a_constant_map() -> None:
    maps = torch.full((2, 3, 70, 90), 0.7)
    smoothed = GaussianSmoothing(3.0)(maps)
    assert smoothed.shape == maps.shape
    torch.testing.assert_close(smoothed, maps)


@pytest.mark.parametrize(("sigma", "height", "width", "form"), [
    (3.0, 64, 80, "matrix"),  # 19 taps against 64 px
    (3.0, 400, 420, "convolution"),
    (48.0, 256, 256, "matrix"),  # the background scale: mirrored edges
    (48.0, 70, 90, "matrix"),  # wider than the map: repeated edges
])
def test_smoothing_is_the_gaussian_filter_with_mirrored_edges(sigma: float, height: int, width: int, form: str) -> None:
    """Both forms of the blur (two 1-D convolutions, or two matrix products) against scipy's Gaussian filter."""
    smoothing = GaussianSmoothing(sigma)
    assert smoothing.uses_matrices(height, width) == (form == "matrix")
    maps = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    # scipy's "mirror" is torch's "reflect" (the edge pixel not repeated), its "nearest" torch's "replicate"
    edges = "mirror" if min(height, width) > smoothing.radius else "nearest"
    expected = ndimage.gaussian_filter(maps.double().numpy(), sigma=(0, 0, sigma, sigma), mode=edges,
                                       truncate=smoothing.radius / sigma)
    torch.testing.assert_close(smoothing(maps), torch.from_numpy(expected).float(), atol=1e-5, rtol=1e-4)


def test_scorer_standardises_against_normal_evidence_and_scores_the_peak() -> None:
    scorer = AnomalyScorer(signed=(True, False), smoothing_sigma_px=1.0)
    normal = torch.randn(4, 2, 64, 64) * 0.1 + torch.tensor([0.0, 2.0])[None, :, None, None]
    scorer.calibration.fit(scorer.smooth(normal))
    test = normal[:2].clone()
    test[1, :, 20:30, 20:30] += 3.0  # a strong local deviation in both evidence maps
    scores, maps = scorer(test)
    assert maps.shape == (2, 1, 64, 64)
    assert scores[1] > scores[0] + 5
    peak_row, peak_col = divmod(int(maps[1, 0].argmax()), 64)
    assert 20 <= peak_row < 30 and 20 <= peak_col < 30


def test_a_map_marked_unsmoothed_keeps_its_single_pixel_peak_while_the_others_are_blurred() -> None:
    scorer = AnomalyScorer(signed=(False, False), smoothing_sigma_px=2.0, smoothed=(True, False))
    distances = torch.ones(1, 2, 32, 32)
    distances[:, :, 16, 16] = 100.0
    logs = scorer.smooth(distances)[0]
    torch.testing.assert_close(logs[1], distances[0, 1].log())  # as given, on the log scale
    assert logs[0, 16, 16] < 0.5 * logs[1, 16, 16]  # the blurred map's peak is spread over its neighbours
    assert logs[0, 16, 18] > logs[1, 16, 18]
    with pytest.raises(ValueError, match="one flag for each of the 2 evidence maps"):
        AnomalyScorer(signed=(False, False), smoothed=(True,))


def test_the_defect_smoothing_setting_leaves_only_the_defect_map_unblurred() -> None:
    evidence = Evidence(defect_smoothing=False)
    model = GanomalyModel(network=PatchNetwork(n_features=8, latent_dim=16), evidence=evidence)
    flags = dict(zip(model.evidence_names, model.scorer.smoothed_flags, strict=True))
    assert flags == {name: name != "defect" for name in evidence.active()}
    assert all(GanomalyModel(network=PatchNetwork(n_features=8, latent_dim=16)).scorer.smoothed_flags)


def test_background_subtraction_ignores_a_uniform_offset_but_keeps_a_local_defect() -> None:
    scorer = AnomalyScorer(signed=(True,), smoothing_sigma_px=1.0, background_sigma_px=8.0)
    offset = torch.full((1, 1, 96, 96), 0.5)
    offset[:, :, 40:46, 40:46] += 1.0
    magnitude = scorer.smooth(offset)[0, 0]
    assert magnitude[5:20, 5:20].max() < 1e-4  # the region-wide offset is gone
    assert magnitude[43, 43] > 0.5  # the local deviation stays


def test_evidence_weights_set_each_maps_share_of_the_combined_z_score() -> None:
    calibration = EvidenceCalibration(2, weights=(0.9, 0.1))
    evidence = torch.zeros(1, 2, 4, 4)
    evidence[:, 1] = 10.0
    torch.testing.assert_close(calibration(evidence), torch.full((1, 1, 4, 4), 1.0))
    with pytest.raises(ValueError, match="evidence weights"):
        EvidenceCalibration(2, weights=(1.0,))


def test_weight_average_follows_the_live_module_at_its_decay() -> None:
    live = torch.nn.Linear(3, 1)
    average = WeightAverage(live, decay=0.75)
    start = live.weight.detach().clone()
    with torch.no_grad():
        live.weight.add_(4.0)
    average.update(live)
    torch.testing.assert_close(average.average.weight, start + 1.0)
    assert not average.average.weight.requires_grad
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(live, decay=1.0)


def test_structured_patches_come_from_where_the_image_has_edges() -> None:
    torch.manual_seed(0)
    images = torch.zeros(2, 3, 128, 128)
    images[:, :, 90:110, 90:110] = 1.0  # one bright square on a plain background
    uniform = random_patches(images, 16, 200, structured_share=0.0)
    structured = random_patches(images, 16, 200, structured_share=1.0)
    has_edge = lambda patches: ((patches.amax(dim=(1, 2, 3)) - patches.amin(dim=(1, 2, 3))) > 0.5).float().mean()  # noqa: E731
    assert has_edge(structured) > 0.9
    assert has_edge(uniform) < 0.3
    with pytest.raises(ValueError, match="structured_share"):
        random_patches(images, 16, 4, structured_share=1.5)


def test_feature_memory_gives_each_place_the_distance_to_the_nearest_normal_direction() -> None:
    memory = FeatureMemory(dim=2, size=3)
    memory.fit(torch.tensor([[1.0, 0.0], [0.0, 10.0], [-3.0, 0.0]]))  # lengths do not matter, directions do
    assert bool(memory.filled)
    queries = torch.tensor([[5.0, 0.0], [0.0, 0.5], [1.0, 1.0], [0.0, -2.0]])  # [4 places, 2]
    distances = memory(queries.T.reshape(1, 2, 2, 2))  # one image, a 2 x 2 map
    assert distances.shape == (1, 1, 2, 2)
    expected = torch.tensor([0.0, 0.0, (2 - 2 * 0.5**0.5) ** 0.5, 2**0.5])  # sqrt(2 - 2 cos) to the nearest
    torch.testing.assert_close(distances.flatten(), expected, atol=1e-3, rtol=0)


def test_feature_memory_compares_against_every_row_of_a_bank_larger_than_one_chunk() -> None:
    from ganad_plugin.models.components.memory import BANK_CHUNK

    features = torch.randn(BANK_CHUNK + 5, 3)
    memory = FeatureMemory(dim=3, size=BANK_CHUNK + 5)
    memory.fit(features)
    distances = memory(features[-5:].T.reshape(1, 3, 1, 5))  # rows that land in the last, partial chunk
    assert distances.max() < 1e-2


def test_feature_memory_keeps_a_subset_or_repeats_to_fill_its_fixed_size() -> None:
    features = torch.nn.functional.normalize(torch.randn(10, 4), dim=1)
    large = FeatureMemory(dim=4, size=25)
    large.fit(features)
    assert large.bank.shape == (25, 4)
    as_set = lambda rows: {tuple(round(x, 5) for x in row.tolist()) for row in rows}  # noqa: E731
    assert as_set(large.bank) == as_set(features)
    small = FeatureMemory(dim=4, size=6)
    small.fit(features)
    assert as_set(small.bank) <= as_set(features)
    assert len(as_set(small.bank)) == 6  # without repeats when there are enough features


def test_image_score_is_the_mean_of_the_top_quarter_percent_of_the_map() -> None:
    maps = torch.zeros(2, 1, 40, 40)  # 1600 px: the top 0.25 % is 4 px
    maps[0, 0, 5, 5] = 8.0  # one hot pixel (noise)
    maps[1, 0, 20:22, 20:22] = 4.0  # a defect of 4 px, half as bright
    torch.testing.assert_close(image_score(maps, 0.0025), torch.tensor([2.0, 4.0]))
    assert maps.amax(dim=(1, 2, 3))[0] > maps.amax(dim=(1, 2, 3))[1]  # the maximum would rank the noise first


def test_coreset_memory_keeps_rare_normal_directions_that_a_random_subset_misses() -> None:
    generator = torch.Generator().manual_seed(0)
    common = torch.zeros(4000, 64)
    common[:, 0] = 1.0
    rare = torch.zeros(4, 64)
    rare[:, 1] = 1.0  # a rare kind of normal place, e.g. a part's rim: 0.1 % of the features
    features = torch.cat([common, rare]) + 0.05 * torch.randn(4004, 64, generator=generator)
    query = rare[:1].T.reshape(1, 64, 1, 1)
    distances = {}
    for selection in ("coreset", "random"):
        memory = FeatureMemory(dim=64, size=16, selection=selection)
        memory.fit(features)
        distances[selection] = float(memory(query))
    assert distances["coreset"] < 0.6  # the rare direction is in the bank (the noise alone is ~0.35 away)
    assert distances["random"] > 1.0  # 16 random rows of 4004 all come from the common direction
    with pytest.raises(ValueError, match="memory selection must be one of"):
        FeatureMemory(dim=4, size=8, selection="kmeans")


def test_feature_memory_refuses_features_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"normal features \[N > 0, 4\]"):
        FeatureMemory(dim=4, size=8).fit(torch.randn(10, 3))
    with pytest.raises(ValueError, match="normal features"):
        FeatureMemory(dim=4, size=8).fit(torch.empty(0, 4))


def test_discriminator_loss_is_log2_for_undecided_logits_and_zero_when_d_is_right() -> None:
    zeros = torch.zeros(6)
    assert DiscriminatorLoss()(zeros, zeros).item() == pytest.approx(math.log(2), rel=1e-6)
    confident = torch.full((6,), 20.0)
    assert DiscriminatorLoss()(confident, -confident) < 1e-6
    assert DiscriminatorLoss()(-confident, confident) > 10


def test_feature_memory_compares_the_appended_colour_part_by_plain_distance() -> None:
    memory = FeatureMemory(dim=3, size=2, direction_dims=2)
    memory.fit(torch.tensor([[1.0, 0.0, 0.5], [0.0, 3.0, 0.5]]))  # directions (1, 0) and (0, 1), colour 0.5
    queries = torch.tensor([[2.0, 0.0, 0.5], [2.0, 0.0, 0.8]])  # the same direction; the second's colour moved 0.3
    distances = memory(queries.T.reshape(1, 3, 1, 2)).flatten()
    torch.testing.assert_close(distances, torch.tensor([0.0, 0.3]), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="direction_dims"):
        FeatureMemory(dim=3, size=2, direction_dims=4)


def test_memory_features_append_the_local_colour_mean_and_spread_times_their_weight() -> None:
    from ganad_plugin.models import GANomaly
    from ganad_plugin.models.components.settings import Evidence

    image = torch.full((1, 3, 64, 64), 0.2)
    image[:, 0, :, 32:] = 0.6  # right half: more red
    image[:, 1, :, :32] = torch.arange(32).remainder(2).float() * 0.4  # left half: stripes in green (spread 0.2)
    plain = GANomaly(evidence=Evidence(memory_size=16)).model
    coloured = GANomaly(evidence=Evidence(memory_size=16, memory_colour_weight=2.0)).model
    with torch.no_grad():
        base, features = plain.memory_features(image), coloured.memory_features(image)
    assert features.shape[1] == base.shape[1] + 6 and features.shape[-2:] == base.shape[-2:]
    colour = features[0, base.shape[1]:] / 2.0  # mean R, G, B, then spread R, G, B, one place every 8 px
    torch.testing.assert_close(colour[0, 4, 6], torch.tensor(0.6))  # mean red, right half
    torch.testing.assert_close(colour[1, 4, 1], torch.tensor(0.2))  # mean green, left half
    torch.testing.assert_close(colour[4, 4, 1], torch.tensor(0.2), atol=1e-3, rtol=0)  # green spread, left half
    torch.testing.assert_close(colour[4, 4, 6], torch.tensor(0.0), atol=1e-3, rtol=0)


def test_position_calibration_learns_a_place_that_is_high_on_every_normal_image() -> None:
    normal = torch.randn(8, 1, 64, 64) * 0.1
    normal[:, :, :, :16] += 2.0  # a left band that is always high (a rim, a border)
    flat = EvidenceCalibration(1)
    by_place = EvidenceCalibration(1, position_cells=16)
    flat.fit(normal)
    by_place.fit(normal)
    test = normal[:1]
    assert float(flat.standardise(test)[..., :12].mean()) > 1.0  # one level: the band reads as a defect
    assert abs(float(by_place.standardise(test)[..., :12].mean())) < 0.5
    assert float(by_place.std) < float(flat.std)


def test_border_only_levels_leave_the_inside_of_the_image_at_one_level() -> None:
    normal = torch.randn(8, 1, 64, 64) * 0.1
    normal += 2.0 * torch.exp(-torch.arange(64.0) / 6.0)  # padding bias fading in from the left edge (smoothed maps)
    normal[:, :, 28:36, 28:36] += 2.0  # a place inside that is high on these images (a part that may move)
    border = EvidenceCalibration(1, position_cells=16, position_border_px=8.0)
    border.fit(normal)
    flat = EvidenceCalibration(1)
    flat.fit(normal)
    edge = (..., slice(8, 56), slice(0, 3))
    assert abs(float(border.standardise(normal[:1])[edge].mean())) < 0.5 * float(flat.standardise(normal[:1])[edge].mean())
    assert float(border.position_offset[0, 7, 7]) == 0.0  # the inside keeps the global level
    assert float(border.position_offset[0, 7, 0]) > 1.0  # the edge has its own


def test_position_spread_counts_a_place_that_varies_on_normal_images_less_and_never_amplifies_a_quiet_one() -> None:
    generator = torch.Generator().manual_seed(0)
    normal = torch.randn(16, 1, 64, 64, generator=generator) * 0.1
    normal[:, :, :, :8] += torch.randn(16, 1, 64, 8, generator=generator) * 0.6  # a rim, high and low on good parts
    spread = EvidenceCalibration(1, position_cells=16, position_spread=True)
    level_only = EvidenceCalibration(1, position_cells=16)
    spread.fit(normal)
    level_only.fit(normal)
    defect = normal[:1].clone()
    defect[..., 30:40, 30:40] += 1.0  # a defect in the quiet part
    rim, quiet = (..., slice(8, 56), slice(0, 5)), (..., slice(30, 40), slice(30, 40))
    # the rim's z-scores shrink towards those of the quiet part; the defect keeps its z-score
    assert float(spread.standardise(defect)[rim].abs().mean()) < 0.5 * float(level_only.standardise(defect)[rim].abs().mean())
    torch.testing.assert_close(spread.standardise(defect)[quiet], level_only.standardise(defect)[quiet])
    assert float(spread.position_scale.min()) == 1.0
    assert 2.0 < float(spread.position_scale[0, 7, 0]) <= EvidenceCalibration.SPREAD_RATIO_MAX
    with pytest.raises(ValueError, match="position_cells"):
        EvidenceCalibration(1, position_spread=True)


def test_periodic_calibration_learns_a_seam_that_repeats_every_period_and_keeps_a_defect() -> None:
    generator = torch.Generator().manual_seed(0)
    normal = torch.randn(8, 1, 96, 96, generator=generator) * 0.2
    normal[..., 7::16, :] += 1.0  # a seam every 16 px, high on every normal image
    normal[..., :, 7::16] += torch.randn(8, 1, 96, 6, generator=generator)  # a seam that varies
    periodic = EvidenceCalibration(1, position_cells=4, position_spread=True, position_period=16)
    cells = EvidenceCalibration(1, position_cells=4, position_spread=True)
    periodic.fit(normal)
    cells.fit(normal)
    assert float(periodic.period_offset[0, 7].mean() - periodic.period_offset[0, :7].mean()) > 0.8
    assert float(periodic.period_scale[0, :, 7].mean()) > 2.0
    assert float(periodic.period_scale[0, :, :7].max()) < 1.3
    defect = normal[:1].clone()
    defect[..., 40:46, 40:46] += 1.0  # between the seams
    # the seams fall to the normal texture's z-scores (the grid of cells alone leaves them standing), the defect does not
    seams = (..., slice(16, 80), slice(7, 8))
    assert float(periodic.standardise(normal)[seams].abs().mean()) < 0.5 * float(cells.standardise(normal)[seams].abs().mean())
    assert float(periodic.standardise(defect)[..., 40:46, 40:46].mean()) > 2.0
    with pytest.raises(ValueError, match="position_period"):
        EvidenceCalibration(1, position_period=-1)
    with pytest.raises(ValueError, match="48 px"):
        EvidenceCalibration(1, position_period=16).fit(torch.zeros(2, 1, 40, 40))


def textured(count: int, seed: int) -> torch.Tensor:
    """Grey random texture in [0.3, 0.7], a different draw each image [count, 3, 64, 64]."""
    generator = torch.Generator().manual_seed(seed)
    grey = 0.3 + 0.4 * torch.rand(count, 1, 64, 64, generator=generator)
    return grey.expand(-1, 3, -1, -1).clone()


@pytest.mark.parametrize("change", ["blue stain", "darker", "flatter"])
def test_colour_statistics_single_out_a_region_that_keeps_its_texture_but_not_its_colour_or_contrast(change) -> None:
    colour = ColourStatistics(channels=3, sigma_px=3.0)
    colour.fit(textured(16, seed=0).split(4))
    image = textured(1, seed=1)
    region = image[:, :, 20:44, 20:44]
    if change == "blue stain":
        region[:, 2] += 0.15  # the texture survives; only the channels move apart
    elif change == "darker":
        region -= 0.15
    else:
        region.copy_(0.5 + (region - 0.5) * 0.3)
    distance = colour(image)[0, 0]
    assert distance.shape == (64, 64)
    inside, outside = distance[26:38, 26:38], distance[:, :12]
    assert float(inside.min()) > float(outside.max())


def test_colour_statistics_are_near_the_distribution_centre_on_normal_images() -> None:
    colour = ColourStatistics(channels=3, sigma_px=3.0)
    colour.fit(textured(16, seed=0).split(4))
    # a Mahalanobis distance: about sqrt(dimensions) on average for normal data (6 statistics; correlated here)
    assert 0.3 < float(colour(textured(4, seed=2)).mean()) < 4.0


def test_colour_statistics_refuse_images_with_other_channels_and_an_empty_fit() -> None:
    colour = ColourStatistics(channels=3, sigma_px=3.0)
    with pytest.raises(ValueError, match="3-channel"):
        colour.fit([torch.rand(2, 1, 32, 32)])
    with pytest.raises(ValueError, match="at least one normal image"):
        colour.fit([])
    with pytest.raises(ValueError, match="colour_sigma_px"):
        ColourStatistics(channels=3, sigma_px=0.0)


def two_colour_print(count: int, seed: int) -> torch.Tensor:
    """An aligned print: a red left half and a blue right half, with texture [count, 3, 64, 64]."""
    images = textured(count, seed) * 0.5
    images[:, 0, :, :32] += 0.4
    images[:, 2, :, 32:] += 0.4
    return images


def test_per_place_colour_statistics_flag_a_colour_that_is_normal_elsewhere_but_not_there() -> None:
    image = two_colour_print(1, seed=1)
    image[:, :, 16:48, 40:56] = two_colour_print(1, seed=2)[:, :, 16:48, 8:24]  # the left half's red, on the right
    distances = {}
    for cells in (1, 8):
        colour = ColourStatistics(channels=3, sigma_px=2.0, cells=cells)
        colour.fit(two_colour_print(16, seed=0).split(4))
        distance = colour(image)[0, 0]
        distances[cells] = float(distance[22:42, 44:52].mean()) / float(distance[22:42, 4:24].mean())
    assert distances[8] > 4  # against the same place's own distribution the red patch is far out
    assert distances[8] > 2 * distances[1]  # the whole image's distribution has seen red


def test_surround_statistics_find_a_faint_stain_that_the_products_tint_range_hides() -> None:
    # normal images differ in brightness by up to 0.2 (lighting, batches); in a bright one, a region 0.08 darker
    # than the rest is at the plain statistics' centre and far out against its own surroundings
    generator = torch.Generator().manual_seed(0)
    normal = textured(24, seed=0) * 0.5 + 0.25 + 0.2 * (torch.rand(24, 1, 1, 1, generator=generator) - 0.5)
    image = textured(1, seed=1) * 0.5 + 0.25 + 0.08
    image[:, :, 20:44, 20:44] -= 0.08
    contrast = {}
    for surround in (0.0, 16.0):
        colour = ColourStatistics(channels=3, sigma_px=3.0, surround_sigma_px=surround)
        colour.fit(normal.split(4))
        distance = colour(image)[0, 0]
        contrast[surround] = float(distance[26:38, 26:38].mean()) / float(distance[:, 50:].mean())
    assert contrast[16.0] > 2.5
    assert contrast[16.0] > 2 * contrast[0.0]
    with pytest.raises(ValueError, match="colour_surround_sigma_px"):
        ColourStatistics(channels=3, sigma_px=3.0, surround_sigma_px=-1.0)


def test_settings_saved_before_the_surround_statistics_existed_load_without_them(tmp_path) -> None:
    earlier = Evidence.__new__(Evidence)  # as a checkpoint of the earlier code pickled it
    for name, value in vars(Evidence(colour_surround_sigma_px=48.0)).items():
        if name != "colour_surround_sigma_px":
            object.__setattr__(earlier, name, value)
    torch.save({"hyper_parameters": {"evidence": earlier}}, tmp_path / "old.ckpt")
    loaded = torch.load(tmp_path / "old.ckpt", weights_only=True)["hyper_parameters"]["evidence"]
    assert loaded.colour_surround_sigma_px == 0.0
    assert ColourStatistics(3, loaded.colour_sigma_px, surround_sigma_px=0.0).centre.shape[0] == 6
    assert ColourStatistics(3, loaded.colour_sigma_px, surround_sigma_px=48.0).centre.shape[0] == 12


def test_learning_rate_schedules_and_a_refused_name() -> None:
    from ganad_plugin.models.components.settings import AdamSettings

    cosine = AdamSettings(lr=1e-3, schedule="cosine")
    assert [cosine.rate_at(t) for t in (0.0, 0.5, 1.0, 2.0)] == pytest.approx([1e-3, 5e-4, 0.0, 0.0])
    assert AdamSettings(lr=1e-3).rate_at(0.9) == 1e-3
    with pytest.raises(ValueError, match="optimiser.schedule"):
        AdamSettings(schedule="step")


def _maps_with_defects(shifts: tuple[float, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normal maps, maps of the same kind with defects where the masks are 1 (each map's defect pixels shifted by its
    entry of ``shifts``, in units of its normal spread), and the masks."""
    generator = torch.Generator().manual_seed(seed)
    normal = torch.randn(6, len(shifts), 48, 48, generator=generator)
    masks = (torch.rand(6, 1, 48, 48, generator=generator) < 0.1).float()
    drawn = torch.randn(6, len(shifts), 48, 48, generator=generator) + masks * torch.tensor(shifts)[None, :, None, None]
    return normal, drawn, masks


def test_defect_signal_is_each_maps_binormal_separation_from_ranks() -> None:
    _, drawn, masks = _maps_with_defects((0.0, 1.0, 2.0))
    signal = defect_signal(drawn, masks)
    assert float(signal[0]) < 0.1
    assert abs(float(signal[1]) - 1.0) < 0.15  # 1,400 defect pixels: d' to about 0.05 (one spread)
    assert abs(float(signal[2]) - 2.0) < 0.15
    # from ranks: a map whose defects stand out by orders of magnitude more (any increasing transform) counts the same
    torch.testing.assert_close(defect_signal(drawn.exp() ** 3, masks), signal)
    # a map that falls inside the defects has no signal, not a negative one
    assert float(defect_signal(-drawn, masks)[2]) == 0.0
    with pytest.raises(ValueError, match="both defect and normal"):
        defect_signal(drawn, torch.zeros_like(masks))


@pytest.mark.parametrize(("form", "expected"), [
    ("scaled", (0.0, 1 / 3, 2 / 3)),  # (2, 1, 1) x (0, 1, 2)
    ("capped", (0.0, 0.5, 0.5)),  # (2, 1, 1) x (0, 1, 1): signals at or above half the strongest's count fully
    ("signal", (0.0, 1 / 3, 2 / 3)),  # the signals alone
])
def test_weights_from_defects_drop_a_map_blind_to_them(form: str, expected: tuple[float, ...]) -> None:
    normal, drawn, masks = _maps_with_defects((0.0, 1.0, 2.0))
    calibration = EvidenceCalibration(3, weights=(2.0, 1.0, 1.0), weights_from_defects=form)
    calibration.fit(normal)
    torch.testing.assert_close(calibration.fitted_weights, torch.tensor([0.5, 0.25, 0.25]))  # configured until refit
    calibration.fit_weights(drawn, masks)
    torch.testing.assert_close(calibration.fitted_weights, torch.tensor(expected), atol=0.06, rtol=0)
    # the combined map is the standardised maps' mean under the refitted weights, and they travel in the state dict
    combined = (calibration.standardise(drawn) * calibration.fitted_weights[None, :, None, None]).sum(1, keepdim=True)
    torch.testing.assert_close(calibration(drawn), combined)
    restored = EvidenceCalibration(3, weights=(2.0, 1.0, 1.0), weights_from_defects=form)
    restored.load_state_dict(calibration.state_dict())
    torch.testing.assert_close(restored(drawn), calibration(drawn))


def test_weights_stay_as_configured_when_off_or_when_no_map_sees_the_defects() -> None:
    normal, drawn, masks = _maps_with_defects((-1.0, -1.0))  # both maps fall inside the defects: no signal
    fixed = EvidenceCalibration(2, weights=(3.0, 1.0))
    assert fixed.fitted_weights is None
    assert "fitted_weights" not in fixed.state_dict()  # checkpoints of the weights as configured are unchanged
    blind = EvidenceCalibration(2, weights=(3.0, 1.0), weights_from_defects="scaled")
    blind.fit(normal)
    torch.testing.assert_close(blind.fit_weights(drawn, masks), torch.zeros(2))
    torch.testing.assert_close(blind.fitted_weights, torch.tensor([0.75, 0.25]))
    # nothing drawn (a few tiny images, every tile left clean): the configured weights, not an error
    torch.testing.assert_close(blind.fit_weights(drawn, torch.zeros_like(masks)), torch.zeros(2))
    torch.testing.assert_close(blind.fitted_weights, torch.tensor([0.75, 0.25]))
    with pytest.raises(ValueError, match="weights_from_defects"):
        EvidenceCalibration(2, weights_from_defects="learnt")
