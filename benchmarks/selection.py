"""Choose the evidence defaults on validation categories built from training images only, never on a test split.

    python benchmarks/selection.py [--models GANomaly EGBAD] [--categories weave flange stone mesh label] [--seed 0]

For each category (committed in sample_data/, or generated on demand into results/generated/), its train/good
alone becomes a validation category (``ganad_plugin.validation_set``: a fifth of the good images held back, and
synthetic thin scratches, colour stains, foreign material, faded patches and moved pieces drawn on them). Each model
is trained there once with its default config (``ganad train``; reused when its checkpoint exists), and every
evidence variant below (absolute settings, so that a score means the same on any checkpoint) is scored on those same
weights: the feature memory refilled and the evidence scales refitted from the validation category's training
images, as training does (the maps are computed once per setting that changes them, and each variant's weights,
smoothing and pooling applied to them), then image and pixel AUROC on its held-back images. Prints the table and
writes docs/selection.md and docs/selection.csv (with --write).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import itertools
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from sample_sets import (
    REPO,
    category_root,
    load_test_set,
    load_train_images,
    test_kinds,
    train_with_cli,
    write_generated_block,
)

import ganad_plugin.models
from ganad_plugin.edge.metrics import auroc
from ganad_plugin.models.components import defect_head
from ganad_plugin.models.components.colour_statistics import ColourStatistics
from ganad_plugin.models.components.defect_head import LINE_SHARE, STEPS_PER_IMAGE, DefectHead, with_drawn_defects
from ganad_plugin.models.components.scoring import AnomalyScorer
from ganad_plugin.models.components.settings import Evidence, PatchNetwork
from ganad_plugin.validation_set import build_validation_category

# The first run (weave, flange): one change at a time against the defaults of that time, then combinations.
FIRST_DEFAULTS = {"colour_residual": False, "memory_colour_weight": 0.0, "position_cells": 0,
                  "position_border_px": 0.0, "background_sigma_px": 16.0}
FIRST: dict[str, dict] = {
    "default": {},
    "colour residual": {"colour_residual": True},
    "memory colour 3": {"memory_colour_weight": 3.0},
    "memory colour 6": {"memory_colour_weight": 6.0},
    "position cells 16": {"position_cells": 16},
    "position cells 32": {"position_cells": 32},
    "position cells 64": {"position_cells": 64},
    "position cells 32, border 16 px": {"position_cells": 32, "position_border_px": 16.0},
    "background 48 px": {"background_sigma_px": 48.0},
    "background off": {"background_sigma_px": 0.0},
    "memory weight 1": {"memory_weight": 1.0},
    "memory weight 16": {"memory_weight": 16.0},
    "image score: top 1 %": {"score_top_fraction": 0.01},
    "image score: maximum": {"score_top_fraction": 0.0},
    "GAN only (memory 0)": {"memory_weight": 0.0},
    "memory only": {"residual_weight": 0.0, "distance_weight": 0.0},
}
COMBINED = {"colour_residual": True, "memory_colour_weight": 3.0, "position_cells": 32, "background_sigma_px": 48.0}
FIRST["combined"] = COMBINED
FIRST["combined, memory weight 1"] = {**COMBINED, "memory_weight": 1.0}
FIRST["combined, memory weight 16"] = {**COMBINED, "memory_weight": 16.0}
FIRST["combined, position cells 64"] = {**COMBINED, "position_cells": 64}
FIRST["combined, position cells 64, memory weight 1"] = {**COMBINED, "position_cells": 64, "memory_weight": 1.0}
BORDER = {**COMBINED, "position_border_px": 16.0}
FIRST["combined, border 16 px"] = BORDER
FIRST["combined, border 16 px, memory colour 0"] = {**BORDER, "memory_colour_weight": 0.0}
FIRST["combined, border 16 px, GAN only"] = {**BORDER, "memory_weight": 0.0}
FIRST["combined, border 16 px, memory only"] = {**BORDER, "residual_weight": 0.0, "distance_weight": 0.0}
FIRST["combined, GAN only"] = {**COMBINED, "memory_weight": 0.0}
FIRST["combined, memory only"] = {**COMBINED, "residual_weight": 0.0, "distance_weight": 0.0}

# The second run (all five categories, colour among them): one change at a time against the defaults shipped before
# it ("base"; memory weight 4), then the memory weight with the memory's colour.
BASE_DEFAULTS = {"colour_residual": True, "memory_colour_weight": 0.0, "position_cells": 32,
                 "position_border_px": 16.0, "background_sigma_px": 48.0, "memory_weight": 4.0}
BASE: dict[str, dict] = {
    "base": {},
    "base, grey residual": {"colour_residual": False},
    "base, memory colour 3": {"memory_colour_weight": 3.0},
    "base, per-place levels everywhere": {"position_border_px": 0.0},
    "base, per-place levels off": {"position_cells": 0},
    "base, background 16 px": {"background_sigma_px": 16.0},
    "base, background off": {"background_sigma_px": 0.0},
    "base, memory weight 1": {"memory_weight": 1.0},
    "base, memory weight 16": {"memory_weight": 16.0},
    "base, GAN only (memory 0)": {"memory_weight": 0.0},
    "base, memory only": {"residual_weight": 0.0, "distance_weight": 0.0},
    "base, memory weight 2": {"memory_weight": 2.0},
    "base, memory weight 1, memory colour 3": {"memory_weight": 1.0, "memory_colour_weight": 3.0},
    "base, memory weight 2, memory colour 3": {"memory_weight": 2.0, "memory_colour_weight": 3.0},
}

# The third run (all five categories): the colour-statistics map (``ColourStatistics``) added to the defaults shipped
# after the second run ("shipped"; memory weight 2), at several weights and window sizes.
SHIPPED_DEFAULTS = {**BASE_DEFAULTS, "memory_weight": 2.0, "colour_weight": 0.0, "colour_sigma_px": 4.0,
                    "colour_cells": 1}
THIRD: dict[str, dict] = {
    "shipped": {},
    "shipped, colour 0.5": {"colour_weight": 0.5},
    "shipped, colour 1": {"colour_weight": 1.0},
    "shipped, colour 2": {"colour_weight": 2.0},
    "shipped, colour 4": {"colour_weight": 4.0},
    "shipped, colour 1, window 2 px": {"colour_weight": 1.0, "colour_sigma_px": 2.0},
    "shipped, colour 1, window 8 px": {"colour_weight": 1.0, "colour_sigma_px": 8.0},
    "shipped, colour 2, window 8 px": {"colour_weight": 2.0, "colour_sigma_px": 8.0},
    "shipped, colour 0.5, cells 8": {"colour_weight": 0.5, "colour_cells": 8},
    "shipped, colour 1, cells 8": {"colour_weight": 1.0, "colour_cells": 8},
    "shipped, colour 0.5, cells 16": {"colour_weight": 0.5, "colour_cells": 16},
    "shipped, colour 1, cells 16": {"colour_weight": 1.0, "colour_cells": 16},
    "shipped, colour 2, cells 16": {"colour_weight": 2.0, "colour_cells": 16},
    "shipped, colour 1, cells 16, window 8 px": {"colour_weight": 1.0, "colour_cells": 16, "colour_sigma_px": 8.0},
    "colour only, cells 16": {"residual_weight": 0.0, "distance_weight": 0.0, "memory_weight": 0.0,
                              "colour_weight": 1.0, "colour_cells": 16},
    "colour only": {"residual_weight": 0.0, "distance_weight": 0.0, "memory_weight": 0.0, "colour_weight": 1.0},
    "colour only, window 8 px": {"residual_weight": 0.0, "distance_weight": 0.0, "memory_weight": 0.0,
                                 "colour_weight": 1.0, "colour_sigma_px": 8.0},
}

# The fourth run (all five categories): the feature memory's size, which sets the time of its coreset selection at
# the end of every fit and of every image's nearest-neighbour search, against the defaults shipped after the third
# run ("current"; 16,384 features).
CURRENT_DEFAULTS = {**SHIPPED_DEFAULTS, "colour_weight": 0.5, "colour_cells": 8, "memory_size": 16384}
FOURTH: dict[str, dict] = {
    "current": {},
    "current, memory 8192": {"memory_size": 8192},
    "current, memory 4096": {"memory_size": 4096},
    "current, memory 2048": {"memory_size": 2048},
}

# The sixth run (all five categories): the defect head (``DefectHead``: a segmentation network trained on synthetic
# defects drawn on the normal training images) as a fifth evidence map, against the current defaults.
SIXTH: dict[str, dict] = {
    "current": {},
    "current, defect 0.5": {"defect_weight": 0.5},
    "current, defect 1": {"defect_weight": 1.0},
    "current, defect 2": {"defect_weight": 2.0},
    "current, defect 4": {"defect_weight": 4.0},
    "current, defect 1, 300 steps": {"defect_weight": 1.0, "defect_steps": 300},
    "defect only": {"residual_weight": 0.0, "distance_weight": 0.0, "memory_weight": 0.0, "colour_weight": 0.0,
                    "defect_weight": 1.0},
}

# The seventh run (all five categories): the head's weight, trained in bf16 where the CPU has the units, for at most
# 300 batches and ``STEPS_PER_IMAGE`` an image, from three seeds of its own on the same GAN checkpoint (its spread).
# ``head_seed`` is the seed ``DefectHead.fit`` draws its defects and first weights from (not an evidence setting).
SEVENTH: dict[str, dict] = {"current": {}} | {
    f"current, defect {weight:g}, 300 steps bf16, head seed {seed}": {
        "defect_weight": weight, "defect_steps": 300, "head_seed": seed}
    for weight in (1.0, 2.0) for seed in (0, 1, 2)
}

# The eighth run (all five categories): the defect head seeing the GAN's reconstruction beside each image
# (``Evidence.defect_reference``), against the head as shipped, each from three seeds of the head's own.
EIGHTH: dict[str, dict] = {"current": {}} | {
    f"current, defect 1, 300 steps bf16{', reference' if reference else ''}, head seed {seed}": {
        "defect_weight": 1.0, "defect_steps": 300, "head_seed": seed, "defect_reference": reference}
    for reference in (False, True) for seed in (0, 1, 2)
}

# The ninth run (all five categories): the head trained longer, 800 batches (at most ``STEPS_PER_IMAGE`` an image:
# 792 on the validation categories' 66 head-training images), against the 300 shipped, from two seeds of its own.
NINTH: dict[str, dict] = {"current": {}} | {
    f"current, defect 1, {steps} steps bf16, head seed {seed}": {
        "defect_weight": 1.0, "defect_steps": steps, "head_seed": seed}
    for steps in (300, 800) for seed in (0, 1)
}

# The tenth run (all five categories): each map's smoothing and the image score's pooling, never chosen on the present
# evidence (the smoothing has been 3 px since the first maps, the top 0.25 % chosen on two maps), on the ninth run's
# heads (800 batches, two seeds of the head's own): a wider smoothing sums a faint region larger than a patch over
# more of its area, a larger top fraction averages more of it, and both average away small false spots.
TENTH: dict[str, dict] = {
    f"current, smoothing {sigma:g} px, top {100 * fraction:g} %, head seed {seed}": {
        "defect_weight": 1.0, "defect_steps": 800, "head_seed": seed, "smoothing_sigma_px": sigma,
        "score_top_fraction": fraction}
    for sigma in (2.0, 3.0, 5.0, 8.0) for fraction in (0.0025, 0.01) for seed in (0, 1)
}

# The eleventh run (all five categories): where each map's normal level is learnt per place. Since the first run only
# the places within 16 px of the image's edge get their own level (32-cell grid); every place was tried in the second
# run, before the colour map and the defect head, and left off (+0.010 image, -0.003 pixel). Since then the head marks
# an aligned part's sharp rims on good parts as well: a per-place level would discount them, a per-place spread
# (``Evidence.position_spread``, new in this run) would count them less. On the ninth run's heads.
ELEVENTH: dict[str, dict] = {
    f"current, per-place levels {'border 16 px' if border else 'everywhere'}, {cells} cells, head seed {seed}": {
        "defect_weight": 1.0, "defect_steps": 800, "head_seed": seed, "position_cells": cells,
        "position_border_px": border}
    for cells, border in ((32, 16.0), (64, 0.0), (32, 0.0), (16, 0.0), (8, 0.0)) for seed in (0, 1)
} | {
    f"current, per-place levels and spreads everywhere, {cells} cells, head seed {seed}": {
        "defect_weight": 1.0, "defect_steps": 800, "head_seed": seed, "position_cells": cells,
        "position_border_px": 0.0, "position_spread": True}
    for cells in (32, 16, 8) for seed in (0, 1)
}

# The twelfth run (all five categories): how the patches' residuals and distances are merged into maps. The eleventh
# run's per-place levels helped even on textures whose phase is random per image; the residual's normal level, folded
# by position, has a pattern with the half-patch grids' period (16 px) and none at other periods (``seam_probe.py``): a
# seam, which a tent window over each patch (``PatchGrid``) was meant to remove at its source (it shrinks it a little
# and was not kept). With the eleventh run's choice (levels and spreads at every place of the 32-cell grid) and
# without per-place levels inside the image.
TWELFTH: dict[str, dict] = {
    f"current, {window} window, {places}, head seed {seed}": {
        "defect_weight": 1.0, "defect_steps": 800, "head_seed": seed, "patch_window": window,
        **({"position_border_px": 0.0, "position_spread": True} if places == "levels and spreads everywhere"
           else {"position_border_px": 16.0, "position_spread": False})}
    for window in ("flat", "tent") for places in ("levels and spreads everywhere", "levels at the border")
    for seed in (0, 1)
}

# The thirteenth run (all five categories): the seam the tent window left (``seam_probe.py``) learnt instead as a normal
# level and spread that repeat every half patch (``Evidence.position_periodic``), from every repetition in the
# calibration images rather than from the few images a 32-cell grid's 8-px cells average; beside the eleventh run's
# choice (levels and spreads at every place of the 32-cell grid), and with the coarser grids that no longer need to
# resolve the seam.
THIRTEENTH: dict[str, dict] = {
    f"current, {cells} cells, {'periodic level and spread' if periodic else 'no periodic part'}, head seed {seed}": {
        "defect_weight": 1.0, "defect_steps": 800, "head_seed": seed, "position_cells": cells,
        "position_border_px": 0.0, "position_spread": True, "position_periodic": periodic}
    for cells, periodic in ((32, False), (32, True), (16, True), (8, True)) for seed in (0, 1)
}

# The fourteenth run (all five categories): the weights refitted to each product from synthetic defects drawn on its
# held-out normal images (``Evidence.weights_from_defects``): on a random texture (stone) the memory and the GAN's maps
# score at chance alone (image AUROC 0.51) and dilute the defect head's (faint patches 0.80 alone, 0.57 combined).
FOURTEENTH: dict[str, dict] = {
    f"current, weights {form}, head seed {seed}": {
        "defect_weight": 1.0, "defect_steps": 800, "head_seed": seed, "position_border_px": 0.0,
        "position_spread": True, "weights_from_defects": form}
    for form in ("off", "scaled", "capped", "signal") for seed in (0, 1)
} | {
    f"current, memory pooling {pooling}, weights {form}, head seed {seed}": {
        "defect_weight": 1.0, "defect_steps": 800, "head_seed": seed, "position_border_px": 0.0,
        "position_spread": True, "weights_from_defects": form, "memory_pooling": pooling}
    for pooling in (3, 5) for form in ("off", "capped") for seed in (0, 1)
}

# The fifteenth run (all five categories): the defect head's seed decides flange (image AUROC 0.81 with head seed 0,
# 0.97 with seed 1, fourteenth run). Two ways to make one head's map depend less on its seed: a pair of heads whose
# maps are averaged (twice the head's training), or one head that keeps the moving average of its weights over its
# steps (no extra cost). Seeds 2 and 3 are new heads, so that each pair has a twin to show the spread.
CURRENT_REFIT = {"defect_weight": 1.0, "defect_steps": 800, "position_border_px": 0.0, "position_spread": True,
                 "weights_from_defects": "scaled"}
FIFTEENTH: dict[str, dict] = {
    f"current, head seed {seed}": {**CURRENT_REFIT, "head_seed": seed} for seed in (0, 1, 2, 3)
} | {
    f"current, head pair {first}+{second}": {**CURRENT_REFIT, "head_seed": first, "head_seeds": (first, second)}
    for first, second in ((0, 1), (2, 3))
} | {
    f"current, head averaged 0.99, head seed {seed}": {**CURRENT_REFIT, "head_seed": seed, "head_average": 0.99}
    for seed in (0, 1, 2, 3)
} | {
    f"current, head averaged 0.99, head pair {first}+{second}": {
        **CURRENT_REFIT, "head_seed": first, "head_seeds": (first, second), "head_average": 0.99}
    for first, second in ((0, 1), (2, 3))
}
# The sixteenth run: the shipped pair of averaged heads at half their steps each (a fit's calibration is mostly the
# heads' training), scored on the checkpoints of both training precisions
SIXTEENTH: dict[str, dict] = {
    f"current, head averaged 0.99, head pair 0+1, {steps} steps": {
        **CURRENT_REFIT, "defect_steps": steps, "head_seed": 0, "head_seeds": (0, 1), "head_average": 0.99}
    for steps in (400,)
}
# The seventeenth run: the defect map left unsmoothed (the heads' map is already coherent; alone on flange's validation
# its image AUROC fell from 0.96 to 0.92 under the 3-px blur every map gets)
SEVENTEENTH: dict[str, dict] = {
    "current, head averaged 0.99, head pair 0+1, defect map unsmoothed": {
        **CURRENT_REFIT, "head_seed": 0, "head_seeds": (0, 1), "head_average": 0.99, "defect_smoothing": False},
}
# The eighteenth run: heads 48 channels wide instead of 32 (``head_variant_probe.py``), as a pair and each alone (one
# wide head costs about what the narrow pair does)
EIGHTEENTH: dict[str, dict] = {
    "current, head averaged 0.99, head pair 0+1, head width 48": {
        **CURRENT_REFIT, "head_seed": 0, "head_seeds": (0, 1), "head_average": 0.99, "defect_width": 48},
    "current, head averaged 0.99, head seed 0, head width 48": {
        **CURRENT_REFIT, "head_seed": 0, "head_average": 0.99, "defect_width": 48},
    "current, head averaged 0.99, head seed 1, head width 48": {
        **CURRENT_REFIT, "head_seed": 1, "head_average": 0.99, "defect_width": 48},
    # 1.5 times the batches: 1200 at most, 18 a training image (12 capped the validation's 66 images at 792)
    "current, head averaged 0.99, head pair 0+1, 1200 steps": {
        **CURRENT_REFIT, "head_seed": 0, "head_seeds": (0, 1), "head_average": 0.99, "defect_steps": 1200,
        "head_steps_per_image": 18},
    "current, head averaged 0.99, head pair 0+1, head width 48, 1200 steps": {
        **CURRENT_REFIT, "head_seed": 0, "head_seeds": (0, 1), "head_average": 0.99, "defect_width": 48,
        "defect_steps": 1200, "head_steps_per_image": 18},
}
# The nineteenth run: the colour statistics also against each place's wide surroundings in the same image
# (``colour_surround_sigma_px``): alone on the five validation categories the colour map's image / pixel AUROC rose
# from 0.60 / 0.67 to 0.65 / 0.73 at 48 px (``colour_surround_probe.py``); the map at twice and four times its weight
# too, since the weights refitted on drawn defects give it a tenth of the whole
NINETEENTH: dict[str, dict] = {
    f"current, head averaged 0.99, head pair 0+1, head width 48, colour surround {sigma} px": {
        **EIGHTEENTH["current, head averaged 0.99, head pair 0+1, head width 48"], "colour_surround_sigma_px": float(sigma)}
    for sigma in (24, 48)
} | {
    f"current, head averaged 0.99, head pair 0+1, head width 48, colour surround 48 px, colour {weight:g}": {
        **EIGHTEENTH["current, head averaged 0.99, head pair 0+1, head width 48"], "colour_surround_sigma_px": 48.0,
        "colour_weight": weight}
    for weight in (1.0, 2.0)
}
# The twentieth run: the wide pair from two other seeds (2 and 3), beside the shipped seeds' wide pair and the narrow
# pairs of both seed pairs, so that the eighteenth run's choice is seen on a second draw of heads
TWENTIETH: dict[str, dict] = {
    f"current, head averaged 0.99, head pair {first}+{second}{', head width 48' if width == 48 else ''}": {
        **CURRENT_REFIT, "head_seed": first, "head_seeds": (first, second), "head_average": 0.99, "defect_width": width}
    for first, second in ((0, 1), (2, 3)) for width in (32, 48)
}
# The twenty-first run: how much of a category's validation figure is the draw of its heads, and whether a third or
# fourth wide head narrows it: every pair, trio and the four of the wide heads from seeds 0-3 (heads cached by the
# twentieth run)
TWENTY_FIRST: dict[str, dict] = {
    f"current, head averaged 0.99, heads {'+'.join(map(str, seeds))}, head width 48": {
        **CURRENT_REFIT, "head_seed": seeds[0], "head_seeds": seeds, "head_average": 0.99, "defect_width": 48}
    for count in (2, 3, 4) for seeds in itertools.combinations(range(4), count)
}
# The twenty-second run: the heads' learning rate falling along a half cosine to 0 (a last steps' noise that the
# weights' average does not remove is one source of the heads' draw), four wide heads, every pair of them; the
# twenty-third: the same for EGBAD and AnoGAN, and GANomaly's pair 0+1 on mesh and label (kept: defect_schedule)
TWENTY_SECOND: dict[str, dict] = {
    f"current, head averaged 0.99, heads {first}+{second}, head width 48, cosine": {
        **CURRENT_REFIT, "head_seed": first, "head_seeds": (first, second), "head_average": 0.99, "defect_width": 48,
        "head_cosine": True}
    for first, second in itertools.combinations(range(4), 2)
}
# The twenty-fourth run: the shipped pair (cosine) trained with a larger share of lines among its drawn defects (a
# thin scratch is near chance on the random texture, stone; a quarter of the drawn defects are lines); then, as the
# heads' maps on stone peak on good grain clusters, fewer false alarms sought: half of each batch clean (a quarter
# shipped), or no drawn defect fainter than 0.3 opacity (0.15 shipped)
SHIPPED_PAIR = TWENTY_SECOND["current, head averaged 0.99, heads 0+1, head width 48, cosine"]
TWENTY_FOURTH: dict[str, dict] = {
    "current, head averaged 0.99, heads 0+1, head width 48, cosine, lines 0.5": {**SHIPPED_PAIR, "head_line_share": 0.5},
    "current, head averaged 0.99, heads 0+1, head width 48, cosine, clean share 0.5": {
        **SHIPPED_PAIR, "head_normal_share": 0.5},
    "current, head averaged 0.99, heads 0+1, head width 48, cosine, faintest 0.3": {**SHIPPED_PAIR, "head_faintest": 0.3},
}
# The twenty-fifth run: the shipped pair with more convolutions at full resolution before the first strided one (a
# 1-px scratch is subsampled after one 3 x 3 view of it; the speckle's disc rims look alike in so small a window)
TWENTY_FIFTH: dict[str, dict] = {
    f"current, head averaged 0.99, heads 0+1, head width 48, cosine, fine {fine}": {**SHIPPED_PAIR, "head_fine": fine}
    for fine in (2, 3)
} | {  # the same on a second draw of heads (seeds 2 and 3): the three models share a category's heads
    f"current, head averaged 0.99, heads 2+3, head width 48, cosine, fine {fine}": {
        **TWENTY_SECOND["current, head averaged 0.99, heads 2+3, head width 48, cosine"], "head_fine": fine}
    for fine in (2, 3)
}
# The twenty-sixth run: the twenty-fifth's three full-resolution convolutions, narrower (24 channels at width 48 cost
# a head twice its training time; the suite's and a fit's time budgets refused it)
TWENTY_SIXTH: dict[str, dict] = {
    f"current, head averaged 0.99, heads {first}+{second}, head width 48, cosine, fine 3 of {channels}": {
        **TWENTY_SECOND[f"current, head averaged 0.99, heads {first}+{second}, head width 48, cosine"], "head_fine": 3,
        "head_fine_width": channels}
    for first, second in ((0, 1), (2, 3)) for channels in (8, 16)
}
# The twenty-seventh run: the twenty-fifth's three full-resolution convolutions of 24 channels for half the head's
# batches (400 of 800), about the shipped head's training time
TWENTY_SEVENTH: dict[str, dict] = {
    f"current, head averaged 0.99, heads {first}+{second}, head width 48, cosine, fine 3, 400 steps": {
        **TWENTY_SECOND[f"current, head averaged 0.99, heads {first}+{second}, head width 48, cosine"], "head_fine": 3,
        "defect_steps": 400}
    for first, second in ((0, 1), (2, 3))
}
# The twenty-eighth run: the shipped head's one full-resolution convolution narrower, 16 channels instead of half the
# width (24): a quarter less head time (docs/speed.md), a speed change that ships only if validation holds on both
# draws; and a third draw of the shipped heads (seeds 4 and 5): the first two disagreed on every head change of runs
# 25-27, so the third tells how far a draw alone moves a score
SHIPPED_PAIRS = TWENTY_SECOND | {
    "current, head averaged 0.99, heads 4+5, head width 48, cosine": {**SHIPPED_PAIR, "head_seed": 4, "head_seeds": (4, 5)}}
TWENTY_EIGHTH: dict[str, dict] = {
    "current, head averaged 0.99, heads 4+5, head width 48, cosine": SHIPPED_PAIRS[
        "current, head averaged 0.99, heads 4+5, head width 48, cosine"]} | {
    f"current, head averaged 0.99, heads {first}+{second}, head width 48, cosine, fine 1 of 16": {
        **SHIPPED_PAIRS[f"current, head averaged 0.99, heads {first}+{second}, head width 48, cosine"],
        "head_fine_width": 16}
    for first, second in ((0, 1), (2, 3), (4, 5))
} | {  # the twenty-sixth run's three convolutions of 16 on the third draw (up on the mean of the first two)
    "current, head averaged 0.99, heads 4+5, head width 48, cosine, fine 3 of 16": {
        **SHIPPED_PAIRS["current, head averaged 0.99, heads 4+5, head width 48, cosine"], "head_fine": 3,
        "head_fine_width": 16}
}

# The fifth run (all five categories): how long and how wide to train, scored with the current evidence defaults.
# Each training variant is a separate fit (config changes as on the command line); "config" is the shipped config
# before it (40 epochs, width 32, 32 patches an image), whose checkpoints the earlier runs scored.
TRAINING: dict[str, tuple[str, ...]] = {
    "config": (),
    "5 epochs": ("trainer.max_epochs=5", "trainer.check_val_every_n_epoch=5"),
    "12 epochs, width 16": ("trainer.max_epochs=12", "trainer.check_val_every_n_epoch=12",
                            "model.network.n_features=16"),
    "24 epochs, width 16, 16 patches": ("trainer.max_epochs=24", "trainer.check_val_every_n_epoch=24",
                                        "model.network.n_features=16", "model.sampling.patches_per_image=16"),
    "24 epochs, width 16, 16 patches, cosine from 5e-4": (
        "trainer.max_epochs=24", "trainer.check_val_every_n_epoch=24", "model.network.n_features=16",
        "model.sampling.patches_per_image=16", "model.optimiser.lr=0.0005", "model.optimiser.schedule=cosine"),
    # the sixteenth run: the GAN's training steps in float32 against bf16 autocast (a CPU with bf16 units)
    "float32 training": ("model.training_precision=float32",),
    "bf16 training": ("model.training_precision=bf16",),
}
SIXTEENTH_TRAINING = {"float32 training", "bf16 training"}

# Every variant as absolute settings over Evidence()'s defaults (the shipped config), so that a score means the
# same on a checkpoint trained under any defaults (training the networks does not read the evidence settings).
VARIANTS: dict[str, dict] = {name: {**FIRST_DEFAULTS, **change} for name, change in FIRST.items()}
VARIANTS.update({name: {**BASE_DEFAULTS, **change} for name, change in BASE.items()})
VARIANTS.update({name: {**SHIPPED_DEFAULTS, **change} for name, change in THIRD.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in FOURTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in SIXTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in SEVENTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in EIGHTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in NINTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in TENTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in ELEVENTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in TWELFTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in THIRTEENTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in FOURTEENTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in FIFTEENTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in SIXTEENTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in SEVENTEENTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in EIGHTEENTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in NINETEENTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in TWENTIETH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in TWENTY_FIRST.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in TWENTY_SECOND.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in TWENTY_FOURTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in TWENTY_FIFTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in TWENTY_SIXTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in TWENTY_SEVENTH.items()})
VARIANTS.update({name: {**CURRENT_DEFAULTS, **change} for name, change in TWENTY_EIGHTH.items()})
# before the colour map, the defect head, per-place spreads, the tent window and the periodic part existed every variant
# had none of them (and until the seventeenth every map was smoothed)
VARIANTS = {name: {"colour_weight": 0.0, "defect_weight": 0.0, "position_spread": False, "patch_window": "flat",
                   "position_periodic": False, "weights_from_defects": "off", "memory_pooling": 1,
                   "defect_smoothing": True, "defect_width": 32, "colour_surround_sigma_px": 0.0, **settings}
            for name, settings in VARIANTS.items()}


# settings that change the networks' maps
RAW_KEYS = ("colour_residual", "memory_colour_weight", "memory_size", "patch_window", "memory_pooling")


# the parts a model fits after the GAN (``fit_normal``): refitted by each variant, never taken from the checkpoint
REFITTED_PARTS = ("memory.", "scorer.", "colour.", "defect.", "defect_others.")


def trained_network(model_name: str, state: dict, network: PatchNetwork, evidence: Evidence) -> torch.nn.Module:
    """The torch model with ``evidence``'s maps and the GAN's trained weights from ``state`` (nothing fitted after the
    GAN: the memory, colour statistics, defect head and scales are left to refit), in eval mode."""
    net = getattr(ganad_plugin.models, model_name)(network=network, evidence=evidence).model
    weights = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    weights = {k: v for k, v in weights.items() if not k.startswith(REFITTED_PARTS)}
    missing, unexpected = net.load_state_dict(weights, strict=False)
    refitted = [k for k in missing if not k.startswith(REFITTED_PARTS)]
    if refitted or unexpected:
        msg = f"checkpoint does not match {model_name}: missing {refitted}, unexpected {unexpected}"
        raise RuntimeError(msg)
    return net.eval()


def raw_evidence(model_name: str, state: dict, network: PatchNetwork, evidence: Evidence, train: torch.Tensor,
                 test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The networks' three evidence maps (residual channels, distance, memory) of the trained weights in ``state``
    (networks of the size ``network``),
    with the memory refilled from ``train`` as training does: (maps of the held-out training images that calibrate,
    maps of the test images)."""
    every_map = dataclasses.replace(evidence, residual_weight=1.0, distance_weight=1.0, memory_weight=1.0,
                                    colour_weight=0.0, defect_weight=0.0)
    net = trained_network(model_name, state, network, every_map)
    with torch.inference_mode():
        net.fit_normal(train.split(16), 256)
        held_out = train[:256][3::4]  # the images fit_normal calibrates on (every fourth)
        maps = [torch.cat([net.evidence(images[i : i + 8]) for i in range(0, len(images), 8)]) for images in (held_out, test)]
    return maps[0], maps[1]


