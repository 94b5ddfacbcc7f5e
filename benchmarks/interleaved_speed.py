"""Batch throughput of two or more builds of a model, timed in turns so that a slow spell of the machine falls on all.

    python benchmarks/interleaved_speed.py --model EGBAD --build before=<dir> after=<dir> [--rounds 5] [--batches 4]

    (with --ckpt before=<model.ckpt> after=<model.ckpt>)

Each ``<dir>`` is the folder that ``benchmarks/edge_speed.py --out <out>`` wrote for one checkpoint
(``<out>/<model>``, holding its ``fp32`` and ``int8`` IRs), and ``--ckpt`` the checkpoint it exported, under the same
name. In every round, each
build's torch eager, FP32 IR and INT8 IR (both compiled as `ganad infer` compiles them by default: precision
``auto``) run ``--batches`` batches of 8 test images on 2 threads, one after another; the table gives each one's
median images/s over the rounds, its range, and the ratio to the same build's torch eager in the same round (median
over rounds). One timing of a short run (``edge_speed.py``'s) moves by a fifth between runs on a shared machine; the
turns make the builds' comparison fair, not the machine steadier.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import openvino as ov
import torch

import ganad_plugin.models
from ganad_plugin.edge.images import list_images, read_rgb
from ganad_plugin.edge.precision import choose_precision
from ganad_plugin.edge.runtime import BatchRunner

THREADS = 2
BATCH = 8


def pairs(values: list[str], what: str) -> dict[str, Path]:
    bad = [value for value in values if "=" not in value]
    if bad:
        raise SystemExit(f"{what}: expected NAME=PATH, got {bad}")
    return {name: Path(path) for name, path in (value.split("=", 1) for value in values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=["GANomaly", "EGBAD", "AnoGAN"])
    parser.add_argument("--build", nargs="+", required=True, metavar="NAME=DIR")
    parser.add_argument("--ckpt", nargs="+", required=True, metavar="NAME=CKPT")
    parser.add_argument("--root", default="sample_data")
    parser.add_argument("--category", default="weave")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()
    builds, ckpts = pairs(args.build, "--build"), pairs(args.ckpt, "--ckpt")
    if set(builds) != set(ckpts):
        raise SystemExit(f"--build names {sorted(builds)} and --ckpt names {sorted(ckpts)} differ")
    torch.set_num_threads(THREADS)

    files = list_images(Path(args.root) / args.category / "test")[: BATCH * args.batches]
    batch_arrays = [np.stack([(read_rgb(path).astype(np.float32) / 255).transpose(2, 0, 1) for path in
                              files[i : i + BATCH]]) for i in range(0, len(files) - BATCH + 1, BATCH)]
    core = ov.Core()
    capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    runs = {}
    for name in builds:
        model = getattr(ganad_plugin.models, args.model).load_from_checkpoint(ckpts[name]).eval()

        def eager(array: np.ndarray, model=model) -> None:
            with torch.inference_mode():
                model(torch.from_numpy(array))

        runs[(name, "torch eager")] = eager
        for ir in ("fp32", "int8"):
            xml = next((builds[name] / ir).rglob("model.xml"))
            precision = choose_precision("auto", core.read_model(xml), capabilities)
            compiled = core.compile_model(xml, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_NUM_THREADS":
                                                       THREADS, "INFERENCE_PRECISION_HINT": precision})
            runs[(name, f"{ir.upper()} IR {precision}")] = BatchRunner(compiled)
    for run in runs.values():  # warm-up
        run(batch_arrays[0])

    rates: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
    for round_index in range(args.rounds):
        for key, run in runs.items():
            start = time.perf_counter()
            for array in batch_arrays:
                run(array)
            rates[key].append(BATCH * len(batch_arrays) / (time.perf_counter() - start))
        print(f"round {round_index + 1}/{args.rounds}: " + ", ".join(
            f"{name} {what} {rates[(name, what)][-1]:.1f}" for name, what in runs), flush=True)

    print(f"\n{args.model} on {args.category}, {THREADS} threads, {args.rounds} rounds of {len(batch_arrays)} batches "
          f"of {BATCH}, the builds in turns")
    print("| build | runtime | images/s (median) | range | x its torch eager (median over rounds) |")
    print("|---|---|---|---|---|")
    for name, what in runs:
        values = rates[(name, what)]
        ratio = statistics.median(v / e for v, e in zip(values, rates[(name, "torch eager")], strict=True))
        print(f"| {name} | {what} | {statistics.median(values):.1f} | {min(values):.1f}-{max(values):.1f} | "
              f"{ratio:.2f}x |")


if __name__ == "__main__":
    main()
