"""AnoGAN: outputs, the batched latent search, the two training phases, export refusal, registration."""

from __future__ import annotations

import math

import pytest
import torch

from ganad_plugin.models import AnoGAN, Evidence, PatchSampling
from ganad_plugin.models.anogan.loss import EncoderLoss, GeneratorLoss, search_loss

from .conftest import SHORT_HEAD_STEPS, fit_briefly


def _patch_losses(net, patches: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        reconstructions = net.generator(latent)
        return search_loss(patches, reconstructions, net.discriminator_features(patches),
                           net.discriminator_features(reconstructions), net.latent_search_lambda)


def test_batched_search_lowers_the_loss_of_every_patch_under_inference_mode() -> None:
    torch.manual_seed(0)
    net = AnoGAN(latent_search_steps=20).model.eval()
    patches = net.grid.split(net.to_tanh_range(torch.rand(3, 3, 64, 64)))
    start = torch.randn(patches.shape[0], net.latent_dim, 1, 1)
    with torch.inference_mode():  # as in anomalib's test and predict steps
        found = net.search_latent(patches, start)
    assert found.shape == start.shape
    before, after = _patch_losses(net, patches, start), _patch_losses(net, patches, found)
    assert (after < before).all(), f"{int((after >= before).sum())} of {len(before)} patches did not improve"
    # the networks are left as they were: trainable, and without gradients from the search
    assert all(p.requires_grad and p.grad is None for p in net.generator.parameters())


def test_search_of_a_batch_equals_the_searches_of_its_images() -> None:
    torch.manual_seed(0)
    net = AnoGAN(latent_search_steps=5).model.eval()
    patches = torch.rand(6, 3, 32, 32) * 2 - 1
    start = torch.randn(6, net.latent_dim, 1, 1)
    together = net.search_latent(patches, start)
    alone = torch.cat([net.search_latent(patches[i : i + 2], start[i : i + 2]) for i in range(0, 6, 2)])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


def test_zero_search_steps_use_the_encoder_latent_as_it_is() -> None:
    net = AnoGAN(latent_search_steps=0).model.eval()
    patches = torch.rand(4, 3, 32, 32) * 2 - 1
    latent = net.start_latent(patches, net.encoder(patches))
    assert net.search_latent(patches, latent) is latent


def test_encoder_loss_is_zero_for_a_perfect_inversion() -> None:
    x, f = torch.rand(4, 3, 32, 32), torch.rand(4, 16, 4, 4)
    assert EncoderLoss(kappa=1.0)(x, x, f, f)["total"] == 0
    assert EncoderLoss(kappa=2.0)(x, x + 0.1, f, f + 0.1)["total"].item() == pytest.approx(0.01 + 2 * 0.01, rel=1e-4)


def test_generator_loss_adds_the_weighted_reconstruction_only_when_given() -> None:
    logits, x = torch.zeros(4), torch.rand(4, 3, 32, 32)
    adversarial = GeneratorLoss(w_rec=10.0)(logits)["total"]
    assert adversarial.item() == pytest.approx(math.log(2.0), rel=1e-5)
    assert GeneratorLoss(w_rec=10.0)(logits, x, x)["total"].item() == pytest.approx(adversarial.item())
    losses = GeneratorLoss(w_rec=10.0)(logits, x, x + 0.2)
    assert losses["reconstruction"].item() == pytest.approx(0.2, rel=1e-4)
    assert losses["total"].item() == pytest.approx(adversarial.item() + 2.0, rel=1e-4)


def test_training_runs_the_gan_then_the_encoder_and_the_encoder_learns(tiny_dataset) -> None:
    model = AnoGAN(sampling=PatchSampling(patches_per_image=16), encoder_share=0.5,
                   evidence=Evidence(defect_steps=SHORT_HEAD_STEPS))
    _, fit = fit_briefly(model, tiny_dataset, 6, tiny_dataset.parent / "anogan_fit")
    encoder_before = [p.detach().clone() for p in model.model.encoder.parameters()]
    metrics = fit().trainer.logged_metrics
    assert "generator_loss" in metrics and "encoder_loss" in metrics
    assert "reconstruction_loss" in metrics  # the GAN phase's w_rec term (default on)
    assert any(not torch.equal(a, b) for a, b in zip(encoder_before, model.model.encoder.parameters(), strict=True))
    assert model.model.calibrated


def test_export_with_a_latent_search_is_refused_with_the_way_out(tmp_path) -> None:
    with pytest.raises(ValueError, match="latent_search_steps=0"):
        AnoGAN(latent_search_steps=10).to_openvino(tmp_path)


def test_bad_arguments_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="encoder_share"):
        AnoGAN(encoder_share=1.0)
    with pytest.raises(ValueError, match="latent_search_steps"):
        AnoGAN(latent_search_steps=-1)
    with pytest.raises(ValueError, match="w_rec"):
        AnoGAN(w_rec=-1.0)


def test_get_model_finds_anogan_by_name() -> None:
    from anomalib.models import get_model

    assert type(get_model("AnoGAN")) is AnoGAN