def colour_evidence(sigma_px: float, cells: int, train: torch.Tensor, test: torch.Tensor,
                    surround_sigma_px: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The colour-statistics map fitted as ``fit_normal`` fits it (every training image it sees): (maps of the
    held-out training images that calibrate, maps of the test images)."""
    colour = ColourStatistics(train.shape[1], sigma_px, cells, surround_sigma_px)
    with torch.inference_mode():
        colour.fit(train[:256].split(16))
        held_out = train[:256][3::4]
        maps = [torch.cat([colour(images[i : i + 8]) for i in range(0, len(images), 8)]) for images in (held_out, test)]
    return maps[0], maps[1]


def defect_evidence(steps: int, train: torch.Tensor, test: torch.Tensor, seed: int = 0,
                    reconstruct: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    extra: torch.Tensor | None = None, average: float = 0.0, width: int = 32,
                    steps_per_image: int = STEPS_PER_IMAGE, cosine: bool = False,
                    line_share: float = LINE_SHARE, fine: int = 1, fine_width: int = 0) -> tuple[torch.Tensor, ...]:
    """The defect head's map trained as ``fit_normal`` trains it (on the three in four training images that fill
    the memory; with ``reconstruct``, a head that sees the GAN's reconstruction beside each image): (maps of the
    held-out training images that calibrate, maps of the test images[, maps of ``extra``])."""
    head = DefectHead(train.shape[1], width, reference=reconstruct is not None, fine=fine, fine_width=fine_width)
    first = train[:256]
    head.fit(first[[i for i in range(len(first)) if i % 4 != 3]], steps, seed=seed, reconstruct=reconstruct,
             average=average, steps_per_image=steps_per_image, cosine=cosine, line_share=line_share)
    with torch.no_grad():
        maps = [torch.cat([head.probability(chunk, None if reconstruct is None else reconstruct(chunk))
                           for chunk in images.split(8)])
                for images in (first[3::4], test, *(() if extra is None else (extra,)))]
    return tuple(maps)


@contextlib.contextmanager
def head_drawing(normal_share: float, faintest: float) -> Iterator[None]:
    """The heads' training defects drawn with ``normal_share`` of each batch clean and no defect fainter than
    ``faintest`` (the twenty-fourth run's variants; the module's constants restored after)."""
    shipped = defect_head.NORMAL_SHARE, defect_head.FAINTEST
    defect_head.NORMAL_SHARE, defect_head.FAINTEST = normal_share, faintest
    try:
        yield
    finally:
        defect_head.NORMAL_SHARE, defect_head.FAINTEST = shipped


def drawn_defects(train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The synthetic-defect images and masks ``fit_normal`` refits the weights on (``weights_from_defects``): the
    held-out training images with the defect head's kinds drawn on them, the memory's images lending texture."""
    first = train[:256]
    return with_drawn_defects(first[3::4], first[[i for i in range(len(first)) if i % 4 != 3]])


