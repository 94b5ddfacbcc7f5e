"""AnoGAN (Schlegl et al. 2017) with f-AnoGAN's encoder (Schlegl et al. 2019) as an anomalib model, on patches.

Training has two phases over the run's optimiser steps: a DCGAN learns normal patches, then (for the last
``encoder_share`` of the steps) an encoder learns to invert the frozen generator (izi_f). In the first phase, with
``w_rec`` > 0 (the default; 0 is the paper's DCGAN), G and E also learn ||x - G(E(x))||_1 on real patches, so that
G can reproduce a normal patch and E starts its izi_f phase as a near-inverse (model README: the measured gain).
At test time a patch's latent starts at E(x), or at random as in the paper, and ``latent_search_steps`` batched
Adam steps refine it. With ``latent_search_steps = 0`` (the default: the best accuracy per second measured, see the
README) the model is a single forward pass and exports to OpenVINO.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from anomalib.data import Batch
from anomalib.metrics import Evaluator
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch import optim

from ganad_plugin.models.components.patches import random_patches
from ganad_plugin.models.components.training import GanTrainingMixin, check_finite, check_patch_fits

from .loss import DiscriminatorLoss, EncoderLoss, GeneratorLoss
from .torch_model import AnoganModel


class AnoGAN(GanTrainingMixin, AnomalibModule):
    """Patch AnoGAN with an encoder-started, batched latent search.

    Args:
        patch_size: side of the square patches the networks work on (power of two, >= 16).
        n_features: channels of the first DCGAN stage (doubled per stage).
        latent_dim: size of z; the prior is N(0, I).
        patches_per_image: random patches drawn from each training image per step.
        structured_share: share of those drawn where the image has structure (edges, holes) rather than
            uniformly (``components.patches.random_patches``).
        encoder_share: share of the training steps, at the end, spent training the encoder (G and D frozen).
        kappa: weight of the feature term in the encoder's izi_f loss.
        w_rec: weight of ||x - G(E(x))||_1 for G and E during the GAN phase (0: the paper's prior-only DCGAN).
        latent_search_steps: Gamma, the test-time Adam steps on z (paper: 500); 0 = no search, exportable.
        latent_search_lr: the search's learning rate.
        residual_weight_lambda: lambda, weight of the discrimination loss in L(z) and in the map (paper 0.1).
        encoder_start: start the search from E(x); False starts from random z as in the paper.
        lr, beta1, beta2: Adam settings for G, D and E (DCGAN: 2e-4, 0.5, 0.999).
        smoothing_sigma_px, background_sigma_px: smoothing of the evidence maps (``AnomalyScorer``).
        memory_weight: weight of the feature-memory distance (the distance from the encoder's feature at each place
            to the nearest normal feature, ``components.memory``) beside the reconstruction evidence (weight 1).
        memory_size: normal features kept (in the checkpoint and the exported graph).
    """

    default_max_epochs = 25

    def __init__(
        self,
        patch_size: int = 32,
        n_features: int = 32,
        latent_dim: int = 64,
        patches_per_image: int = 32,
        structured_share: float = 0.0,
        encoder_share: float = 0.2,
        kappa: float = 1.0,
        w_rec: float = 10.0,
        latent_search_steps: int = 0,
        latent_search_lr: float = 0.05,
        residual_weight_lambda: float = 0.1,
        encoder_start: bool = True,
        lr: float = 2e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        smoothing_sigma_px: float = 3.0,
        background_sigma_px: float = 16.0,
        memory_weight: float = 4.0,
        memory_size: int = 16384,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        super().__init__(
            pre_processor=pre_processor, post_processor=post_processor, evaluator=evaluator, visualizer=visualizer
        )
        check_patch_fits(type(self).__name__, patch_size, self.input_size)
        if not 0.0 < encoder_share < 1.0:
            msg = f"encoder_share must be between 0 and 1 (exclusive), got {encoder_share}"
            raise ValueError(msg)
        if w_rec < 0:
            msg = f"w_rec must be >= 0 (0: the paper's prior-only DCGAN), got {w_rec}"
            raise ValueError(msg)
        if latent_search_steps < 0:
            msg = f"latent_search_steps must be >= 0, got {latent_search_steps}"
            raise ValueError(msg)
        self.patches_per_image = patches_per_image
        self.structured_share = structured_share
        self.encoder_share = encoder_share
        self.lr, self.betas = lr, (beta1, beta2)
        self.model = AnoganModel(
            patch_size, n_features, latent_dim, latent_search_steps, latent_search_lr, residual_weight_lambda,
            encoder_start, smoothing_sigma_px, background_sigma_px, memory_weight, memory_size,
        )
        self.discriminator_loss = DiscriminatorLoss()
        self.generator_loss = GeneratorLoss(w_rec)
        self.encoder_loss = EncoderLoss(kappa)
        self.automatic_optimization = False

    def configure_optimizers(self) -> list[optim.Optimizer]:
        return [
            optim.Adam(self.model.discriminator.parameters(), lr=self.lr, betas=self.betas),
            optim.Adam(self.model.generator.parameters(), lr=self.lr, betas=self.betas),
            optim.Adam(self.model.encoder.parameters(), lr=self.lr, betas=self.betas),
        ]

    def in_encoder_phase(self, batch_idx: int) -> bool:
        step = self.current_epoch * self.trainer.num_training_batches + batch_idx
        return step >= math.ceil((1.0 - self.encoder_share) * self.trainer.estimated_stepping_batches)

    def training_step(self, batch: Batch, batch_idx: int) -> STEP_OUTPUT:
        model = self.model
        patches = model.to_tanh_range(
            random_patches(batch.image, model.patch_size, self.patches_per_image, self.structured_share)
        )
        if self.in_encoder_phase(batch_idx):
            losses = self.encoder_step(patches)
        else:
            losses = self.gan_step(patches)
        check_finite(self.global_step, **losses)
        self.log_dict(losses, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch.image.shape[0])
        return {"loss": next(iter(losses.values())).detach()}

    def gan_step(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        d_opt, g_opt, e_opt = self.optimizers()
        model = self.model
        prior = torch.randn(patches.shape[0], model.latent_dim, 1, 1, device=patches.device)
        generated = model.generator(prior)

        logits_real, _ = model.discriminator(patches)
        logits_generated, _ = model.discriminator(generated.detach())
        d_loss = self.discriminator_loss(logits_real, logits_generated)
        d_opt.zero_grad()
        self.manual_backward(d_loss)
        d_opt.step()

        logits_generated, _ = model.discriminator(generated)
        reconstructions = model.generator(model.encoder(patches)) if self.generator_loss.w_rec > 0 else None
        g_losses = self.generator_loss(logits_generated, patches, reconstructions)
        g_opt.zero_grad()
        e_opt.zero_grad()
        self.manual_backward(g_losses["total"])
        g_opt.step()
        losses = {"generator_loss": g_losses["total"], "discriminator_loss": d_loss}
        if reconstructions is not None:
            e_opt.step()
            losses["reconstruction_loss"] = g_losses["reconstruction"]
        return losses

    def encoder_step(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        _, _, e_opt = self.optimizers()
        model = self.model
        # G and D are frozen (their optimisers no longer step); eval mode fixes their batch statistics
        model.generator.eval()
        model.discriminator.eval()
        reconstructions = model.generator(model.encoder(patches))
        features_real = model.discriminator_features(patches).detach()
        losses = self.encoder_loss(patches, reconstructions, features_real, model.discriminator_features(reconstructions))
        e_opt.zero_grad()
        self.manual_backward(losses["total"])
        e_opt.step()
        return {"encoder_loss": losses["total"]}

    def to_onnx(self, *args: Any, **kwargs: Any) -> Path:
        """anomalib's ONNX export (and through it OpenVINO), refused while the model runs a latent search."""
        steps = self.model.latent_search_steps
        if steps > 0:
            msg = (
                f"AnoGAN with latent_search_steps={steps} cannot be exported: the latent search runs an optimiser "
                "per test batch, which an ONNX/OpenVINO graph cannot hold. Export with latent_search_steps=0 (the "
                "encoder's one-pass latent): train with the default config, or in Python "
                "`AnoGAN.load_from_checkpoint(ckpt, latent_search_steps=0)` then `Engine().export(model, 'openvino')`."
            )
            raise ValueError(msg)
        return super().to_onnx(*args, **kwargs)
