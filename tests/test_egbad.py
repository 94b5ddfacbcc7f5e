"""EGBAD: outputs, losses, weight averages, a real fit, registration."""

from __future__ import annotations

import math

import torch

from ganad_plugin.models import EGBAD, Evidence, PatchSampling
from ganad_plugin.models.components.losses import DiscriminatorLoss
from ganad_plugin.models.egbad.loss import EncoderGeneratorLoss

from .conftest import SHORT_HEAD_STEPS, fit_briefly
from ganad_plugin.models.egbad.torch_model import JointDiscriminator


def test_joint_discriminator_scores_pairs_and_depends_on_the_latent() -> None:
    torch.manual_seed(0)
    discriminator = JointDiscriminator(32, 3, 8, 16, dropout=0.0).eval()
    patches = torch.rand(5, 3, 32, 32)
    logits, features = discriminator(patches, torch.randn(5, 16, 1, 1))
    assert logits.shape == (5,) and features.shape == (5, 512)
    other_logits, _ = discriminator(patches, torch.randn(5, 16, 1, 1))
    assert not torch.allclose(logits, other_logits)


def test_encoder_generator_loss_swaps_the_bigan_labels_and_weights_the_reconstruction() -> None:
    confident = torch.full((6,), 20.0)
    # D is right when real pairs score high and generated pairs low; E and G want the opposite
    assert DiscriminatorLoss()(confident, -confident) < 1e-6
    patches = torch.rand(4, 3, 32, 32)
    terms = EncoderGeneratorLoss(w_adv=1.0, w_rec=10.0)(-confident, confident, patches, patches + 0.1)
    assert terms["adversarial"] < 1e-6
    assert math.isclose(terms["reconstruction"].item(), 0.1, rel_tol=1e-4)
    assert math.isclose(terms["total"].item(), 1.0, rel_tol=1e-3)


def test_fit_lowers_the_reconstruction_error_and_moves_the_weight_averages(tiny_dataset) -> None:
    model = EGBAD(sampling=PatchSampling(patches_per_image=16), weight_average_decay=0.9,
                  evidence=Evidence(defect_steps=SHORT_HEAD_STEPS))
    net = model.model
    images, fit = fit_briefly(model, tiny_dataset, 10, tiny_dataset.parent / "egbad_fit")

    def reconstruction_error() -> float:
        with torch.no_grad():
            patches = net.grid.split(net.to_tanh_range(images))
            return (net.eval().generator_average(net.encoder_average(patches)) - patches).abs().mean().item()

    before = reconstruction_error()
    fit()
    assert reconstruction_error() < 0.97 * before
    live, averaged = next(net.encoder.parameters()), next(net.encoder_average.parameters())
    assert not torch.equal(live, averaged)
    assert net.calibrated


def test_get_model_finds_egbad_by_name() -> None:
    from anomalib.models import get_model

    assert type(get_model("EGBAD")) is EGBAD
    assert type(get_model("egbad")) is EGBAD