def evidence_scorer(evidence: Evidence, channels: int) -> AnomalyScorer:
    """The scorer of ``evidence``'s active maps as the model builds it, the residual with ``channels`` channels."""
    active = evidence.active()
    return AnomalyScorer(
        signed=tuple(name == "residual" for name in active),
        channels=tuple(channels if name == "residual" else 1 for name in active),
        weights=tuple(active.values()), smoothing_sigma_px=evidence.smoothing_sigma_px,
        smoothed=tuple(name != "defect" or evidence.defect_smoothing for name in active),
        background_sigma_px=evidence.background_sigma_px, score_top_fraction=evidence.score_top_fraction,
        position_cells=evidence.position_cells, position_border_px=evidence.position_border_px,
        position_spread=evidence.position_spread and evidence.position_cells > 0,
        position_period=PatchNetwork().patch_size // 2 if evidence.position_periodic else 0,
        weights_from_defects=evidence.weights_from_defects,
    )


def score_variant(raw: tuple[torch.Tensor, torch.Tensor], evidence: Evidence, channels: int, labels: np.ndarray,
                  masks: np.ndarray, drawn: tuple[torch.Tensor, torch.Tensor] | None = None,
                  ) -> tuple[float, float, np.ndarray]:
    """Image and pixel AUROC of ``evidence``'s maps, weights, smoothing and pooling on the raw maps of
    ``raw_evidence`` (residual with ``channels`` channels, distance, memory), ``colour_evidence`` and
    ``defect_evidence`` after them, and the image scores. With ``weights_from_defects``, ``drawn`` holds the same
    maps of the calibration images with drawn defects and their masks, which refit the weights."""
    groups = {"residual": slice(0, channels), "distance": slice(channels, channels + 1),
              "memory": slice(channels + 1, channels + 2), "colour": slice(channels + 2, channels + 3),
              "defect": slice(channels + 3, channels + 4)}
    active = evidence.active()
    scorer = evidence_scorer(evidence, channels)
    calibrate, test = (torch.cat([maps[:, groups[name]] for name in active], dim=1) for maps in raw)
    with torch.inference_mode():
        scorer.calibration.fit(scorer.smooth(calibrate))
        if evidence.weights_from_defects != "off":
            drawn_maps = torch.cat([drawn[0][:, groups[name]] for name in active], dim=1)
            signal = scorer.calibration.fit_weights(scorer.smooth(drawn_maps), drawn[1])
            print("    signal " + ", ".join(f"{name} {value:.2f}" for name, value in zip(active, signal.tolist(),
                                                                                          strict=True))
                  + "; weights " + ", ".join(f"{name} {value:.2f}" for name, value
                                             in zip(active, scorer.calibration.fitted_weights.tolist(), strict=True)),
                  flush=True)
        outputs = [scorer(test[i : i + 8]) for i in range(0, len(test), 8)]
    scores = torch.cat([score for score, _ in outputs]).numpy()
    maps = torch.cat([anomaly_map for _, anomaly_map in outputs])[:, 0].numpy()
    return auroc(scores, labels), auroc(maps, masks), scores


