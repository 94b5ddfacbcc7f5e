"""``ganad infer``: run an exported model on an image, a folder, a video, a camera or a watched folder; write
results.jsonl (a line per image, each written whole and synced before the next: ``results.ResultLog``) and
overlay PNGs. A rerun continues after the images that already have a result from the same model."""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .images import InputError, image_paths
from .precision import PRECISIONS
from .regions import save_overlay
from .results import ResultLog, ResultLogError, timestamp
from .runtime import EdgeInferencer, ModelFormatError
from .sources import Frame, image_files, open_source, watched_folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="exported model.xml")
    parser.add_argument("--input", required=True, help="an image, a folder of images, a video file or a camera index")
    parser.add_argument("--output", required=True, type=Path, help="folder for results.jsonl and overlays")
    parser.add_argument("--threshold", type=float, default=None,
                        help="normalised threshold for score and map (default: thresholds.json beside the model, "
                        "else the validation threshold, 0.5)")
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--hint", choices=["LATENCY", "THROUGHPUT"], default=None,
                        help="OpenVINO performance hint (default: LATENCY for cameras and single images, else THROUGHPUT)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per inference (default: 1 for LATENCY, 8)")
    parser.add_argument("--min-region-area", type=int, default=16, help="drop regions smaller than this (px)")
    parser.add_argument("--precision", choices=list(PRECISIONS), default="auto",
                        help="OpenVINO inference precision (default auto: bf16 for the networks where the CPU has "
                             "bf16 units and the IR keeps its evidence arithmetic in f32, else f32; bf16 or f16 "
                             "round the whole graph: docs/speed.md)")
    parser.add_argument("--overlays", choices=["all", "ng", "none"], default=None,
                        help="which overlays to write (default: all for images, ng for videos and cameras)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop a video or camera after this many frames")
    parser.add_argument("--watch", action="store_true", help="keep processing new images as they appear in --input")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between looks at a watched folder")
    parser.add_argument("--stop-after-idle", type=float, default=None,
                        help="with --watch: stop when nothing new arrived for this many seconds (default: never)")
    parser.add_argument("--give-up-after", type=float, default=30.0,
                        help="with --watch: report a file as unreadable once it stayed so for this many seconds")
    parser.add_argument("--rescore", action="store_true",
                        help="score images again that results.jsonl already has a result for from this model "
                        "(default: a rerun continues where the last one stopped)")


def _readable(frames: Iterable[Frame], log: ResultLog, model_id: str, counts: dict[str, int]) -> Iterator[Frame]:
    """Frames with pixels; unreadable ones are reported and logged to results.jsonl."""
    for frame in frames:
        if frame.error is not None:
            counts["errors"] += 1
            print(f"\nskipped: {frame.error}", file=sys.stderr)
            log.append(_record({"path": frame.name, "error": str(frame.error)}, frame, model_id))
            continue
        yield frame


def _record(fields: dict, frame: Frame, model_id: str) -> dict:
    """A results.jsonl line: the result's fields, when, which model, and the file's modification time."""
    record = {**fields, "time": timestamp(), "model": model_id}
    if frame.file_mtime_ns is not None:
        record["file_mtime_ns"] = frame.file_mtime_ns
    return record


def overlay_target(overlays: Path, relative: Path) -> Path:
    """``overlays / relative``, refused (``InputError``) when it would land outside the overlay folder."""
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        msg = f"overlay name {str(relative)!r} would be written outside {overlays}; refused"
        raise InputError(msg)
    return overlays / relative


def _scored_before(log: ResultLog, paths: list[Path], model_id: str) -> set[tuple[str, int | None]]:
    """(path, modification time) of the ``paths`` that results.jsonl already has a result for from this model."""
    return {(path, mtime) for path, mtime, model in log.scored({str(p) for p in paths}) if model == model_id}


def _modified_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


