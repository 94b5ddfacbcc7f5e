"""The edge runtime on a line: no result lost, duplicated or mislabelled under crashes, bad files and full disks.

Most tests use the stand-in IR (``ganad_plugin.edge.stand_in``: score = the image's mean, map = its channel
mean), so they run in seconds and their expected outputs are known exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from ganad_plugin.cli import main
from ganad_plugin.edge import EdgeInferencer, InputError, ModelFormatError
from ganad_plugin.edge.images import read_rgb
from ganad_plugin.edge.results import ResultLog, ResultLogError
from ganad_plugin.edge.sources import watched_folder
from ganad_plugin.edge.stand_in import stand_in_ir

from .conftest import NARROW_HEAD, SHORT_HEAD_STEPS


def grey_images(folder: Path, levels: list[int], suffix: str = ".png") -> list[Path]:
    """One flat 32 x 32 image a level (its score on the stand-in IR is level / 255)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, level in enumerate(levels):
        path = folder / f"{index:04d}{suffix}"
        cv2.imwrite(str(path), np.full((32, 32, 3), level, np.uint8))
        paths.append(path)
    return paths


def strict_lines(path: Path) -> list[dict]:
    """Every line of a results.jsonl, parsed as strict JSON (the token NaN is refused)."""

    def refuse(token: str) -> None:
        raise ValueError(f"non-JSON token {token}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text(encoding="utf-8").splitlines()]


def infer(model: Path, source: Path, out: Path, *extra: str) -> int:
    return main(["infer", "--model", str(model), "--input", str(source), "--output", str(out), "--overlays", "none",
                 *extra])


# results.jsonl


def test_a_line_cut_short_by_a_crash_is_removed_and_the_rerun_completes_the_log(tmp_path) -> None:
    model = stand_in_ir(tmp_path / "model")
    paths = grey_images(tmp_path / "in", [10, 200, 30, 220])
    out = tmp_path / "out"
    assert infer(model, tmp_path / "in", out) == 0
    log = out / "results.jsonl"
    whole = log.read_bytes()
    cut = whole.index(b"\n", whole.index(b"\n") + 1) + 1  # two complete lines ...
    log.write_bytes(whole[:cut] + whole[cut : cut + 25])  # ... and a third cut off mid-write
    assert infer(model, tmp_path / "in", out) == 0
    lines = strict_lines(log)
    assert sorted(line["path"] for line in lines) == sorted(map(str, paths))  # no gaps, no duplicates
    assert (out / "results.jsonl.partial").read_bytes().startswith(whole[cut : cut + 25])


def test_a_rerun_scores_only_new_or_replaced_images_and_rescore_scores_all(tmp_path) -> None:
    model = stand_in_ir(tmp_path / "model")
    paths = grey_images(tmp_path / "in", [10, 200])
    out = tmp_path / "out"
    assert infer(model, tmp_path / "in", out) == 0
    assert infer(model, tmp_path / "in", out) == 0
    assert len(strict_lines(out / "results.jsonl")) == 2
    cv2.imwrite(str(paths[0]), np.full((32, 32, 3), 250, np.uint8))  # replaced by a new part's image
    os.utime(paths[0], ns=(time.time_ns(), time.time_ns() + 10**9))
    grey_images(tmp_path / "more", [40])[0].rename(tmp_path / "in" / "new.png")
    assert infer(model, tmp_path / "in", out) == 0
    lines = strict_lines(out / "results.jsonl")
    assert [Path(line["path"]).name for line in lines[2:]] == ["0000.png", "new.png"]
    assert lines[2]["label"] is True and lines[0]["label"] is False  # the new image, not the old result
    assert infer(model, tmp_path / "in", out, "--rescore") == 0
    assert len(strict_lines(out / "results.jsonl")) == 4 + 3


def test_each_line_says_when_and_by_which_model(tmp_path) -> None:
    model = stand_in_ir(tmp_path / "model")
    other = stand_in_ir(tmp_path / "other", scale=0.5)
    grey_images(tmp_path / "in", [100])
    out = tmp_path / "out"
    assert infer(model, tmp_path / "in", out) == 0
    assert infer(other, tmp_path / "in", out) == 0  # another model: the image is scored again
    first, second = strict_lines(out / "results.jsonl")
    assert first["model"].startswith("sha256:") and first["model"] != second["model"]
    assert first["model"] == EdgeInferencer(model).model_id
    assert time.strptime(first["time"][:19], "%Y-%m-%dT%H:%M:%S")
    assert first["score"] == pytest.approx(100 / 255, abs=1e-4)
    assert second["score"] == pytest.approx(50 / 255, abs=1e-4)


def test_results_survive_sigkill_at_any_moment_with_no_gaps_or_duplicates(tmp_path) -> None:
    model = stand_in_ir(tmp_path / "model")
    paths = grey_images(tmp_path / "in", [index % 256 for index in range(600)])
    out = tmp_path / "out"
    log = out / "results.jsonl"
    command = [sys.executable, "-m", "ganad_plugin.cli", "infer", "--model", str(model), "--input",
               str(tmp_path / "in"), "--output", str(out), "--batch-size", "1", "--overlays", "none"]
    kills = 0
    for lines_before_kill in (40, 150, 330):  # killed mid-run, at a moment set by the log's growth
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if log.is_file() and log.read_bytes().count(b"\n") >= lines_before_kill:
                process.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.002)
        process.wait()
    assert kills == 3, "a run ended before it could be killed: the test did not test a kill"
    assert subprocess.run(command, capture_output=True, check=False).returncode == 0
    names = [line["path"] for line in strict_lines(log)]
    assert sorted(names) == sorted(map(str, paths))


