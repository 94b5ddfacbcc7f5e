"""Export for the plugin's models: anomalib's exporters, with three changes a factory needs.

- ``torch``: anomalib pickles the whole module, and spectral-norm parametrisations (EGBAD's and AnoGAN's
  discriminators) cannot be pickled; a copy with the normalisation folded into plain weights is saved instead
  (the same outputs in eval mode).
- ``openvino``: the model is converted by OpenVINO's PyTorch frontend from a TorchScript trace, not through
  anomalib's ONNX file: anomalib 2.7's ONNX step (``torch.onnx.export(dynamo=True)``) took most of an export's
  time (``docs/export.md``). The trace runs on an image of another size than the model's, so that the
  pre-processor's resize is recorded, and the converted graph is checked against the torch model at two input
  sizes, under both performance hints, before it is written. With ``onnx_kwargs``, or a compression other than
  FP16 and INT8_PTQ, anomalib's route is taken.
  Every layer but the networks' convolutions and activations is marked to stay in f32 when a runtime lowers the
  precision (``ganad_plugin.edge.precision``), so that bf16 on a CPU, or f16, speeds up the networks only.
- ``openvino`` with ``INT8_PTQ``: anomalib calibrates NNCF on the validation split, which for MVTec-style data may
  hold defects. Here the FP32 graph is converted as above, then quantised on the category's *normal training
  images*, only in the GAN networks' convolutions (the defect heads stay in float); the INT8 and the FP32 model then
  score the same images, good training-side images and synthetic defects drawn on them (never the test split:
  whether an export is accepted is a choice, made like every other on training images only), and image and pixel
  AUROC of both and the drop go to ``quantisation_report.json`` beside ``model.xml``. A drop beyond ``max_drop``
  (anomalib's export argument, 0.01 by default) refuses the INT8 model: it is renamed ``model.rejected.xml`` and
  export fails with the figures. What the quantisation scope was measured to be worth: ``docs/export.md``.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import torch
from anomalib.deploy import CompressionType, ExportType
from anomalib.models.components.base.export_mixin.utils import create_export_root
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import binary_auroc

from ganad_plugin.edge.precision import mark_evidence_f32

logger = logging.getLogger(__name__)

CALIBRATION_MAX_IMAGES = 300  # NNCF's default subset
CALIBRATION_BATCH = 8
# Operation types kept in float by the INT8 export: the evidence arithmetic after the networks (the patch grids'
# merge, channel means, norms, distances, logarithms, the resize of the memory's distances) costs little, and 8-bit
# steps there swamp the small differences the anomaly map is made of. Subtract is absent on purpose: the feature
# memory writes its distance without one (``memory.FeatureMemory.forward``).
# the converted graph's largest difference from the torch model allowed at export, as a share of the map's range
# (at least 1: the post-processor normalises scores and maps, the threshold at 0.5); the IRs measure about 1e-5
EXPORT_TOLERANCE = 1e-3
FLOAT_TYPES = (
    "Add", "Multiply", "Divide", "MatMul", "ReduceSum", "ReduceMean", "ReduceMin", "ReduceMax", "ReduceL2", "Sqrt",
    "Power", "Abs", "Maximum", "Minimum", "Log", "Exp", "Interpolate",
)


def without_parametrisations(model: Any) -> Any:
    """A copy of ``model`` (an AnomalibModule) with every parametrisation (spectral norm) folded into a plain weight.

    The copy is built afresh from the hyper-parameters and the state dict rather than deep-copied: removing a
    parametrisation deletes it from the module's class, which a deep copy shares with the original.
    """
    plain = type(model)(**model.hparams)
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.pre_processor, plain.post_processor = model.pre_processor, model.post_processor
    plain.eval()
    for submodule in plain.modules():
        if parametrize.is_parametrized(submodule):
            for name in list(submodule.parametrizations):
                parametrize.remove_parametrizations(submodule, name, leave_parametrized=True)
    return plain


class NormalImageExportMixin:
    """anomalib's ``to_torch`` and ``to_openvino`` with the changes above (mixed in before ``AnomalibModule``)."""

    def require_calibration(self, what: str) -> None:
        """Refuse ``what`` (an export, a test) for a model whose feature memory and evidence scales were never set:
        its scores would mean nothing, and an IR would carry an empty memory."""
        if not self.model.calibrated:
            msg = (
                f"{type(self).__name__}: cannot {what}: the model is not calibrated (its feature memory and evidence "
                "scales are set from normal training images at the end of a fit). Load a trained checkpoint "
                "(--ckpt_path .../weights/lightning/model.ckpt) or train first. A resume point (resume.ckpt) is a "
                "fit in progress: continue it with 'ganad fit --ckpt_path', then test the model.ckpt that fit writes."
            )
            raise RuntimeError(msg)

    def require_exportable(self) -> None:
        """Refuse an export that would write a model without meaning; models add their own reasons."""
        self.require_calibration("export")

    def to_torch(self, export_root: Path | str, model_file_name: str = "model") -> Path:
        self.require_calibration("export")
        plain = without_parametrisations(self.eval())
        return super(NormalImageExportMixin, plain).to_torch(export_root, model_file_name)

    def to_onnx(self, *args: Any, **kwargs: Any) -> Path:
        """anomalib's ONNX export, refused for a model ``require_exportable`` refuses."""
        self.require_exportable()
        return super().to_onnx(*args, **kwargs)

    def openvino_model(
        self, input_size: tuple[int, int] | None = None, ov_kwargs: dict[str, Any] | None = None,
        onnx_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """The model (pre-processor, network and evidence, post-processor) as an FP32 ``openvino.Model`` with
        anomalib's input and output names; [N, 3, H, W] input, H and W fixed by ``input_size`` or free."""
        import openvino as ov

        self.require_exportable()
        if onnx_kwargs:
            with TemporaryDirectory() as onnx_directory:
                return ov.convert_model(self.to_onnx(onnx_directory, "model", input_size, **onnx_kwargs),
                                        **(ov_kwargs or {}))
        plain = without_parametrisations(self.eval())
        graph = ExportGraph(plain.model, plain.pre_processor, plain.post_processor)
        return convert_to_openvino(graph, input_size, ov_kwargs)

    def to_openvino(
        self,
        export_root: Path | str,
        model_file_name: str = "model",
        input_size: tuple[int, int] | None = None,
        compression_type: CompressionType | None = None,
        datamodule: Any = None,
        metric: Any = None,
        task: Any = None,
        max_drop: float = 0.01,
        ov_kwargs: dict[str, Any] | None = None,
        onnx_kwargs: dict[str, Any] | None = None,
    ) -> Path:
        import openvino as ov

        if compression_type == CompressionType.INT8_PTQ and datamodule is None:
            msg = (
                "INT8_PTQ export calibrates on the training images: pass the data "
                "(--data anomalib.data.MVTecAD --data.root ... --data.category ...)"
            )
            raise ValueError(msg)
        if compression_type not in (None, CompressionType.FP16, CompressionType.INT8_PTQ):
            # anomalib's other compressions (INT8 weights, accuracy-aware INT8) on anomalib's own route
            xml = Path(super().to_openvino(
                export_root, model_file_name, input_size, compression_type, datamodule, metric, task, max_drop,
                ov_kwargs, onnx_kwargs,
            ))
            mark_evidence_f32(xml)
            return xml
        fp32 = self.openvino_model(input_size, ov_kwargs, onnx_kwargs)
        xml = create_export_root(export_root, ExportType.OPENVINO) / f"{model_file_name}.xml"
        if compression_type == CompressionType.INT8_PTQ:
            int8 = quantise_on_normal_images(fp32.clone(), datamodule)
            ov.save_model(int8, xml, compress_to_fp16=False)
            check_int8_accuracy(xml, fp32, int8, datamodule, max_drop)
        else:
            ov.save_model(fp32, xml, compress_to_fp16=compression_type == CompressionType.FP16)
        mark_evidence_f32(xml)
        return xml


class ExportGraph(nn.Module):
    """What an AnomalibModule's ``forward`` runs (pre-processor, torch model, post-processor; each processor may be
    None), returning the InferenceBatch's fields that are set as a tuple named by ``output_names``: a module that a
    trace can hold. ``map_size`` is the anomaly map's size for a ``probe_size`` input (the model's size where its
    pre-processor resizes). The modules are in eval mode, without parametrisations (``without_parametrisations``).
    """

    def __init__(self, model: nn.Module, pre_processor: nn.Module | None = None,
                 post_processor: nn.Module | None = None, probe_size: tuple[int, int] = (256, 256)) -> None:
        super().__init__()
        self.pre_processor, self.model, self.post_processor = pre_processor, model, post_processor
        with torch.no_grad():
            probe = self.batch(torch.rand(1, 3, *probe_size))
        self.output_names = [name for name, value in probe._asdict().items() if value is not None]
        self.map_size = tuple(probe.anomaly_map.shape[-2:])

    def batch(self, images: torch.Tensor) -> Any:
        images = self.pre_processor(images) if self.pre_processor else images
        batch = self.model(images)
        return self.post_processor(batch) if self.post_processor else batch

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch = self.batch(images)
        return tuple(getattr(batch, name) for name in self.output_names)


def convert_to_openvino(graph: ExportGraph, input_size: tuple[int, int] | None = None,
                        ov_kwargs: dict[str, Any] | None = None, tolerance: float = EXPORT_TOLERANCE) -> Any:
    """``graph`` as an ``openvino.Model`` (f32) with anomalib's input and output names, [N, 3, H, W] input with H
    and W fixed by ``input_size`` or free, converted from a TorchScript trace by OpenVINO's PyTorch frontend and
    checked against ``graph`` (``check_against_torch``)."""
    import openvino as ov

    model_size = graph.map_size
    height, width = input_size or (model_size[0] + model_size[0] // 4, model_size[1] + model_size[1] // 4)
    example = torch.rand(2, 3, height, width)
    with torch.no_grad(), warnings.catch_warnings():
        # the trace records shapes as constants: right after a resize to a fixed size, where every shape is fixed
        # (the example is not at that size, so that the resize is recorded); checked below at other input sizes
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace.* is deprecated", category=FutureWarning)
        traced = torch.jit.trace(graph, example, check_trace=False)
    model = ov.convert_model(traced, example_input=example, **(ov_kwargs or {}))
    if "input" not in (ov_kwargs or {}):
        # after conversion: convert_model's own ``input`` adds a pre-processing build that took seconds
        model.reshape([-1, 3, *(input_size or (-1, -1))])
    logical_boolean_operations(model)
    fold_constants(model)
    name_tensors(model, graph.output_names)
    # one image (the trace saw two) at the model's size (where the resize does nothing) and at another one
    shapes = [(1, *model_size), (1, model_size[0] * 3 // 2 + 3, model_size[1] * 9 // 8)]
    check_against_torch(model, graph, [(1, *input_size)] if input_size else shapes, tolerance)
    return model


def logical_boolean_operations(model: Any) -> None:
    """Replace ``model``'s bitwise operations on booleans (the trace of ``~mask`` and ``mask & other``, as anomalib's
    post-processor writes them) by the logical ones. OpenVINO's CPU plugin gave wrong results with the bitwise
    form when compiled for two streams in a process that had imported torch (the post-processor's
    ``has_range`` came out false: maps and scores unnormalised); the logical form is what ONNX's ``Not`` and
    ``And`` become, as in anomalib's own export route."""
    import openvino as ov

    logical = {"BitwiseNot": ov.opset13.logical_not, "BitwiseAnd": ov.opset13.logical_and,
               "BitwiseOr": ov.opset13.logical_or, "BitwiseXor": ov.opset13.logical_xor}
    for op in model.get_ordered_ops():
        if op.get_type_name() in logical and op.get_output_element_type(0) == ov.Type.boolean:
            replacement = logical[op.get_type_name()](*(value.get_source_output() for value in op.inputs()))
            op.output(0).replace(replacement.output(0))


def fold_constants(model: Any) -> None:
    """Compute what depends on constants only (the post-processor's checks of its stored statistics) once, at
    export, as anomalib's ONNX route does. Left to the runtime, the post-processor's ``isnan`` checks of its
    statistics gave unnormalised scores under the same conditions as in ``logical_boolean_operations``."""
    import openvino as ov
    from openvino.passes import ConstantFolding, Manager

    for op in model.get_ordered_ops():
        # the frontend keeps some conversions of constants from folding (for weights it would compress); these are
        # float32 already, and the marks do not survive a save anyway
        rt_info = op.get_rt_info()
        if "DisableConstantFolding_0" in rt_info:
            del rt_info["DisableConstantFolding_0"]
    manager = Manager()
    manager.register_pass(ConstantFolding())
    folded_isnan = True
    while folded_isnan:
        manager.run_passes(model)
        folded_isnan = False
        for op in model.get_ordered_ops():  # OpenVINO's folding leaves IsNaN out: a constant one is computed here
            source = op.input_value(0).get_node() if op.get_type_name() == "IsNaN" else None
            if source is not None and source.get_type_name() == "Constant":
                op.output(0).replace(ov.opset13.constant(np.isnan(source.get_data())).output(0))
                folded_isnan = True


def name_tensors(model: Any, output_names: list[str]) -> None:
    """Name ``model``'s input "input" and its outputs ``output_names``, as anomalib's export does, and take every
    other tensor's names off: the trace names tensors after the code's variables (the scorer's ``anomaly_map``
    among them), and a name should mean one tensor of the IR."""
    for op in model.get_ordered_ops():
        for output in op.outputs():
            output.get_tensor().set_names(set())
    model.inputs[0].get_tensor().set_names({"input"})
    for output, name in zip(model.outputs, output_names, strict=True):
        output.get_tensor().set_names({name})


def check_against_torch(model: Any, graph: ExportGraph, shapes: list[tuple[int, int, int]],
                        tolerance: float = EXPORT_TOLERANCE) -> None:
    """Refuse a converted ``model`` whose score or map differs from the torch ``graph``'s by more than ``tolerance``
    times the map's range (at least 1) on random images of each (batch, height, width) in ``shapes``."""
    import openvino as ov

    generator = torch.Generator().manual_seed(0)
    cases = []
    for batch, height, width in shapes:
        images = torch.rand(batch, 3, height, width, generator=generator)
        with torch.no_grad():
            cases.append((images, dict(zip(graph.output_names, graph(images), strict=True))))
    # both of OpenVINO's performance hints (`ganad infer` uses LATENCY for cameras, THROUGHPUT for folders): the CPU
    # plugin compiles them differently (one stream or several)
    for hint in ("LATENCY", "THROUGHPUT"):
        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": hint})
        for images, expected in cases:
            batch, _, height, width = images.shape
            where = f"on {batch} image(s) of {height}x{width} px compiled for {hint}"
            advice = "nothing was written. Export with a fixed --input_size, or report this with the checkpoint"
            try:
                result = compiled(images.numpy())
            except RuntimeError as error:  # a shape the trace recorded as a constant
                msg = f"OpenVINO export: the converted graph fails {where} ({str(error).splitlines()[0]}); {advice}"
                raise RuntimeError(msg) from error
            allowed = tolerance * max(1.0, float(expected["anomaly_map"].max() - expected["anomaly_map"].min()))
            for name in ("pred_score", "anomaly_map"):
                actual = np.asarray(result[compiled.output(name)], dtype=np.float32)
                wanted = expected[name].float().numpy()
                difference = np.abs(actual - wanted).max() if actual.shape == wanted.shape else np.inf
                if not difference <= allowed:
                    msg = (
                        f"OpenVINO export: the converted graph's {name} differs from the torch model's {where} "
                        f"(largest difference {difference:.3g}, shapes {actual.shape} and {wanted.shape}, allowed "
                        f"{allowed:.3g}); {advice}"
                    )
                    raise RuntimeError(msg)


def float_convolutions(model: Any) -> list[str]:
    """The convolutions the INT8 export keeps in float: the maps' smoothing and the defect heads'."""
    return smoothing_convolutions(model) + defect_head_convolutions(model)


def quantise_on_normal_images(model: Any, datamodule: Any,
                              keep_float: Callable[[Any], list[str]] = float_convolutions) -> Any:
    """NNCF post-training quantisation of the GAN networks' convolutions, calibrated on normal training images;
    ``keep_float`` names the convolutions left in float (``benchmarks/int8_scope_probe.py`` tries others)."""
    import nncf

    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    count = len(loader.dataset)
    if count == 0:
        msg = "INT8 export: the training split has no images to calibrate on"
        raise ValueError(msg)
    logger.info("INT8: calibrating on %d normal training images", min(count, CALIBRATION_MAX_IMAGES))
    # in file order, so that the same checkpoint always gives the same INT8 model (NNCF averages the ranges of its
    # samples, here batches, which therefore depend on how the images are grouped)
    loader = DataLoader(loader.dataset, batch_size=CALIBRATION_BATCH, shuffle=False, collate_fn=loader.collate_fn)
    dataset = nncf.Dataset(loader, lambda batch: batch.image.numpy())
    return nncf.quantize(
        model, dataset, subset_size=-(-min(count, CALIBRATION_MAX_IMAGES) // CALIBRATION_BATCH),
        ignored_scope=nncf.IgnoredScope(names=keep_float(model), types=list(FLOAT_TYPES), validate=False),
    )


def smoothing_convolutions(model: Any) -> list[str]:
    """Names of the single-channel convolutions (the evidence maps' Gaussian smoothing), which stay in float."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Convolution":
            continue
        weight_shape = op.input(1).get_partial_shape()
        if weight_shape.is_static and list(weight_shape.to_shape())[:2] == [1, 1]:
            names.append(op.get_friendly_name())
    return names


# a defect head's layers, by the traced module in their names (OpenVINO renames a convolution it folds a batch norm
# into, so a convolution is also known by the layer it feeds: ``__module.model.defect.body.0.1/aten::batch_norm/...``)
DEFECT_HEAD_MODULES = re.compile(r"__module\.model\.defect\w*\.")


def defect_head_convolutions(model: Any) -> list[str]:
    """Names of the defect heads' convolutions, which stay in float: 8-bit steps in a head's full-resolution layers
    round away the faint, thin marks it finds (on the comparison images of weave and mesh the INT8 IR lost
    0.003-0.016 image AUROC with the heads quantised, 0.000-0.005 without, for up to 5 % of its speed:
    docs/export.md)."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Convolution":
            continue
        consumers = [target.get_node().get_friendly_name() for target in op.output(0).get_target_inputs()]
        if any(DEFECT_HEAD_MODULES.search(name) for name in [op.get_friendly_name(), *consumers]):
            names.append(op.get_friendly_name())
    return names


def _auroc(scores: list[np.ndarray], labels: list[np.ndarray]) -> float:
    target = torch.from_numpy(np.concatenate([label.reshape(-1) for label in labels])).int()
    if target.min() == target.max():
        return float("nan")
    return float(binary_auroc(torch.from_numpy(np.concatenate([s.reshape(-1) for s in scores])).float(), target))


def comparison_images(datamodule: Any) -> tuple[Any, str]:
    """The images the INT8 model is compared on, and their description: the validation split where it is built from
    training images (``val_split_mode: synthetic``, as configs/ set it), else every training image with anomalib's
    synthetic defects drawn on half of them (seeded, so that the same data gives the same report)."""
    from anomalib.data.utils import ValSplitMode
    from anomalib.data.utils.synthetic import SyntheticAnomalyDataset
    from lightning.pytorch.utilities.seed import isolate_rng

    datamodule.setup("fit")
    if datamodule.val_split_mode == ValSplitMode.SYNTHETIC and len(datamodule.val_data):
        return datamodule.val_data, "the validation split (held-back training images, half with synthetic defects)"
    train = datamodule.train_data
    if len(train) == 0:
        msg = "INT8 export: the training split has no images to compare the INT8 model on"
        raise ValueError(msg)
    with isolate_rng():
        torch.manual_seed(0)
        np.random.seed(0)  # anomalib's generator draws the defective half with numpy's global state
        synthetic = SyntheticAnomalyDataset(augmentations=None, source_samples=train.samples, dataset_name=train.name)
    return synthetic, "the training images, half with synthetic defects"


def _paired_outputs(fp32: Any, int8: Any, dataset: Any, batch_size: int) -> tuple[dict, dict]:
    """Both IRs' scores and maps on the same batches of ``dataset``, with its labels and masks (None without)."""
    import openvino as ov

    core = ov.Core()
    compiled = [core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}) for model in (fp32, int8)]
    outputs: list[dict[str, list]] = [{"scores": [], "maps": []} for _ in compiled]
    labels, masks = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=dataset.collate_fn)
    for batch in loader:
        for model, out in zip(compiled, outputs, strict=True):
            result = model(batch.image.numpy())
            out["scores"].append(np.asarray(result[model.output("pred_score")]).reshape(-1))
            out["maps"].append(np.asarray(result[model.output("anomaly_map")]))
        labels.append(batch.gt_label.numpy().reshape(-1))
        if batch.gt_mask is not None:
            masks.append(batch.gt_mask.numpy())
    truth = {
        "labels": np.concatenate(labels),
        "masks": np.concatenate([m.reshape(len(m), -1) for m in masks]) if len(masks) == len(labels) else None,
    }
    full, low = ({key: np.concatenate(values) for key, values in out.items()} | truth for out in outputs)
    return full, low


def check_int8_accuracy(int8_xml: Path, fp32: Any, int8: Any, datamodule: Any, max_drop: float) -> dict:
    """Compare the INT8 model with the FP32 one on ``comparison_images``; write the report; refuse beyond
    ``max_drop``.

    With good and defective images the drop is in image and pixel AUROC. Should the comparison images hold one
    class only (a training split too small to draw defects on), the drop is the share of images whose OK/NG label,
    and of pixels whose mask, the INT8 model changes at the threshold stored in the model (0.5 after normalisation).
    """
    dataset, described = comparison_images(datamodule)
    full, low = _paired_outputs(fp32, int8, dataset, CALIBRATION_BATCH)
    both_classes = full["labels"].min() != full["labels"].max()
    report: dict[str, Any] = {"max_drop": max_drop, "images": len(dataset), "images_from": described}
    if both_classes:
        fp32_image, int8_image = _auroc([full["scores"]], [full["labels"]]), _auroc([low["scores"]], [full["labels"]])
        has_masks = full["masks"] is not None
        fp32_pixel = _auroc([full["maps"]], [full["masks"]]) if has_masks else float("nan")
        int8_pixel = _auroc([low["maps"]], [full["masks"]]) if has_masks else float("nan")
        report.update({
            "compared_on": "AUROC",
            "fp32": {"image_AUROC": fp32_image, "pixel_AUROC": fp32_pixel},
            "int8": {"image_AUROC": int8_image, "pixel_AUROC": int8_pixel},
            "image_AUROC_drop": fp32_image - int8_image,
            "pixel_AUROC_drop": fp32_pixel - int8_pixel,
        })
        worst = max(report["image_AUROC_drop"], np.nan_to_num(report["pixel_AUROC_drop"]))
        summary = (
            f"INT8 vs FP32 on {len(dataset)} images ({described}): image AUROC {int8_image:.3f} vs "
            f"{fp32_image:.3f}, pixel AUROC {int8_pixel:.3f} vs {fp32_pixel:.3f}"
        )
    else:
        threshold = 0.5  # anomalib's normalised threshold, baked into the IR
        label_changes = float(np.mean((full["scores"] > threshold) != (low["scores"] > threshold)))
        mask_changes = float(np.mean((full["maps"] > threshold) != (low["maps"] > threshold)))
        report.update({
            "compared_on": "OK/NG labels and masks at the stored threshold (the images hold one class only)",
            "image_label_changes": label_changes,
            "pixel_mask_changes": mask_changes,
            "score_mean_abs_difference": float(np.mean(np.abs(full["scores"] - low["scores"]))),
        })
        worst = max(label_changes, mask_changes)
        summary = (
            f"INT8 vs FP32 on {len(dataset)} images of one class ({described}): {label_changes:.1%} of the labels "
            f"and {mask_changes:.2%} of the mask pixels change"
        )
    report["accepted"] = bool(worst <= max_drop)
    strict = json.loads(json.dumps(report), parse_constant=lambda _: None)  # NaN (no AUROC) is written as null
    (int8_xml.parent / "quantisation_report.json").write_text(json.dumps(strict, indent=2) + "\n")
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