class OverlayWriter:
    """Writes overlay PNGs on a thread of its own, so that drawing and encoding them (as long as an inference at
    256 x 256) does not stall the next batch. The queue is bounded: a slow disk slows the run instead of filling
    memory. The first failure (a full disk, a read-only folder) is raised, naming the file, by the next ``put`` or by
    ``close``."""

    def __init__(self, depth: int = 16) -> None:
        self.pending: queue.Queue = queue.Queue(maxsize=depth)
        self.error: OSError | None = None
        self.thread = threading.Thread(target=self._drain, name="overlay-writer", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while (item := self.pending.get()) is not None:
            if self.error is None:
                try:
                    save_overlay(*item)
                except OSError as error:
                    self.error = error

    def put(self, target: Path, image, result) -> None:
        self.raise_error()
        self.pending.put((target, image, result))

    def close(self) -> None:
        """Write what is queued, stop the thread, and raise the first failure."""
        self.pending.put(None)
        self.thread.join()
        self.raise_error()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


def run(args: argparse.Namespace) -> int:
    results_path = args.output / "results.jsonl"
    try:
        if args.watch:  # made once the results log is open (it says which files are done)
            source = watched_folder(Path(args.input), set())
        else:
            source = open_source(args.input, args.max_frames)
        streaming = source.kind != "images"
        hint = args.hint or ("LATENCY" if source.kind == "frames" or source.total == 1 else "THROUGHPUT")
        batch_size = args.batch_size or (1 if hint == "LATENCY" or args.watch else 8)
        inferencer = EdgeInferencer(args.model, args.device, hint, args.threshold, args.min_region_area,
                                    args.precision)
        args.output.mkdir(parents=True, exist_ok=True)
        log = ResultLog(results_path)
    except (ModelFormatError, InputError, ResultLogError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the output folder cannot be made
        print(f"error: {args.output}: cannot be written ({error.strerror or error})", file=sys.stderr)
        return 2
    if log.repaired_bytes:
        print(f"{results_path}: its last line was cut short ({log.repaired_bytes} bytes, a crash while writing); "
              f"removed and kept in {results_path.name}.partial", file=sys.stderr)
    counts = {"images": 0, "ng": 0, "errors": 0}
    if args.watch:
        folder = Path(args.input)
        scored = set() if args.rescore else _scored_before(log, image_paths(folder), inferencer.model_id)
        source = watched_folder(folder, scored, args.poll_interval, args.stop_after_idle, args.give_up_after)
    elif not args.rescore and source.paths:
        scored = _scored_before(log, source.paths, inferencer.model_id)
        remaining = [path for path in source.paths if (str(path), _modified_ns(path)) not in scored]
        if len(remaining) < len(source.paths):
            print(f"{len(source.paths) - len(remaining)} of {len(source.paths)} images already have a result from "
                  f"this model in {results_path}: skipped (--rescore scores them again)", file=sys.stderr)
        if not remaining:
            log.close()
            return 0
        source = image_files(remaining, source.root)
    overlay_policy = args.overlays or ("ng" if streaming and not args.watch else "all")
    overlays = args.output / "overlays"
    print(f"model {inferencer.model_id}; thresholds: image {inferencer.threshold:g}, pixel "
          f"{inferencer.pixel_threshold:g} ({inferencer.threshold_source}); {hint}, batches of {batch_size}, "
          f"{inferencer.precision}",
          file=sys.stderr)
    start = time.perf_counter()
    frames_by_name: dict[str, Frame] = {}

    def pairs() -> Iterator[tuple[str, np.ndarray]]:
        for frame in _readable(source, log, inferencer.model_id, counts):
            frames_by_name[frame.name] = frame
            yield frame.name, frame.image

    # every line is written whole and synced before the next image: an interrupted run keeps what it wrote,
    # and a rerun continues after it
    writer = OverlayWriter()
    status = 0
    try:
        for result in inferencer.predict_stream(pairs(), batch_size):
            frame = frames_by_name.pop(result.path)
            log.append(_record(result.to_json(), frame, inferencer.model_id))
            if result.error is not None:
                counts["errors"] += 1
                print(f"\nnot scored: {result.error}", file=sys.stderr)
                continue
            counts["images"] += 1
            counts["ng"] += int(result.label)
            if overlay_policy == "all" or (overlay_policy == "ng" and result.label):
                try:
                    writer.put(overlay_target(overlays, frame.overlay_name), frame.image, result)
                except InputError as error:
                    print(f"\nno overlay: {error}", file=sys.stderr)
            done = counts["images"] + counts["errors"]
            of = f"/{source.total}" if source.total else ""
            rate = counts["images"] / max(time.perf_counter() - start, 1e-9)
            print(f"\r[{done}{of}] {counts['ng']} NG, {rate:.1f} images/s  {Path(result.path).name}: "
                  f"{'NG' if result.label else 'OK'} {result.score:.3f}   ", end="", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted; results so far are saved", file=sys.stderr)
    except OSError as error:  # results.jsonl or an overlay could not be written (a full disk, a read-only folder)
        print(f"\nerror: {error}\nstopped; every complete line of {results_path} is kept, and a rerun continues "
              "after it", file=sys.stderr)
        status = 3
    finally:
        log.close()
        try:
            writer.close()  # the overlays of every result written so far
        except OSError as error:
            print(f"\nerror: {error}", file=sys.stderr)
            status = 3
    elapsed = time.perf_counter() - start
    rate = counts["images"] / elapsed if elapsed > 0 else 0.0
    print(
        f"\n{counts['images']} {source.kind} scored, {counts['ng']} NG, {counts['errors']} not scored (see 'error' in "
        f"{results_path.name}), {rate:.1f} images/s; results in {results_path}"
        + ("" if overlay_policy == "none" else f", overlays in {overlays}"),
        file=sys.stderr,
    )
    if status:
        return status
    return 0 if counts["images"] or args.watch else 1
