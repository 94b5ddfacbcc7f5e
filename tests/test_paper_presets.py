"""The paper presets (configs/paper/): each paper's score on small known tensors, the whole-image networks, the
presets through the CLI and export, and the one-class benchmark's protocol and output."""

from __future__ import annotations

import csv
import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import ganad_plugin.models
from ganad_plugin.models.anogan.torch_model import AnoganModel
from ganad_plugin.models.components.settings import Evidence, PatchNetwork
from ganad_plugin.models.egbad.torch_model import EgbadModel
from ganad_plugin.models.ganomaly.torch_model import GanomalyModel

from .conftest import MODELS, REPO, assert_ir_matches, run_in_process

PAPER = Evidence(paper_score=True)
NETWORK = PatchNetwork(patch_size=16, n_features=8, latent_dim=4)
sys.path.insert(0, str(REPO / "benchmarks"))
import oneclass


def test_ganomaly_paper_score_is_the_mean_squared_code_distance(monkeypatch: pytest.MonkeyPatch) -> None:
    model = GanomalyModel(network=NETWORK, evidence=PAPER).eval()
    latent = torch.tensor([[1.0, 2.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0]])[..., None, None]
    latent_reconstructed = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 3.0]])[..., None, None]
    reconstructions = torch.zeros(2, 3, 16, 16)
    monkeypatch.setattr(model.generator, "forward", lambda patches: (reconstructions, latent, latent_reconstructed))
    score = model(torch.full((2, 3, 16, 16), 0.5)).pred_score
    # (1 + 4 + 0 + 4) / 4 and 9 / 4
    torch.testing.assert_close(score, torch.tensor([2.25, 2.25]))


@pytest.mark.parametrize(("model_class", "weight_name"), [(EgbadModel, "paper_alpha"), (AnoganModel, "latent_search_lambda")])
def test_egbad_and_anogan_paper_scores_weigh_residual_and_feature_distance(model_class, weight_name: str) -> None:
    model = model_class(network=NETWORK, evidence=PAPER, **{weight_name: 0.25})
    inputs = torch.zeros(2, 3, 16, 16)
    reconstructions = torch.stack([torch.full((3, 16, 16), 0.4), torch.full((3, 16, 16), -0.8)])
    distance = torch.tensor([2.0, 0.0])
    score = model.paper_image_score(inputs, reconstructions, distance)
    # (1 - 0.25) * |x - G|_1 (a mean) + 0.25 * the D-feature distance
    torch.testing.assert_close(score, torch.tensor([0.75 * 0.4 + 0.25 * 2.0, 0.75 * 0.8]))


def test_the_default_paper_weights_are_the_papers() -> None:
    assert EgbadModel(network=NETWORK, evidence=PAPER).paper_alpha == pytest.approx(0.1)  # Zenati: 0.9 on L_G
    assert AnoganModel(network=NETWORK, evidence=PAPER).latent_search_lambda == pytest.approx(0.1)  # Schlegl


def test_paper_map_is_the_residual_of_the_whole_image_resized_to_the_input(monkeypatch: pytest.MonkeyPatch) -> None:
    model = EgbadModel(network=NETWORK, evidence=PAPER).eval()
    images = torch.rand(1, 3, 60, 44)
    seen = {}

    def evidence(inputs: torch.Tensor):
        seen["inputs"] = inputs
        return torch.zeros_like(inputs), torch.zeros(len(inputs))

    monkeypatch.setattr(model, "patch_evidence", evidence)
    output = model(images)
    # the networks saw the whole image at their size (16 x 16), in tanh's range
    assert seen["inputs"].shape == (1, 3, 16, 16)
    expected_inputs = torch.nn.functional.interpolate(images, size=(16, 16), mode="bilinear") * 2 - 1
    torch.testing.assert_close(seen["inputs"], expected_inputs)
    # G(.) = 0, so the map is |x| in [0, 1] units, averaged over channels, back at the input's size
    assert output.anomaly_map.shape == (1, 1, 60, 44)
    small = (expected_inputs.abs().mean(dim=1, keepdim=True) / 2)
    torch.testing.assert_close(output.anomaly_map, torch.nn.functional.interpolate(small, size=(60, 44), mode="bilinear"))


def test_whole_images_average_blocks_where_the_size_divides() -> None:
    model = GanomalyModel(network=NETWORK, evidence=PAPER)
    images = torch.rand(2, 3, 64, 64)
    expected = images.reshape(2, 3, 16, 4, 16, 4).mean(dim=(3, 5))
    torch.testing.assert_close(model.whole_images(images), expected)


