"""``ganad infer``: run an exported model on an image or a folder; write results.jsonl and overlays."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .images import InputError, list_images, read_rgb
from .regions import save_overlay
from .runtime import EdgeInferencer, ModelFormatError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="exported model.xml")
    parser.add_argument("--input", required=True, type=Path, help="an image file or a folder of images")
    parser.add_argument("--output", required=True, type=Path, help="folder for results.jsonl and overlays")
    parser.add_argument("--threshold", type=float, default=None, help="normalised threshold (default: stored, 0.5)")
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--hint", choices=["LATENCY", "THROUGHPUT"], default="LATENCY")
    parser.add_argument("--min-region-area", type=int, default=16, help="drop regions smaller than this (px)")
    parser.add_argument("--no-overlays", action="store_true", help="write results.jsonl only")


def run(args: argparse.Namespace) -> int:
    try:
        inferencer = EdgeInferencer(args.model, args.device, args.hint, args.threshold, args.min_region_area)
        files = [args.input] if args.input.is_file() else list_images(args.input)
    except (ModelFormatError, InputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    overlays = args.output / "overlays"
    root = args.input if args.input.is_dir() else args.input.parent
    counts = {"images": 0, "ng": 0, "errors": 0}
    start = time.perf_counter()
    # results are appended and flushed line by line: an interrupted run keeps what it already wrote
    with open(args.output / "results.jsonl", "a", encoding="utf-8") as results:
        for index, path in enumerate(files, 1):
            try:
                image = read_rgb(path)
                result = inferencer.predict_array(image, str(path))
            except InputError as error:
                counts["errors"] += 1
                print(f"\nskipped: {error}", file=sys.stderr)
                results.write(json.dumps({"path": str(path), "error": str(error)}) + "\n")
                continue
            counts["images"] += 1
            counts["ng"] += int(result.label)
            results.write(json.dumps(result.to_json()) + "\n")
            results.flush()
            if not args.no_overlays:
                relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
                save_overlay(overlays / relative.with_suffix(".png"), image, result)
            print(f"\r[{index}/{len(files)}] {path.name}: {'NG' if result.label else 'OK'} {result.score:.3f}", end="", file=sys.stderr)
    elapsed = time.perf_counter() - start
    rate = counts["images"] / elapsed if elapsed > 0 else 0.0
    print(
        f"\n{counts['images']} images, {counts['ng']} NG, {counts['errors']} skipped, {rate:.1f} images/s; "
        f"results in {args.output / 'results.jsonl'}" + ("" if args.no_overlays else f", overlays in {overlays}"),
        file=sys.stderr,
    )
    return 0 if counts["images"] else 1