def per_kind_auroc(scores: np.ndarray, kinds: np.ndarray) -> dict[str, float]:
    """Image AUROC of each defect kind against the good images alone."""
    good = kinds == "good"
    return {kind: auroc(scores[good | (kinds == kind)], kinds[good | (kinds == kind)] == kind)
            for kind in sorted(set(kinds) - {"good"})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["GANomaly", "EGBAD"])
    parser.add_argument("--categories", nargs="*", default=["weave", "flange", "stone", "mesh", "label"])
    parser.add_argument("--variants", nargs="*", default=list(THIRD), choices=list(VARIANTS))
    parser.add_argument("--training", nargs="*", default=["config"], choices=list(TRAINING),
                        help="training variants (each a fit of its own); every evidence variant scores each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-kind", action="store_true",
                        help="print each variant's image AUROC per validation defect kind (rescores from the cached "
                             "maps even where a score is in results/selection)")
    parser.add_argument("--summarise-heads", action="store_true",
                        help="print the twenty-first to twenty-third runs' summary (mean and range over the "
                             "combinations of each number of heads) from docs/selection.csv, and stop")
    parser.add_argument("--write", action="store_true", help="write docs/selection.md and docs/selection.csv")
    args = parser.parse_args()
    if args.summarise_heads:
        summarise_head_counts(REPO / "docs" / "selection.csv")
        return
    torch.set_num_threads(2)
    done_path = REPO / "results" / "selection" / f"seed{args.seed}" / "scores.csv"
    done = {(r["model"], r["category"], r["variant"], r["fitted"]): r for r in read_rows(done_path)}
    rows = []
    kind_lines: list[str] = []  # with --per-kind: markdown rows of image AUROC per defect kind
    fit_seconds: dict[tuple[str, str], list[float]] = {}
    for category in args.categories:
        validation = build_validation_category(category_root(category), REPO / "results" / "validation" / category,
                                               seed=args.seed)
        train = load_train_images(validation, 10**6, 256)
        test, labels, masks = load_test_set(validation, 10**6, 256)
        kinds = test_kinds(validation, 10**6)
        for model_name, training in itertools.product(args.models, args.training):
            out = REPO / "results" / "selection" / f"seed{args.seed}" / model_name.lower() / category
            if training != "config":  # each training variant in a folder of its own beside the config's
                out = out / re.sub(r"[^a-z0-9]+", "_", training.lower()).strip("_")
            ckpt, seconds, metrics = train_with_cli(model_name, category, validation.parent, out, seed=args.seed,
                                                    settings=TRAINING[training], reuse=True)
            if "fit_seconds" in metrics:
                fit_seconds.setdefault((model_name, training), []).append(metrics["fit_seconds"])
                print(f"{model_name:9s} {category:7s} {training}: fit {metrics['fit_seconds']:.0f} s", flush=True)
            fitted = fitted_at(ckpt)
            checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
            state, network = checkpoint["state_dict"], checkpoint["hyper_parameters"]["network"]
            raws: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
            colours: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
            defects: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
            drawn: tuple[torch.Tensor, torch.Tensor] | None = None  # with weights_from_defects: images, masks
            drawn_maps: dict[tuple, torch.Tensor] = {}  # their maps, by the key of the maps' cache
            for evidence_variant in args.variants:
                variant = evidence_variant if training == "config" else f"{training}; {evidence_variant}"
                if (model_name, category, variant, fitted) in done and not args.per_kind:  # scored before, same fit
                    rows.append(done[(model_name, category, variant, fitted)])
                    continue
                start = time.perf_counter()
                settings = dict(VARIANTS[evidence_variant])
                head_seed = settings.pop("head_seed", 0)
                head_seeds = tuple(settings.pop("head_seeds", (head_seed,)))
                head_average = settings.pop("head_average", 0.0)
                head_cap = settings.pop("head_steps_per_image", STEPS_PER_IMAGE)
                head_cosine = settings.pop("head_cosine", False)
                head_lines = settings.pop("head_line_share", LINE_SHARE)
                head_clean = settings.pop("head_normal_share", defect_head.NORMAL_SHARE)
                head_faintest = settings.pop("head_faintest", defect_head.FAINTEST)
                head_fine = settings.pop("head_fine", 1)
                head_fine_width = settings.pop("head_fine_width", 0)
                evidence = dataclasses.replace(Evidence(), **settings)
                key = tuple(getattr(evidence, name) for name in RAW_KEYS)
                if key not in raws:
                    # beside its checkpoint; the default memory size is left out of the name (caches before the
                    # fourth run were written without it)
                    # (nor the flat patch window: before the twelfth run every map was merged flat)
                    named = key[:2] if key[2] == 16384 else key[:3]
                    named += () if key[3] == "flat" else (key[3],)
                    named += () if key[4] == 1 else (f"pooling{key[4]}",)  # the fourteenth run on
                    cache = out / f"raw_evidence_{'_'.join(map(str, named))}.pt"
                    if cache.is_file() and cache.stat().st_mtime > ckpt.stat().st_mtime:
                        raws[key] = torch.load(cache)
                    else:
                        raws[key] = raw_evidence(model_name, state, network, evidence, train, test)
                        torch.save(raws[key], cache)
                refit = evidence.weights_from_defects != "off"
                if refit and drawn is None:
                    drawn = drawn_defects(train)
                if refit and ("raw", key) not in drawn_maps:
                    cache = out / f"drawn_raw_evidence_{'_'.join(map(str, key))}.pt"
                    if cache.is_file() and cache.stat().st_mtime > ckpt.stat().st_mtime:
                        drawn_maps["raw", key] = torch.load(cache)
                    else:
                        drawn_maps["raw", key] = raw_evidence(model_name, state, network, evidence, train, drawn[0])[1]
                        torch.save(drawn_maps["raw", key], cache)
                colour_key = (evidence.colour_sigma_px, evidence.colour_cells, evidence.colour_surround_sigma_px)
                if colour_key not in colours:
                    colours[colour_key] = colour_evidence(*colour_key[:2], train, test, colour_key[2])
                if refit and ("colour", colour_key) not in drawn_maps:
                    drawn_maps["colour", colour_key] = colour_evidence(*colour_key[:2], train, drawn[0],
                                                                      colour_key[2])[1]
                steps = evidence.defect_steps if evidence.defect_weight > 0 else 0
                if "head_seed" in VARIANTS[evidence_variant]:  # the seventh run on: the length capped by the images
                    steps = min(steps, head_cap * len([i for i in range(len(train[:256])) if i % 4 != 3]))
                head_key = (steps, head_seeds, evidence.defect_reference, head_average, evidence.defect_width,
                            head_cosine, head_lines, head_clean, head_faintest, head_fine, head_fine_width)
                if head_key not in defects or (refit and ("defect", head_key) not in drawn_maps):
                    # the head trains for minutes: cached beside the checkpoint, a head a seed; a pair of heads
                    # (the fifteenth run) is the mean of its members' maps
                    members = []
                    for member_seed in head_seeds:
                        # the seventh run's heads train in bf16 where the CPU has the units (the sixth's in f32)
                        seeded = f"_bf16_seed{member_seed}" if "head_seed" in VARIANTS[evidence_variant] else ""
                        seeded += "_reference" if evidence.defect_reference else ""
                        seeded += f"_average{head_average}" if head_average else ""
                        seeded += "_drawn" if refit else ""  # with the maps of the drawn defects
                        seeded += f"_width{evidence.defect_width}" if evidence.defect_width != 32 else ""
                        seeded += "_cosine" if head_cosine else ""
                        seeded += f"_lines{head_lines:g}" if head_lines != LINE_SHARE else ""
                        seeded += f"_clean{head_clean:g}" if head_clean != defect_head.NORMAL_SHARE else ""
                        seeded += f"_faintest{head_faintest:g}" if head_faintest != defect_head.FAINTEST else ""
                        seeded += f"_fine{head_fine}" if head_fine != 1 else ""
                        seeded += f"_of{head_fine_width}" if head_fine_width else ""
                        name = f"defect_evidence_{steps}{seeded}.pt"
                        # a head that does not see the GAN's reconstruction depends on the category's images only:
                        # one cache for every model and training variant of the category (the sixteenth run on)
                        shared = not evidence.defect_reference
                        cache = (REPO / "results" / "selection" / f"seed{args.seed}" / "heads" / category / name
                                 if shared else out / name)
                        if steps == 0:
                            found = tuple(torch.ones(len(t), 1, *t.shape[-2:])
                                          for t in (train[:256][3::4], test, *((drawn[0],) if refit else ())))
                        elif cache.is_file() and (shared or cache.stat().st_mtime > ckpt.stat().st_mtime):
                            found = torch.load(cache)
                        else:
                            reconstruct = (trained_network(model_name, state, network, evidence).reconstruct
                                           if evidence.defect_reference else None)
                            with head_drawing(head_clean, head_faintest):
                                found = defect_evidence(steps, train, test, seed=member_seed, reconstruct=reconstruct,
                                                        extra=drawn[0] if refit else None, average=head_average,
                                                        width=evidence.defect_width, steps_per_image=head_cap,
                                                        cosine=head_cosine, line_share=head_lines,
                                                        fine=head_fine, fine_width=head_fine_width)
                            cache.parent.mkdir(parents=True, exist_ok=True)
                            torch.save(found, cache)
                        members.append(found)
                    found = tuple(torch.stack(maps).mean(dim=0) for maps in zip(*members, strict=True))
                    defects[head_key] = found[:2]
                    if refit:
                        drawn_maps["defect", head_key] = found[2]
                maps = tuple(torch.cat([net, colour, defect], dim=1) for net, colour, defect
                             in zip(raws[key], colours[colour_key], defects[head_key], strict=True))
                channels = test.shape[1] if evidence.colour_residual else 1
                on_drawn = None
                if refit:
                    on_drawn = (torch.cat([drawn_maps["raw", key], drawn_maps["colour", colour_key],
                                           drawn_maps["defect", head_key]], dim=1), drawn[1])
                image, pixel, scores = score_variant(maps, evidence, channels, labels, masks, on_drawn)
                rows.append({"model": model_name, "category": category, "variant": variant, "seed": args.seed,
                             "image_auroc": round(image, 4), "pixel_auroc": round(pixel, 4), "fitted": fitted})
                if (model_name, category, variant, fitted) not in done:
                    append_row(done_path, rows[-1])
                print(f"{model_name:9s} {category:7s} {variant:52s} image {image:.3f} pixel {pixel:.3f}"
                      f"  ({time.perf_counter() - start:.0f} s)", flush=True)
                if args.per_kind:
                    by_kind = per_kind_auroc(scores, kinds)
                    print("    image AUROC per kind: " + ", ".join(
                        f"{kind} {value:.2f}" for kind, value in by_kind.items()), flush=True)
                    if not kind_lines:
                        kind_lines += ["| model | category | variant | " + " | ".join(by_kind) + " |",
                                       "|" + "---|" * (len(by_kind) + 3)]
                    kind_lines.append(f"| {model_name} | {category} | {variant} | "
                                      + " | ".join(f"{value:.2f}" for value in by_kind.values()) + " |")
    table = summary(rows, args.categories)
    if kind_lines:
        table += "\n\nImage AUROC per validation defect kind (each kind's images against the good ones):\n\n"
        table += "\n".join(kind_lines)
    if args.training != ["config"]:
        table += "\n\nSeconds of each fit (anomalib's timer: training, memory, calibration and validation), per category:\n\n"
        table += "\n".join(f"- {model} {training}: " + ", ".join(f"{s:.0f}" for s in seconds)
                            for (model, training), seconds in fit_seconds.items())
    print("\n" + table)
    if args.write:
        write(rows, table, args)


