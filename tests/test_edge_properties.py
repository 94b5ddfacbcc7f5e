"""Property-based tests of the edge's pre- and post-processing: any size, pixel type and channel count an image
source may give, and region extraction on any mask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ganad_plugin.edge import EdgeInferencer, InputError
from ganad_plugin.edge.images import to_rgb
from ganad_plugin.edge.regions import find_regions
from ganad_plugin.edge.stand_in import stand_in_ir

sizes = st.tuples(st.integers(1, 48), st.integers(1, 48))


@st.composite
def camera_images(draw):
    """An image as OpenCV or a camera may give it: grey (2-D or one channel), BGR or BGRA, 8- or 16-bit."""
    height, width = draw(sizes)
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    shape = (height, width) if channels is None else (height, width, channels)
    return draw(arrays(dtype, shape))


@given(camera_images())
def test_any_grey_colour_or_alpha_8_or_16_bit_image_becomes_rgb_uint8_of_its_size(image) -> None:
    rgb = to_rgb(image)
    assert rgb.dtype == np.uint8 and rgb.shape == (*image.shape[:2], 3)
    eight_bit = image if image.dtype == np.uint8 else (image / 257).astype(np.uint8)
    if image.ndim == 2 or image.shape[2] == 1:
        assert (rgb == eight_bit.reshape(*image.shape[:2], 1)).all()  # grey replicated
    else:
        assert (rgb == eight_bit[..., 2::-1][..., :3]).all()  # BGR(A) -> RGB, alpha dropped


@given(st.sampled_from([np.float32, np.int32, np.int8, np.float64]), sizes)
def test_other_pixel_types_are_refused_by_name(dtype, size) -> None:
    with pytest.raises(InputError, match="frame7: unsupported pixel type"):
        to_rgb(np.zeros(size, dtype), "frame7")


@given(st.sampled_from([(5, 5, 2), (5, 5, 5), (5, 5, 3, 1)]))
def test_other_channel_layouts_are_refused(shape) -> None:
    with pytest.raises(InputError, match="unsupported shape"):
        to_rgb(np.zeros(shape, np.uint8), "x")


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> EdgeInferencer:
    return EdgeInferencer(stand_in_ir(tmp_path_factory.mktemp("stand_in")))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image=arrays(np.uint8, st.tuples(st.integers(8, 96), st.integers(8, 96), st.just(3))))
def test_results_come_back_in_the_input_images_pixels_whatever_its_size(stand_in, image) -> None:
    result = stand_in.predict_array(image)
    assert result.anomaly_map.shape == result.mask.shape == image.shape[:2]
    assert result.error is None and np.isfinite(result.anomaly_map).all()
    # the stand-in's map is the channel mean of the image resized to 32 x 32 and back: it stays in [0, 1]
    assert 0.0 <= result.anomaly_map.min() and result.anomaly_map.max() <= 1.0 + 1e-6
    assert result.label == (result.score > result.threshold)
    for region in result.regions:
        x, y, w, h = region["bbox"]
        assert 0 <= x and 0 <= y and x + w <= image.shape[1] and y + h <= image.shape[0]


@given(mask=arrays(np.bool_, st.tuples(st.integers(1, 40), st.integers(1, 40))), min_area=st.integers(0, 20))
def test_regions_add_up_to_the_mask_and_their_boxes_lie_inside_it(mask, min_area) -> None:
    anomaly_map = np.random.default_rng(0).random(mask.shape).astype(np.float32)
    regions = find_regions(mask, anomaly_map, min_area_px=min_area)
    if min_area <= 1:
        assert sum(region["area"] for region in regions) == int(mask.sum())
    for region in regions:
        x, y, w, h = region["bbox"]
        assert region["area"] >= min_area and region["area"] <= w * h
        assert 0 <= x and 0 <= y and x + w <= mask.shape[1] and y + h <= mask.shape[0]
        inside = mask[y : y + h, x : x + w]
        assert inside.sum() >= region["area"]
        assert region["peak_score"] <= round(float(anomaly_map[y : y + h, x : x + w][inside].max()), 4)
    assert [r["peak_score"] for r in regions] == sorted((r["peak_score"] for r in regions), reverse=True)
