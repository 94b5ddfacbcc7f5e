"""Speed of a trained model on 2 CPU threads: torch eager against its OpenVINO IRs (FP32, FP16, INT8), side by side.

    python benchmarks/edge_speed.py --model GANomaly --ckpt <model.ckpt> [--category weave] [--runs 20]

Exports the checkpoint with anomalib's export (FP32, FP16, and INT8_PTQ calibrated on the category's normal
training images; the INT8 export writes its accuracy check against FP32), then on the category's test images
times single-image latency (batch 1, median of --runs) and batch throughput (batches of --batch-size) for:
torch eager under ``torch.inference_mode`` (pre-processing, model and post-processing, as the IR holds them)
and each IR compiled for CPU with 2 inference threads, at f32 and, where it differs, at the precision `ganad infer`
picks by default (``auto``: bf16 networks where the CPU has bf16 units); batches run through the edge runtime's
``BatchRunner``, which splits them over the THROUGHPUT hint's parallel requests. Prints images per second and the ratio to torch, and
the image and pixel AUROC of FP32 and INT8 from the export's quantisation_report.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import openvino as ov
import torch
from anomalib.data import MVTecAD
from anomalib.deploy import CompressionType, ExportType
from anomalib.engine import Engine

import ganad_plugin.models
from ganad_plugin.edge.images import list_images, read_rgb
from ganad_plugin.edge.precision import choose_precision
from ganad_plugin.edge.runtime import BatchRunner

THREADS = 2


def export_all(model, datamodule, root: Path) -> dict[str, Path]:
    engine = Engine(logger=False, default_root_dir=root)
    paths = {}
    for name, compression in (("FP32", None), ("FP16", CompressionType.FP16), ("INT8", CompressionType.INT8_PTQ)):
        out = root / name.lower()
        # max_drop=1: keep the INT8 IR whatever its accuracy, to time it; the drop is printed from its report
        paths[name] = Path(engine.export(model, ExportType.OPENVINO, export_root=out, compression_type=compression,
                                         datamodule=datamodule if compression == CompressionType.INT8_PTQ else None,
                                         max_drop=1.0))
    return paths


def timed(run, inputs: list[np.ndarray], runs: int) -> float:
    """Median seconds of ``run`` over ``runs`` calls cycling through ``inputs`` (after two warm-up calls)."""
    run(inputs[0])
    run(inputs[0])
    times = []
    for index in range(runs):
        start = time.perf_counter()
        run(inputs[index % len(inputs)])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, choices=["GANomaly", "EGBAD", "AnoGAN"])
    parser.add_argument("--ckpt", required=True, type=Path)
    parser.add_argument("--root", default="sample_data")
    parser.add_argument("--category", default="weave")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("results/bench_edge"))
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    model = getattr(ganad_plugin.models, args.model).load_from_checkpoint(args.ckpt).eval()
    datamodule = MVTecAD(root=args.root, category=args.category, train_batch_size=8, eval_batch_size=8, num_workers=0)
    irs = export_all(model, datamodule, args.out / args.model.lower())

    files = list_images(Path(args.root) / args.category / "test")
    images = np.stack([read_rgb(path) for path in files[: max(args.batch_size * 2, 16)]])
    singles = [(image.astype(np.float32) / 255).transpose(2, 0, 1)[None] for image in images]
    batches = [np.concatenate(singles[i : i + args.batch_size]) for i in range(0, len(singles) - args.batch_size + 1,
                                                                            args.batch_size)]

    def torch_run(array: np.ndarray) -> None:
        with torch.inference_mode():
            model(torch.from_numpy(array))

    rows = [("torch eager", timed(torch_run, singles, args.runs), timed(torch_run, batches, max(args.runs // 4, 3)))]
    core = ov.Core()
    capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    for name, xml in irs.items():
        # each IR at f32, and as `ganad infer` compiles it by default where that differs (precision auto: bf16
        # networks on a CPU with bf16 units)
        for precision in dict.fromkeys(("f32", choose_precision("auto", core.read_model(xml), capabilities))):
            config = {"INFERENCE_NUM_THREADS": THREADS, "INFERENCE_PRECISION_HINT": precision}
            latency_model = core.compile_model(xml, "CPU", {"PERFORMANCE_HINT": "LATENCY", **config})
            throughput_model = core.compile_model(xml, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", **config})
            # batches run as the edge runtime runs them: split over the THROUGHPUT hint's parallel requests
            rows.append((f"OpenVINO {name} {precision}", timed(latency_model, singles, args.runs),
                         timed(BatchRunner(throughput_model), batches, max(args.runs // 4, 3))))

    print(f"\n{args.model} on {args.category}, 256x256 inputs, {THREADS} threads, batch {args.batch_size}")
    print(f"{'runtime':<24}{'latency ms':>12}{'x torch':>9}{'batch img/s':>13}{'x torch':>9}")
    torch_latency, torch_batch = rows[0][1], rows[0][2]
    for name, latency, batch_seconds in rows:
        per_second = args.batch_size / batch_seconds
        print(f"{name:<24}{latency * 1000:>12.1f}{torch_latency / latency:>9.2f}{per_second:>13.1f}"
              f"{torch_batch / batch_seconds:>9.2f}")
    report = json.loads((irs["INT8"].parent / "quantisation_report.json").read_text())
    print(f"\naccuracy on the export's {report['images']} comparison images ({report['images_from']}): "
          f"FP32 image/pixel AUROC "
          f"{report['fp32']['image_AUROC']:.3f} / {report['fp32']['pixel_AUROC']:.3f}, INT8 "
          f"{report['int8']['image_AUROC']:.3f} / {report['int8']['pixel_AUROC']:.3f} "
          f"(image drop {report['image_AUROC_drop']:+.3f})")


if __name__ == "__main__":
    main()
