"""FP16 and INT8 exports through anomalib's export: they load and score on the edge; INT8 checks its accuracy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from ganad_plugin.edge import EdgeInferencer
from ganad_plugin.edge.images import list_images

from .conftest import REPO, run_cli

ANOMALIB = str(Path(sys.executable).parent / "anomalib")


def test_fp16_export_loads_and_maps_like_fp32(exported_ganomaly, tiny_dataset, tmp_path) -> None:
    run_cli([ANOMALIB, "export", "--model", "ganad_plugin.models.GANomaly", "--export_type", "openvino",
             "--ckpt_path", str(exported_ganomaly["checkpoint"]), "--compression_type", "FP16",
             "--default_root_dir", str(tmp_path)], cwd=REPO, log=tmp_path / "export.log")
    fp16 = EdgeInferencer(next(tmp_path.rglob("model.xml")))
    fp32 = EdgeInferencer(exported_ganomaly["xml"])
    for path in list_images(tiny_dataset / "weave" / "test")[:3]:
        half, full = fp16.predict_file(path), fp32.predict_file(path)
        assert np.isfinite(half.score) and 0.0 <= half.score <= 1.0
        # maps agree closely; the score of this one-epoch model is not compared, as its narrow validation range
        # stretches FP16's rounding of the calibration constants (about 0.15 here)
        assert np.abs(half.anomaly_map - full.anomaly_map).max() < 0.05
        assert np.corrcoef(half.anomaly_map.ravel(), full.anomaly_map.ravel())[0, 1] > 0.99


def test_int8_export_reports_its_accuracy_and_is_refused_beyond_max_drop(exported_ganomaly, tiny_dataset,
                                                                         tmp_path) -> None:
    command = [ANOMALIB, "export", "--model", "ganad_plugin.models.GANomaly", "--export_type", "openvino",
               "--ckpt_path", str(exported_ganomaly["checkpoint"]), "--compression_type", "INT8_PTQ",
               "--data", "anomalib.data.MVTecAD", "--data.root", str(tiny_dataset), "--data.category", "weave",
               "--data.num_workers", "0", "--max_drop", "-1", "--default_root_dir", str(tmp_path)]
    # a negative limit cannot be met: the export must fail, say why, and set the INT8 model aside
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "exceeds max_drop=-1" in result.stdout + result.stderr
    report = json.loads(next(tmp_path.rglob("quantisation_report.json")).read_text())
    assert report["accepted"] is False and report["test_images"] == 9
    assert 0.0 <= report["int8"]["image_AUROC"] <= 1.0 and 0.0 <= report["fp32"]["pixel_AUROC"] <= 1.0
    assert not list(tmp_path.rglob("model.xml")) and not list(tmp_path.rglob("fp32_reference"))
    rejected_xml = next(tmp_path.rglob("model.rejected.xml"))
    import openvino as ov

    assert "FakeQuantize" in {op.get_type_name() for op in ov.Core().read_model(rejected_xml).get_ordered_ops()}
    rejected = EdgeInferencer(rejected_xml)  # still a valid IR, kept for inspection
    result = rejected.predict_file(list_images(tiny_dataset / "weave" / "test")[0])
    assert np.isfinite(result.score) and np.isfinite(result.anomaly_map).all()


def test_int8_export_works_on_a_line_with_only_good_parts(exported_ganomaly, tiny_dataset, tmp_path) -> None:
    import shutil

    line = tmp_path / "data" / "weave"
    shutil.copytree(tiny_dataset / "weave" / "train", line / "train")
    shutil.copytree(tiny_dataset / "weave" / "test" / "good", line / "test" / "good")
    run_cli([ANOMALIB, "export", "--model", "ganad_plugin.models.GANomaly", "--export_type", "openvino",
             "--ckpt_path", str(exported_ganomaly["checkpoint"]), "--compression_type", "INT8_PTQ",
             "--data", "anomalib.data.MVTecAD", "--data.root", str(tmp_path / "data"), "--data.category", "weave",
             "--data.num_workers", "0", "--max_drop", "0.34", "--default_root_dir", str(tmp_path / "export")],
            cwd=REPO, log=tmp_path / "export.log")
    report = json.loads(next(tmp_path.rglob("quantisation_report.json")).read_text())
    # no AUROC without defects: the labels and masks at the stored threshold are compared instead
    assert report["accepted"] is True and report["compared_on"].startswith("OK/NG labels")
    assert report["test_images"] == 3 and 0.0 <= report["image_label_changes"] <= 0.34
    assert EdgeInferencer(next(tmp_path.rglob("model.xml"))).predict_file(
        next((line / "test" / "good").glob("*.png"))).error is None


def test_int8_keeps_the_memory_distance_arithmetic_in_float() -> None:
    import openvino as ov
    import torch

    from ganad_plugin.models.components.export import FLOAT_TYPES
    from ganad_plugin.models.components.memory import FeatureMemory

    memory = FeatureMemory(dim=8, size=64)
    memory.fit(torch.randn(100, 8))
    model = ov.convert_model(memory.eval(), example_input=torch.randn(2, 8, 3, 5))
    types = {op.get_type_name() for op in model.get_ordered_ops()}
    # the similarity to the bank and the distance sqrt(2 - 2 cos) after it: all of a type the INT8 export keeps in
    # float (a Subtract would be quantised: 8-bit inputs swamp a small difference of numbers near 2)
    assert {"MatMul", "Multiply", "Add"} <= types
    assert {"MatMul", "Multiply", "Add"} <= set(FLOAT_TYPES)
    assert "Subtract" not in types