def test_a_full_disk_stops_with_a_clear_error_and_no_half_line(tmp_path, capsys) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full (Linux) to stand in for a full disk")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.jsonl").symlink_to("/dev/full")
    with pytest.raises(ResultLogError, match="results.jsonl: writing the result of 'a.png' failed"):
        ResultLog(tmp_path / "out" / "results.jsonl").append({"path": "a.png", "score": 0.1})
    model = stand_in_ir(tmp_path / "model")
    grey_images(tmp_path / "in", [10, 20])
    assert infer(model, tmp_path / "in", tmp_path / "out") == 3
    assert "No space left on device" in capsys.readouterr().err


def test_an_output_folder_that_cannot_be_written_is_named(tmp_path, capsys) -> None:
    model = stand_in_ir(tmp_path / "model")
    grey_images(tmp_path / "in", [10])
    (tmp_path / "a_file").write_text("not a folder")
    assert infer(model, tmp_path / "in", tmp_path / "a_file" / "out") == 2
    assert "a_file/out: cannot be written" in capsys.readouterr().err


def test_overlay_names_that_would_leave_the_output_folder_are_refused(tmp_path) -> None:
    from ganad_plugin.edge.infer import overlay_target

    assert overlay_target(tmp_path, Path("sub/a.jpg.png")) == tmp_path / "sub" / "a.jpg.png"
    for escaping in ("../a.png", "sub/../../a.png", "/etc/a.png"):
        with pytest.raises(InputError, match="outside"):
            overlay_target(tmp_path, Path(escaping))


def test_images_differing_only_in_extension_get_distinct_overlays(tmp_path) -> None:
    model = stand_in_ir(tmp_path / "model")
    grey_images(tmp_path / "in", [10], ".png")
    grey_images(tmp_path / "in", [200], ".jpg")
    out = tmp_path / "out"
    assert main(["infer", "--model", str(model), "--input", str(tmp_path / "in"), "--output", str(out)]) == 0
    assert sorted(path.name for path in (out / "overlays").iterdir()) == ["0000.jpg.png", "0000.png.png"]


# non-finite numbers


def test_a_non_finite_score_is_never_labelled_ok_nor_written_as_nan(tmp_path) -> None:
    model = stand_in_ir(tmp_path / "model", scale=float("nan"))
    grey_images(tmp_path / "in", [10, 20])
    result = EdgeInferencer(model).predict_array(np.full((32, 32, 3), 10, np.uint8))
    assert result.label is True and "non-finite" in result.error
    out = tmp_path / "out"
    assert infer(model, tmp_path / "in", out) == 1  # nothing was scored
    lines = strict_lines(out / "results.jsonl")
    assert len(lines) == 2 and all("non-finite" in line["error"] and "label" not in line for line in lines)


