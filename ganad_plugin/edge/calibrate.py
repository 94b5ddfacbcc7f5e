"""``ganad calibrate``: set the image and pixel thresholds from normal images only, at a chosen false-alarm rate.

Many lines have no defective parts to validate on. Given a folder of good parts, the image threshold is set so
that at most ``false_alarm_rate`` of them score above it, and the pixel threshold so that at most that share
of them shows any pixel above it. Both are in the model's normalised units (anomaly maps and scores as the IR
outputs them) and are written to ``thresholds.json`` beside ``model.xml``, where the edge runtime reads them
(a previous file is kept as ``thresholds.previous.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .images import InputError, list_images, read_rgb
from .runtime import THRESHOLDS_FILE, EdgeInferencer, ModelFormatError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="exported model.xml")
    parser.add_argument("--normal", required=True, type=Path, help="folder of normal (good) images, not used in training")
    parser.add_argument("--false-alarm-rate", type=float, default=0.01, help="share of good parts allowed to be flagged")
    parser.add_argument("--batch-size", type=int, default=8)


def calibrate(model: Path, normal: Path, false_alarm_rate: float, batch_size: int = 8) -> dict:
    """Score the normal images and return the thresholds record (also written beside the model)."""
    if not 0.0 < false_alarm_rate < 1.0:
        msg = f"--false-alarm-rate must be between 0 and 1, got {false_alarm_rate}"
        raise ValueError(msg)
    inferencer = EdgeInferencer(model, performance_hint="THROUGHPUT", threshold=np.inf)
    scores, map_peaks, skipped, non_finite = [], [], [], []
    files = list_images(normal)
    for start in range(0, len(files), batch_size):
        images, names = [], []
        for path in files[start : start + batch_size]:
            try:
                images.append(read_rgb(path))
                names.append(str(path))
            except InputError as error:
                skipped.append(str(error))
                print(f"skipped: {error}", file=sys.stderr)
        for result in inferencer.predict_batch(images, names) if images else []:
            if result.error is not None:
                non_finite.append(result.path)
                continue
            scores.append(result.score)
            map_peaks.append(float(result.anomaly_map.max()))
        print(f"\r[{min(start + batch_size, len(files))}/{len(files)}] normal images scored", end="", file=sys.stderr)
    print(file=sys.stderr)
    if non_finite:
        # a threshold from such scores would be NaN, and every part would pass or fail by accident
        msg = (
            f"the model gave non-finite scores or maps for {len(non_finite)} normal image(s), e.g. {non_finite[0]}: "
            "no thresholds written (is the model.xml/.bin pair intact? re-export it)"
        )
        raise ValueError(msg)
    if not scores:
        msg = f"{normal}: none of the images could be read"
        raise InputError(msg)
    if len(scores) * false_alarm_rate < 1:
        print(
            f"warning: {len(scores)} normal images cannot measure a false-alarm rate of {false_alarm_rate:g} (that "
            f"needs at least {int(np.ceil(1 / false_alarm_rate))}); the thresholds are the highest normal values",
            file=sys.stderr,
        )
    quantile = 1.0 - false_alarm_rate
    image_threshold = float(np.quantile(scores, quantile, method="higher"))
    pixel_threshold = float(np.quantile(map_peaks, quantile, method="higher"))
    record = {
        "image_threshold": image_threshold,
        "pixel_threshold": pixel_threshold,
        "false_alarm_rate": false_alarm_rate,
        "flagged_normal_images": int(np.sum(np.asarray(scores) > image_threshold)),
        "normal_images": len(scores),
        "skipped_images": skipped,
        "normal_folder": str(normal),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    target = Path(model).parent / THRESHOLDS_FILE
    if target.exists():
        target.replace(target.with_name("thresholds.previous.json"))
    target.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def run(args: argparse.Namespace) -> int:
    try:
        record = calibrate(args.model, args.normal, args.false_alarm_rate, args.batch_size)
    except (ModelFormatError, InputError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"image threshold {record['image_threshold']:.4f}, pixel threshold {record['pixel_threshold']:.4f} "
        f"(normalised units) from {record['normal_images']} normal images at a false-alarm rate of "
        f"{record['false_alarm_rate']:g}; written to {Path(args.model).parent / THRESHOLDS_FILE}"
    )
    return 0
