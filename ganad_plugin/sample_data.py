"""Deterministic generator of the MVTec-AD-style ``sample_data/`` set.

Two committed categories, both made from a fixed seed with numpy and OpenCV only (no torch):

- ``weave`` (texture): a plain-weave fabric whose thread period, angle, phase, colour, lighting
  and irregularity vary per image. Defects: ``stain`` (soft blot, faint to strong), ``cut`` (a broken
  thread line), ``missing_thread`` (a band where weft threads are gone and the warp shows through).
- ``flange`` (object): a machined flange with a bore and four bolt holes on a matte background,
  shifted, rotated and lit differently per image. Defects: ``scratch`` (thin line, some barely
  visible), ``chipped_edge`` (material missing from the rim), ``contamination`` (oil spots, particles).

Three more are generated on demand by the benchmarks (``GENERATED_CATEGORIES``; not committed, to keep the set
small), to choose defaults on more than two surfaces:

- ``stone`` (random natural texture, colour): a mottled granite-like surface with dark and light grains.
  Defects: ``colour_stain`` (large, faint: blue, brown, dark or yellow), ``thin_scratch`` (1-2 px, faint or clear),
  ``foreign_material`` (a chip or fibre of another colour).
- ``mesh`` (regular pattern, grey): a perforated sheet, pitch and angle jittered. Defects: ``clogged_holes``,
  ``thin_scratch``, ``faint_patch`` (a region that loses contrast or shifts in brightness).
- ``label`` (printed surface, colour, shifted a few pixels): a colour band, a logo ring and lines of print.
  Defects: ``colour_stain``, ``faint_patch``, ``foreign_material``.

Every defect comes with a binary mask in ``ground_truth/<defect>/<name>_mask.png``. Images are 8-bit PNGs (grey,
but colour for stone and label) quantised to 64 levels with sensor noise (as a 6-bit industrial camera gives): that keeps the committed set
under 10 MB; anomalib reads them as RGB, as it does MVTec's grey categories.
Run ``python -m ganad_plugin.sample_data --out sample_data`` to rebuild the committed copy byte for byte
(``--categories stone mesh label --out results/generated`` for the others; the benchmarks do this themselves).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SIZE_PX = 256


@dataclass(frozen=True)
class SplitSizes:
    """How many images each split of a category gets."""

    train_good: int = 110
    test_good: int = 20
    test_per_defect: int = 20


# ----------------------------------------------------------------------------------------------
# weave: texture category


def _weave(rng: np.random.Generator, size: int) -> np.ndarray:
    """A plain-weave fabric, float32 grey in [0, 1]; every parameter jittered per image."""
    period = rng.uniform(9.0, 12.0)
    angle = np.deg2rad(rng.uniform(-5.0, 5.0))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # slow waviness of the threads, as in a real loom
    wobble_u = 1.6 * np.sin(2 * np.pi * yy / rng.uniform(60, 140) + rng.uniform(0, 2 * np.pi))
    wobble_v = 1.6 * np.sin(2 * np.pi * xx / rng.uniform(60, 140) + rng.uniform(0, 2 * np.pi))
    u = xx * np.cos(angle) + yy * np.sin(angle) + rng.uniform(0, period) + wobble_u
    v = -xx * np.sin(angle) + yy * np.cos(angle) + rng.uniform(0, period) + wobble_v
    cell_u, frac_u = np.divmod(u / period, 1.0)
    cell_v, frac_v = np.divmod(v / period, 1.0)
    warp_on_top = ((cell_u + cell_v) % 2) == 0
    # a thread is brightest along its axis and darkens toward its edges; it bulges along its length
    warp = np.sin(np.pi * frac_u) ** 0.7 * (0.75 + 0.25 * np.sin(np.pi * frac_v))
    weft = np.sin(np.pi * frac_v) ** 0.7 * (0.75 + 0.25 * np.sin(np.pi * frac_u))
    warp_level = 0.72 + rng.normal(0, 0.02)
    weft_level = 0.62 + rng.normal(0, 0.02)
    image = np.where(warp_on_top, warp * warp_level, weft * weft_level)
    image = 0.15 + 0.85 * image
    return _light(rng, image.astype(np.float32), size)


def _light(rng: np.random.Generator, image: np.ndarray, size: int) -> np.ndarray:
    """Global brightness and a lighting gradient in a random direction."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    direction = rng.uniform(0, 2 * np.pi)
    gradient = 1.0 + rng.uniform(0.0, 0.16) * (np.cos(direction) * xx + np.sin(direction) * yy)
    gain = rng.uniform(0.9, 1.08)
    return image * (gradient if image.ndim == 2 else gradient[..., None]) * gain