# ``fitted``: when the scored checkpoint was written (UTC), so that the scores of a new fit of the same category
# neither replace nor stand in for an earlier fit's; empty in the rows of the runs before the column existed
FIELDS = ("model", "category", "variant", "seed", "image_auroc", "pixel_auroc", "fitted")


def fitted_at(checkpoint: Path) -> str:
    """When ``checkpoint`` was written, to the second (UTC): which fit a score is of."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(checkpoint.stat().st_mtime))


def summarise_head_counts(path: Path) -> None:
    """The twenty-first to twenty-third runs' rows in ``path`` (weave, flange, stone): per model, schedule and number
    of heads, the mean image / pixel AUROC over the categories, averaged over the combinations of seeds of that size,
    with its range, and the lowest flange."""
    scores: dict[tuple[str, str, str], dict[str, tuple[float, float]]] = {}
    for row in read_rows(path):
        variant = row["variant"].removeprefix("bf16 training; ")
        if (variant in TWENTY_FIRST or variant in TWENTY_SECOND) and row["category"] in ("weave", "flange", "stone"):
            schedule = "cosine" if VARIANTS[variant].get("head_cosine") else "constant"
            seeds = "+".join(map(str, VARIANTS[variant]["head_seeds"]))
            scores.setdefault((row["model"], schedule, seeds), {})[row["category"]] = (
                row["image_auroc"], row["pixel_auroc"])
    for model, schedule in dict.fromkeys((model, schedule) for model, schedule, _ in scores):
        for count in (2, 3, 4):
            found = [by_category for (name, rate, seeds), by_category in scores.items()
                     if (name, rate) == (model, schedule) and len(seeds.split("+")) == count]
            if not found:
                continue
            image, pixel = (np.array([np.mean([pair[part] for pair in c.values()]) for c in found]) for part in (0, 1))
            flange = min(c["flange"][0] for c in found) if all("flange" in c for c in found) else float("nan")
            print(f"{model:9s} {schedule:8s} {count} heads ({len(found)} combinations): image {image.mean():.3f} "
                  f"({image.min():.3f}-{image.max():.3f}), pixel {pixel.mean():.3f} ({pixel.min():.3f}-"
                  f"{pixel.max():.3f}), lowest flange image {flange:.2f}")


def read_rows(path: Path) -> list[dict]:
    """Scores already computed (results/selection/seed<N>/scores.csv), so that an interrupted run resumes."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{**row, "seed": int(row["seed"]), "image_auroc": float(row["image_auroc"]),
                 "pixel_auroc": float(row["pixel_auroc"]), "fitted": row.get("fitted") or ""}
                for row in csv.DictReader(handle)]