def test_calibration_refuses_non_finite_scores_and_the_runtime_refuses_non_finite_thresholds(tmp_path) -> None:
    from ganad_plugin.edge.calibrate import calibrate

    grey_images(tmp_path / "normal", [10, 20, 30])
    nan_model = stand_in_ir(tmp_path / "nan_model", scale=float("nan"))
    with pytest.raises(ValueError, match="non-finite scores"):
        calibrate(nan_model, tmp_path / "normal", 0.1)
    assert not (nan_model.parent / "thresholds.json").exists()

    model = stand_in_ir(tmp_path / "model")
    (model.parent / "thresholds.json").write_text('{"image_threshold": NaN, "pixel_threshold": 0.5}')
    with pytest.raises(ModelFormatError, match="image_threshold is nan"):
        EdgeInferencer(model)
    (model.parent / "thresholds.json").unlink()
    with pytest.raises(ModelFormatError, match="--threshold is NaN"):
        EdgeInferencer(model, threshold=float("nan"))


def test_an_ir_whose_map_is_not_one_channel_is_refused(tmp_path) -> None:
    with pytest.raises(ModelFormatError, match="anomaly_map has shape"):
        EdgeInferencer(stand_in_ir(tmp_path / "model", map_channels=3))


# images


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_truncated_or_half_written_image_is_reported_not_scored(tmp_path, suffix) -> None:
    whole = tmp_path / f"whole{suffix}"
    cv2.imwrite(str(whole), np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = whole.read_bytes()
    read_rgb(whole)
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) * 2 // 3])
    (tmp_path / f"preallocated{suffix}").write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    for name in ("cut", "preallocated"):
        with pytest.raises(InputError, match=f"{name}{suffix}: truncated"):
            read_rgb(tmp_path / f"{name}{suffix}")


# the batch runner


