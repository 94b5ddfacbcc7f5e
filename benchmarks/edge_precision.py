"""What OpenVINO's bf16 inference precision costs each exported model in accuracy, and what it buys in speed.

    python benchmarks/edge_precision.py --xml results/speed/ganomaly/export/weights/openvino/model.xml [...]
                                        [--category weave] [--write]

`ganad infer` compiles IRs at f32; anomalib's ``OpenVINOInferencer`` leaves OpenVINO's default, which on a CPU with
bf16 units runs the whole graph in bf16 (docs/speed.md: 2-2.6x its throughput here). Each IR scores, at f32 and at
bf16, the validation category built from the category's training images only (held-back good images and synthetic
defects: ``ganad_plugin.validation_set``), never its test split, since the precision is a default to be chosen.
Prints image and pixel AUROC at each precision and the batch throughput (THROUGHPUT hint, batches of 8).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov
from sample_sets import REPO, category_root, load_test_set, write_generated_block

from ganad_plugin.edge.metrics import auroc
from ganad_plugin.edge.runtime import BatchRunner
from ganad_plugin.validation_set import build_validation_category

PRECISIONS = ("f32", "bf16")


def measure(xml: Path, precision: str, images: np.ndarray, labels: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    core = ov.Core()
    # as `ganad infer` compiles a folder's model (EdgeInferencer with the THROUGHPUT hint), but for the precision
    compiled = core.compile_model(core.read_model(xml), "CPU",
                                  {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": precision})
    runner = BatchRunner(compiled)
    scores, maps = zip(*(runner(images[i : i + 8]) for i in range(0, len(images), 8)), strict=True)
    batch = images[:8]
    runner(batch)  # warm-up
    start, runs = time.perf_counter(), 10
    for _ in range(runs):
        runner(batch)
    return {
        "image_auroc": auroc(np.concatenate(scores), labels),
        "pixel_auroc": auroc(np.concatenate(maps)[:, 0], masks),
        "images_per_s": runs * len(batch) / (time.perf_counter() - start),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xml", type=Path, nargs="+", required=True, help="exported model.xml files")
    parser.add_argument("--category", default="weave")
    parser.add_argument("--write", action="store_true", help="write the table to docs/speed.md")
    args = parser.parse_args()
    root = build_validation_category(category_root(args.category), REPO / "results" / "validation" / args.category)
    images, labels, masks = load_test_set(root, 10**6, 256)
    array = np.ascontiguousarray(images.numpy(), dtype=np.float32)
    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    lines = ["| IR | precision | image AUROC | pixel AUROC | batch images/s | x f32 |", "|---|---|---|---|---|---|"]
    for xml in args.xml:
        rows = {p: measure(xml, p, array, labels, masks) for p in PRECISIONS}
        name = xml.resolve().relative_to(REPO) if xml.resolve().is_relative_to(REPO) else xml
        for precision, row in rows.items():
            lines.append(f"| `{name}` | {precision} | {row['image_auroc']:.3f} | {row['pixel_auroc']:.3f} | "
                         f"{row['images_per_s']:.1f} | {row['images_per_s'] / rows['f32']['images_per_s']:.2f} |")
            print(lines[-1], flush=True)
    command = "python benchmarks/edge_precision.py " + " ".join(sys.argv[1:])
    table = (f"Made by `{command}` (2 CPU cores; validation category of {args.category} built from its "
             f"training images, {len(labels)} images; CPU capabilities {', '.join(capabilities)}).\n\n"
             + "\n".join(lines))
    print("\n" + table)
    if args.write:
        write_generated_block(REPO / "docs" / "speed.md", "edge_precision.py", table, "Speed and memory")


if __name__ == "__main__":
    main()
