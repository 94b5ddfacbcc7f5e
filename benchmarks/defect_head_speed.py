"""The defect head's training speed: seconds a batch (16 crops of 128 px, forward, loss, backward, Adam step) in f32,
channels-last, and bf16 autocast (channels-last), and the whole ``DefectHead.fit`` as ``fit_normal`` runs it.

    python benchmarks/defect_head_speed.py [--threads 2] [--steps 30] [--widths 32 48] [--schedules constant cosine]
        [--fine 1 3] [--fine-widths 0 12] [--write]

The head's width, learning-rate schedule and full-resolution convolutions (their count and channels) are the configs'
(``evidence.defect_width``, ``evidence.defect_schedule``, ``evidence.defect_fine``, ``evidence.defect_fine_width``)
unless ``--widths``, ``--schedules``, ``--fine`` or ``--fine-widths`` name others: each whole fit is timed with each
(a fine width of 0 is half the head's width).

bf16 is timed only where the CPU has bf16 units (elsewhere torch emulates it, slower). With --write the table goes to
docs/speed.md between generated markers, under the command that made it.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sample_sets import write_generated_block  # noqa: E402

from ganad_plugin.models.components.defect_head import (  # noqa: E402
    BATCH_SIZE,
    CROP_PX,
    STEPS_PER_IMAGE,
    DefectHead,
    segmentation_loss,
)
from ganad_plugin.models.components.hardware import cpu_has_bf16  # noqa: E402
from ganad_plugin.models.components.settings import LR_SCHEDULES, Evidence  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def seconds_a_batch(channels_last: bool, bf16: bool, steps: int, width: int, fine: int, fine_width: int) -> float:
    """Median seconds of one training batch of random crops with random masks (after 3 warm-up batches)."""
    torch.manual_seed(0)
    head = DefectHead(3, width, fine=fine, fine_width=fine_width)
    batch = torch.rand(BATCH_SIZE, 3, CROP_PX, CROP_PX)
    masks = (torch.rand(BATCH_SIZE, 1, CROP_PX, CROP_PX) > 0.9).float()
    if channels_last:
        head, batch = head.to(memory_format=torch.channels_last), batch.contiguous(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(head.parameters())
    times = []
    for _ in range(steps + 3):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = head(batch)
        loss = segmentation_loss(logits.float(), masks)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--widths", nargs="*", type=int, default=[Evidence().defect_width])
    parser.add_argument("--schedules", nargs="*", choices=LR_SCHEDULES, default=[Evidence().defect_schedule])
    parser.add_argument("--fine", nargs="*", type=int, default=[Evidence().defect_fine])
    parser.add_argument("--fine-widths", nargs="*", type=int, default=[Evidence().defect_fine_width])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    has_bf16 = cpu_has_bf16()
    variants = {"f32": (False, False), "f32, channels-last": (True, False)}
    if has_bf16:
        variants["bf16 autocast, channels-last"] = (True, True)
    images = torch.rand(66, 3, 256, 256)  # a validation category's training images the head sees (3 in 4 of 88)
    steps = Evidence().defect_steps  # the default, as fit_normal runs it
    lines = ["| width | full-resolution convolutions | their channels | training batch | seconds | speed-up over f32 |",
             "|---|---|---|---|---:|---:|"]
    fits = []
    for width, fine, fine_width in itertools.product(args.widths, args.fine, args.fine_widths):
        full = fine_width or width // 2
        rows = {name: seconds_a_batch(*settings, args.steps, width, fine, fine_width)
                for name, settings in variants.items()}
        lines += [f"| {width} | {fine} | {full} | {name} | {seconds:.3f} | {rows['f32'] / seconds:.2f}x |"
                  for name, seconds in rows.items()]
        for schedule in args.schedules:
            start = time.perf_counter()
            DefectHead(3, width, fine=fine, fine_width=fine_width).fit(images, steps, average=Evidence().defect_average,
                                                                       cosine=schedule == "cosine")
            fits.append(f"{time.perf_counter() - start:.1f} s at width {width}, {fine} full-resolution of {full} "
                        f"channels, {schedule} rate")
    table = "\n".join(lines) + (
        f"\n\n`DefectHead.fit` as `fit_normal` runs it ({min(steps, STEPS_PER_IMAGE * 66)} batches: the default {steps}, "
        f"at most {STEPS_PER_IMAGE} an image; defects drawn on 66 images of 256 px, bf16 "
        f"{'on' if has_bf16 else 'off: no bf16 units'}; weight average {Evidence().defect_average}), on {args.threads} "
        f"threads: {', '.join(fits)} (the configs': width {Evidence().defect_width}, {Evidence().defect_fine} full-resolution "
        f"of {Evidence().defect_fine_width or Evidence().defect_width // 2} channels, "
        f"{Evidence().defect_schedule} rate).")
    print(table)
    if args.write:
        command = shlex.join(["python", "benchmarks/defect_head_speed.py", *sys.argv[1:]])
        write_generated_block(REPO / "docs" / "speed.md", "defect_head_speed.py",
                              f"Made by `{command}`.\n\n{table}", "Speed")


if __name__ == "__main__":
    main()