def test_two_threads_sharing_one_inferencer_each_get_their_own_results(tmp_path) -> None:
    inferencer = EdgeInferencer(stand_in_ir(tmp_path / "model"), performance_hint="THROUGHPUT")
    failures: list[str] = []

    def camera(level: int) -> None:
        images = [np.full((32, 32, 3), level + offset, np.uint8) for offset in range(4)]
        for _ in range(150):
            scores = [result.score for result in inferencer.predict_batch(images)]
            if not np.allclose(scores, [(level + offset) / 255 for offset in range(4)], atol=1e-5):
                failures.append(f"camera {level} got {scores}")
                return

    threads = [threading.Thread(target=camera, args=(level,)) for level in (20, 120, 220)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert inferencer.runner.jobs > 1, "THROUGHPUT should keep several requests in flight here"
    assert not failures, failures[0] if failures else ""


def test_a_stream_keeps_its_order_and_with_one_in_flight_answers_before_reading_on(tmp_path) -> None:
    """``predict_stream`` keeps up to ``batch_size`` images in the runtime, the results in input order; with 1, as a
    camera or a watched folder runs, each result comes before the next image is read."""
    inferencer = EdgeInferencer(stand_in_ir(tmp_path / "model"), performance_hint="THROUGHPUT")
    levels = list(range(10, 250, 7))
    read: list[int] = []

    def items():
        for level in levels:
            read.append(level)
            yield f"image{level}", np.full((32, 32, 3), level, np.uint8)

    results = list(inferencer.predict_stream(items(), batch_size=8))
    assert [result.path for result in results] == [f"image{level}" for level in levels]
    assert np.allclose([result.score for result in results], [level / 255 for level in levels], atol=1e-5)
    read.clear()
    for count, result in enumerate(inferencer.predict_stream(items(), batch_size=1), start=1):
        assert len(read) == count and result.path == f"image{levels[count - 1]}"
    assert inferencer.runner.idle.qsize() >= 1  # the requests went back to the pool


# --watch


class Line:
    """Stands in for time passing in ``watched_folder``: each poll's sleep runs the next scripted event."""

    def __init__(self, events: list) -> None:
        self.events = list(events)

    def __call__(self, _: float) -> None:
        if self.events:
            self.events.pop(0)()


def _png(level: int) -> bytes:
    return cv2.imencode(".png", np.full((32, 32, 3), level, np.uint8))[1].tobytes()


def _touch(path: Path, seconds: int) -> None:
    os.utime(path, ns=(seconds * 10**9, seconds * 10**9))


def test_watch_waits_for_half_written_and_preallocated_files(tmp_path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = _png(100)
    half, pre = inbox / "half.png", inbox / "pre.png"

    def start() -> None:
        half.write_bytes(data[: len(data) // 2])
        pre.write_bytes(bytes(len(data)))  # a writer that reserves the size first

    def stall() -> None:  # nothing is written for two polls: same size and time, still incomplete
        _touch(half, 1000)
        _touch(pre, 1000)

    def finish() -> None:
        half.write_bytes(data)
        pre.write_bytes(data)
        _touch(half, 2000)
        _touch(pre, 2000)

    line = Line([start, stall, lambda: None, lambda: None, finish])
    frames = list(watched_folder(inbox, set(), 1.0, stop_after_idle_s=3.0, give_up_after_s=30.0, sleep=line))
    assert sorted(Path(frame.name).name for frame in frames) == ["half.png", "pre.png"]
    assert all(frame.error is None and frame.image is not None for frame in frames)


def test_watch_reports_a_file_that_stays_unreadable_once_then_retries_it_when_replaced(tmp_path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    bad = inbox / "bad.png"

    def drop_bad() -> None:
        bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        _touch(bad, 1000)

    def fix() -> None:
        bad.write_bytes(_png(50))
        _touch(bad, 2000)

    line = Line([drop_bad, *[lambda: None] * 6, fix])
    frames = list(watched_folder(inbox, set(), 1.0, stop_after_idle_s=3.0, give_up_after_s=3.0, sleep=line))
    assert [frame.error is None for frame in frames] == [False, True]
    assert "still so after 3 s" in str(frames[0].error)


def test_watch_survives_vanishing_files_follows_symlinked_folders_and_skips_scored_ones(tmp_path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "cam1").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (inbox / "cam2").symlink_to(elsewhere, target_is_directory=True)
    (inbox / "cam2" / "loop").symlink_to(inbox, target_is_directory=True)  # a link loop ends
    done = inbox / "cam1" / "done.png"
    done.write_bytes(_png(10))
    scored = {(str(done), done.stat().st_mtime_ns)}

    def arrive() -> None:
        (inbox / "cam1" / "gone.png").write_bytes(_png(20))
        (elsewhere / "linked.png").write_bytes(_png(30))

    line = Line([arrive, lambda: (inbox / "cam1" / "gone.png").unlink()])
    frames = list(watched_folder(inbox, scored, 1.0, stop_after_idle_s=3.0, sleep=line))
    assert [Path(frame.name).relative_to(inbox).as_posix() for frame in frames] == ["cam2/linked.png"]


# training


def test_a_fit_shorter_than_the_validation_interval_still_ends_calibrated_with_a_checkpoint(tiny_dataset, tmp_path):
    import torch
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine

    from ganad_plugin.models import Evidence, GANomaly, PatchNetwork, PatchSampling

    model = GANomaly(network=PatchNetwork(n_features=8, latent_dim=16), sampling=PatchSampling(patches_per_image=4),
                     evidence=Evidence(defect_steps=SHORT_HEAD_STEPS))
    with pytest.raises(RuntimeError, match="GANomaly: cannot export: the model is not calibrated"):
        model.to_openvino(tmp_path / "never")
    datamodule = MVTecAD(root=tiny_dataset, category="weave", train_batch_size=4, eval_batch_size=4, num_workers=0,
                         val_split_mode="synthetic", val_split_ratio=0.25)
    engine = Engine(max_epochs=2, check_val_every_n_epoch=40, logger=False, enable_progress_bar=False,
                    default_root_dir=tmp_path)
    engine.fit(model=model, datamodule=datamodule)
    assert model.model.calibrated
    checkpoint = torch.load(next(tmp_path.rglob("*.ckpt")), map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 1  # saved after the last epoch's validation
    assert bool(checkpoint["state_dict"]["model.scorer.calibration.calibrated"])
    threshold = checkpoint["state_dict"]["post_processor._image_threshold"]
    assert torch.isfinite(threshold).all()


def test_testing_an_uncalibrated_model_fails_with_the_reason(tiny_dataset, tmp_path) -> None:
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine

    from ganad_plugin.models import EGBAD

    datamodule = MVTecAD(root=tiny_dataset, category="weave", eval_batch_size=4, num_workers=0)
    engine = Engine(logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(RuntimeError, match="EGBAD: cannot test: the model is not calibrated"):
        engine.test(model=EGBAD(), datamodule=datamodule)


# training inputs


def _category_copy(tiny_dataset: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(tiny_dataset / "weave", tmp_path / "data" / "weave")
    return tmp_path / "data" / "weave"


def test_a_missing_category_or_mask_is_named_before_anomalib_starts(tiny_dataset, tmp_path, capsys) -> None:
    config = Path(__file__).resolve().parents[1] / "configs" / "ganomaly.yaml"
    train = ["train", "--config", str(config), "--data.root", str(tmp_path / "data")]
    assert main([*train, "--data.category", "nothing_here"]) == 2
    assert "nothing_here: no such category folder" in capsys.readouterr().err
    category = _category_copy(tiny_dataset, tmp_path)
    mask = next((category / "ground_truth").rglob("*_mask.png"))
    mask.unlink()
    assert main([*train, "--data.category", "weave"]) == 2
    assert f"without its mask {mask}" in capsys.readouterr().err
    (category / "train" / "good").rename(category / "train" / "elsewhere")
    assert main(["fit", "--model", "EGBAD", "--data", "anomalib.data.MVTecAD", f"--data.root={tmp_path / 'data'}",
                 "--data.category", "weave"]) == 2
    assert "train/good: no training images" in capsys.readouterr().err


def test_unusable_training_files_are_refused_by_name_and_conversions_noted(tmp_path) -> None:
    from ganad_plugin.models.components.inputs import TrainingInputError, check_images

    good = grey_images(tmp_path / "good", [100, 110])
    bad = {
        "empty.png": b"",
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 40 + b"IEND\xaeB`\x82",
        "cut.jpg": cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))[1].tobytes()[:300],
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(TrainingInputError, match=name):
            check_images([(good[0], None), (tmp_path / name, None)], 16)
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((32, 32), 40000, np.uint16))
    with pytest.raises(TrainingInputError, match="deep.png: image has uint16 pixels"):
        check_images([(tmp_path / "deep.png", None)], 16)
    cv2.imwrite(str(tmp_path / "mask.png"), np.zeros((16, 16), np.uint8))
    with pytest.raises(TrainingInputError, match="mask.png: mask is 16x16 px but its image .*0000.png is 32x32"):
        check_images([(good[0], tmp_path / "mask.png")], 16)
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((20, 20), 50, np.uint8))
    cv2.imwrite(str(tmp_path / "alpha.png"), np.full((32, 32, 4), 50, np.uint8))
    notes = check_images([(good[0], None), (tmp_path / "grey.png", None), (tmp_path / "alpha.png", None)], 24)
    assert any("1 colour, 1 colour with alpha, 1 grey" in note for note in notes)
    assert any("below 24 px" in note and "grey.png 20x20" in note for note in notes)


def test_an_unusable_training_image_stops_the_run_before_its_first_step(tiny_dataset, tmp_path, capsys) -> None:
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine

    from ganad_plugin.models import GANomaly, PatchNetwork
    from ganad_plugin.models.components.inputs import TrainingInputError

    category = _category_copy(tiny_dataset, tmp_path)
    images = sorted((category / "train" / "good").glob("*.png"))
    original = images[3].read_bytes()
    images[3].write_bytes(original[:200])  # cut short, as by a failed copy
    # through ganad: refused before anomalib starts (anomalib reads some images while it sets up the data)
    assert main(["train", "--model", "GANomaly", "--data", "anomalib.data.MVTecAD", "--data.root",
                 str(category.parent), "--data.category", "weave"]) == 2
    assert f"{images[3].name}: image is unusable: truncated PNG" in capsys.readouterr().err
    # through the Engine: a 16-bit image (which anomalib's reader would clip to white) stops the fit at its start
    images[3].write_bytes(original)
    cv2.imwrite(str(images[5]), np.full((256, 256), 30000, np.uint16))
    model = GANomaly(network=PatchNetwork(n_features=8, latent_dim=16))
    datamodule = MVTecAD(root=category.parent, category="weave", num_workers=0, val_split_mode="synthetic")
    engine = Engine(max_epochs=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(TrainingInputError, match=f"{images[5].name}: image has uint16 pixels"):
        engine.fit(model=model, datamodule=datamodule)
    assert engine.trainer.global_step == 0


# checkpoints are data


@pytest.mark.parametrize("name", ["GANomaly", "EGBAD", "AnoGAN"])
def test_every_hyper_parameter_survives_weights_only_loading(name, tmp_path) -> None:
    import dataclasses

    import lightning
    import torch

    from ganad_plugin import models

    changed = {
        "network": models.PatchNetwork(patch_size=16, n_features=8, latent_dim=24),
        "evidence": dataclasses.replace(models.Evidence(), memory_weight=1.5, memory_size=512, score_top_fraction=0.01),
        "sampling": models.PatchSampling(patches_per_image=6),
        "optimiser": models.AdamSettings(lr=1e-3, schedule="cosine"),
    }
    model = getattr(models, name)(**changed)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": lightning.__version__}, path)
    assert torch.load(path, weights_only=True)["hyper_parameters"]["network"] == changed["network"]
    loaded = getattr(models, name).load_from_checkpoint(path, weights_only=True)
    assert dict(loaded.hparams) == dict(model.hparams)
    for key, value in changed.items():
        assert getattr(loaded, key, loaded.hparams[key]) == value


# training faults


def test_a_non_finite_loss_stops_the_fit_naming_the_step_and_keeps_the_last_checkpoint(tiny_dataset, tmp_path):
    import torch
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from lightning.pytorch import Callback

    from ganad_plugin.models import EGBAD, Evidence, PatchNetwork, PatchSampling

    class BreakTheGenerator(Callback):  # as a learning rate far too high would, in the second epoch
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if trainer.current_epoch == 1:
                with torch.no_grad():
                    next(pl_module.model.generator.parameters()).fill_(float("nan"))

    model = EGBAD(network=PatchNetwork(n_features=8, latent_dim=16), sampling=PatchSampling(patches_per_image=4),
                  evidence=Evidence(defect_steps=SHORT_HEAD_STEPS))
    datamodule = MVTecAD(root=tiny_dataset, category="weave", train_batch_size=4, eval_batch_size=4, num_workers=0,
                         val_split_mode="synthetic", val_split_ratio=0.25)
    engine = Engine(max_epochs=3, check_val_every_n_epoch=1, logger=False, enable_progress_bar=False,
                    default_root_dir=tmp_path, callbacks=[BreakTheGenerator()])
    with pytest.raises(FloatingPointError, match=r"training diverged at step \d+: \w+_loss is nan"):
        engine.fit(model=model, datamodule=datamodule)
    checkpoints = list(tmp_path.rglob("*.ckpt"))
    assert checkpoints, "the first epoch's checkpoint is gone"
    state = torch.load(checkpoints[0], map_location="cpu", weights_only=True)
    assert state["epoch"] == 0 and all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_the_same_seed_gives_the_same_scores(tiny_dataset, tmp_path) -> None:
    import torch
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from lightning.pytorch import seed_everything

    from ganad_plugin.models import Evidence, GANomaly, PatchNetwork, PatchSampling

    def fit_and_score(run: str, threads: int | None = None) -> torch.Tensor:
        seed_everything(7)
        before = torch.get_num_threads()
        torch.set_num_threads(threads or before)
        # heads 32 wide with one full-resolution convolution: the default 48-wide heads with three, trained for these
        # 16 batches only, are noisier across thread counts (2026-12-03, 2 threads against 1: 8.8 % of the range, where
        # a seed moves them by 14.6 %; 32 wide and one convolution: 0.2 % and 5.1 %), the noise of a head this far
        # from trained rather than of the pipeline this test is about. The seed's determinism is the same code either
        # way (the default heads gave equal scores twice until 2026-12-07, when they were left out for make test's time)
        model = GANomaly(network=PatchNetwork(n_features=8, latent_dim=16), sampling=PatchSampling(patches_per_image=4),
                         evidence=Evidence(defect_steps=SHORT_HEAD_STEPS, **NARROW_HEAD))
        datamodule = MVTecAD(root=tiny_dataset, category="weave", train_batch_size=4, eval_batch_size=9,
                             num_workers=0, val_split_mode="synthetic", val_split_ratio=0.25, seed=0)
        engine = Engine(max_epochs=2, logger=False, enable_progress_bar=False, default_root_dir=tmp_path / run)
        engine.fit(model=model, datamodule=datamodule)
        datamodule.setup("test")
        batch = next(iter(datamodule.test_dataloader()))
        with torch.no_grad():
            scores = model.eval().model(model.pre_processor.transform(batch.image)).pred_score
        torch.set_num_threads(before)
        return scores

    first, second = fit_and_score("first"), fit_and_score("second")
    assert torch.equal(first, second), (first - second).abs().max()
    # another thread count sums in another order, and two epochs of GAN training carry the difference on: the scores
    # move by about 1 % of their range (1.04 % measured, 2 threads against 1, 2026-12-01), far less than a seed moves
    # them. Two threads where this process runs on one (as under make test's workers), one elsewhere
    other = fit_and_score("other_threads", threads=2 if torch.get_num_threads() == 1 else 1)
    spread = float(first.max() - first.min())
    assert float((other - first).abs().max()) < 0.05 * spread


# under load


def test_the_stream_benchmark_loses_and_duplicates_nothing_at_a_small_count(tmp_path) -> None:
    """``benchmarks/stream.py`` at 300 images (the 5,000-image figures in docs/reliability.md come from the same
    command): SIGKILLs in a folder run and a --watch run with slow, unreadable, vanishing and replaced files."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "stream.py"
    result = subprocess.run([sys.executable, str(script), "--images", "300", "--kills", "2", "--out", str(tmp_path)],
                            capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder = json.loads(result.stdout.split("folder: ", 1)[1].splitlines()[0])
    watch = json.loads(result.stdout.split("watch:  ", 1)[1].splitlines()[0])
    assert folder["kills"] == 2 and folder["lines"] == 300 and folder["lost"] == folder["duplicates"] == 0
    assert watch["kills"] == 1 and watch["lost"] == watch["duplicates"] == 0 and watch["invalid_lines"] == 0
    assert watch["garbage_reported"] == watch["garbage"] and watch["replaced_scored_twice"] == watch["replaced"]


def test_a_killed_fit_resumes_from_its_resume_point_and_anogan_keeps_its_phase_switch(tiny_dataset, tmp_path):
    import torch
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from lightning.pytorch import Callback

    from ganad_plugin.models import AnoGAN, Evidence, PatchNetwork, PatchSampling

    class Kill(Exception):
        pass

    class Record(Callback):
        """Each (epoch, batch)'s phase; raises ``Kill`` at the start of epoch ``kill_at`` (as a SIGKILL would stop it)."""

        def __init__(self, kill_at: int | None = None) -> None:
            self.kill_at, self.phases = kill_at, {}

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if trainer.current_epoch == self.kill_at:
                raise Kill

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.phases[trainer.current_epoch, batch_idx] = pl_module.in_encoder_phase(batch_idx)

    def run(name: str, record: Record, ckpt_path: Path | None = None) -> Engine:
        model = AnoGAN(network=PatchNetwork(n_features=8, latent_dim=16), sampling=PatchSampling(patches_per_image=4),
                       encoder_share=0.4, evidence=Evidence(defect_steps=SHORT_HEAD_STEPS))
        model.resume_every_n_epochs = 2
        datamodule = MVTecAD(root=tiny_dataset, category="weave", train_batch_size=2, eval_batch_size=4,
                             num_workers=0, val_split_mode="synthetic", val_split_ratio=0.25)
        engine = Engine(max_epochs=5, check_val_every_n_epoch=5, logger=False, enable_progress_bar=False,
                        default_root_dir=tmp_path / name, callbacks=[record])
        engine.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
        return engine

    whole = Record()
    run("whole", whole)
    assert not list((tmp_path / "whole").rglob("resume.ckpt"))  # removed once model.ckpt holds the end
    killed = Record(kill_at=3)
    with pytest.raises(Kill):
        run("killed", killed)
    resume = next((tmp_path / "killed").rglob("resume.ckpt"))
    assert torch.load(resume, map_location="cpu", weights_only=True)["epoch"] == 1  # after epochs 0 and 1
    resumed = Record()
    run("resumed", resumed, ckpt_path=resume)
    assert min(resumed.phases) == (2, 0) and max(resumed.phases) == max(whole.phases)
    # every step after the resume point is in the phase the uninterrupted fit had at that step
    assert {step: whole.phases[step] for step in resumed.phases} == resumed.phases
    assert any(resumed.phases.values()) and not all(whole.phases.values())


def test_an_overlay_that_cannot_be_finished_leaves_no_half_picture(tmp_path, monkeypatch) -> None:
    import errno

    from ganad_plugin.edge.regions import save_overlay
    from ganad_plugin.edge.runtime import ImageResult

    image = np.full((32, 32, 3), 128, np.uint8)
    result = ImageResult("a.png", 0.9, True, 0.5, 0.5, np.zeros((32, 32), np.float32), np.zeros((32, 32), bool), [])

    def disk_fills_half_way(self: Path, data: bytes) -> int:
        with open(self, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_fills_half_way)
    with pytest.raises(OSError, match="could not write overlay .*a.png.png: No space left on device"):
        save_overlay(tmp_path / "a.png.png", image, result)
    assert list(tmp_path.iterdir()) == []
