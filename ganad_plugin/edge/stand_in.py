"""A stand-in IR with the edge runtime's interface and known outputs, to try a line's plumbing (folders, --watch,
results.jsonl, restarts, load) without a trained model: ``pred_score`` [N] is ``scale`` times the image's mean in
[0, 1], ``anomaly_map`` [N, map_channels, H, W] the same of its channel mean. ``scale=nan`` makes every output NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov


def stand_in_ir(folder: Path, *, scale: float = 1.0, map_channels: int = 1, size_px: int = 32) -> Path:
    """Write ``folder/model.xml`` (and .bin) and return its path."""
    opset = ov.opset13
    image = opset.parameter([-1, 3, size_px, size_px], np.float32, name="image")
    scaled = opset.multiply(image, opset.constant(np.float32(scale)))
    score = opset.reduce_mean(scaled, opset.constant([1, 2, 3]), keep_dims=False)
    anomaly_map = opset.reduce_mean(scaled, opset.constant([1]), keep_dims=True)
    if map_channels > 1:
        anomaly_map = opset.concat([anomaly_map] * map_channels, 1)
    score.output(0).get_tensor().set_names({"pred_score"})
    anomaly_map.output(0).get_tensor().set_names({"anomaly_map"})
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.Model([score, anomaly_map], [image], "stand_in"), folder / "model.xml")
    return folder / "model.xml"
