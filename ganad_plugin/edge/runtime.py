"""Run an exported ganad-plugin OpenVINO IR on images: score, label, anomaly map, mask, defect regions."""

from __future__ import annotations

import collections
import hashlib
import json
import math
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import openvino as ov

from .images import InputError, read_rgb
from .precision import choose_precision
from .regions import find_regions

REQUIRED_OUTPUTS = ("pred_score", "anomaly_map")
# anomalib's PostProcessor normalises scores and maps so that the validation threshold lands at 0.5
NORMALISED_THRESHOLD = 0.5
# written by ``ganad calibrate`` beside model.xml: thresholds set from normal images at a false-alarm rate
THRESHOLDS_FILE = "thresholds.json"

__all__ = ["EdgeInferencer", "ImageResult", "InputError", "ModelFormatError"]


class ModelFormatError(ValueError):
    """The IR is missing or is not an anomalib/ganad-plugin export."""


@dataclass
class ImageResult:
    """What the inferencer says about one image; maps and mask are at the input image's size."""

    path: str
    score: float
    label: bool
    threshold: float
    pixel_threshold: float
    anomaly_map: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    regions: list[dict]
    # set when the model gave a non-finite score or map: the image was not really scored, and ``label`` is
    # True (NG) so that code that reads only the label sends the part to a person instead of passing it
    error: str | None = None

    def to_json(self) -> dict:
        """The results.jsonl record; an unscored image's record has ``error`` and no score or label."""
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {
            "path": self.path,
            "score": round(self.score, 6),
            "label": self.label,
            "threshold": self.threshold,
            "pixel_threshold": self.pixel_threshold,
            "regions": self.regions,
        }


class Pipeline:
    """Images in flight through one set of requests: ``submit`` one [3, H, W] array (it blocks while every request is
    busy), ``result`` waits for a submitted image's (score [1], map [1, 1, H, W]); ``close`` waits for what is still
    running and gives the requests back. Results may be taken in any order, each once."""

    def __init__(self, runner: BatchRunner) -> None:
        self.runner = runner
        self.requests = runner.take_requests()
        self.finished: dict[int, tuple[np.ndarray, np.ndarray] | BaseException] = {}
        self.ready = threading.Condition()
        self.submitted = 0
        self.requests.set_callback(self._collect)

    def _collect(self, request: ov.InferRequest, ticket: int) -> None:  # on OpenVINO's thread: must not raise
        try:
            outcome: tuple[np.ndarray, np.ndarray] | BaseException = (
                request.get_tensor(self.runner.score_output).data.reshape(-1).copy(),
                request.get_tensor(self.runner.map_output).data.copy())
        except BaseException as error:  # noqa: BLE001 - handed to the thread that waits for this result
            outcome = error
        with self.ready:
            self.finished[ticket] = outcome
            self.ready.notify_all()

    def submit(self, tensor: np.ndarray) -> int:
        ticket = self.submitted
        self.requests.start_async({0: np.ascontiguousarray(tensor[None])}, ticket)
        self.submitted += 1
        return ticket

    def result(self, ticket: int) -> tuple[np.ndarray, np.ndarray]:
        with self.ready:
            self.ready.wait_for(lambda: ticket in self.finished)
            outcome = self.finished.pop(ticket)
        if isinstance(outcome, tuple):
            return outcome
        msg = f"the runtime failed on an image: {outcome}"
        raise RuntimeError(msg) from outcome

    def close(self) -> None:
        self.requests.wait_all()
        self.runner.idle.put(self.requests)


class BatchRunner:
    """Runs [N, 3, H, W] arrays through a compiled ganad-plugin IR -> (scores [N], maps [N, 1, H, W]).

    Each image goes in a request of its own, and as many requests are kept in flight as the compiled model's
    performance hint calls for (one for LATENCY, one a stream for THROUGHPUT): on the CPUs measured, requests of
    one image run faster than one request of the whole batch or a share of it a stream (``docs/speed.md``, "What
    bounds the edge figures"). ``pipeline`` keeps them busy across a stream of images. Safe to call from several
    threads (two cameras in one process): each call takes a set of requests of its own from a pool.
    """

    def __init__(self, compiled: ov.CompiledModel) -> None:
        self.compiled = compiled
        self.jobs = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.idle: queue.SimpleQueue[ov.AsyncInferQueue] = queue.SimpleQueue()
        self.score_output = compiled.output("pred_score")
        self.map_output = compiled.output("anomaly_map")

    def take_requests(self) -> ov.AsyncInferQueue:
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            return ov.AsyncInferQueue(self.compiled, self.jobs)

    def pipeline(self) -> Pipeline:
        return Pipeline(self)

    def __call__(self, array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pipeline = self.pipeline()
        try:
            tickets = [pipeline.submit(image) for image in array]
            scores, maps = zip(*(pipeline.result(ticket) for ticket in tickets), strict=True)
        finally:
            pipeline.close()
        return np.concatenate(scores), np.concatenate(maps)


def model_identity(model_xml: Path) -> str:
    """``sha256:`` and the first 16 hex digits of the hash of the IR's .xml and .bin: which model made a result."""
    digest = hashlib.sha256()
    for path in (model_xml, model_xml.with_suffix(".bin")):
        if path.is_file():
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16]


