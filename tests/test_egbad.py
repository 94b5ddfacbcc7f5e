"""EGBAD: outputs, losses, weight averages, a real fit, registration."""

from __future__ import annotations

import math

import pytest
import torch
from anomalib.data import InferenceBatch

from ganad_plugin.models import EGBAD
from ganad_plugin.models.egbad.loss import DiscriminatorLoss, EncoderGeneratorLoss
from ganad_plugin.models.egbad.torch_model import JointDiscriminator


@pytest.mark.parametrize("size", [(64, 64), (96, 160), (512, 384)])
def test_eval_output_is_score_and_map_at_preprocessed_resolution(size: tuple[int, int]) -> None:
    model = EGBAD(pre_processor=EGBAD.configure_pre_processor(size)).eval()
    images = model.pre_processor(torch.rand(2, 3, 300, 280))
    with torch.no_grad():
        output = model.model(images)
    assert isinstance(output, InferenceBatch)
    assert output.pred_score.shape == (2,)
    assert output.anomaly_map.shape == (2, 1, *size)
    assert torch.isfinite(output.anomaly_map).all()


def test_joint_discriminator_scores_pairs_and_depends_on_the_latent() -> None:
    torch.manual_seed(0)
    discriminator = JointDiscriminator(32, 3, 8, 16, dropout=0.0).eval()
    patches = torch.rand(5, 3, 32, 32)
    logits, features = discriminator(patches, torch.randn(5, 16, 1, 1))
    assert logits.shape == (5,) and features.shape == (5, 512)
    other_logits, _ = discriminator(patches, torch.randn(5, 16, 1, 1))
    assert not torch.allclose(logits, other_logits)


def test_losses_follow_the_bigan_labels_and_weight_the_reconstruction() -> None:
    zeros = torch.zeros(6)
    assert math.isclose(DiscriminatorLoss()(zeros, zeros).item(), math.log(2), rel_tol=1e-6)
    confident = torch.full((6,), 20.0)
    # D is right when real pairs score high and generated pairs low; E and G want the opposite
    assert DiscriminatorLoss()(confident, -confident) < 1e-6
    patches = torch.rand(4, 3, 32, 32)
    terms = EncoderGeneratorLoss(w_adv=1.0, w_rec=10.0)(-confident, confident, patches, patches + 0.1)
    assert terms["adversarial"] < 1e-6
    assert math.isclose(terms["reconstruction"].item(), 0.1, rel_tol=1e-4)
    assert math.isclose(terms["total"].item(), 1.0, rel_tol=1e-3)


def test_fit_lowers_the_reconstruction_error_and_moves_the_weight_averages(tiny_dataset) -> None:
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine

    model = EGBAD(patches_per_image=16, weight_average_decay=0.9)
    datamodule = MVTecAD(root=tiny_dataset, category="flange", train_batch_size=2, eval_batch_size=4, num_workers=0)
    datamodule.setup()
    images = model.pre_processor.transform(next(iter(datamodule.train_dataloader())).image)
    net = model.model

    def reconstruction_error() -> float:
        net.eval()
        with torch.no_grad():
            patches = net.grid.split(net.to_tanh_range(images))
            error = (net.generator_average(net.encoder_average(patches)) - patches).abs().mean().item()
        net.train()
        return error

    before = reconstruction_error()
    engine = Engine(max_epochs=10, check_val_every_n_epoch=10, logger=False, enable_progress_bar=False,
                    default_root_dir=tiny_dataset.parent / "egbad_fit")
    engine.fit(model=model, datamodule=datamodule)
    assert reconstruction_error() < 0.97 * before
    live, averaged = next(net.encoder.parameters()), next(net.encoder_average.parameters())
    assert not torch.equal(live, averaged)
    assert bool(net.scorer.calibration.calibrated)


def test_get_model_finds_egbad_by_name() -> None:
    from anomalib.models import get_model

    assert type(get_model("EGBAD")) is EGBAD
    assert type(get_model("egbad")) is EGBAD
