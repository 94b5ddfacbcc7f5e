"""``ganad infer``: run an exported model on an image, a folder, a video, a camera or a watched folder; write
results.jsonl (a line per image, appended and flushed as it goes) and overlay PNGs."""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from pathlib import Path

from .images import InputError
from .regions import save_overlay
from .runtime import EdgeInferencer, ModelFormatError
from .sources import Frame, Source, open_source, watched_folder


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
    parser.add_argument("--overlays", choices=["all", "ng", "none"], default=None,
                        help="which overlays to write (default: all for images, ng for videos and cameras)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop a video or camera after this many frames")
    parser.add_argument("--watch", action="store_true", help="keep processing new images as they appear in --input")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between looks at a watched folder")
    parser.add_argument("--stop-after-idle", type=float, default=None,
                        help="with --watch: stop when nothing new arrived for this many seconds (default: never)")


def _already_done(results_path: Path) -> set[str]:
    """Paths that results.jsonl already has a line for (a restarted --watch does not redo them)."""
    done = set()
    if results_path.is_file():
        for line in results_path.read_text(encoding="utf-8").splitlines():
            try:
                done.add(json.loads(line)["path"])
            except (ValueError, KeyError, TypeError):
                continue
    return done


def _readable(frames: Source, results, counts: dict[str, int]):
    """Frames with pixels, as (name, image); unreadable ones are reported and logged to results.jsonl."""
    for frame in frames:
        if frame.error is not None:
            counts["errors"] += 1
            print(f"\nskipped: {frame.error}", file=sys.stderr)
            results.write(json.dumps({"path": frame.name, "error": str(frame.error)}) + "\n")
            results.flush()
            continue
        yield frame


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
        if args.watch:
            source = watched_folder(Path(args.input), _already_done(results_path), args.poll_interval,
                                    args.stop_after_idle)
        else:
            source = open_source(args.input, args.max_frames)
        streaming = source.kind != "images"
        hint = args.hint or ("LATENCY" if source.kind == "frames" or source.total == 1 else "THROUGHPUT")
        batch_size = args.batch_size or (1 if hint == "LATENCY" or args.watch else 8)
        inferencer = EdgeInferencer(args.model, args.device, hint, args.threshold, args.min_region_area)
    except (ModelFormatError, InputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    overlay_policy = args.overlays or ("ng" if streaming and not args.watch else "all")
    args.output.mkdir(parents=True, exist_ok=True)
    overlays = args.output / "overlays"
    print(f"thresholds: image {inferencer.threshold:g}, pixel {inferencer.pixel_threshold:g} "
          f"({inferencer.threshold_source}); {hint}, batches of {batch_size}", file=sys.stderr)
    counts = {"images": 0, "ng": 0, "errors": 0}
    start = time.perf_counter()
    frames_by_name: dict[str, Frame] = {}

    def pairs(results):
        for frame in _readable(source, results, counts):
            frames_by_name[frame.name] = frame
            yield frame.name, frame.image

    # results are appended and flushed line by line: an interrupted run keeps what it already wrote
    writer = OverlayWriter()
    with open(results_path, "a", encoding="utf-8") as results:
        try:
            for result in inferencer.predict_stream(pairs(results), batch_size):
                frame = frames_by_name.pop(result.path)
                counts["images"] += 1
                counts["ng"] += int(result.label)
                results.write(json.dumps(result.to_json()) + "\n")
                results.flush()
                if overlay_policy == "all" or (overlay_policy == "ng" and result.label):
                    writer.put(overlays / frame.overlay_name, frame.image, result)
                done = counts["images"] + counts["errors"]
                of = f"/{source.total}" if source.total else ""
                rate = counts["images"] / max(time.perf_counter() - start, 1e-9)
                print(f"\r[{done}{of}] {counts['ng']} NG, {rate:.1f} images/s  {Path(result.path).name}: "
                      f"{'NG' if result.label else 'OK'} {result.score:.3f}   ", end="", file=sys.stderr)
        except KeyboardInterrupt:
            print("\ninterrupted; results so far are saved", file=sys.stderr)
        finally:
            writer.close()  # the overlays of every result written so far
    elapsed = time.perf_counter() - start
    rate = counts["images"] / elapsed if elapsed > 0 else 0.0
    print(
        f"\n{counts['images']} {source.kind}, {counts['ng']} NG, {counts['errors']} skipped, {rate:.1f} images/s; "
        f"results in {results_path}" + ("" if overlay_policy == "none" else f", overlays in {overlays}"),
        file=sys.stderr,
    )
    return 0 if counts["images"] or args.watch else 1