class EdgeInferencer:
    """Compiled OpenVINO IR of a ganad-plugin model.

    Args:
        model_xml: path to ``model.xml`` (its ``.bin`` beside it).
        device: OpenVINO device name.
        performance_hint: ``"LATENCY"`` (one image at a time, a camera) or ``"THROUGHPUT"`` (folders): with
            THROUGHPUT, OpenVINO splits the cores into streams and a batch is split over parallel requests, one
            a stream (a single synchronous request would use only one stream's share of the cores).
        threshold: normalised image and pixel threshold, overriding the stored ones. Without it: the
            thresholds in ``thresholds.json`` beside the model (``ganad calibrate``) if there is one, else
            0.5, which is anomalib's validation (F1-adaptive) threshold after normalisation.
        min_region_area_px: defect regions smaller than this are dropped as specks.
        precision: OpenVINO inference precision: ``"auto"`` (bf16 where the device has the units and the IR keeps
            its evidence arithmetic in f32, ``precision.choose_precision``; else f32), ``"f32"``, or ``"bf16"`` /
            ``"f16"`` for the whole graph. ``self.precision`` is the one compiled with.
    """

    def __init__(
        self,
        model_xml: str | Path,
        device: str = "CPU",
        performance_hint: str = "LATENCY",
        threshold: float | None = None,
        min_region_area_px: int = 16,
        precision: str = "auto",
    ) -> None:
        model_xml = Path(model_xml)
        if not model_xml.is_file():
            msg = f"{model_xml}: no such model file"
            raise ModelFormatError(msg)
        core = ov.Core()
        try:
            model = core.read_model(model_xml)
        except RuntimeError as error:
            msg = f"{model_xml}: not a readable OpenVINO IR ({str(error).splitlines()[0]})"
            raise ModelFormatError(msg) from error
        names = {name for output in model.outputs for name in output.get_names()}
        missing = [name for name in REQUIRED_OUTPUTS if name not in names]
        if missing or len(model.inputs) != 1:
            msg = (
                f"{model_xml}: not a ganad-plugin/anomalib export: it has outputs {sorted(names)} and "
                f"{len(model.inputs)} input(s); expected one image input and outputs {list(REQUIRED_OUTPUTS)}"
            )
            raise ModelFormatError(msg)
        shape = model.inputs[0].get_partial_shape()
        if shape.rank.is_dynamic or shape.rank.get_length() != 4 or (shape[1].is_static and shape[1].get_length() != 3):
            msg = f"{model_xml}: input shape {shape} is not [N, 3, H, W]"
            raise ModelFormatError(msg)
        map_shape = model.output("anomaly_map").get_partial_shape()
        if map_shape.rank.is_dynamic or map_shape.rank.get_length() != 4 or (
            map_shape[1].is_static and map_shape[1].get_length() != 1
        ):
            msg = f"{model_xml}: output anomaly_map has shape {map_shape}; expected [N, 1, H, W]"
            raise ModelFormatError(msg)
        self.fixed_size = (
            (shape[2].get_length(), shape[3].get_length()) if shape[2].is_static and shape[3].is_static else None
        )
        # never OpenVINO's own default, which on CPUs with bf16 units rounds the whole graph, maps included, to bf16
        try:
            capabilities = list(core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
        except RuntimeError:
            capabilities = []  # a device that does not say: auto keeps f32
        try:
            precision = choose_precision(precision, model, capabilities)
        except ValueError as error:
            raise ModelFormatError(f"{model_xml}: {error}") from error
        self.precision = precision
        config = {"PERFORMANCE_HINT": performance_hint, "INFERENCE_PRECISION_HINT": precision}
        try:
            self.compiled = core.compile_model(model, device, config)
        except RuntimeError as error:
            reason = str(error).splitlines()[0]
            msg = f"{model_xml}: cannot be compiled for {device} at precision {precision} ({reason})"
            raise ModelFormatError(msg) from error
        self.runner = BatchRunner(self.compiled)
        self.threshold, self.pixel_threshold, self.threshold_source = self._thresholds(model_xml, threshold)
        self.min_region_area_px = min_region_area_px
        self.model_path = model_xml
        self.model_id = model_identity(model_xml)

    @staticmethod
    def _thresholds(model_xml: Path, override: float | None) -> tuple[float, float, str]:
        """(image threshold, pixel threshold, where they came from)."""
        if override is not None:
            if math.isnan(override):
                msg = "--threshold is NaN; give a number (normalised units, 0.5 is the validation threshold)"
                raise ModelFormatError(msg)
            return float(override), float(override), "command line"
        sidecar = model_xml.parent / THRESHOLDS_FILE
        if not sidecar.is_file():
            return NORMALISED_THRESHOLD, NORMALISED_THRESHOLD, "validation (stored in the model)"
        try:
            stored = json.loads(sidecar.read_text(encoding="utf-8"))
            thresholds = float(stored["image_threshold"]), float(stored["pixel_threshold"])
        except (ValueError, KeyError, TypeError, OSError) as error:
            msg = f"{sidecar}: unreadable thresholds ({error!r}); fix or delete it, or rerun 'ganad calibrate'"
            raise ModelFormatError(msg) from error
        for key, value in zip(("image_threshold", "pixel_threshold"), thresholds, strict=True):
            if not math.isfinite(value):
                msg = f"{sidecar}: {key} is {value}, not a finite number; rerun 'ganad calibrate' or delete the file"
                raise ModelFormatError(msg)
        return *thresholds, str(sidecar)

    def _tensor(self, image_rgb: np.ndarray, name: str) -> np.ndarray:
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            msg = f"{name}: expected RGB uint8 [H, W, 3], got {image_rgb.dtype} {image_rgb.shape}"
            raise InputError(msg)
        if self.fixed_size is not None and image_rgb.shape[:2] != self.fixed_size:
            height, width = self.fixed_size
            image_rgb = cv2.resize(image_rgb, (width, height), interpolation=cv2.INTER_AREA)
        return (image_rgb.astype(np.float32) / 255).transpose(2, 0, 1)

    def _result(self, name: str, image_rgb: np.ndarray, score: float, small_map: np.ndarray) -> ImageResult:
        height, width = image_rgb.shape[:2]
        if not (math.isfinite(score) and np.isfinite(small_map).all()):
            # fail closed: a part that was not really scored is never labelled OK
            error = f"{name}: the model gave a non-finite {'score' if not math.isfinite(score) else 'anomaly map'}"
            empty = np.zeros((height, width), np.float32)
            return ImageResult(name, score, True, self.threshold, self.pixel_threshold, empty, empty > 0, [], error)
        anomaly_map = cv2.resize(small_map.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        mask = anomaly_map > self.pixel_threshold
        label = bool(score > self.threshold)
        regions = find_regions(mask, anomaly_map, self.min_region_area_px) if label else []
        return ImageResult(name, score, label, self.threshold, self.pixel_threshold, anomaly_map, mask, regions)

    def predict_batch(self, images_rgb: list[np.ndarray], names: list[str] | None = None) -> list[ImageResult]:
        """RGB uint8 images [H, W, 3], of any sizes -> one ``ImageResult`` each (maps, masks and regions in each
        image's pixels). Every image is checked before any runs."""
        names = names or [f"image{index}" for index in range(len(images_rgb))]
        tensors = [self._tensor(image, name) for image, name in zip(images_rgb, names, strict=True)]
        pipeline = self.runner.pipeline()
        try:
            tickets = [pipeline.submit(tensor) for tensor in tensors]
            return [self._stream_result(pipeline, name, image, ticket)
                    for name, image, ticket in zip(names, images_rgb, tickets, strict=True)]
        finally:
            pipeline.close()

    def predict_array(self, image_rgb: np.ndarray, name: str = "image") -> ImageResult:
        """RGB uint8 [H, W, 3] -> ``ImageResult`` (map, mask and regions in that image's pixels)."""
        return self.predict_batch([image_rgb], [name])[0]

    def predict_file(self, path: str | Path) -> ImageResult:
        return self.predict_array(read_rgb(path), str(path))

    def predict_stream(self, items: Iterable[tuple[str, np.ndarray]], batch_size: int = 1) -> Iterator[ImageResult]:
        """(name, RGB image) pairs -> results in the same order. Up to ``batch_size`` images are in the runtime at
        once, and a new one goes in as soon as the oldest comes out: the requests do not stand idle while a batch is
        gathered and its results written. With 1, each result comes before the next image is read (a camera's or a
        watched folder's)."""
        pipeline = self.runner.pipeline()
        window: collections.deque[tuple[str, np.ndarray, int]] = collections.deque()
        try:
            for name, image in items:
                window.append((name, image, pipeline.submit(self._tensor(image, name))))
                while len(window) >= max(batch_size, 1):
                    yield self._stream_result(pipeline, *window.popleft())
            while window:
                yield self._stream_result(pipeline, *window.popleft())
        finally:
            pipeline.close()

    def _stream_result(self, pipeline: Pipeline, name: str, image: np.ndarray, ticket: int) -> ImageResult:
        """The result of an image submitted to ``pipeline``, in that image's pixels."""
        score, anomaly_map = pipeline.result(ticket)
        return self._result(name, image, float(score[0]), anomaly_map[0, 0])
