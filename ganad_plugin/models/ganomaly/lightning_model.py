"""GANomaly (Akcay et al. 2018) as an anomalib model, trained on patches of normal images.

Each step: the generator G = (G_E, G_D, E) reconstructs a batch of random patches and learns
w_adv * L_adv + w_con * L_con + w_enc * L_enc (``loss.GeneratorLoss``); then the discriminator learns to tell the
patches from their reconstructions, and is re-initialised when it wins outright, as in the paper's code.
"""

from __future__ import annotations

from typing import Any

from anomalib.data import Batch
from anomalib.models.components import AnomalibModule
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch import optim

from ganad_plugin.models.components.gan_module import PatchGanModule
from ganad_plugin.models.components.settings import Evidence, PatchNetwork

from .loss import GeneratorLoss
from .torch_model import GanomalyModel


class GANomaly(PatchGanModule, AnomalibModule):
    """Patch GANomaly.

    Args:
        network: the networks' patch size, width and latent size.
        evidence: the evidence maps, their weights and the image score (``distance`` is ||z - z_hat||^2).
        w_adv: weight of the adversarial (feature-matching) loss (paper: 1).
        w_con: weight of the contextual loss ||x - x_hat||_1 (paper: 50).
        w_enc: weight of the encoder loss ||z - z_hat||_2 (paper: 1).
        **kwargs: ``PatchGanModule``'s: ``sampling``, ``optimiser`` and anomalib's components.
    """

    default_max_epochs = 40

    def __init__(
        self,
        *,
        network: PatchNetwork = PatchNetwork(latent_dim=128),
        evidence: Evidence = Evidence(),
        w_adv: float = 1.0, w_con: float = 50.0, w_enc: float = 1.0,  # the paper's loss weights
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.check_input_fits(network, evidence)
        self.model = GanomalyModel(network=network, evidence=evidence)
        self.generator_loss = GeneratorLoss(w_adv=w_adv, w_con=w_con, w_enc=w_enc)

    def configure_optimizers(self) -> list[optim.Optimizer]:
        return [self.adam(self.model.discriminator), self.adam(self.model.generator)]

    def train_networks(self, batch: Batch, batch_idx: int) -> STEP_OUTPUT:
        del batch_idx
        d_opt, g_opt = self.optimizers()
        generator, discriminator = self.model.generator, self.model.discriminator
        patches = self.training_patches(batch)
        reconstructions, latent, latent_reconstructed = generator(patches)

        # generator: the discriminator's features on real and reconstructed patches should match
        logits_real, features_real = discriminator(patches)
        _, features_fake = discriminator(reconstructions)
        g_losses = self.generator_loss(
            patches, reconstructions, latent, latent_reconstructed, features_real.detach(), features_fake
        )
        self.step(g_losses["total"], g_opt)

        # D's pass on the real patches serves both steps (the generator's step leaves D's weights as they were)
        d_loss = self.discriminator_step(d_opt, logits_real, discriminator(reconstructions.detach())[0])
        output = self.log_losses(batch, generator_loss=g_losses["total"], discriminator_loss=d_loss,
                                 contextual_loss=g_losses["contextual"])
        self.reinitialise_if_collapsed(discriminator, d_loss)
        return output
