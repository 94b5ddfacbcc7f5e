"""Speed and memory, side by side in one run: training, the whole fit to the config's accuracy, and edge inference.

    python benchmarks/speed.py [--models GANomaly EGBAD AnoGAN] [--category weave] [--sections train fit edge profile]
                               [--ckpt MODEL=PATH ...] [--write]

Sections (all on --threads CPU threads, 2 by default):
  train  steady-state training throughput (images/s: median step after warm-up steps) of each model's config
         (configs/<model>.yaml's network, sampling and batch size) and of anomalib's own Ganomaly at the same image
         size and width (its default batch of 32), through Lightning as the CLI trains; and the ratio.
  fit    the whole `ganad train --config configs/<model>.yaml` on the category, as a user runs it: seconds of the fit
         (anomalib's timer: training, memory, calibration and validation), the test's image and pixel AUROC, and
         the peak memory (RSS) of the process.
  edge   the model trained by `fit` (or given by --ckpt), exported to an FP32 OpenVINO IR: its FLOPs per image
         (counted from the IR's convolutions and matrix products), single-image latency and batch throughput of
         the plugin's runtime (``EdgeInferencer``, as `ganad infer` runs it), of anomalib's ``OpenVINOInferencer``
         on the same IR and images, and of torch eager; the FLOP/s achieved against this machine's dense float32
         matrix-product peak measured in the same run; and the peak RSS of an edge process.
  profile  what bounds the edge figures: each IR the edge section exported, compiled as `ganad infer` compiles it,
         layer by layer (OpenVINO's performance counters): the time of each kind of layer (the networks'
         convolutions, the evidence's, the memory's matrix products, layout and precision conversions,
         element-wise layers, reductions, resizes), the convolutions' and products' FLOP/s in their own time against
         float32 and bf16 matrix-product peaks, and the IR's images/s under each runtime setting (latency or
         throughput hint, batch, requests in flight).
With --write the tables go to docs/speed.md between generated markers, under the command that made them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from lightning.pytorch import Callback, Trainer
from sample_sets import REPO, category_root, newest_first, train_with_cli, write_generated_block

MODELS = ("GANomaly", "EGBAD", "AnoGAN")


class StepTimer(Callback):
    """Seconds of each training step (batch start to batch end)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, *args) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def config_of(model: str) -> dict:
    return yaml.safe_load((REPO / "configs" / f"{model.lower()}.yaml").read_text())


def model_from_config(name: str, init_args: dict):
    """The plugin model of a config's ``model.init_args`` (its settings groups as their dataclasses)."""
    import ganad_plugin.models
    from ganad_plugin.models.components import settings

    groups = {"network": settings.PatchNetwork, "sampling": settings.PatchSampling,
              "optimiser": settings.AdamSettings, "evidence": settings.Evidence}
    arguments = {key: groups[key](**value) if key in groups else value for key, value in init_args.items()}
    return getattr(ganad_plugin.models, name)(**arguments)


def steady_training(model, root: Path, category: str, batch_size: int, steps: int, warmup: int) -> float:
    """Images per second of ``model``'s training steps: ``batch_size`` over the median step after ``warmup``."""
    from anomalib.data import MVTecAD

    datamodule = MVTecAD(root=root, category=category, train_batch_size=batch_size, eval_batch_size=batch_size,
                         num_workers=0, val_split_mode="none")
    timer = StepTimer()
    trainer = Trainer(accelerator="cpu", devices=1, max_steps=warmup + steps, limit_val_batches=0, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, callbacks=[timer])
    datamodule.setup()
    trainer.fit(model, train_dataloaders=datamodule.train_dataloader())
    return batch_size / statistics.median(timer.seconds[warmup:])


