"""INT8 export that calibrates on normal training images and checks its own accuracy against FP32.

anomalib's ``INT8_PTQ`` calibrates NNCF on the validation loader, which for MVTec-style data is the test split
(defects included). A factory has normal parts in plenty and defects rarely, so we calibrate on the training
images (normal by construction). After quantising, the INT8 IR and an FP32 IR of the same weights score the
datamodule's test split; image and pixel AUROC of both and the drop are written to
``quantisation_report.json`` beside ``model.xml``. A drop beyond the limit (anomalib's ``max_drop`` export
argument, 0.01 by default) refuses the INT8 model: it is renamed ``model.rejected.xml`` and export fails with
the figures.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import openvino as ov
from torch.utils.data import DataLoader

from ganad_plugin.edge.metrics import auroc

logger = logging.getLogger(__name__)

CALIBRATION_MAX_IMAGES = 300  # NNCF's default subset

# The 8-bit steps go where the compute is, in the networks' convolutions. The evidence arithmetic after them (the
# four patch grids' merge, channel means, norms, distances, logarithms) costs little and is kept in float: with
# NNCF's default scope it was quantised too, and AnoGAN's INT8 model on sample_data/weave lost everything (image /
# pixel AUROC 0.508 / 0.564 against FP32's 0.743 / 0.855; with this scope 0.754 / 0.869; GANomaly 0.780 / 0.872
# -> 0.799 / 0.943 against 0.790 / 0.892). Subtract is not in the list: kept in float wholesale it made GANomaly's
# INT8 model collapse (0.61 image AUROC, not traced further). The feature memory's distance is therefore written
# without one (``components.memory``): its similarities to the bank are numbers near 1, and 8-bit inputs to
# 2 - 2 cos would swamp the difference (quantising the earlier patch memory's subtraction alone took GANomaly's
# INT8 image AUROC on weave from 0.790 to 0.745-0.759).
FLOAT_TYPES = (
    "Add", "Multiply", "Divide", "MatMul", "ReduceSum", "ReduceMean", "ReduceMin", "ReduceMax", "ReduceL2", "Sqrt",
    "Power", "Abs", "Maximum", "Minimum", "Log", "Exp",
    # the memory's distances are resized to the image: quantised there (NNCF quantises Interpolate's input by
    # default), a distance's 8-bit steps swamp the small normal distances, and GANomaly's INT8 model fell to
    # image / pixel AUROC 0.508 / 0.510 (FP32 0.780 / 0.944, weave)
    "Interpolate",
)


def quantise_on_normal_images(model: ov.Model, datamodule) -> ov.Model:
    """NNCF post-training quantisation calibrated on (up to 300) normal training images."""
    import nncf

    if datamodule is None:
        msg = "INT8 export needs the data: pass --data (e.g. --data anomalib.data.MVTecAD --data.root ... --data.category ...)"
        raise ValueError(msg)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    count = len(loader.dataset)
    if count == 0:
        msg = "INT8 export: the training split has no images to calibrate on"
        raise ValueError(msg)
    logger.info("INT8: calibrating on %d normal training images", min(count, CALIBRATION_MAX_IMAGES))
    # in file order, so that the same checkpoint always gives the same INT8 model: NNCF averages the ranges of its
    # samples (here batches), which therefore depend on how the images are grouped. Batches rather than single
    # images: single-image ranges are narrower and clip a defect's activations (GANomaly weave INT8 image AUROC
    # 0.737 against 0.78-0.79 with batches of 8; whole-set min/max ranges 0.765)
    loader = DataLoader(loader.dataset, batch_size=8, shuffle=False, collate_fn=loader.collate_fn)
    dataset = nncf.Dataset(loader, lambda batch: batch.image.numpy())
    kept_in_float = float_operations(model)
    return nncf.quantize(
        model, dataset, subset_size=-(-min(count, CALIBRATION_MAX_IMAGES) // 8),  # in batches of 8
        ignored_scope=nncf.IgnoredScope(names=kept_in_float, types=list(FLOAT_TYPES), validate=False),
    )


def float_operations(model: ov.Model) -> list[str]:
    """Names of the single-channel convolutions (the evidence maps' Gaussian smoothing), which stay in float: 8-bit
    steps in the smoothed maps would move the anomaly map by more than the network's own error."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Convolution":
            continue
        weight_shape = op.input(1).get_partial_shape()
        if weight_shape.is_static and list(weight_shape.to_shape())[:2] == [1, 1]:
            names.append(op.get_friendly_name())
    return names


def _score_test_split(xml: Path, datamodule) -> tuple[float, float]:
    compiled = ov.Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    scores, labels, maps, masks = [], [], [], []
    for batch in datamodule.test_dataloader():
        outputs = compiled(batch.image.numpy())
        scores.append(np.asarray(outputs[compiled.output("pred_score")]).reshape(-1))
        labels.append(batch.gt_label.numpy().reshape(-1))
        if batch.gt_mask is not None:
            maps.append(np.asarray(outputs[compiled.output("anomaly_map")])[:, 0])
            masks.append(batch.gt_mask.numpy().reshape(maps[-1].shape))
    image = auroc(np.concatenate(scores), np.concatenate(labels))
    pixel = auroc(np.concatenate(maps), np.concatenate(masks)) if maps else float("nan")
    return image, pixel


def check_int8_accuracy(int8_xml: Path, fp32_xml: Path, datamodule, max_drop: float) -> dict:
    """Compare the INT8 IR with the FP32 one on the test split; write the report; refuse beyond ``max_drop``."""
    datamodule.setup("test")
    fp32_image, fp32_pixel = _score_test_split(fp32_xml, datamodule)
    int8_image, int8_pixel = _score_test_split(int8_xml, datamodule)
    report = {
        "fp32": {"image_AUROC": fp32_image, "pixel_AUROC": fp32_pixel},
        "int8": {"image_AUROC": int8_image, "pixel_AUROC": int8_pixel},
        "image_AUROC_drop": fp32_image - int8_image,
        "pixel_AUROC_drop": fp32_pixel - int8_pixel,
        "max_drop": max_drop,
        "test_images": len(datamodule.test_data),
    }
    worst = max(report["image_AUROC_drop"], np.nan_to_num(report["pixel_AUROC_drop"]))
    report["accepted"] = bool(worst <= max_drop)
    (int8_xml.parent / "quantisation_report.json").write_text(json.dumps(report, indent=2) + "\n")
    summary = (
        f"INT8 vs FP32 on {report['test_images']} test images: image AUROC {int8_image:.3f} vs {fp32_image:.3f}, "
        f"pixel AUROC {int8_pixel:.3f} vs {fp32_pixel:.3f}"
    )
    if not report["accepted"]:
        for suffix in (".xml", ".bin"):
            int8_xml.with_suffix(suffix).replace(int8_xml.with_name(f"{int8_xml.stem}.rejected{suffix}"))
        msg = (
            f"{summary}: the drop {worst:.3f} exceeds max_drop={max_drop}. The INT8 model was renamed "
            f"{int8_xml.stem}.rejected.xml; use the FP32 or FP16 export, or accept it with a larger --max_drop."
        )
        raise ValueError(msg)
    logger.info("%s (drop within max_drop=%s)", summary, max_drop)
    print(summary)
    return report
