"""EGBAD (Zenati et al. 2018) as an anomalib model, trained on patches of normal images.

A BiGAN: the encoder E and the generator G are trained together against a discriminator that sees
(patch, latent) pairs, so that E learns to invert G. At test time one forward pass scores an image.
Our changes (measured in this folder's README): patches tiled over the image for a pixel-level map and any
input size; a reconstruction-consistency term; spectral normalisation and dropout in D; weight averages of
E and G at test time; the map and score calibrated on normal training images, never on the test set.
"""

from __future__ import annotations

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

from .loss import DiscriminatorLoss, EncoderGeneratorLoss
from .torch_model import EgbadModel


class EGBAD(GanTrainingMixin, AnomalibModule):
    """Patch EGBAD.

    Args:
        patch_size: side of the square patches the networks work on (power of two, >= 16).
        n_features: channels of the first DCGAN stage (doubled per stage).
        latent_dim: size of z; the prior is N(0, I).
        patches_per_image: random patches drawn from each training image per step.
        structured_share: share of those drawn where the image has structure (edges, holes) rather than
            uniformly (``components.patches.random_patches``).
        w_adv, w_rec: weights of the adversarial and reconstruction-consistency terms for E and G.
        feature_weight: alpha of the paper's score, the weight of the discriminator-feature distance.
        discriminator_dropout: dropout in D.
        discriminator_spectral_norm: spectral normalisation of D's layers.
        weight_average_decay: decay of the test-time weight averages of E and G (0: live weights).
        lr, beta1, beta2: Adam settings for all networks (paper: 1e-5 on MNIST, beta1 0.5).
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
        w_adv: float = 1.0,
        w_rec: float = 10.0,
        feature_weight: float = 0.1,
        discriminator_dropout: float = 0.2,
        discriminator_spectral_norm: bool = True,
        weight_average_decay: float = 0.99,
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
        self.patches_per_image = patches_per_image
        self.structured_share = structured_share
        self.lr, self.betas = lr, (beta1, beta2)
        self.model = EgbadModel(
            patch_size, n_features, latent_dim, discriminator_dropout, discriminator_spectral_norm, feature_weight,
            weight_average_decay, smoothing_sigma_px, background_sigma_px, memory_weight, memory_size,
        )
        self.encoder_generator_loss = EncoderGeneratorLoss(w_adv, w_rec)
        self.discriminator_loss = DiscriminatorLoss()
        self.automatic_optimization = False

    def configure_optimizers(self) -> list[optim.Optimizer]:
        encoder_generator = [*self.model.encoder.parameters(), *self.model.generator.parameters()]
        return [
            optim.Adam(self.model.discriminator.parameters(), lr=self.lr, betas=self.betas),
            optim.Adam(encoder_generator, lr=self.lr, betas=self.betas),
        ]

    def training_step(self, batch: Batch, batch_idx: int) -> STEP_OUTPUT:
        del batch_idx
        d_opt, eg_opt = self.optimizers()
        model = self.model
        patches = model.to_tanh_range(
            random_patches(batch.image, model.patch_size, self.patches_per_image, self.structured_share)
        )
        prior = torch.randn(patches.shape[0], model.latent_dim, 1, 1, device=patches.device)
        latent = model.encoder(patches)
        generated = model.generator(prior)

        logits_real, _ = model.discriminator(patches, latent.detach())
        logits_generated, _ = model.discriminator(generated.detach(), prior)
        d_loss = self.discriminator_loss(logits_real, logits_generated)
        d_opt.zero_grad()
        self.manual_backward(d_loss)
        d_opt.step()

        logits_real, _ = model.discriminator(patches, latent)
        logits_generated, _ = model.discriminator(generated, prior)
        eg_losses = self.encoder_generator_loss(logits_real, logits_generated, patches, model.generator(latent))
        eg_opt.zero_grad()
        self.manual_backward(eg_losses["total"])
        eg_opt.step()
        model.encoder_average.update(model.encoder)
        model.generator_average.update(model.generator)

        check_finite(self.global_step, encoder_generator_loss=eg_losses["total"], discriminator_loss=d_loss)
        self.log_dict(
            {
                "encoder_generator_loss": eg_losses["total"],
                "discriminator_loss": d_loss,
                "reconstruction_loss": eg_losses["reconstruction"],
            },
            on_step=False, on_epoch=True, prog_bar=True, batch_size=batch.image.shape[0],
        )
        return {"loss": eg_losses["total"].detach()}
