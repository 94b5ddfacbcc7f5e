"""Probe: how an IR's time splits over the model's parts (the traced module each layer came from).

    python benchmarks/module_share_probe.py --xml EGBAD=<model.xml> AnoGAN=... [--folder sample_data/weave/test/good]

Each IR is compiled as `ganad infer` compiles it (precision ``auto``), with OpenVINO's performance counters, and runs
batches of 8 images of ``--folder``; each runtime layer's time goes to the module its name was traced from
(``__module.model.<part>``: the generator, encoder, discriminator, defect heads, memory, colour statistics, scorer).
OpenVINO renames some layers when it fuses them (a convolution with its batch norm): those are counted by type,
as "(renamed: <type>)". Prints milliseconds an image and the share of the sum of the layers' times. Speed only: no
image is scored.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

import cv2
import numpy as np
import openvino as ov

from ganad_plugin.edge.images import list_images, read_rgb
from ganad_plugin.edge.precision import choose_precision

PART = re.compile(r"__module\.model\.(\w+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xml", nargs="+", required=True, help="MODEL=path/to/model.xml")
    parser.add_argument("--folder", type=Path, default=Path("sample_data/weave/test/good"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    pictures = [cv2.resize(read_rgb(path), (256, 256), interpolation=cv2.INTER_AREA)
                for path in list_images(args.folder)[:8]]
    array = np.stack([(picture.astype(np.float32) / 255).transpose(2, 0, 1) for picture in pictures])
    core = ov.Core()
    capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    for entry in args.xml:
        name, xml = entry.split("=", 1)
        model = core.read_model(xml)
        precision = choose_precision("auto", model, capabilities)
        compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision,
                                                     "PERF_COUNT": True, "INFERENCE_NUM_THREADS": args.threads})
        request = compiled.create_infer_request()
        for _ in range(2):
            request.infer({0: array})
        seconds: collections.Counter[str] = collections.Counter()
        for _ in range(args.runs):
            request.infer({0: array})
            for layer in request.profiling_info:
                found = PART.search(layer.node_name)
                seconds[found.group(1) if found else f"(renamed: {layer.node_type})"] += layer.real_time.total_seconds()
        total = sum(seconds.values())
        print(f"\n{name} ({xml}, precision {precision}, {args.threads} threads, batches of {len(array)}):\n")
        print("| part | ms an image | share |\n|---|---|---|")
        for part, spent in seconds.most_common():
            if spent / total >= 0.005:
                print(f"| {part} | {1000 * spent / (args.runs * len(array)):.2f} | {100 * spent / total:.1f} % |")


if __name__ == "__main__":
    main()
