"""The torch-free edge runtime and ``ganad infer``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ganad_plugin.edge import EdgeInferencer, InputError, ModelFormatError
from ganad_plugin.edge.images import list_images

BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'anomalib', 'lightning', 'torchvision'):
            raise ImportError(f'blocked import of {name}')
sys.meta_path.insert(0, Block())
"""


def test_ganad_infer_runs_with_torch_and_anomalib_unimportable(exported_ganomaly, tiny_dataset, tmp_path) -> None:
    code = BLOCK_TORCH + (
        "from ganad_plugin.cli import main\n"
        f"sys.exit(main(['infer', '--model', r'{exported_ganomaly['xml']}', '--input', r'{tiny_dataset / 'weave' / 'test'}',"
        f" '--output', r'{tmp_path}']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 3 + 3 * 2
    for line in lines:
        assert {"path", "score", "label", "threshold", "regions"} <= set(line)
        for region in line["regions"]:
            x, y, w, h = region["bbox"]
            assert 0 <= x < 256 and 0 <= y < 256 and w > 0 and h > 0 and region["area"] > 0
    assert len(list((tmp_path / "overlays").rglob("*.png"))) == len(lines)


def test_maps_and_regions_are_in_input_image_pixels(exported_ganomaly, tiny_dataset) -> None:
    inferencer = EdgeInferencer(exported_ganomaly["xml"], threshold=0.0)  # everything above 0 is "defect"
    image = cv2.resize(cv2.imread(str(next((tiny_dataset / "flange" / "test" / "scratch").glob("*.png")))), (400, 300))
    result = inferencer.predict_array(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    assert result.anomaly_map.shape == (300, 400) and result.mask.shape == (300, 400)
    assert result.label and result.regions
    assert all(r["bbox"][0] + r["bbox"][2] <= 400 and r["bbox"][1] + r["bbox"][3] <= 300 for r in result.regions)


@pytest.mark.parametrize("channels", [1, 4])
def test_grey_and_rgba_images_are_accepted(exported_ganomaly, tmp_path, channels) -> None:
    image = np.random.default_rng(0).integers(0, 255, (128, 160, channels), dtype=np.uint8)
    path = tmp_path / "odd.png"
    cv2.imwrite(str(path), image if channels == 4 else image[..., 0])
    result = EdgeInferencer(exported_ganomaly["xml"]).predict_file(path)
    assert result.anomaly_map.shape == (128, 160) and np.isfinite(result.score)


def test_bad_inputs_name_the_file_and_the_run_goes_on(exported_ganomaly, tiny_dataset, tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    good = next((tiny_dataset / "weave" / "test" / "good").glob("*.png"))
    (folder / "a_good.png").write_bytes(good.read_bytes())
    (folder / "b_corrupt.png").write_bytes(b"\x89PNG not really")
    (folder / "c_empty.jpg").write_bytes(b"")
    inferencer = EdgeInferencer(exported_ganomaly["xml"])
    with pytest.raises(InputError, match="b_corrupt.png"):
        inferencer.predict_file(folder / "b_corrupt.png")
    with pytest.raises(InputError, match="no such file"):
        inferencer.predict_file(folder / "missing.png")
    with pytest.raises(InputError, match="unsupported extension"):
        (tmp_path / "notes.txt").write_text("x")
        inferencer.predict_file(tmp_path / "notes.txt")
    out = tmp_path / "out"
    from ganad_plugin.cli import main

    assert main(["infer", "--model", str(exported_ganomaly["xml"]), "--input", str(folder), "--output", str(out)]) == 0
    # a bad file's line is written when it is read; good images' lines when their batch has run
    lines = sorted((json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()),
                   key=lambda line: line["path"])
    assert [("error" in line) for line in lines] == [False, True, True]
    assert "b_corrupt.png" in lines[1]["error"] and "empty" in lines[2]["error"]


def test_export_marks_every_layer_but_the_networks_convolutions_and_activations_to_stay_f32(exported_ganomaly) -> None:
    import xml.etree.ElementTree as ET

    import openvino as ov

    from ganad_plugin.edge.precision import F32_ATTRIBUTE, has_f32_evidence, set_evidence_marks

    def marked(layer: ET.Element) -> bool:
        return any(a.get("name") == F32_ATTRIBUTE["name"] for a in layer.iter("attribute"))

    def in_networks(layer: ET.Element) -> bool:
        return layer.get("name").startswith(("__module.model.generator.", "__module.model.defect"))

    net = ET.parse(exported_ganomaly["xml"]).getroot()
    layers = list(net.iter("layer"))
    convolutions = [layer for layer in layers if layer.get("type") in ("Convolution", "ConvolutionBackpropData")]
    # the maps' smoothing and the colour statistics' windows are convolutions too, but evidence arithmetic
    smoothing = [layer for layer in convolutions if ".scorer.blur" in layer.get("name") or ".colour." in layer.get("name")]
    networks = [layer for layer in convolutions if layer not in smoothing]
    activations = [layer for layer in layers if layer.get("type") in ("ReLU", "PReLU", "Add") and in_networks(layer)]
    # the reconstruction the residual is taken from, and the defect head's probability, stay f32
    outputs = [layer for layer in layers if layer.get("type") in ("Tanh", "Sigmoid")]
    evidence = [layer for layer in layers if layer.get("type") in ("MatMul", "ReduceMean", "Sqrt", "Interpolate")]
    assert networks and smoothing and activations and outputs and evidence
    assert not any(marked(layer) for layer in networks + activations)
    assert all(marked(layer) for layer in smoothing + outputs + evidence)
    assert has_f32_evidence(ov.Core().read_model(exported_ganomaly["xml"]))
    # an IR exported under an earlier rule (its activations marked too) is re-marked to the current one
    for layer in activations:
        rt_info = layer.find("rt_info") if layer.find("rt_info") is not None else ET.SubElement(layer, "rt_info")
        ET.SubElement(rt_info, "attribute", F32_ATTRIBUTE)
    assert set_evidence_marks(net, keep_f32=True) == len(activations)
    assert not any(marked(layer) for layer in activations) and all(marked(layer) for layer in evidence)
    count = sum(marked(layer) for layer in layers)
    assert set_evidence_marks(net, keep_f32=False) == count > 0
    assert not any(marked(layer) for layer in layers)


def test_auto_precision_is_bf16_only_with_the_units_and_the_marks() -> None:
    import openvino as ov

    from ganad_plugin.edge.precision import choose_precision, mark_evidence_f32

    parameter = ov.opset13.parameter([1, 3, 8, 8], np.float32, name="x")
    plain = ov.Model([ov.opset13.reduce_mean(parameter, [2, 3], keep_dims=False)], [parameter], "plain")
    assert choose_precision("auto", plain, ["BF16", "FP32"]) == "f32"  # no marks: its evidence would be rounded
    assert choose_precision("bf16", plain, ["FP32"]) == "bf16"  # asked by name
    with pytest.raises(ValueError, match="precision must be one of"):
        choose_precision("int4", plain, ["BF16"])
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        xml = Path(folder) / "m.xml"
        ov.save_model(plain, xml)
        assert mark_evidence_f32(xml) == 1
        assert mark_evidence_f32(xml) == 0  # already marked
        marked = ov.Core().read_model(xml)
    assert choose_precision("auto", marked, ["BF16", "FP32"]) == "bf16"
    assert choose_precision("auto", marked, ["FP32", "INT8"]) == "f32"


def test_auto_runs_the_networks_in_bf16_and_the_evidence_in_f32(exported_ganomaly, tiny_dataset, tmp_path) -> None:
    import xml.etree.ElementTree as ET

    import openvino as ov

    from ganad_plugin.edge.precision import set_evidence_marks

    def bf16_layer_types(inferencer: EdgeInferencer) -> set[str]:
        ops = inferencer.compiled.get_runtime_model().get_ordered_ops()
        return {op.get_rt_info()["layerType"].astype(str) for op in ops
                if op.get_rt_info()["runtimePrecision"].astype(str) == "bf16"}

    def map_correlations(inferencer: EdgeInferencer) -> np.ndarray:
        """Each image's map against the f32 one's (Pearson)."""
        results = [(inferencer.predict_file(path), full.predict_file(path)) for path in images]
        assert all(np.isfinite(low.score) for low, _ in results)
        return np.array([np.corrcoef(low.anomaly_map.ravel(), high.anomaly_map.ravel())[0, 1] for low, high in results])

    images = list_images(tiny_dataset / "weave" / "test")[:6]
    auto, full = EdgeInferencer(exported_ganomaly["xml"]), EdgeInferencer(exported_ganomaly["xml"], precision="f32")
    has_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert auto.precision == ("bf16" if has_bf16 else "f32") and full.precision == "f32"
    assert full.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    marked = map_correlations(auto)
    if not has_bf16:
        assert marked.min() > 0.999  # the same f32 graph
        return
    assert "Convolution" in bf16_layer_types(auto)
    assert "Reduce" not in bf16_layer_types(auto)  # kept f32 by the marks...
    net = ET.parse(exported_ganomaly["xml"]).getroot()
    set_evidence_marks(net, keep_f32=False)
    unmarked = tmp_path / "unmarked.xml"
    unmarked.write_bytes(ET.tostring(net))
    unmarked.with_suffix(".bin").write_bytes(exported_ganomaly["xml"].with_suffix(".bin").read_bytes())
    whole = EdgeInferencer(unmarked, precision="bf16")
    assert "Reduce" in bf16_layer_types(whole)  # ...and rounded without
    # This one-epoch model's narrow normal range stretches any rounding: measured on a Xeon with AMX (2026-12-03, five
    # runs; the fixture's one-epoch model differs from run to run), its maps correlate with f32's 0.95-0.99 with the
    # marks and 0.85-0.96 without, each image higher with them, the means 0.025-0.08 apart. (On a trained model both
    # cost at most 0.002 AUROC on validation: docs/speed.md, benchmarks/edge_precision.py.) OpenVINO's CPU plugin
    # does not keep every marked layer in f32 (the matrix products it turns into FullyConnected run in bf16), hence
    # not 1.
    unmarked_correlations = map_correlations(whole)
    assert marked.min() > 0.93
    assert (marked > unmarked_correlations).all() and marked.mean() > unmarked_correlations.mean() + 0.01
    from ganad_plugin.cli import main

    out = tmp_path / "out"
    assert main(["infer", "--model", str(exported_ganomaly["xml"]), "--input", str(images[0]), "--output", str(out),
                 "--precision", "bf16", "--overlays", "none"]) == 0
    assert "error" not in json.loads((out / "results.jsonl").read_text().splitlines()[0])


def test_an_ir_that_is_not_ours_is_refused_by_name(tmp_path: Path) -> None:
    import openvino as ov

    parameter = ov.opset13.parameter([1, 3, 8, 8], np.float32, name="x")
    model = ov.Model([ov.opset13.relu(parameter)], [parameter], "other")
    ov.save_model(model, tmp_path / "other.xml")
    with pytest.raises(ModelFormatError, match="other.xml: not a ganad-plugin/anomalib export"):
        EdgeInferencer(tmp_path / "other.xml")


def _test_images(tiny_dataset: Path) -> list[np.ndarray]:
    from ganad_plugin.edge.images import list_images, read_rgb

    return [read_rgb(path) for path in list_images(tiny_dataset / "weave" / "test")]


def test_a_batch_gives_the_same_results_as_one_image_at_a_time(exported_ganomaly, tiny_dataset) -> None:
    inferencer = EdgeInferencer(exported_ganomaly["xml"], performance_hint="THROUGHPUT")
    images = _test_images(tiny_dataset)[:5]
    images[2] = cv2.resize(images[2], (200, 160))  # a different size runs in its own batch
    batched = inferencer.predict_batch(images)
    for image, result in zip(images, batched, strict=True):
        alone = inferencer.predict_array(image)
        assert result.anomaly_map.shape == image.shape[:2]
        assert abs(result.score - alone.score) < 1e-5
        np.testing.assert_allclose(result.anomaly_map, alone.anomaly_map, atol=1e-5)
    # the THROUGHPUT hint splits a batch over parallel requests; the LATENCY hint runs it as one request
    latency = EdgeInferencer(exported_ganomaly["xml"], performance_hint="LATENCY").predict_batch(images)
    for parallel, single in zip(batched, latency, strict=True):
        assert abs(parallel.score - single.score) < 1e-5


def test_calibration_flags_at_most_the_chosen_share_of_normal_images(exported_ganomaly, tiny_dataset, tmp_path) -> None:
    import shutil

    from ganad_plugin.edge.calibrate import calibrate

    model_dir = tmp_path / "model"
    shutil.copytree(exported_ganomaly["xml"].parent, model_dir)
    normal = tiny_dataset / "weave" / "train" / "good"
    record = calibrate(model_dir / "model.xml", normal, false_alarm_rate=0.25)
    stored = json.loads((model_dir / "thresholds.json").read_text())
    assert stored["image_threshold"] == record["image_threshold"] and stored["normal_images"] == 8
    inferencer = EdgeInferencer(model_dir / "model.xml")
    assert inferencer.threshold == record["image_threshold"]
    assert inferencer.pixel_threshold == record["pixel_threshold"]
    from ganad_plugin.edge.images import list_images

    results = [inferencer.predict_file(path) for path in list_images(normal)]
    assert sum(r.label for r in results) <= 0.25 * len(results)
    assert sum(bool(r.mask.any()) for r in results) <= 0.25 * len(results)
    assert EdgeInferencer(model_dir / "model.xml", threshold=0.3).threshold == 0.3  # the command line wins
    calibrate(model_dir / "model.xml", normal, false_alarm_rate=0.5)
    assert (model_dir / "thresholds.previous.json").is_file()  # the earlier calibration is kept


def test_a_video_file_is_inspected_frame_by_frame(exported_ganomaly, tiny_dataset, tmp_path) -> None:
    from ganad_plugin.cli import main

    clip = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (256, 256))
    for image in _test_images(tiny_dataset)[:4]:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "out"
    assert main(["infer", "--model", str(exported_ganomaly["xml"]), "--input", str(clip), "--output", str(out),
                 "--overlays", "all"]) == 0
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [line["path"] for line in lines] == [f"line#{i:06d}" for i in range(4)]
    assert len(list((out / "overlays" / "line").glob("frame_*.png"))) == 4


def test_watch_mode_processes_new_files_once_and_skips_those_already_in_results(exported_ganomaly, tiny_dataset,
                                                                                 tmp_path) -> None:
    from ganad_plugin.edge.sources import watched_folder

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sources = sorted((tiny_dataset / "weave" / "test" / "good").glob("*.png"))
    (inbox / "a.png").write_bytes(sources[0].read_bytes())
    done = {(str(inbox / "a.png"), (inbox / "a.png").stat().st_mtime_ns)}  # as if an earlier run had scored it
    arrivals = iter([sources[1], sources[2]])

    def sleep_and_deliver(_: float) -> None:  # stands in for time passing while the line drops files
        path = next(arrivals, None)
        if path is not None:
            (inbox / f"new_{path.name}").write_bytes(path.read_bytes())

    frames = list(watched_folder(inbox, done, poll_interval_s=1.0, stop_after_idle_s=3.0, sleep=sleep_and_deliver))
    assert sorted(Path(frame.name).name for frame in frames) == ["new_001.png", "new_002.png"]
    assert all(frame.image is not None for frame in frames)


def test_overlays_are_written_off_the_inference_thread_and_a_failure_names_the_file(tmp_path) -> None:
    from ganad_plugin.edge.infer import OverlayWriter
    from ganad_plugin.edge.runtime import ImageResult

    image = np.full((32, 32, 3), 128, np.uint8)
    result = ImageResult("a.png", 0.9, True, 0.5, 0.5, np.zeros((32, 32), np.float32), np.zeros((32, 32), bool), [])
    writer = OverlayWriter(depth=2)
    for index in range(5):  # more than the queue holds: put waits for the writer instead of growing
        writer.put(tmp_path / "overlays" / f"{index}.png", image, result)
    writer.close()
    assert sorted(path.name for path in (tmp_path / "overlays").iterdir()) == [f"{i}.png" for i in range(5)]

    (tmp_path / "not_a_folder").write_text("x")
    writer = OverlayWriter()
    writer.put(tmp_path / "not_a_folder" / "b.png", image, result)
    with pytest.raises(OSError, match="not_a_folder"):
        writer.close()