@pytest.mark.parametrize("name", MODELS)
def test_paper_model_has_no_memory_and_needs_no_calibration(name: str) -> None:
    model = getattr(ganad_plugin.models, name)(network=PatchNetwork(patch_size=32), evidence=PAPER)
    assert model.model.memory is None and model.model.colour is None and model.model.scorer is None
    assert model.model.calibrated
    # any input size: the whole image is resized to the networks' size
    with torch.no_grad():
        output = model.model.eval()(torch.rand(2, 3, 40, 72))
    assert output.pred_score.shape == (2,) and output.anomaly_map.shape == (2, 1, 40, 72)


@pytest.mark.parametrize("name", MODELS)
def test_each_paper_preset_builds_the_papers_model(name: str) -> None:
    config = yaml.safe_load((REPO / "configs" / "paper" / f"{name.lower()}.yaml").read_text())
    init = config["model"]["init_args"]
    assert config["model"]["class_path"] == f"ganad_plugin.models.{name}"
    assert init["evidence"] == {"paper_score": True}
    assert config["data"]["init_args"]["val_split_mode"] in {"synthetic", "from_train"}
    args = oneclass.paper_init_args(name, 64)
    model = getattr(ganad_plugin.models, name)(**args)
    assert model.model.patch_size == 64 and model.model.scorer is None
    if name == "GANomaly":
        assert (model.generator_loss.w_adv, model.generator_loss.w_con, model.generator_loss.w_enc) == (1, 50, 1)
    if name == "AnoGAN":
        assert model.model.latent_search_steps == 500 and not model.model.encoder_start
        assert model.model.latent_search_lambda == pytest.approx(0.1)