def append_row(path: Path, row: dict) -> None:
    """Add ``row`` to the scores file (rewritten whole: a file from before a column was added gets it)."""
    rows = [*read_rows(path), row]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def summary(rows: list[dict], categories: list[str]) -> str:
    """A markdown table: each model and variant, image / pixel AUROC per category and their mean."""
    header = "| model | variant | " + " | ".join(categories) + " | mean image | mean pixel |"
    lines = [header, "|" + "---|" * (len(categories) + 4)]
    for model in dict.fromkeys(row["model"] for row in rows):
        for variant in dict.fromkeys(row["variant"] for row in rows):
            cells = [r for r in rows if r["model"] == model and r["variant"] == variant]
            by_category = {r["category"]: r for r in cells}
            shown = [f"{by_category[c]['image_auroc']:.2f} / {by_category[c]['pixel_auroc']:.2f}"
                     if c in by_category else "" for c in categories]
            mean_image = np.mean([r["image_auroc"] for r in cells])
            mean_pixel = np.mean([r["pixel_auroc"] for r in cells])
            lines.append(f"| {model} | {variant} | " + " | ".join(shown) + f" | {mean_image:.3f} | {mean_pixel:.3f} |")
    return "\n".join(lines)


def write(rows: list[dict], table: str, args: argparse.Namespace) -> None:
    """docs/selection.csv (every score of every run, this run's replacing the same cells), and the table between the
    generated markers of docs/selection.md: one block for the first run's variants, one for the second run's
    ("base")."""
    docs = REPO / "docs"
    def key(row: dict) -> tuple:
        return row["model"], row["category"], row["variant"], int(row["seed"]), row["fitted"]

    merged = {key(row): row for row in read_rows(docs / "selection.csv")} | {key(row): row for row in rows}
    with (docs / "selection.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(merged.values())
    command = shlex.join(["python", "benchmarks/selection.py", *sys.argv[1:]])
    page = docs / "selection.md"
    runs = {"selection.py": FIRST, "selection.py base": BASE, "selection.py shipped": THIRD,
            "selection.py memory size": FOURTH, "selection.py defect head": SIXTH,
            "selection.py defect head seeds": SEVENTH, "selection.py defect reference": EIGHTH,
            "selection.py head steps": NINTH, "selection.py smoothing and pooling": TENTH,
            "selection.py per-place levels": ELEVENTH, "selection.py patch window": TWELFTH,
            "selection.py periodic part": THIRTEENTH, "selection.py weights from defects": FOURTEENTH,
            "selection.py head pair and average": FIFTEENTH}
    block = next((name for name, run in runs.items() if all(variant in run for variant in args.variants)), "selection.py")
    if args.training != ["config"]:
        block = "selection.py training"
    if set(args.training) <= SIXTEENTH_TRAINING and set(args.variants) <= {*FIFTEENTH, *SIXTEENTH}:
        block = "selection.py training precision and head steps"
    if set(args.variants) & set(SEVENTEENTH):
        block = "selection.py defect map smoothing"
    if set(args.variants) & set(EIGHTEENTH):
        block = "selection.py head width"
    if set(args.variants) & set(NINETEENTH):
        block = "selection.py colour surround"
    if set(args.variants) & {"current, head averaged 0.99, head pair 2+3, head width 48"}:
        block = "selection.py head width, second seeds"
    if set(args.variants) & set(TWENTY_FIRST):
        block = "selection.py head count"
    if set(args.variants) & set(TWENTY_SECOND):
        block = "selection.py head cosine"
        if not {"weave", "flange", "stone"} & set(args.categories):
            block = "selection.py head cosine, mesh and label"
    if set(args.variants) & set(TWENTY_FOURTH):
        block = "selection.py head lines"
    if set(args.variants) & set(TWENTY_FIFTH):
        block = "selection.py head fine layers"
        if all("heads 2+3" in variant for variant in args.variants):
            block = "selection.py head fine layers, second draw"
    if set(args.variants) & set(TWENTY_SIXTH):
        block = "selection.py narrow fine layers"
    if set(args.variants) & set(TWENTY_SEVENTH):
        block = "selection.py fine layers, half the steps"
    if set(args.variants) & set(TWENTY_EIGHTH):
        block = "selection.py one narrow fine layer"
        if set(args.variants) & set(TWENTY_SEVENTH):
            block = "selection.py fine layers, half the steps; one narrow fine layer"
        elif set(args.variants) & set(TWENTY_SIXTH):
            block = "selection.py narrow fine layers, three draws"
    write_generated_block(page, block, f"Made by `{command}` (2 CPU cores, seed {args.seed}). Each cell: "
                          "image AUROC / pixel AUROC on the validation category built from that category's `train/good` "
                          "alone; every variant scores the same trained weights (memory refilled, scales refitted). "
                          f"Every score: `docs/selection.csv`.\n\n{table}",
                          "Choosing the defaults on validation built from training images")
    print(f"wrote {page} and {docs / 'selection.csv'}")


if __name__ == "__main__":
    main()
