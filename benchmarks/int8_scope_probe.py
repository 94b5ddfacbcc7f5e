"""Probe: which layers the INT8 export keeps in float, measured by accuracy and speed (not the shipped path).

    python benchmarks/int8_scope_probe.py --xml GANomaly=<fp32 model.xml> EGBAD=... AnoGAN=... [--category weave]

Each FP32 IR (``edge_speed.py`` writes them) is quantised by NNCF as the export does (the networks' convolutions,
calibrated on the category's normal training images in file order), with the defect heads quantised and with more
layers kept in float:
- ``heads quantised``: the evidence arithmetic and the maps' smoothing in float, every network's convolutions in
  8 bits, the defect heads' included (the export's scope until 2026-12-07);
- ``heads full-res float``: also the defect heads' full-resolution convolutions (the 3 x 3 ones reading 3 or 16
  channels: the first layers, and the strided one reading their output) in float;
- ``heads float``: every convolution of the defect heads in float (``export.defect_head_convolutions``; shipped
  since 2026-12-07, ``export.quantise_on_normal_images``);
- ``discriminator float``: the heads quantised as in the first, the discriminator's convolutions (its features
  enter the evidence) in float.
Each INT8 IR is compared with its FP32 IR on the export's comparison images (``export.comparison_images``: the
category's training images, half with anomalib's synthetic defects; never a test split), both compiled at f32 and
both at the precision ``ganad infer`` picks (``auto``), and timed as ``edge_speed.py`` times them (batches of 8 of the
category's first 16 test images through the edge runtime's ``BatchRunner``, 2 threads, precision ``auto``; a short
timing, 6 batches), beside the FP32 IR timed the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import openvino as ov
from anomalib.data import MVTecAD
from edge_speed import THREADS, timed
from torch.utils.data import DataLoader

from ganad_plugin.edge.images import list_images, read_rgb
from ganad_plugin.edge.precision import choose_precision
from ganad_plugin.edge.runtime import BatchRunner
from ganad_plugin.models.components import export

VARIANTS = ("heads quantised", "heads full-res float", "heads float", "discriminator float")


def _convolutions(model: ov.Model) -> list[tuple[str, list[int]]]:
    ops = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in ("Convolution", "ConvolutionBackpropData"):
            shape = op.input(1).get_partial_shape()
            ops.append((op.get_friendly_name(), list(shape.to_shape()) if shape.is_static else []))
    return ops


def ignored_names(model: ov.Model, variant: str) -> list[str]:
    names = export.smoothing_convolutions(model)
    convolutions = _convolutions(model)
    if variant == "heads full-res float":
        names += [name for name, shape in convolutions if shape[2:] == [3, 3] and shape[1] in (3, 16)]
    elif variant == "heads float":
        names += export.defect_head_convolutions(model)
    elif variant == "discriminator float":
        names += [name for name, _ in convolutions if "discriminator" in name]
    return names


def quantised(model: ov.Model, datamodule: MVTecAD, variant: str) -> ov.Model:
    return export.quantise_on_normal_images(model, datamodule, lambda graph: ignored_names(graph, variant))


def scored(model: ov.Model, dataset, precision: str) -> tuple[float, float]:
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                      "INFERENCE_NUM_THREADS": THREADS})
    scores, maps, labels, masks = [], [], [], []
    for batch in DataLoader(dataset, batch_size=8, shuffle=False, collate_fn=dataset.collate_fn):
        result = compiled(batch.image.numpy())
        scores.append(np.asarray(result[compiled.output("pred_score")]).reshape(-1))
        maps.append(np.asarray(result[compiled.output("anomaly_map")]))
        labels.append(batch.gt_label.numpy().reshape(-1))
        masks.append(batch.gt_mask.numpy())
    return export._auroc(scores, labels), export._auroc(maps, masks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--xml", nargs="+", required=True, help="MODEL=path/to/fp32/model.xml")
    parser.add_argument("--root", default="sample_data")
    parser.add_argument("--category", default="weave")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()
    core = ov.Core()
    capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    datamodule = MVTecAD(root=args.root, category=args.category, train_batch_size=8, eval_batch_size=8, num_workers=0)
    comparison, described = export.comparison_images(datamodule)
    files = list_images(Path(args.root) / args.category / "test")
    images = [(read_rgb(path).astype(np.float32) / 255).transpose(2, 0, 1)[None] for path in files[:16]]
    batches = [np.concatenate(images[:8]), np.concatenate(images[8:16])]
    rows = []
    for entry in args.xml:
        name, xml = entry.split("=", 1)
        fp32 = core.read_model(xml)
        auto = choose_precision("auto", fp32, capabilities)
        candidates = [("FP32", fp32)] + [(variant, quantised(core.read_model(xml), datamodule, variant))
                                         for variant in args.variants]
        for variant, model in candidates:
            f32_image, f32_pixel = scored(model, comparison, "f32")
            auto_image, auto_pixel = scored(model, comparison, auto)
            runner = BatchRunner(core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT",
                                                                    "INFERENCE_NUM_THREADS": THREADS,
                                                                    "INFERENCE_PRECISION_HINT": auto}))
            rate = 8 / timed(runner, batches, 6)
            rows.append((name, variant, f32_image, f32_pixel, auto_image, auto_pixel, rate))
            print(rows[-1], flush=True)
    print(f"\nComparison images: {len(comparison)} ({described}); precision auto = {auto}; {THREADS} threads.\n")
    print("| model | INT8 scope | image AUROC f32 | pixel AUROC f32 | image AUROC auto | pixel AUROC auto | "
          "images/s (auto, batch 8) |")
    print("|---|---|---|---|---|---|---|")
    for name, variant, *figures, rate in rows:
        print(f"| {name} | {variant} | " + " | ".join(f"{x:.3f}" for x in figures) + f" | {rate:.1f} |")


if __name__ == "__main__":
    main()