@pytest.fixture(scope="module", params=["GANomaly", "EGBAD"])
def paper_preset(request: pytest.FixtureRequest, tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A paper preset trained one epoch by `ganad train --config configs/paper/<model>.yaml`, then `ganad export`."""
    name = request.param
    work = tmp_path_factory.mktemp(f"paper_{name.lower()}")
    run_in_process(["train", "--config", str(REPO / "configs" / "paper" / f"{name.lower()}.yaml"), "--data.root",
                    str(tiny_dataset), "--data.category", "weave", "--trainer.max_epochs", "1", "--default_root_dir",
                    str(work / "train")], log=work / "train.log")
    checkpoint = next((work / "train").rglob("model.ckpt"))
    run_in_process(["export", "--model", f"ganad_plugin.models.{name}", "--export_type", "openvino",
                    "--ckpt_path", str(checkpoint), "--default_root_dir", str(work / "export")], log=work / "export.log")
    return {"name": name, "checkpoint": checkpoint, "xml": next((work / "export").rglob("model.xml")), "work": work}


def test_paper_preset_trains_tests_and_exports_like_the_checkpoint(paper_preset, tiny_dataset: Path) -> None:
    train_log = (paper_preset["work"] / "train.log").read_text()
    assert "image_AUROC" in train_log and "pixel_AUROC" in train_log  # `ganad train` tested it after the fit
    model = getattr(ganad_plugin.models, paper_preset["name"]).load_from_checkpoint(paper_preset["checkpoint"]).eval()
    assert model.model.paper_score and torch.isfinite(model.post_processor.image_threshold)
    assert_ir_matches(model, paper_preset["xml"], tiny_dataset)


def test_anogan_paper_search_refuses_export_and_says_how(tmp_path: Path) -> None:
    from anomalib.engine import Engine

    model = ganad_plugin.models.AnoGAN(**oneclass.paper_init_args("AnoGAN", 32))
    with pytest.raises(ValueError, match="latent_search_steps=500 cannot be exported"):
        Engine(default_root_dir=tmp_path).export(model=model, export_type="openvino", export_root=tmp_path)


def test_anogan_paper_search_starts_at_random_and_lowers_its_loss() -> None:
    torch.manual_seed(0)
    model = AnoganModel(network=NETWORK, evidence=PAPER, latent_search_steps=0, encoder_start=False).eval()
    images = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        before = model(images).pred_score
    model.latent_search_steps = 50
    torch.manual_seed(0)  # the same random start
    with torch.no_grad():
        after = model(images).pred_score
    assert (after < before).all()


# the one-class benchmark


def test_one_class_split_follows_the_survey() -> None:
    labels = np.repeat(np.arange(4), 25)
    train, test_normal, anomalous = oneclass.split_one_class(labels, anomaly=2, seed=0, max_train=None)
    assert len(train) == 60 and len(test_normal) == 15 and len(anomalous) == 25
    assert set(labels[train]) == set(labels[test_normal]) == {0, 1, 3} and set(labels[anomalous]) == {2}
    assert not set(train) & set(test_normal)
    again, _, _ = oneclass.split_one_class(labels, anomaly=2, seed=0, max_train=10)
    assert list(again) == list(train[:10])  # seeded: the same order, capped
    with pytest.raises(ValueError, match="anomaly class 7 has no images"):
        oneclass.split_one_class(labels, anomaly=7, seed=0, max_train=None)


def test_idx_files_read_gzipped_or_not_and_bad_ones_are_named(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in images.shape)
    (tmp_path / "images.idx").write_bytes(header + images.tobytes())
    (tmp_path / "labels.idx.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (2).to_bytes(4, "big") + bytes([7, 3])))
    pictures, labels = oneclass.load_dataset(None, tmp_path / "images.idx", tmp_path / "labels.idx.gz")
    np.testing.assert_array_equal(pictures, images)
    np.testing.assert_array_equal(labels, [7, 3])
    (tmp_path / "short.idx").write_bytes(header + images.tobytes()[:-1])
    with pytest.raises(ValueError, match="short.idx: header says"):
        oneclass.read_idx(tmp_path / "short.idx")
    np.savez(tmp_path / "bad.npz", pictures=images)
    with pytest.raises(ValueError, match=r"bad.npz: the .npz lacks \['images', 'labels'\]"):
        oneclass.load_dataset(str(tmp_path / "bad.npz"))


def test_one_class_benchmark_runs_on_an_npz_and_writes_its_table(tmp_path: Path) -> None:
    # scikit-learn's digits, written as a user's .npz: two classes and 12 training images (the defect heads train 12
    # batches an image), so that the run stays short
    pictures, labels = oneclass.load_dataset("digits")
    keep = np.flatnonzero(labels < 2)[:120]
    np.savez(tmp_path / "digits.npz", images=pictures[keep], labels=labels[keep])
    out = tmp_path / "out"
    assert oneclass.main(["--data", str(tmp_path / "digits.npz"), "--out", str(out), "--anomaly-classes", "1",
                          "--models", "GANomaly,EGBAD,Ensemble,anomalib.Ganomaly", "--epochs", "1",
                          "--max-train", "12", "--batch-size", "8"]) == 0
    with (out / "oneclass.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(oneclass.COLUMNS)
    assert [(r["model"], r["preset"]) for r in rows] == [
        ("GANomaly", "paper"), ("GANomaly", "default"), ("EGBAD", "paper"), ("EGBAD", "default"),
        ("Ensemble", "default"), ("anomalib.Ganomaly", "default")]
    for row in rows:
        assert 0.0 <= float(row["auroc"]) <= 1.0 and 0.0 < float(row["auprc"]) <= 1.0
        assert float(row["train_s"]) > 0 and float(row["test_images_per_s"]) > 0
    members = sum(float(r["train_s"]) for r in rows if r["model"] in {"GANomaly", "EGBAD"} and r["preset"] == "default")
    assert float(rows[4]["train_s"]) > members  # the ensemble's time includes its members' training
    assert (out / "oneclass.png").stat().st_size > 1000
    assert "mean AUPRC" in (out / "oneclass.md").read_text()


def test_one_class_benchmark_resumes_the_classes_it_has_and_refuses_other_settings(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    made = ["--data", "digits", "--out", str(out), "--anomaly-classes", "0,1", "--models", "EGBAD,anomalib.Ganomaly",
            "--presets", "paper", "--epochs", "7", "--batch-size", "8"]
    runs = [("EGBAD", "paper"), ("anomalib.Ganomaly", "default")]
    figures = {"auroc": 0.75, "auprc": 0.5, "train_s": 3.0, "test_images_per_s": 10.0}
    rows = [{"model": m, "preset": p, "anomaly_class": 0, **figures} for m, p in runs]
    rows.append({"model": "EGBAD", "preset": "paper", "anomaly_class": 1, **figures})  # class 1 stopped part way
    oneclass.write_csv(rows, out / "oneclass.csv", oneclass.COLUMNS)
    # a folder from before settings.json: the command recorded in its report stands for the settings
    (out / "oneclass.md").write_text("# One-class protocol\n\n`python benchmarks/oneclass.py " + " ".join(made) + "`\n")
    parser = oneclass.build_parser()
    again = [*made[:5], "2", *made[6:], "--resume"]  # other classes, the same settings
    kept, searches = oneclass.resumed_rows(out, parser, parser.parse_args(again), runs)
    assert kept == rows[:2] and searches == []
    other = [*again[:-4], "8", "--batch-size", "16", "--resume"]
    with pytest.raises(SystemExit, match=r"--epochs 7 there, 8 now; --batch-size 8 there, 16 now"):
        oneclass.resumed_rows(out, parser, parser.parse_args(other), runs)
    with pytest.raises(SystemExit, match="nothing to go on from"):
        oneclass.resumed_rows(tmp_path / "empty", parser, parser.parse_args(again), runs)

    # every class asked for is there: nothing trains, the table says where its rows came from
    assert oneclass.main([*made[:5], "0", *made[6:], "--resume"]) == 0
    assert oneclass.read_csv(out / "oneclass.csv") == rows[:2]
    assert "Anomaly classes 0 carried over" in (out / "oneclass.md").read_text()
    assert json.loads((out / "settings.json").read_text())["epochs"] == 7
