"""AnoGAN (Schlegl et al. 2017) with f-AnoGAN's encoder (Schlegl et al. 2019) as an anomalib model, on patches.

Training has two phases over the run's optimiser steps. First a DCGAN learns normal patches: D learns real -> 1,
G(z) -> 0; G learns the non-saturating G(z) -> 1 and, with ``w_rec`` > 0 (not in the paper), G and E together learn
||x - G(E(x))||_1 (``loss.GeneratorLoss``). Then, for the last ``encoder_share`` of the steps, E learns to invert the
frozen G (f-AnoGAN's izi_f, ``loss.EncoderLoss``). At test time a patch's latent starts at E(x), or at random as in
the paper, and ``latent_search_steps`` batched Adam steps refine it (``torch_model.AnoganModel.search_latent``);
with no steps the model is a single forward pass and exports.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from anomalib.data import Batch
from anomalib.models.components import AnomalibModule
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch import optim

from ganad_plugin.models.components.gan_module import PatchGanModule
from ganad_plugin.models.components.settings import Evidence, PatchNetwork

from .loss import EncoderLoss, GeneratorLoss
from .torch_model import AnoganModel


class AnoGAN(PatchGanModule, AnomalibModule):
    """Patch AnoGAN with an encoder-started, batched latent search.

    Args:
        network: the networks' patch size, width and latent size (the prior is N(0, I)).
        evidence: the evidence maps, their weights and the image score (``distance`` is the discrimination loss
            ||f_D(x) - f_D(G(z))||_1; the paper's score weights it lambda beside the residual's 1 - lambda). Its map
            is left out by default: it earned nothing on validation, and without it the discriminator does not run at
            test time (the latent search still uses it).
        encoder_share: share of the training steps, at the end, spent training the encoder (G and D frozen).
        kappa: weight of the feature term in the encoder's izi_f loss.
        w_rec: weight of ||x - G(E(x))||_1 for G and E during the GAN phase (0: the paper's prior-only DCGAN).
        latent_search_steps: Gamma, the test-time Adam steps on z (paper: 500); 0: no search, exportable.
        latent_search_lr: the search's learning rate.
        latent_search_lambda: lambda of the search loss L(z) = (1 - lambda) R(z) + lambda D(z) (paper: 0.1).
        encoder_start: start the search from E(x); False starts from a random z as in the paper.
        **kwargs: ``PatchGanModule``'s: ``sampling``, ``optimiser`` and anomalib's components.
    """

    default_max_epochs = 25

    def __init__(
        self,
        *,
        network: PatchNetwork = PatchNetwork(latent_dim=64),
        evidence: Evidence = Evidence(distance_weight=0.0),
        encoder_share: float = 0.2, kappa: float = 1.0, w_rec: float = 10.0,
        latent_search_steps: int = 0, latent_search_lr: float = 0.05, latent_search_lambda: float = 0.1,
        encoder_start: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.check_input_fits(network, evidence)
        if not 0.0 < encoder_share < 1.0:
            msg = f"encoder_share must be between 0 and 1 (exclusive), got {encoder_share}"
            raise ValueError(msg)
        if w_rec < 0:
            msg = f"w_rec must be >= 0 (0: the paper's prior-only DCGAN), got {w_rec}"
            raise ValueError(msg)
        if latent_search_steps < 0:
            msg = f"latent_search_steps must be >= 0, got {latent_search_steps}"
            raise ValueError(msg)
        self.encoder_share = encoder_share
        self.model = AnoganModel(
            network=network, evidence=evidence, encoder_start=encoder_start, latent_search_steps=latent_search_steps,
            latent_search_lr=latent_search_lr, latent_search_lambda=latent_search_lambda,
        )
        self.generator_loss = GeneratorLoss(w_rec=w_rec)
        self.encoder_loss = EncoderLoss(kappa=kappa)

    def configure_optimizers(self) -> list[optim.Optimizer]:
        return [self.adam(self.model.discriminator), self.adam(self.model.generator), self.adam(self.model.encoder)]

    def in_encoder_phase(self, batch_idx: int) -> bool:
        step = self.current_epoch * self.trainer.num_training_batches + batch_idx
        return step >= math.ceil((1.0 - self.encoder_share) * self.trainer.estimated_stepping_batches)

    def train_networks(self, batch: Batch, batch_idx: int) -> STEP_OUTPUT:
        patches = self.training_patches(batch)
        losses = self.encoder_step(patches) if self.in_encoder_phase(batch_idx) else self.gan_step(patches)
        return self.log_losses(batch, **losses)

    def gan_step(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        d_opt, g_opt, e_opt = self.optimizers()
        model = self.model
        prior = torch.randn(patches.shape[0], model.latent_dim, 1, 1, device=patches.device)
        generated = model.generator(prior)
        d_loss = self.discriminator_step(
            d_opt, model.discriminator(patches)[0], model.discriminator(generated.detach())[0]
        )

        logits_generated, _ = model.discriminator(generated)
        if self.generator_loss.w_rec == 0:
            g_losses = self.generator_loss(logits_generated)
            self.step(g_losses["total"], g_opt)
            return {"generator_loss": g_losses["total"], "discriminator_loss": d_loss}
        reconstructions = model.generator(model.encoder(patches))
        g_losses = self.generator_loss(logits_generated, patches, reconstructions)
        self.step(g_losses["total"], g_opt, e_opt)
        return {"generator_loss": g_losses["total"], "discriminator_loss": d_loss,
                "reconstruction_loss": g_losses["reconstruction"]}

    def encoder_step(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        _, _, e_opt = self.optimizers()
        model = self.model
        # G and D are frozen (their optimisers no longer step); eval mode fixes their batch statistics
        model.generator.eval()
        model.discriminator.eval()
        reconstructions = model.generator(model.encoder(patches))
        features_real = model.discriminator_features(patches).detach()
        losses = self.encoder_loss(patches, reconstructions, features_real, model.discriminator_features(reconstructions))
        self.step(losses["total"], e_opt)
        return {"encoder_loss": losses["total"]}

    def require_exportable(self) -> None:
        """ONNX and OpenVINO exports are refused while the model runs a latent search."""
        steps = self.model.latent_search_steps
        if steps > 0:
            msg = (
                f"AnoGAN with latent_search_steps={steps} cannot be exported: the latent search runs an optimiser "
                "per test batch, which an ONNX/OpenVINO graph cannot hold. Export with latent_search_steps=0 (the "
                "encoder's one-pass latent): train with the default config, or in Python "
                "`AnoGAN.load_from_checkpoint(ckpt, latent_search_steps=0)` then `Engine().export(model, 'openvino')`."
            )
            raise ValueError(msg)
        super().require_exportable()
