"""The ensemble of trained members: its standardisation on normal images, the CLI, its one exported graph."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from anomalib.data import InferenceBatch
from torch import nn

import ganad_plugin.models
from ganad_plugin.models.ensemble.torch_model import EnsembleModel

from .conftest import MODELS, all_exported, assert_ir_matches, run_in_process


class Constant(nn.Module):
    """A stand-in member: score ``scale * image mean + offset``, map ``scale * image + offset`` (first channel)."""

    def __init__(self, scale: float, offset: float) -> None:
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, images: torch.Tensor) -> InferenceBatch:
        return InferenceBatch(pred_score=self.scale * images.mean(dim=(1, 2, 3)) + self.offset,
                              anomaly_map=self.scale * images[:, :1] + self.offset)


def test_members_are_standardised_on_the_held_out_normal_images_then_averaged() -> None:
    torch.manual_seed(0)
    model = EnsembleModel([Constant(1.0, 0.0), Constant(100.0, 5.0)])
    assert not model.calibrated
    normal = [torch.rand(4, 3, 8, 8) for _ in range(4)]
    assert model.fit_normal(iter(normal), max_images=256) == 16
    held_out = torch.stack([batch[3] for batch in normal])  # every fourth image: those the members' memories left out
    means = held_out.mean(dim=(1, 2, 3))
    torch.testing.assert_close(model.score_mean, torch.stack([means.mean(), 100 * means.mean() + 5]))
    torch.testing.assert_close(model.score_std, torch.stack([means.std(), 100 * means.std()]), rtol=1e-4, atol=1e-6)
    assert model.calibrated
    # the two members differ only in scale: standardised they agree, so the ensemble equals either alone
    test = torch.rand(3, 3, 8, 8)
    output = model(test)
    expected = (test.mean(dim=(1, 2, 3)) - means.mean()) / means.std()
    torch.testing.assert_close(output.pred_score, expected, rtol=1e-4, atol=1e-4)
    assert output.anomaly_map.shape == (3, 1, 8, 8)


def test_too_few_normal_images_or_non_finite_scores_are_refused() -> None:
    model = EnsembleModel([Constant(1.0, 0.0), Constant(2.0, 0.0)])
    with pytest.raises(RuntimeError, match="at least 8 normal training images, got 4"):
        model.fit_normal(iter([torch.rand(4, 3, 8, 8)]))
    broken = EnsembleModel([Constant(1.0, 0.0), Constant(float("nan"), 0.0)])
    with pytest.raises(FloatingPointError, match="non-finite"):
        broken.fit_normal(iter([torch.rand(8, 3, 8, 8)]))
    with pytest.raises(ValueError, match="at least two members"):
        EnsembleModel([Constant(1.0, 0.0)])


def test_missing_or_foreign_member_checkpoints_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"member GANomaly: checkpoint .*nowhere.ckpt not found"):
        ganad_plugin.models.Ensemble(members={"GANomaly": str(tmp_path / "nowhere.ckpt"), "EGBAD": "x"})
    with pytest.raises(ValueError, match="member 'Padim' is not one of AnoGAN, EGBAD, GANomaly"):
        ganad_plugin.models.Ensemble(member_specs=[{"model": "Padim", "init_args": {}}] * 2)
    with pytest.raises(ValueError, match="needs its members' checkpoints"):
        ganad_plugin.models.Ensemble().require_calibration("export")  # built bare, as anomalib's CLI does first


@pytest.fixture(scope="module")
def trained_ensemble(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The three members trained one epoch by the CLI (shared with the other tests), then
    `ganad train --model Ensemble --model.members {...}` and `ganad export` of the ensemble."""
    checkpoints = {name: record["checkpoint"] for name, record in all_exported(tiny_dataset, tmp_path_factory).items()}
    members = "{" + ", ".join(f"{name}: {checkpoint}" for name, checkpoint in checkpoints.items()) + "}"
    work = tmp_path_factory.mktemp("ensemble")
    run_in_process(["train", "--model", "Ensemble", "--model.members", members, "--data", "anomalib.data.MVTecAD",
                    "--data.root", str(tiny_dataset), "--data.category", "weave", "--data.num_workers", "0",
                    "--default_root_dir", str(work / "train")], log=work / "train.log")
    checkpoint = next((work / "train").rglob("model.ckpt"))
    run_in_process(["export", "--model", "ganad_plugin.models.Ensemble", "--export_type", "openvino",
                    "--ckpt_path", str(checkpoint), "--default_root_dir", str(work / "export")], log=work / "export.log")
    return {"checkpoint": checkpoint, "xml": next((work / "export").rglob("model.xml")), "work": work,
            "members": checkpoints}


def test_ensemble_trains_from_the_cli_and_its_one_graph_matches_the_checkpoint(trained_ensemble, tiny_dataset) -> None:
    log = (trained_ensemble["work"] / "train.log").read_text()
    assert "image_AUROC" in log and "pixel_AUROC" in log
    ensemble = ganad_plugin.models.Ensemble.load_from_checkpoint(trained_ensemble["checkpoint"]).eval()
    assert [spec["model"] for spec in ensemble.hparams["member_specs"]] == list(MODELS)
    assert ensemble.model.calibrated and torch.isfinite(ensemble.post_processor.image_threshold)
    # the members' weights are the trained ones, from the ensemble's checkpoint alone
    member = ganad_plugin.models.GANomaly.load_from_checkpoint(trained_ensemble["members"]["GANomaly"])
    for name, tensor in member.model.state_dict().items():
        torch.testing.assert_close(ensemble.model.members[MODELS.index("GANomaly")].state_dict()[name], tensor)
    assert_ir_matches(ensemble, trained_ensemble["xml"], tiny_dataset)


def test_an_ensemble_whose_anogan_searches_refuses_export(trained_ensemble, tmp_path: Path) -> None:
    from anomalib.engine import Engine

    ensemble = ganad_plugin.models.Ensemble.load_from_checkpoint(trained_ensemble["checkpoint"])
    ensemble.model.members[MODELS.index("AnoGAN")].latent_search_steps = 5
    with pytest.raises(ValueError, match="AnoGAN member runs a latent search"):
        Engine(default_root_dir=tmp_path).export(model=ensemble, export_type="openvino", export_root=tmp_path)
