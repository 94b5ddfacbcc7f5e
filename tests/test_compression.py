"""FP16 and INT8 exports through anomalib's export: they load and score on the edge; INT8 checks its accuracy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ganad_plugin.edge import EdgeInferencer
from ganad_plugin.edge.images import list_images

from .conftest import REPO, run_in_process

ANOMALIB = str(Path(sys.executable).parent / "anomalib")


def test_fp16_export_loads_and_maps_like_fp32(exported_ganomaly, tiny_dataset, tmp_path) -> None:
    run_in_process(["export", "--model", "ganad_plugin.models.GANomaly", "--export_type", "openvino",
                    "--ckpt_path", str(exported_ganomaly["checkpoint"]), "--compression_type", "FP16",
                    "--default_root_dir", str(tmp_path)], log=tmp_path / "export.log")
    # both compiled at f32, so that only the IR's FP16 weights differ (where the CPU has bf16 units the default would
    # round both graphs' networks to bf16 as well, and compare two roundings)
    fp16 = EdgeInferencer(next(tmp_path.rglob("model.xml")), precision="f32")
    fp32 = EdgeInferencer(exported_ganomaly["xml"], precision="f32")
    for path in list_images(tiny_dataset / "weave" / "test")[:3]:
        half, full = fp16.predict_file(path), fp32.predict_file(path)
        assert np.isfinite(half.score) and 0.0 <= half.score <= 1.0
        # maps agree closely; the score of this one-epoch model is not compared, as its narrow validation range
        # stretches FP16's rounding of the calibration constants (about 0.15 here)
        assert np.abs(half.anomaly_map - full.anomaly_map).max() < 0.05
        assert np.corrcoef(half.anomaly_map.ravel(), full.anomaly_map.ravel())[0, 1] > 0.99


def int8_export_args(checkpoint: Path, data_root: Path, max_drop: str, out: Path) -> list[str]:
    return ["export", "--model", "ganad_plugin.models.GANomaly", "--export_type", "openvino", "--ckpt_path",
            str(checkpoint), "--compression_type", "INT8_PTQ", "--data", "anomalib.data.MVTecAD", "--data.root",
            str(data_root), "--data.category", "weave", "--data.num_workers", "0", "--max_drop", max_drop,
            "--default_root_dir", str(out)]


def int8_export(checkpoint: Path, data_root: Path, max_drop: str, out: Path) -> subprocess.CompletedProcess:
    """``anomalib export`` (the program a user runs) of an INT8 model; its exit status and output."""
    return subprocess.run([ANOMALIB, *int8_export_args(checkpoint, data_root, max_drop, out)], cwd=REPO,
                          capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def refused_int8(exported_ganomaly, tiny_dataset, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """An INT8 export of the one-epoch GANomaly with a negative max_drop, which no model can meet."""
    out = tmp_path_factory.mktemp("int8_refused")
    return int8_export(exported_ganomaly["checkpoint"], tiny_dataset, "-1", out), out


def test_int8_export_reports_its_accuracy_and_is_refused_beyond_max_drop(refused_int8, tiny_dataset) -> None:
    result, out = refused_int8
    # the export must fail, say why, and set the INT8 model aside
    assert result.returncode != 0
    assert "exceeds max_drop=-1" in result.stdout + result.stderr
    report = json.loads(next(out.rglob("quantisation_report.json")).read_text())
    # compared on the 8 training images, half of them with synthetic defects: AUROC on both classes
    assert report["accepted"] is False and report["images"] == 8 and report["compared_on"] == "AUROC"
    assert "training images" in report["images_from"]
    assert 0.0 <= report["int8"]["image_AUROC"] <= 1.0 and 0.0 <= report["fp32"]["pixel_AUROC"] <= 1.0
    assert not list(out.rglob("model.xml")) and not list(out.rglob("fp32_reference"))
    rejected_xml = next(out.rglob("model.rejected.xml"))
    import openvino as ov

    int8_model = ov.Core().read_model(rejected_xml)
    assert "FakeQuantize" in {op.get_type_name() for op in int8_model.get_ordered_ops()}
    # 8 bits in the GAN's convolutions only: the defect heads' read float activations with float weights
    from ganad_plugin.models.components.export import defect_head_convolutions

    heads = set(defect_head_convolutions(int8_model))
    convolutions = [op for op in int8_model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    assert len(heads) >= 4  # two heads of at least one hidden convolution and a logit each
    for op in convolutions:
        sources = [op.input_value(k).get_node().get_type_name() for k in (0, 1)]
        if op.get_friendly_name() in heads:
            assert sources[0] != "FakeQuantize" and sources[1] == "Constant", (op.get_friendly_name(), sources)
    assert any(op.input_value(0).get_node().get_type_name() == "FakeQuantize" for op in convolutions
               if op.get_friendly_name() not in heads)
    rejected = EdgeInferencer(rejected_xml)  # still a valid IR, kept for inspection
    prediction = rejected.predict_file(list_images(tiny_dataset / "weave" / "test")[0])
    assert np.isfinite(prediction.score) and np.isfinite(prediction.anomaly_map).all()


def test_int8_acceptance_never_reads_the_test_split(refused_int8, exported_ganomaly, tiny_dataset, tmp_path) -> None:
    import shutil

    # the same training images, a different test split: good parts only (a line with no defect samples yet)
    line = tmp_path / "data" / "weave"
    shutil.copytree(tiny_dataset / "weave" / "train", line / "train")
    shutil.copytree(tiny_dataset / "weave" / "test" / "good", line / "test" / "good")
    # the same export (in this process: a second program's imports cost about 20 s), which must succeed
    run_in_process(int8_export_args(exported_ganomaly["checkpoint"], tmp_path / "data", "1", tmp_path / "export"),
                   log=tmp_path / "export.log")
    report = json.loads(next((tmp_path / "export").rglob("quantisation_report.json")).read_text())
    refused = json.loads(next(refused_int8[1].rglob("quantisation_report.json")).read_text())
    # the figures the decision rests on are those of the full category's export, to the last digit
    assert report["accepted"] is True and report["images"] == refused["images"]
    assert (report["fp32"], report["int8"]) == (refused["fp32"], refused["int8"])
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
