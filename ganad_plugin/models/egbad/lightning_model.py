"""EGBAD (Zenati et al. 2018) as an anomalib model, trained on patches of normal images.

A BiGAN: the encoder E and the generator G are trained together against a discriminator that sees (patch, latent)
pairs, so that E learns to invert G. Each step: D learns real pairs (x, E(x)) -> 1 and generated pairs (G(z), z) -> 0;
then E and G learn the swapped labels plus w_rec * ||x - G(E(x))||_1 (``loss.EncoderGeneratorLoss``), and their
weight averages, used at test time, follow. At test time one forward pass scores an image.
"""

from __future__ import annotations

from typing import Any

import torch
from anomalib.data import Batch
from anomalib.models.components import AnomalibModule
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch import optim

from ganad_plugin.models.components.gan_module import PatchGanModule
from ganad_plugin.models.components.settings import Evidence, PatchNetwork

from .loss import EncoderGeneratorLoss
from .torch_model import EgbadModel


class EGBAD(PatchGanModule, AnomalibModule):
    """Patch EGBAD.

    Args:
        network: the networks' patch size, width and latent size (the prior is N(0, I)).
        evidence: the evidence maps, their weights and the image score (``distance`` is the discriminator-feature
            distance; the paper's alpha is its share beside the residual). Its map is left out by default: it earned
            nothing on validation, and without it the discriminator does not run at test time.
        w_adv: weight of the adversarial (BiGAN) loss of E and G.
        w_rec: weight of the reconstruction consistency ||x - G(E(x))||_1 (0: the paper's pure BiGAN).
        discriminator_dropout: dropout in D.
        discriminator_spectral_norm: spectral normalisation of D's layers.
        weight_average_decay: decay of the test-time weight averages of E and G (0: the live weights).
        paper_alpha: with ``evidence.paper_score``, the discriminator-feature distance's share alpha in the paper's
            score (1 - alpha) ||x - G(E(x))||_1 + alpha ||f_D - f_D||_1 (0.1: Zenati et al.'s 0.9 on the residual).
        **kwargs: ``PatchGanModule``'s: ``sampling``, ``optimiser`` and anomalib's components.
    """

    default_max_epochs = 25

    def __init__(
        self,
        *,
        network: PatchNetwork = PatchNetwork(latent_dim=64),
        evidence: Evidence = Evidence(distance_weight=0.0),
        w_adv: float = 1.0, w_rec: float = 10.0,
        discriminator_dropout: float = 0.2, discriminator_spectral_norm: bool = True,
        weight_average_decay: float = 0.99,
        paper_alpha: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.check_input_fits(network, evidence)
        self.model = EgbadModel(
            network=network, evidence=evidence, weight_average_decay=weight_average_decay,
            discriminator_dropout=discriminator_dropout, discriminator_spectral_norm=discriminator_spectral_norm,
            paper_alpha=paper_alpha,
        )
        self.encoder_generator_loss = EncoderGeneratorLoss(w_adv=w_adv, w_rec=w_rec)

    def configure_optimizers(self) -> list[optim.Optimizer]:
        return [self.adam(self.model.discriminator), self.adam(self.model.encoder, self.model.generator)]

    def train_networks(self, batch: Batch, batch_idx: int) -> STEP_OUTPUT:
        del batch_idx
        d_opt, eg_opt = self.optimizers()
        model = self.model
        patches = self.training_patches(batch)
        prior = torch.randn(patches.shape[0], model.latent_dim, 1, 1, device=patches.device)
        latent = model.encoder(patches)
        generated = model.generator(prior)

        d_loss = self.discriminator_step(
            d_opt, model.discriminator(patches, latent.detach())[0], model.discriminator(generated.detach(), prior)[0]
        )

        logits_real, _ = model.discriminator(patches, latent)
        logits_generated, _ = model.discriminator(generated, prior)
        eg_losses = self.encoder_generator_loss(logits_real, logits_generated, patches, model.generator(latent))
        self.step(eg_losses["total"], eg_opt)
        model.encoder_average.update(model.encoder)
        model.generator_average.update(model.generator)

        return self.log_losses(batch, encoder_generator_loss=eg_losses["total"], discriminator_loss=d_loss,
                               reconstruction_loss=eg_losses["reconstruction"])
