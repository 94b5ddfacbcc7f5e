"""What OpenVINO's bf16 inference precision costs each exported model in accuracy, and what it buys in speed.

    python benchmarks/edge_precision.py --xml results/speed/ganomaly/export/weights/openvino/model.xml [...]
                                        [--category weave] [--write]

anomalib's ``OpenVINOInferencer`` leaves OpenVINO's default precision, which on a CPU with bf16 units is bf16 for
every layer an IR does not mark to stay in f32. Each IR is compiled three ways: f32; bf16 for the whole graph (the
IR with no marks); bf16 for the networks only (every layer but the convolutions marked to stay in f32, as the
export writes it: ``ganad_plugin.edge.precision``, what ``ganad infer --precision auto`` then runs). Each scores
the validation category built from the category's training images only (held-back good images and synthetic
defects: ``ganad_plugin.validation_set``), never its test split, since the precision is a default to be chosen.
Prints image and pixel AUROC of each and the batch throughput (THROUGHPUT hint, batches of 8).
"""

from __future__ import annotations

import argparse
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import openvino as ov
from sample_sets import REPO, category_root, load_test_set, write_generated_block

from ganad_plugin.edge.metrics import auroc
from ganad_plugin.edge.precision import set_evidence_marks
from ganad_plugin.edge.runtime import BatchRunner
from ganad_plugin.validation_set import build_validation_category

# name: (inference precision, whether the layers after the networks are marked to stay in f32)
VARIANTS = {"f32": ("f32", False), "bf16 whole graph": ("bf16", False), "bf16 networks, f32 evidence": ("bf16", True)}


def read_with_marks(core: ov.Core, xml: Path, keep_f32: bool) -> ov.Model:
    """The IR with the f32 marks removed, or as the current export writes them (in memory; the file is not
    changed: an IR exported before a change of the marks is measured with the current ones)."""
    net = ET.parse(xml).getroot()
    set_evidence_marks(net, keep_f32=keep_f32)
    return core.read_model(ET.tostring(net), ov.Tensor(np.fromfile(xml.with_suffix(".bin"), dtype=np.uint8)))


def measure(xml: Path, variant: str, images: np.ndarray, labels: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    core = ov.Core()
    precision, keep_f32 = VARIANTS[variant]
    # as `ganad infer` compiles a folder's model (EdgeInferencer with the THROUGHPUT hint), but for the precision
    compiled = core.compile_model(read_with_marks(core, xml, keep_f32), "CPU",
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
        rows = {variant: measure(xml, variant, array, labels, masks) for variant in VARIANTS}
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
