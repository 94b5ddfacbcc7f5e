"""The Gaussian smoothing of the evidence maps in its two forms: two 1-D convolutions, or two matrix products with
the blur's matrix along each axis (``GaussianSmoothing``, which picks one by the kernel's span against the map).

    python benchmarks/smoothing_speed.py [--threads 1] [--repeats 20] [--write]

Times one map of 3 channels (a colour residual) at the scorer's two scales (sigma 3 px: the smoothing; 48 px: the
residual's background) and two sizes, in torch eager and compiled by OpenVINO at f32 (as ``ganad infer`` runs the
evidence), and checks that both forms give the same map. With --write the table goes to docs/speed.md between
generated markers, under the command that made it.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sample_sets import write_generated_block  # noqa: E402

from ganad_plugin.models.components.scoring import GaussianSmoothing  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FORMS = {"convolutions": float("inf"), "matrix products": 0.0}  # MATRIX_FROM_SPAN forcing each form


def median_ms(run, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def smoothing(sigma: float, form: str) -> GaussianSmoothing:
    module = GaussianSmoothing(sigma).eval()
    module.MATRIX_FROM_SPAN = FORMS[form]
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    core = ov.Core()
    lines = ["| sigma px | taps | map px | form | torch ms | OpenVINO f32 ms | chosen by default |",
             "|---:|---:|---:|---|---:|---:|---|"]
    for sigma in (3.0, 48.0):
        for size in (256, 512):
            maps = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
            outputs = {}
            for form in FORMS:
                module = smoothing(sigma, form)
                with torch.no_grad():
                    outputs[form] = module(maps)
                    torch_ms = median_ms(lambda module=module: module(maps), args.repeats)
                compiled = core.compile_model(ov.convert_model(module, example_input=maps), "CPU", {
                    "INFERENCE_NUM_THREADS": args.threads, "INFERENCE_PRECISION_HINT": "f32"})
                request, array = compiled.create_infer_request(), maps.numpy()
                ov_ms = median_ms(lambda request=request, array=array: request.infer([array]), args.repeats)
                openvino_map = next(iter(request.results.values()))
                np.testing.assert_allclose(openvino_map, outputs[form].numpy(), atol=1e-4)
                default = GaussianSmoothing(sigma)
                chosen = default.uses_matrices(size, size) == (form == "matrix products")
                lines.append(f"| {sigma:g} | {default.kernel.shape[-1]} | {size} | {form} | {torch_ms:.1f} | "
                             f"{ov_ms:.1f} | {'yes' if chosen else ''} |")
            torch.testing.assert_close(outputs["matrix products"], outputs["convolutions"], atol=1e-5, rtol=1e-4)
    table = "\n".join(lines) + (
        f"\n\nOne map of 3 channels, batch 1, {args.threads} thread(s), median of {args.repeats} runs; both forms "
        "give the same map (checked to 1e-5).")
    print(table)
    if args.write:
        command = shlex.join(["python", "benchmarks/smoothing_speed.py", *sys.argv[1:]])
        write_generated_block(REPO / "docs" / "speed.md", "smoothing_speed.py", f"Made by `{command}`.\n\n{table}",
                              "Speed")


if __name__ == "__main__":
    main()
