"""GANomaly (Akcay et al. 2018) as an anomalib model, trained on patches of normal images.

Differences from the paper and from anomalib's ``Ganomaly`` (measured effects in this folder's README):
- works on ``patch_size`` patches tiled over the image, so it gives a pixel-level map and accepts any image
  size the pre-processor gives (>= 2 patches a side);
- the image score is the maximum of a calibrated anomaly map combining the residual |x - x_hat|, the
  latent distance ||z - z_hat||^2 and the distance from the encoder's feature at each place to the nearest
  normal feature (a feature memory); the scales and the memory come from normal training images, never from
  the test set.
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

from ganad_plugin.models.components.corruption import corrupt_patches
from ganad_plugin.models.components.patches import random_patches
from ganad_plugin.models.components.training import (
    GanTrainingMixin,
    check_finite,
    check_patch_fits,
    reinitialise_if_collapsed,
)

from .loss import DiscriminatorLoss, GeneratorLoss
from .torch_model import GanomalyModel


class GANomaly(GanTrainingMixin, AnomalibModule):
    """Patch GANomaly.

    Args:
        patch_size: side of the square patches the GAN works on (power of two, >= 16).
        n_features: channels of the first DCGAN stage (doubled per stage).
        latent_dim: size of z.
        patches_per_image: random patches drawn from each training image per step.
        structured_share: share of those drawn where the image has structure (edges, holes) rather than
            uniformly (``components.patches.random_patches``).
        w_adv, w_con, w_enc: loss weights (paper: 1, 50, 1).
        lr, beta1, beta2: Adam settings for G and D (paper: 2e-4, 0.5, 0.999).
        smoothing_sigma_px: Gaussian smoothing of the evidence maps, in model-input pixels.
        background_sigma_px: scale of the residual's local mean that is subtracted before its magnitude is
            taken (0: off); removes region-wide brightness offsets of the reconstruction.
        corruption_probability: share of training patches given a synthetic blemish that G must remove
            (0 = the paper's plain reconstruction).
        latent_weight: share of the paper's latent distance ||z - z_hat||^2 in the reconstruction evidence
            (the rest is the residual; measured alone it ranked images near chance here, see README).
        memory_weight: weight of the feature-memory distance (the distance from the encoder's feature at each place
            to the nearest normal feature, ``components.memory``) beside the reconstruction evidence (weight 1).
        memory_size: normal features kept (in the checkpoint and the exported graph).
    """

    default_max_epochs = 25

    def __init__(
        self,
        patch_size: int = 32,
        n_features: int = 32,
        latent_dim: int = 128,
        patches_per_image: int = 32,
        structured_share: float = 0.0,
        w_adv: float = 1.0,
        w_con: float = 50.0,
        w_enc: float = 1.0,
        lr: float = 2e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        smoothing_sigma_px: float = 3.0,
        background_sigma_px: float = 16.0,
        latent_weight: float = 0.1,
        memory_weight: float = 4.0,
        memory_size: int = 16384,
        corruption_probability: float = 0.0,
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
        self.corruption_probability = corruption_probability
        self.lr, self.betas = lr, (beta1, beta2)
        self.model = GanomalyModel(
            patch_size, n_features, latent_dim, smoothing_sigma_px, background_sigma_px, latent_weight, memory_weight,
            memory_size,
        )
        self.generator_loss = GeneratorLoss(w_adv, w_con, w_enc)
        self.discriminator_loss = DiscriminatorLoss()
        self.automatic_optimization = False

    def configure_optimizers(self) -> list[optim.Optimizer]:
        return [
            optim.Adam(self.model.discriminator.parameters(), lr=self.lr, betas=self.betas),
            optim.Adam(self.model.generator.parameters(), lr=self.lr, betas=self.betas),
        ]

    def training_step(self, batch: Batch, batch_idx: int) -> STEP_OUTPUT:
        del batch_idx
        d_opt, g_opt = self.optimizers()
        patches = self.model.to_tanh_range(random_patches(
            batch.image, self.model.patch_size, self.patches_per_image, self.structured_share
        ))
        inputs = corrupt_patches(patches, self.corruption_probability)
        reconstructions, latent, latent_reconstructed = self.model.generator(inputs)

        # generator: the discriminator's features on real and reconstructed patches should match
        _, features_real = self.model.discriminator(patches)
        _, features_fake = self.model.discriminator(reconstructions)
        g_losses = self.generator_loss(
            patches, reconstructions, latent, latent_reconstructed, features_real.detach(), features_fake
        )
        g_opt.zero_grad()
        self.manual_backward(g_losses["total"])
        g_opt.step()

        logits_real, _ = self.model.discriminator(patches)
        logits_fake, _ = self.model.discriminator(reconstructions.detach())
        d_loss = self.discriminator_loss(logits_real, logits_fake)
        d_opt.zero_grad()
        self.manual_backward(d_loss)
        d_opt.step()

        check_finite(self.global_step, generator_loss=g_losses["total"], discriminator_loss=d_loss)
        reinitialise_if_collapsed(self.model.discriminator, d_loss)
        self.log_dict(
            {"generator_loss": g_losses["total"], "discriminator_loss": d_loss, "contextual_loss": g_losses["contextual"]},
            on_step=False, on_epoch=True, prog_bar=True, batch_size=batch.image.shape[0],
        )
        return {"loss": g_losses["total"].detach()}
