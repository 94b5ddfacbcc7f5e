"""Time the two routes from a checkpoint to an FP32 OpenVINO model, side by side, and compare what they compute.

    python benchmarks/export_speed.py --ckpt GANomaly=path/to/model.ckpt [EGBAD=... AnoGAN=...] [--repeats 2]

- anomalib's route: ``torch.onnx.export(dynamo=True)`` to an ONNX file, then ``openvino.convert_model`` (what
  ``to_openvino`` does with ``onnx_kwargs``);
- the plugin's route (``ganad export`` and ``anomalib export`` without ``onnx_kwargs``): a TorchScript trace
  converted by OpenVINO's PyTorch frontend, repaired and checked against torch under both performance hints
  (``ganad_plugin/models/components/export.py``).

Each route runs once to warm up, then ``--repeats`` times; the table gives the median seconds, the ratio, the
graphs' operation counts, the largest difference between the two models' normalised scores and maps on random
images (both compiled at f32), and each model's throughput (f32, batches of 8). Results: docs/export.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import numpy as np


def route_seconds(export, repeats: int) -> tuple[float, object]:
    export()  # warm-up: the first dynamo export or trace of a process pays for imports and caches
    seconds, model = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        model = export()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), model


def largest_difference(first, second, shapes=((4, 256, 256), (2, 300, 420))) -> float:
    import openvino as ov

    core = ov.Core()
    compiled = [core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}) for model in (first, second)]
    rng = np.random.default_rng(0)
    worst = 0.0
    for batch, height, width in shapes:
        images = rng.random((batch, 3, height, width), dtype=np.float32)
        outputs = [model(images) for model in compiled]
        for name in ("pred_score", "anomaly_map"):
            values = [np.asarray(output[model.output(name)]) for output, model in zip(outputs, compiled, strict=True)]
            worst = max(worst, float(np.abs(values[0] - values[1]).max()))
    return worst


def images_per_second(model, batch: int = 8, runs: int = 6) -> float:
    """Median throughput of ``model`` compiled at f32 (LATENCY hint) on batches of ``batch`` 256-px images."""
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})
    images = np.random.default_rng(0).random((batch, 3, 256, 256), dtype=np.float32)
    compiled(images)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        compiled(images)
        seconds.append(time.perf_counter() - start)
    return batch / statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", nargs="+", required=True, help="MODEL=checkpoint, MODEL one of GANomaly EGBAD AnoGAN")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    from ganad_plugin import models

    torch.set_num_threads(torch.get_num_threads())
    print(f"`python benchmarks/export_speed.py --ckpt {' '.join(args.ckpt)} --repeats {args.repeats}` "
          f"({torch.get_num_threads()} threads)\n")
    print("| model | anomalib's route (ONNX) s | plugin's route (trace) s | x faster | operations ONNX / trace "
          "| largest score or map difference | IR images/s ONNX / trace |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.ckpt:
        name, _, path = spec.partition("=")
        model = getattr(models, name).load_from_checkpoint(path, map_location="cpu").eval()
        onnx_s, onnx_model = route_seconds(lambda m=model: m.openvino_model(onnx_kwargs={"opset_version": 14}),
                                           args.repeats)
        trace_s, trace_model = route_seconds(model.openvino_model, args.repeats)
        print(f"| {name} | {onnx_s:.1f} | {trace_s:.1f} | {onnx_s / trace_s:.2f} | "
              f"{len(onnx_model.get_ordered_ops())} / {len(trace_model.get_ordered_ops())} | "
              f"{largest_difference(onnx_model, trace_model):.1e} | "
              f"{images_per_second(onnx_model):.2f} / {images_per_second(trace_model):.2f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