def _soft_blob(rng: np.random.Generator, size: int, radius: float) -> np.ndarray:
    """An irregular soft-edged blob (alpha in [0, 1]) at a random place."""
    centre = rng.uniform(radius + 8, size - radius - 8, 2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = np.arctan2(yy - centre[1], xx - centre[0])
    lobes = 1 + 0.25 * np.sin(3 * angle + rng.uniform(0, 6)) + 0.12 * np.sin(5 * angle + rng.uniform(0, 6))
    stretch = rng.uniform(0.6, 1.0)
    dist = np.hypot((xx - centre[0]) * stretch, yy - centre[1]) / (radius * lobes)
    return np.clip(1.5 - 1.5 * dist, 0, 1) ** 1.5


def _random_polyline(rng: np.random.Generator, size: int, length: float, margin: int) -> np.ndarray:
    """Points of a gently curving line of about ``length`` pixels."""
    start = rng.uniform(margin, size - margin, 2)
    heading = rng.uniform(0, 2 * np.pi)
    points = [start]
    steps = max(3, int(length / 6))
    for _ in range(steps):
        heading += rng.normal(0, 0.18)
        points.append(points[-1] + 6 * np.array([np.cos(heading), np.sin(heading)]))
    return np.clip(np.array(points), 2, size - 3).astype(np.int32)


def _line_mask(rng: np.random.Generator, size: int, length: float, width: int, margin: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.polylines(mask, [_random_polyline(rng, size, length, margin)], False, 255, width, cv2.LINE_AA)
    return mask


def _weave_stain(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = image.shape[0]
    alpha = _soft_blob(rng, size, rng.uniform(7, 38))
    strength = rng.choice([rng.uniform(0.12, 0.2), rng.uniform(0.2, 0.55)])  # faint ones too
    stained = image * (1 - strength * alpha)
    return stained, alpha > 0.35


def _weave_cut(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = image.shape[0]
    width = int(rng.integers(1, 4))
    line = _line_mask(rng, size, rng.uniform(25, 110), width, 30).astype(np.float32) / 255
    contrast = rng.uniform(0.25, 0.7)
    target = 0.05 if rng.random() < 0.7 else 0.95  # a dark gap or a bright frayed fibre
    cut = image * (1 - contrast * line) + contrast * line * target
    return cut, cv2.dilate((line > 0.3).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def _weave_missing_thread(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weft threads gone over a band: the warp shows through with dark gaps between its threads."""
    size = image.shape[0]
    band_h = int(rng.uniform(8, 26))
    band_w = int(rng.uniform(25, 90))
    top = int(rng.uniform(20, size - 20 - band_h))
    left = int(rng.uniform(20, size - 20 - band_w))
    region = np.zeros((size, size), np.float32)
    region[top : top + band_h, left : left + band_w] = 1
    region = cv2.GaussianBlur(region, (0, 0), 1.2)
    xx = np.arange(size, dtype=np.float32)
    period = rng.uniform(9.0, 12.0)
    warp_only = (np.abs(np.sin(np.pi * (xx / period + rng.uniform(0, 1)))) ** 0.7)[None, :]
    gap_level = rng.uniform(0.3, 0.6)  # how dark the backing shows between the remaining threads
    replaced = image.mean() * 1.1 * (gap_level + (1 - gap_level) * warp_only)
    out = image * (1 - region) + replaced * region
    return out, region > 0.5


# ----------------------------------------------------------------------------------------------
# flange: object category


def _flange(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A grey machined flange on a matte background; returns (image in [0, 1], part mask)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = size / 2 + rng.uniform(-10, 10, 2)
    radius_outer = size * rng.uniform(0.33, 0.35)
    radius_bore = radius_outer * rng.uniform(0.34, 0.37)
    r = np.hypot(xx - centre[0], yy - centre[1])
    theta = np.arctan2(yy - centre[1], xx - centre[0])
    part = (r < radius_outer) & (r > radius_bore)
    rotation = rng.uniform(0, 2 * np.pi)
    bolt_circle = (radius_outer + radius_bore) / 2
    for k in range(4):
        a = rotation + k * np.pi / 2
        bx, by = centre[0] + bolt_circle * np.cos(a), centre[1] + bolt_circle * np.sin(a)
        part &= np.hypot(xx - bx, yy - by) > radius_outer * 0.11
    background = rng.uniform(0.16, 0.24) * (1 + 0.15 * ((yy / size) - 0.5)) + 0.0 * xx
    # turned surface: fine concentric grooves, shading from a light at a random angle, bright bevel
    light = rng.uniform(0, 2 * np.pi)
    grooves = 0.035 * np.sin(2 * np.pi * r / rng.uniform(2.6, 3.4) + rng.uniform(0, 6))
    shading = 0.10 * np.cos(theta - light) * (r / radius_outer)
    bevel = 0.18 * np.exp(-((r - radius_outer + 2.5) ** 2) / 4.0) + 0.12 * np.exp(-((r - radius_bore - 2) ** 2) / 3.0)
    metal = rng.uniform(0.55, 0.66) + grooves + shading + bevel
    image = np.where(part, metal, background).astype(np.float32)
    # soft edges, as a real lens gives
    image = cv2.GaussianBlur(image, (0, 0), 0.7)
    return _light(rng, image, size), part


def _flange_scratch(rng: np.random.Generator, image: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = image.shape[0]
    for _ in range(50):  # place the scratch on the part, not on the background
        width = int(rng.integers(1, 3))
        line = _line_mask(rng, size, rng.uniform(15, 70), width, 50).astype(np.float32) / 255
        if (line > 0.3).sum() and (part[line > 0.3]).mean() > 0.8:
            break
    line *= part
    contrast = rng.choice([rng.uniform(0.06, 0.14), rng.uniform(0.14, 0.35)])
    sign = 1 if rng.random() < 0.5 else -1
    return image + sign * contrast * line, cv2.dilate((line > 0.3).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def _flange_chipped_edge(rng: np.random.Generator, image: np.ndarray, part: np.ndarray, background: float) -> tuple[np.ndarray, np.ndarray]:
    size = image.shape[0]
    ys, xs = np.nonzero(part)
    centre = np.array([xs.mean(), ys.mean()])
    radius_outer = np.hypot(xs - centre[0], ys - centre[1]).max()
    angle = rng.uniform(0, 2 * np.pi)
    depth = rng.uniform(5, 22)
    chip_r = rng.uniform(6, 16)
    chip_c = centre + (radius_outer + chip_r - depth) * np.array([np.cos(angle), np.sin(angle)])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    chip = (np.hypot(xx - chip_c[0], yy - chip_c[1]) < chip_r) & part
    out = image.copy()
    out[chip] = background + rng.normal(0, 0.01, chip.sum())
    out = np.where(cv2.dilate(chip.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0, cv2.GaussianBlur(out, (0, 0), 0.7), out)
    return out, chip


def _flange_contamination(rng: np.random.Generator, image: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = image.shape[0]
    mask = np.zeros((size, size), bool)
    out = image.copy()
    ys, xs = np.nonzero(part)
    for _ in range(int(rng.integers(1, 4))):
        i = rng.integers(len(xs))
        radius = rng.uniform(3, 13)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        alpha = np.clip(1.3 - np.hypot(xx - xs[i], yy - ys[i]) / radius, 0, 1)
        darkness = rng.choice([rng.uniform(0.12, 0.25), rng.uniform(0.25, 0.6)])
        out = out * (1 - darkness * alpha)
        mask |= alpha > 0.3
    return out, mask


# ----------------------------------------------------------------------------------------------
# generated on demand (not committed): more surfaces to choose defaults on, in colour as well as grey


def _fractal_noise(rng: np.random.Generator, size: int, octaves: int = 5, base_cells: int = 4) -> np.ndarray:
    """Smooth random field in [0, 1]: the sum of upsampled random grids, each octave half as strong."""
    field = np.zeros((size, size), np.float32)
    for octave in range(octaves):
        cells = base_cells * 2**octave
        grid = rng.normal(0, 1, (cells + 1, cells + 1)).astype(np.float32)
        field += cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC) * 0.55**octave
    field -= field.min()
    return field / max(float(field.max()), 1e-6)


def _stone(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random natural texture in colour (granite-like): mottled base, dark and light grains; HxWx3 in [0, 1]."""
    base_colour = np.array([0.50, 0.53, 0.58]) + rng.normal(0, 0.015, 3)  # one stone: a warm grey (BGR)
    mottle = _fractal_noise(rng, size, base_cells=int(rng.integers(3, 7)))
    image = base_colour[None, None, :] * (0.75 + 0.5 * mottle[..., None])
    for count, level, colour_shift in [(900, 0.45, 0.0), (500, 1.3, 0.05)]:  # dark grains, light grains
        grains = np.zeros((size, size), np.float32)
        points = rng.uniform(0, size, (int(count * rng.uniform(0.8, 1.2)), 2)).astype(np.int32)
        radii = rng.integers(1, 4, len(points))
        for (x, y), r in zip(points, radii, strict=True):
            cv2.circle(grains, (int(x), int(y)), int(r), 1.0, -1, cv2.LINE_AA)
        grains = cv2.GaussianBlur(grains, (0, 0), 0.8)[..., None]
        target = np.clip(image * level + colour_shift, 0, 1)
        image = image * (1 - grains) + target * grains
    return _light(rng, image.astype(np.float32), size)


def _mesh(rng: np.random.Generator, size: int) -> np.ndarray:
    """A regular perforated metal sheet (grey): round holes on a square lattice, pitch and angle jittered."""
    pitch = rng.uniform(15.0, 19.0)
    angle = np.deg2rad(rng.uniform(-3.0, 3.0))
    hole_radius = pitch * rng.uniform(0.28, 0.32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u = xx * np.cos(angle) + yy * np.sin(angle) + rng.uniform(0, pitch)
    v = -xx * np.sin(angle) + yy * np.cos(angle) + rng.uniform(0, pitch)
    du = (u / pitch - np.round(u / pitch)) * pitch
    dv = (v / pitch - np.round(v / pitch)) * pitch
    distance = np.hypot(du, dv)
    sheet = rng.uniform(0.55, 0.65) + 0.03 * _fractal_noise(rng, size, octaves=3, base_cells=8)
    rim = 0.15 * np.exp(-((distance - hole_radius - 1.0) ** 2) / 1.5)  # the lit edge of each hole
    image = np.where(distance < hole_radius, rng.uniform(0.08, 0.14), sheet + rim)
    return _light(rng, cv2.GaussianBlur(image.astype(np.float32), (0, 0), 0.6), size)


def _label(rng: np.random.Generator, size: int) -> np.ndarray:
    """A printed colour label, shifted a few pixels per image: colour bands, a logo disc, lines of 'text'."""
    shift = rng.uniform(-4, 4, 2)
    image = np.ones((size, size, 3), np.float32) * np.array([0.93, 0.92, 0.88], np.float32)  # paper
    band = (int(40 + shift[1]), int(70 + shift[1]))
    image[band[0] : band[1]] = np.array([0.75, 0.35, 0.15])  # printed band, BGR order
    cv2.circle(image, (int(60 + shift[0]), int(150 + shift[1])), 32, (0.2, 0.55, 0.2), -1, cv2.LINE_AA)
    cv2.circle(image, (int(60 + shift[0]), int(150 + shift[1])), 18, (0.93, 0.92, 0.88), -1, cv2.LINE_AA)
    text_rng = np.random.default_rng(7)  # the same 'text' on every label
    for row in range(6):
        y = int(110 + row * 22 + shift[1])
        x = int(115 + shift[0])
        for _ in range(5):
            width = int(text_rng.integers(8, 26))
            cv2.rectangle(image, (x, y), (min(x + width, 240), y + 9), (0.15, 0.15, 0.18), -1)
            x += width + int(text_rng.integers(4, 8))
    image = cv2.GaussianBlur(image, (0, 0), 0.8)
    paper_grain = 0.02 * (_fractal_noise(rng, size, octaves=4, base_cells=16) - 0.5)
    return _light(rng, image + paper_grain[..., None], size)


def _colour_stain(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A large, faint stain of a colour (blue, brown, dark or yellow), coin-sized or larger."""
    size = image.shape[0]
    alpha = _soft_blob(rng, size, rng.uniform(14, 40))
    colours = np.array([[0.55, 0.25, 0.1], [0.15, 0.3, 0.45], [0.1, 0.1, 0.1], [0.2, 0.75, 0.8]])  # BGR
    colour = colours[rng.integers(len(colours))]
    strength = rng.uniform(0.15, 0.45)
    weight = (strength * alpha)[..., None]
    colour_image = colour * image.mean(axis=2, keepdims=True) / 0.5
    return image * (1 - weight) + colour_image * weight, alpha > 0.35


def _thin_scratch(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A thin, dark or bright line of 1-2 px, faint or clear."""
    size = image.shape[0]
    line = _line_mask(rng, size, rng.uniform(30, 120), int(rng.integers(1, 3)), 30).astype(np.float32) / 255
    contrast = rng.uniform(0.15, 0.45)
    target = 0.05 if rng.random() < 0.7 else 0.95
    weight = (contrast * line)[..., None]
    return image * (1 - weight) + target * weight, cv2.dilate((line > 0.3).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def _foreign_material(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A small fragment of something else on the surface: a fibre tangle or a chip of another colour."""
    size = image.shape[0]
    mask = np.zeros((size, size), np.float32)
    centre = rng.uniform(30, size - 30, 2)
    if rng.random() < 0.5:  # a chip: an irregular polygon
        angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
        radii = rng.uniform(4, 11, 7)
        points = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], 1).astype(np.int32)
        cv2.fillPoly(mask, [points], 1.0, cv2.LINE_AA)
    else:  # a fibre: a short curly line
        points = [centre]
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(12):
            heading += rng.normal(0, 0.6)
            points.append(points[-1] + 3 * np.array([np.cos(heading), np.sin(heading)]))
        cv2.polylines(mask, [np.array(points, np.int32)], False, 1.0, 2, cv2.LINE_AA)
    colour = rng.uniform(0.05, 0.95, 3)
    weight = (mask * rng.uniform(0.6, 0.9))[..., None]
    return image * (1 - weight) + colour * weight, cv2.dilate((mask > 0.3).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def _faint_patch(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A region that keeps its texture but loses contrast or shifts in brightness (wear, a dull spot)."""
    size = image.shape[0]
    alpha = _soft_blob(rng, size, rng.uniform(16, 40))[..., None]
    local_mean = cv2.GaussianBlur(image, (0, 0), 6)
    if rng.random() < 0.5:
        changed = local_mean + (image - local_mean) * rng.uniform(0.2, 0.5)  # contrast lost
    else:
        changed = image * rng.choice([rng.uniform(0.75, 0.85), rng.uniform(1.15, 1.25)])  # darker or brighter
    return image * (1 - alpha) + changed * alpha, alpha[..., 0] > 0.35


def _mesh_clogged_holes(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A few neighbouring holes filled with debris of the sheet's own grey: a break in the regular pattern."""
    size = image.shape[0]
    alpha = _soft_blob(rng, size, rng.uniform(10, 22))
    dark = image.mean(axis=2) < 0.3
    fill_level = np.median(image[~dark]) * rng.uniform(0.7, 1.0)
    weight = alpha * dark * rng.uniform(0.5, 1.0)
    filled = image * (1 - weight[..., None]) + fill_level * weight[..., None]
    return filled, (cv2.GaussianBlur(weight, (0, 0), 1.0) > 0.15)


def _colour_image(make_surface: Callable, defects: dict[str, Callable], grey: bool) -> Callable:
    """A category's image maker: a surface, perhaps a defect, then the 6-bit camera (grey or colour)."""

    def make(rng: np.random.Generator, defect: str | None) -> tuple[np.ndarray, np.ndarray | None]:
        image = make_surface(rng, IMAGE_SIZE_PX)
        image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
        mask = None
        if defect is not None:
            image, mask = defects[defect](rng, image)
        out = _to_uint8(image, rng, 1.2)
        return (out[..., 0] if grey else out), mask

    return make


STONE_DEFECTS: dict[str, Callable] = {
    "colour_stain": _colour_stain, "thin_scratch": _thin_scratch, "foreign_material": _foreign_material,
}
MESH_DEFECTS: dict[str, Callable] = {
    "clogged_holes": _mesh_clogged_holes, "thin_scratch": _thin_scratch, "faint_patch": _faint_patch,
}
LABEL_DEFECTS: dict[str, Callable] = {
    "colour_stain": _colour_stain, "faint_patch": _faint_patch, "foreign_material": _foreign_material,
}


# ----------------------------------------------------------------------------------------------


SENSOR_STEP = 4  # 64 grey levels


def _to_uint8(image: np.ndarray, rng: np.random.Generator, noise_sigma: float) -> np.ndarray:
    noisy = image * 255 + rng.normal(0, noise_sigma, image.shape)
    levels = np.clip(np.round(noisy / SENSOR_STEP), 0, 255 // SENSOR_STEP) * SENSOR_STEP
    return levels.astype(np.uint8)


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        msg = f"could not write {path}"
        raise OSError(msg)


def _make_weave(rng: np.random.Generator, defect: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    image = _weave(rng, IMAGE_SIZE_PX)
    mask = None
    if defect is not None:
        image, mask = WEAVE_DEFECTS[defect](rng, image)
    return _to_uint8(image, rng, 1.2), mask


def _make_flange(rng: np.random.Generator, defect: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    image, part = _flange(rng, IMAGE_SIZE_PX)
    mask = None
    if defect == "chipped_edge":
        image, mask = _flange_chipped_edge(rng, image, part, float(np.median(image[~part])))
    elif defect is not None:
        image, mask = FLANGE_DEFECTS[defect](rng, image, part)
    return _to_uint8(image, rng, 1.2), mask


WEAVE_DEFECTS: dict[str, Callable] = {
    "stain": _weave_stain,
    "cut": _weave_cut,
    "missing_thread": _weave_missing_thread,
}
FLANGE_DEFECTS: dict[str, Callable] = {
    "scratch": _flange_scratch,
    "chipped_edge": None,  # needs the background level; handled in _make_flange
    "contamination": _flange_contamination,
}
CATEGORIES: dict[str, tuple[Callable, list[str]]] = {  # committed in sample_data/
    "weave": (_make_weave, list(WEAVE_DEFECTS)),
    "flange": (_make_flange, list(FLANGE_DEFECTS)),
}
GENERATED_CATEGORIES: dict[str, tuple[Callable, list[str]]] = {  # made on demand by the benchmarks
    "stone": (_colour_image(_stone, STONE_DEFECTS, grey=False), list(STONE_DEFECTS)),
    "mesh": (_colour_image(_mesh, MESH_DEFECTS, grey=True), list(MESH_DEFECTS)),
    "label": (_colour_image(_label, LABEL_DEFECTS, grey=False), list(LABEL_DEFECTS)),
}
ALL_CATEGORIES = {**CATEGORIES, **GENERATED_CATEGORIES}
# each category's random streams derive from its own fixed number, so adding a category changes no other
CATEGORY_STREAM = {"flange": 0, "weave": 1, "stone": 2, "mesh": 3, "label": 4}


def generate_category(root: Path, category: str, sizes: SplitSizes = SplitSizes(), seed: int = 0) -> Path:
    """Write one category in MVTec AD layout under ``root/category``; returns that folder."""
    if category not in ALL_CATEGORIES:
        msg = f"unknown sample category {category!r}; choose from {sorted(ALL_CATEGORIES)}"
        raise ValueError(msg)
    make, defects = ALL_CATEGORIES[category]
    folder = Path(root) / category
    # one independent stream per split, so changing one split's size leaves the others unchanged
    base = np.random.SeedSequence([seed, CATEGORY_STREAM[category]])
    streams = dict(zip(["train", "test_good", *defects], base.spawn(2 + len(defects)), strict=True))
    for split, count, defect in [("train", sizes.train_good, None), ("test_good", sizes.test_good, None)] + [
        (d, sizes.test_per_defect, d) for d in defects
    ]:
        rng = np.random.default_rng(streams[split])
        for index in range(count):
            image, mask = make(rng, defect)
            name = f"{index:03d}.png"
            if defect is None:
                _write_png(folder / ("train/good" if split == "train" else "test/good") / name, image)
                continue
            _write_png(folder / "test" / defect / name, image)
            _write_png(folder / "ground_truth" / defect / f"{index:03d}_mask.png", mask.astype(np.uint8) * 255)
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("sample_data"))
    parser.add_argument("--categories", nargs="*", default=sorted(CATEGORIES), choices=sorted(ALL_CATEGORIES),
                        help="default: the committed ones; also " + ", ".join(sorted(GENERATED_CATEGORIES)))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for category in args.categories:
        folder = generate_category(args.out, category, seed=args.seed)
        print(f"wrote {folder}")


if __name__ == "__main__":
    main()