def train_section(args: argparse.Namespace, root: Path) -> str:
    import anomalib.models

    from ganad_plugin.models.components.hardware import cpu_has_bf16

    rows = []
    width = None
    for name in args.models:
        config = config_of(name)
        init = config["model"]["init_args"]
        batch = config["data"]["init_args"]["train_batch_size"]
        width = width or init["network"]["n_features"]
        # the config trains in bf16 where the CPU has the units (training_precision auto): float32 beside it
        variants = {"config": init}
        if init.get("training_precision", "auto") == "auto" and cpu_has_bf16():
            variants = {"config, bf16 training": init, "float32 training": {**init, "training_precision": "float32"}}
        for label, arguments in variants.items():
            speed = steady_training(model_from_config(name, arguments), root, args.category, batch, args.steps,
                                    args.warmup)
            rows.append((f"{name} ({label})", batch, speed))
            print(f"train {name} ({label}): {speed:.1f} images/s", flush=True)
    theirs = steady_training(anomalib.models.Ganomaly(batch_size=32, n_features=width), root, args.category, 32,
                             max(args.steps // 4, 3), 2)
    rows.append((f"anomalib Ganomaly (256 px, width {width})", 32, theirs))
    lines = ["| model | batch | training images/s | x anomalib Ganomaly |", "|---|---|---|---|"]
    lines += [f"| {name} | {batch} | {speed:.1f} | {speed / theirs:.2f} |" for name, batch, speed in rows]
    return "\n".join(lines)


def peak_rss_gib(pid: int | str = "self") -> float:
    """The peak resident memory of a process so far (its VmHWM; unlike getrusage's maxrss, not inherited from the
    parent across fork and exec)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


class ChildrenPeakMemory:
    """Polls the peak resident memory of this process's children (e.g. a `ganad train` subprocess) while in use."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.peak_gib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _children(self) -> list[str]:
        me = str(os.getpid())
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if stat.read_text().rsplit(")", 1)[1].split()[1] == me:
                    found.append(stat.parent.name)
            except (OSError, IndexError):
                continue
        return found

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            for pid in self._children():
                try:
                    self.peak_gib = max(self.peak_gib, peak_rss_gib(pid))
                except OSError:
                    continue

    def __enter__(self) -> ChildrenPeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *args) -> None:
        self._stop.set()
        self._thread.join()


def fit_section(args: argparse.Namespace, root: Path) -> tuple[str, dict[str, Path]]:
    lines = ["| model | fit s | whole command s | test image AUROC | test pixel AUROC | peak RSS GiB |",
             "|---|---|---|---|---|---|"]
    checkpoints = {}
    for name in args.models:
        out = REPO / "results" / "speed" / name.lower() / args.category
        with ChildrenPeakMemory() as memory:
            ckpt, seconds, metrics = train_with_cli(name, args.category, root, out, seed=args.seed)
        rss = f"{memory.peak_gib:.2f}"
        checkpoints[name] = ckpt
        lines.append(f"| {name} | {metrics.get('fit_seconds', float('nan')):.0f} | {seconds:.0f} | "
                     f"{metrics.get('image_AUROC', float('nan')):.3f} | {metrics.get('pixel_AUROC', float('nan')):.3f} "
                     f"| {rss} |")
        print(lines[-1], flush=True)
    return "\n".join(lines), checkpoints


def gemm_peak(threads: int, size: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """This machine's dense matrix-product rate (FLOP/s) on ``threads`` threads in ``dtype``, the best of
    ``repeats`` (in bf16: what a CPU's bf16 units or AMX tiles reach; emulated, and slow, without them)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def ir_flops(xml: Path) -> float:
    """FLOPs per image of an IR's convolutions, transposed convolutions and matrix products (2 per multiply-add),
    read from its layers' static shapes (a batch-1 reshape)."""
    return sum(ir_flops_by_part(xml).values())


def ir_flops_by_part(xml: Path) -> dict[str, float]:
    """``ir_flops`` split into the networks' convolutions, the evidence's convolutions (smoothing, colour windows;
    ``edge.precision.runs_low`` tells them apart by name) and the matrix products (the feature memory's search)."""
    import openvino as ov

    from ganad_plugin.edge.precision import runs_low

    model = ov.Core().read_model(xml)
    model.reshape([1, 3, 256, 256])
    parts = dict.fromkeys(("networks", "evidence convolutions", "matrix products"), 0.0)
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind in ("Convolution", "GroupConvolution"):
            weights = op.input(1).get_shape()  # [O, I, kh, kw] (grouped: [G, O/G, I/G, kh, kw])
            flops = 2 * np.prod(list(op.output(0).get_shape())) * np.prod(list(weights)[-3:])
        elif kind == "ConvolutionBackpropData":
            weights = list(op.input(1).get_shape())  # [I, O, kh, kw]: each input value spreads over O * kh * kw
            flops = 2 * np.prod(list(op.input(0).get_shape())) * np.prod(weights[1:])
        elif kind == "MatMul":
            a = list(op.input(0).get_shape())
            inner = a[-2] if op.get_transpose_a() else a[-1]
            parts["matrix products"] += float(2 * np.prod(list(op.output(0).get_shape())) * inner)
            continue
        else:
            continue
        parts["networks" if runs_low(kind, op.get_friendly_name()) else "evidence convolutions"] += float(flops)
    return parts


EDGE_SCRIPT = r"""
import json, statistics, sys, time
from pathlib import Path
import numpy as np
from ganad_plugin.edge.images import list_images, read_rgb
from ganad_plugin.edge.runtime import EdgeInferencer
xml, folder, batch, runs, which = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
images = [read_rgb(path) for path in list_images(folder)[: 4 * batch]]
if which == "plugin":
    latency_model = EdgeInferencer(xml, performance_hint="LATENCY")
    throughput_model = EdgeInferencer(xml, performance_hint="THROUGHPUT")
    single = lambda image: latency_model.predict_batch([image])
    many = lambda group: throughput_model.predict_batch(group)
else:
    from anomalib.deploy import OpenVINOInferencer
    inferencer = OpenVINOInferencer(xml, device="CPU")
    single = lambda image: inferencer.predict(image)
    many = lambda group: [inferencer.predict(image) for image in group]
def median(run, items, count):
    run(items[0]); run(items[0])
    times = []
    for index in range(count):
        start = time.perf_counter(); run(items[index % len(items)]); times.append(time.perf_counter() - start)
    return statistics.median(times)
groups = [images[i : i + batch] for i in range(0, len(images) - batch + 1, batch)]
latency = median(single, images, runs)
batch_seconds = median(many, groups, max(runs // 4, 3))
hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
print(json.dumps({"latency_ms": 1000 * latency, "images_per_s": batch / batch_seconds,
                  "peak_rss_gib": int(hwm.split()[1]) / 2**20}))
"""


ANOMALIB_STREAM = r"""
import sys
from pathlib import Path
from anomalib.deploy import OpenVINOInferencer
inferencer = OpenVINOInferencer(sys.argv[1])  # its defaults (device AUTO)
for path in sorted(Path(sys.argv[2]).iterdir()):
    inferencer.predict(path)
"""


def stream_folder(source: Path, count: int, target: Path) -> Path:
    """A folder of ``count`` images, the files of ``source`` copied in turn (a line's stream of parts)."""
    from ganad_plugin.edge.images import list_images

    files = list_images(source)
    target.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        shutil.copyfile(files[index % len(files)], target / f"{index:05d}{files[index % len(files)].suffix}")
    return target


def whole_process_seconds(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def steady_state_rates(xml: Path, source: Path, count: int, work: Path, repeats: int = 1) -> dict[str, list[float]]:
    """Images/s of whole processes, startup cancelled out: ``count`` more images / the extra seconds that a run on
    2 * ``count`` images takes over one on ``count``, once per repeat (the two runtimes take turns, so that a slow
    spell of the machine does not fall on one of them only). `ganad infer` with its defaults (THROUGHPUT, batches
    of 8, overlays of every image) against a loop over anomalib's ``OpenVINOInferencer.predict`` with its
    defaults. A difference of two process times carries each process's startup noise: one repeat of 48 images
    moved the ratio by a fifth between runs (docs/speed.md)."""
    rates: dict[str, list[float]] = {}
    folders = {n: stream_folder(source, n, work / f"stream_{n}") for n in (count, 2 * count)}
    runs = {
        "ganad infer": lambda folder: [sys.executable, "-m", "ganad_plugin.cli", "infer", "--model", str(xml),
                                       "--input", str(folder), "--output", str(work / f"out_{folder.name}")],
        "anomalib OpenVINOInferencer": lambda folder: [sys.executable, "-c", ANOMALIB_STREAM, str(xml), str(folder)],
    }
    for _ in range(repeats):
        for name, command in runs.items():
            for n in folders:
                shutil.rmtree(work / f"out_stream_{n}", ignore_errors=True)  # ganad infer appends to its results
            # run in the work folder: anomalib's inferencer leaves an openvino_cache/ where it runs
            seconds = {n: whole_process_seconds(command(folder), work) for n, folder in folders.items()}
            rates.setdefault(name, []).append(count / (seconds[2 * count] - seconds[count]))
    return rates


def edge_section(args: argparse.Namespace, root: Path, checkpoints: dict[str, Path]) -> str:
    from anomalib.deploy import ExportType
    from anomalib.engine import Engine

    import ganad_plugin.models

    peak = gemm_peak(args.threads)
    lines = [f"Dense float32 matrix product (2048 x 2048, {args.threads} threads): **{peak / 1e9:.0f} GFLOP/s** "
             "(this machine's peak for the table's last column).", "",
             "| model | IR GFLOP / image | runtime | latency ms | batch images/s | x torch | x anomalib | "
             "GFLOP/s | % of peak | peak RSS GiB |", "|---|---|---|---|---|---|---|---|---|---|"]
    folder = root / args.category / "test" / "good"
    exported = {}
    for name in args.models:
        model = getattr(ganad_plugin.models, name).load_from_checkpoint(checkpoints[name]).eval()
        out = REPO / "results" / "speed" / name.lower() / "export"
        xml = Path(Engine(logger=False, default_root_dir=out).export(model, ExportType.OPENVINO, export_root=out))
        exported[name] = xml
        flops = ir_flops(xml)
        results = {}
        for which in ("plugin", "anomalib"):
            command = [sys.executable, "-c", EDGE_SCRIPT, str(xml), str(folder), str(args.batch_size),
                       str(args.runs), which]
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False,
                                  env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            if done.returncode != 0:
                raise SystemExit(f"edge timing of {name} ({which}) failed:\n{done.stderr[-3000:]}")
            results[which] = json.loads(done.stdout.strip().splitlines()[-1])
        eager = torch_eager(model, folder, args)
        results["torch eager"] = eager
        for which in ("plugin", "anomalib", "torch eager"):
            result = results[which]
            rate = flops * result["images_per_s"]
            lines.append(f"| {name} | {flops / 1e9:.2f} | {which} | {result['latency_ms']:.1f} | "
                         f"{result['images_per_s']:.1f} | {result['images_per_s'] / eager['images_per_s']:.2f} | "
                         f"{result['images_per_s'] / results['anomalib']['images_per_s']:.2f} | {rate / 1e9:.1f} | "
                         f"{100 * rate / peak:.0f} | {result.get('peak_rss_gib', float('nan')):.2f} |")
            print(lines[-1], flush=True)
    lines += ["", f"Whole processes on a stream of {args.stream} and {2 * args.stream} copies of the test images "
              "(steady state, startup cancelled out: the extra images over the extra seconds), "
              f"{args.stream_repeats} time(s), the runtimes taking turns; the median of the repeats, (min-max):", "",
              "| model | `ganad infer` (defaults, overlays of every image) images/s | anomalib `OpenVINOInferencer` "
              "(defaults) images/s | ratio of the medians | ratio per repeat |", "|---|---|---|---|---|"]

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

    for name, xml in exported.items():
        rates = steady_state_rates(xml, folder, args.stream, REPO / "results" / "speed" / name.lower(),
                                   args.stream_repeats)
        ours, theirs = rates["ganad infer"], rates["anomalib OpenVINOInferencer"]
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        lines.append(f"| {name} | {spread(ours)} | {spread(theirs)} | "
                     f"{statistics.median(ours) / statistics.median(theirs):.2f} | "
                     f"{min(ratios):.2f}-{max(ratios):.2f} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


PROFILE_SCRIPT = r"""
import collections, json, sys, time
from pathlib import Path
import cv2, numpy as np, openvino as ov
from ganad_plugin.edge.images import list_images, read_rgb
from ganad_plugin.edge.precision import EVIDENCE_MODULES, choose_precision
from ganad_plugin.edge.runtime import BatchRunner
xml, folder, batch, runs, threads = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
core = ov.Core()
model = core.read_model(xml)
precision = choose_precision("auto", model, list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")))
pictures = [cv2.resize(read_rgb(path), (256, 256), interpolation=cv2.INTER_AREA) for path in list_images(folder)[:batch]]
array = np.stack([(picture.astype(np.float32) / 255).transpose(2, 0, 1) for picture in pictures])
DATA = {"Concat", "Reshape", "Transpose", "Gather", "Split", "VariadicSplit", "StridedSlice", "Slice", "Pad",
        "Broadcast", "Tile", "Squeeze", "Unsqueeze", "ShapeOf", "ScatterUpdate", "TopK"}
def part(kind, name):
    if kind in ("Convolution", "ConvolutionBackpropData", "GroupConvolution", "Deconvolution"):
        return "evidence convolutions" if EVIDENCE_MODULES.search(name) else "networks' convolutions"
    if kind in ("FullyConnected", "MatMul"):
        return "matrix products"
    if kind in ("Reorder", "Convert"):
        return "conversions"
    if kind.startswith("Reduce"):
        return "reductions"
    if kind == "Interpolate":
        return "resizes"
    if kind in DATA:
        return "data movement"
    return None if kind in ("Parameter", "Result", "Constant", "Input", "Output") else "element-wise"
compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision,
                                             "PERF_COUNT": True, "INFERENCE_NUM_THREADS": int(threads)})
request = compiled.create_infer_request()
request.infer({0: array})
request.infer({0: array})
parts, kinds, products = collections.Counter(), collections.Counter(), collections.Counter()
for _ in range(runs):
    request.infer({0: array})
    for layer in request.profiling_info:
        seconds = layer.real_time.total_seconds()
        which = part(layer.node_type, layer.node_name)
        if which is not None and seconds > 0:
            parts[which] += seconds / (runs * batch)
            kinds[f"{layer.node_type} ({layer.exec_type})"] += seconds / (runs * batch)
            if which == "matrix products":
                products[layer.exec_type] += seconds
def rate(hint, requests, size):
    compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": precision,
                                                 "INFERENCE_NUM_THREADS": int(threads)})
    queue = ov.AsyncInferQueue(compiled, requests)
    inputs = np.ascontiguousarray(array[:size])
    for _ in range(2 * requests):
        queue.start_async({0: inputs})
    queue.wait_all()
    count = max(4, 4 * batch // size)
    start = time.perf_counter()
    for _ in range(count):
        queue.start_async({0: inputs})
    queue.wait_all()
    return size * count / (time.perf_counter() - start)
settings = {"LATENCY, one request of 1 image": rate("LATENCY", 1, 1),
            f"LATENCY, one request of {batch} images": rate("LATENCY", 1, batch),
            "THROUGHPUT, 2 requests of 1 image in flight": rate("THROUGHPUT", 2, 1),
            f"THROUGHPUT, 2 requests of {batch // 2} images in flight": rate("THROUGHPUT", 2, batch // 2),
            "THROUGHPUT, 4 requests of 1 image in flight": rate("THROUGHPUT", 4, 1)}
print(json.dumps({"precision": precision, "parts": parts, "kinds": dict(kinds.most_common(6)), "settings": settings,
                  "products_kernel": products.most_common(1)[0][0] if products else ""}))
"""
PROFILE_PARTS = ("networks' convolutions", "evidence convolutions", "matrix products", "conversions", "element-wise",
                 "reductions", "resizes", "data movement")


def profile_section(args: argparse.Namespace, root: Path) -> str:
    """Where an IR's time goes, layer by layer (OpenVINO's performance counters, compiled as ``ganad infer``
    compiles it), the rate of its convolutions and matrix products in their own time, and its throughput under
    every runtime setting either runtime could choose: what bounds the edge tables' figures."""
    folder = root / args.category / "test" / "good"
    peak, peak_bf16 = gemm_peak(args.threads), gemm_peak(args.threads, dtype=torch.bfloat16)
    lines = [(f"Dense matrix products (2048 x 2048, {args.threads} threads, torch): float32 **{peak / 1e9:.0f} "
              f"GFLOP/s**, bf16 **{peak_bf16 / 1e9:.0f} GFLOP/s**. Each IR as the edge section exported it, compiled "
              f"as `ganad infer` compiles it (precision `auto`), batches of {args.batch_size} test images: the sum of "
              "the layers' times an image, and each kind of layer's share of it."), "",
             "| model | precision | ms an image | " + " | ".join(PROFILE_PARTS) + " |",
             "|---|---|---|" + "---|" * len(PROFILE_PARTS)]
    rates = ["", "The same layers' FLOPs (from the IR's shapes) over their own time, against the peaks above:", "",
             ("| model | networks' convolutions GFLOP / image | their GFLOP/s | % of bf16 peak | matrix products "
              "(the memory's search) GFLOP / image | their GFLOP/s | their kernel | % of that precision's peak | "
              "slowest kinds of layer (ms an image) |"),
             "|---|---|---|---|---|---|---|---|---|"]
    settings = ["", (f"Images/s of each IR under each runtime setting (the same precision, {args.threads} threads; "
                     "asynchronous requests kept in flight):"), ""]
    for name in args.models:
        xml = REPO / "results" / "speed" / name.lower() / "export" / "weights" / "openvino" / "model.xml"
        if not xml.is_file():
            raise SystemExit(f"{xml}: no IR of {name}; run the edge section first (python benchmarks/speed.py "
                             f"--sections edge)")
        command = [sys.executable, "-c", PROFILE_SCRIPT, str(xml), str(folder), str(args.batch_size),
                   str(max(args.runs // 4, 3)), str(args.threads)]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False,
                              env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        if done.returncode != 0:
            raise SystemExit(f"profile of {name} failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        parts = {part: result["parts"].get(part, 0.0) for part in PROFILE_PARTS}
        total = sum(parts.values())
        lines.append(f"| {name} | {result['precision']} | {1000 * total:.1f} | " + " | ".join(
            f"{1000 * seconds:.1f} ({100 * seconds / total:.0f} %)" for seconds in parts.values()) + " |")
        flops = ir_flops_by_part(xml)
        network_rate = flops["networks"] / max(parts["networks' convolutions"], 1e-12)
        product_rate = flops["matrix products"] / max(parts["matrix products"], 1e-12)
        slowest = ", ".join(f"{kind} {1000 * seconds:.1f}" for kind, seconds in list(result["kinds"].items())[:4])
        kernel = result["products_kernel"]
        product_peak = peak_bf16 if "bf16" in kernel else peak
        rates.append(f"| {name} | {flops['networks'] / 1e9:.2f} | {network_rate / 1e9:.0f} | "
                     f"{100 * network_rate / peak_bf16:.0f} | {flops['matrix products'] / 1e9:.2f} | "
                     f"{product_rate / 1e9:.0f} | `{kernel}` | {100 * product_rate / product_peak:.0f} | {slowest} |")
        if len(settings) == 3:
            settings += ["| model | " + " | ".join(result["settings"]) + " |", "|---|" + "---|" * len(result["settings"])]
        settings.append(f"| {name} | " + " | ".join(f"{value:.1f}" for value in result["settings"].values()) + " |")
        for line in (lines[-1], rates[-1], settings[-1]):
            print(line, flush=True)
    return "\n".join(lines + rates + settings)


def torch_eager(model, folder: Path, args: argparse.Namespace) -> dict[str, float]:
    """torch eager under inference mode on the same images (resized to the model's input, as the IR takes them)."""
    import cv2

    from ganad_plugin.edge.images import list_images, read_rgb

    torch.set_num_threads(args.threads)
    images = [cv2.resize(read_rgb(path), (256, 256), interpolation=cv2.INTER_AREA)
              for path in list_images(folder)[: 4 * args.batch_size]]
    tensors = [torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255 for image in images]
    batches = [torch.cat(tensors[i : i + args.batch_size]) for i in range(0, len(tensors) - args.batch_size + 1,
                                                                          args.batch_size)]

    def median(items: list[torch.Tensor], count: int) -> float:
        with torch.inference_mode():
            model(items[0])
            seconds = [_timed(lambda item=items[index % len(items)]: model(item)) for index in range(count)]
        return statistics.median(seconds)

    return {"latency_ms": 1000 * median(tensors, args.runs),
            "images_per_s": args.batch_size / median(batches, max(args.runs // 4, 3))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    parser.add_argument("--category", default="weave")
    sections = ["train", "fit", "edge", "profile"]
    parser.add_argument("--sections", nargs="*", default=sections, choices=sections)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps a model (after --warmup)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="edge batch size")
    parser.add_argument("--runs", type=int, default=20, help="timed edge calls (a quarter of them for batches)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--stream", type=int, default=48, help="images of the shorter whole-process edge run")
    parser.add_argument("--stream-repeats", type=int, default=3,
                        help="times each runtime's pair of whole-process runs is repeated (the median is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ckpt", nargs="*", default=[], metavar="MODEL=PATH",
                        help="edge section without a fit: the checkpoint of each model (default: the newest an earlier "
                             "fit section left under results/speed)")
    parser.add_argument("--write", action="store_true", help="write the tables to docs/speed.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = category_root(args.category).parent
    command = " ".join(["python benchmarks/speed.py", *sys.argv[1:]])
    blocks = {}
    if "train" in args.sections:
        blocks["speed.py train"] = train_section(args, root)
    checkpoints = {}
    if "fit" in args.sections:
        blocks["speed.py fit"], checkpoints = fit_section(args, root)
    if "edge" in args.sections:
        for item in args.ckpt:
            name, _, path = item.partition("=")
            if name not in args.models or not Path(path).is_file():
                parser.error(f"--ckpt {item}: expected MODEL=PATH with MODEL one of {args.models} and PATH a file")
            checkpoints.setdefault(name, Path(path))
        for name in args.models:  # without a fit in this run: the newest checkpoint an earlier run left
            if name not in checkpoints:
                found = newest_first(REPO / "results" / "speed" / name.lower() / args.category)
                if not found:
                    parser.error(f"no checkpoint of {name} under results/speed: run the fit section or give --ckpt")
                checkpoints[name] = found[0]
        blocks["speed.py edge"] = edge_section(args, root, checkpoints)
    if "profile" in args.sections:
        blocks["speed.py profile"] = profile_section(args, root)
    for name, table in blocks.items():
        print(f"\n{name}\n{table}")
        if args.write:
            write_generated_block(REPO / "docs" / "speed.md", name,
                                  f"Made by `{command}` ({args.threads} threads, category {args.category}).\n\n{table}",
                                  "Speed and memory")
    if args.write:
        print(f"wrote {REPO / 'docs' / 'speed.md'}")


if __name__ == "__main__":
    main()
