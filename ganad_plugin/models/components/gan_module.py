"""The Lightning side the three GAN models share: everything but their paper's generator and encoder steps.

``PatchGanModule`` is mixed in before ``AnomalibModule`` (``class EGBAD(PatchGanModule, AnomalibModule)``). It holds
drawing training patches, the optimisers' settings, the discriminator step, the guards against a diverging run, the
learning-rate schedule and the resume points; what every plugin model shares (components, calibration on normal
training images, input checks, export) it takes from ``NormalImageModule``.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

import torch
from anomalib.data import Batch
from anomalib.metrics import Evaluator
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch import Callback
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch import nn, optim

from .blocks import init_dcgan_weights
from .checkpoints import ResumeCheckpoint
from .distributed import any_process, broadcast_from_first
from .hardware import cpu_has_bf16
from .losses import DiscriminatorLoss
from .normal_module import NormalImageModule
from .patches import check_image_fits, random_patches
from .settings import AdamSettings, Evidence, PatchNetwork, PatchSampling

logger = logging.getLogger(__name__)

TRAINING_PRECISIONS = ("auto", "float32", "bf16")


class PatchGanModule(NormalImageModule):
    """Shared training of a patch GAN (its torch model a ``PatchAnomalyModel``).

    A model sets ``default_max_epochs`` (its config's ``trainer.max_epochs``), builds ``self.model`` and writes
    ``configure_optimizers`` and ``train_networks`` (one training step; ``training_step`` runs it in the training
    precision) from the helpers here.

    Args:
        sampling: how training patches are drawn from each image.
        optimiser: Adam's settings for every network.
        training_precision: the arithmetic of the networks' passes in a training step: ``"bf16"`` (bf16 autocast:
            convolutions and matrix products in bf16, the weights, optimiser state and losses in float32),
            ``"float32"``, or ``"auto"``: bf16 on a CPU with bf16 units (AVX-512 BF16 or AMX), where a training step
            is 1.1-1.3x faster, float32 elsewhere (on other CPUs bf16 is emulated, and slower). Evaluation, the calibration
            after training and export are float32 whatever this says (docs/speed.md, docs/selection.md).
        pre_processor, post_processor, evaluator, visualizer: anomalib's components (True: the defaults).
    """

    resume_every_n_epochs: int = 5  # how often a fit writes its resume point (weights/lightning/resume.ckpt)

    def __init__(
        self,
        *,
        sampling: PatchSampling = PatchSampling(),
        optimiser: AdamSettings = AdamSettings(),
        training_precision: str = "auto",
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        super().__init__(
            pre_processor=pre_processor, post_processor=post_processor, evaluator=evaluator, visualizer=visualizer
        )
        if training_precision not in TRAINING_PRECISIONS:
            msg = f"training_precision must be one of {TRAINING_PRECISIONS}, got {training_precision!r}"
            raise ValueError(msg)
        self.sampling = sampling
        self.optimiser = optimiser
        self.training_precision = training_precision
        self.discriminator_loss = DiscriminatorLoss()
        self.automatic_optimization = False

    def check_input_fits(self, network: PatchNetwork, evidence: Evidence) -> None:
        """Fail at construction when the pre-processor's image size cannot hold two patches a side (the paper's
        whole-image networks take any size: the image is resized to theirs)."""
        if self.input_size is not None and not evidence.paper_score:
            check_image_fits(network.patch_size, *self.input_size, what=f"{type(self).__name__}: image_size")

    # training helpers

    def train_networks(self, batch: Batch, batch_idx: int) -> STEP_OUTPUT:
        """One training step of the model's networks (its paper's losses and optimiser steps)."""
        raise NotImplementedError

    def training_step(self, batch: Batch, batch_idx: int) -> STEP_OUTPUT:
        with self.training_arithmetic():
            return self.train_networks(batch, batch_idx)

    def training_arithmetic(self) -> torch.autocast | nullcontext:
        """bf16 autocast for a step's passes when ``training_precision`` asks for it (``auto``: where the CPU has bf16
        units); a null context otherwise."""
        device = self.device.type
        low = self.training_precision == "bf16" or (
            self.training_precision == "auto" and device == "cpu" and cpu_has_bf16())
        if not low:
            return nullcontext()
        return torch.autocast(device, dtype=torch.bfloat16)

    def adam(self, *modules: nn.Module) -> optim.Adam:
        return optim.Adam([p for module in modules for p in module.parameters()], lr=self.optimiser.lr,
                          betas=self.optimiser.betas)

    def training_patches(self, batch: Batch) -> torch.Tensor:
        """Random patches of the batch's images [B * patches_per_image, C, p, p], in tanh's [-1, 1]; for the paper's
        score, the whole images resized to the networks' size [B, C, p, p]."""
        if self.model.paper_score:
            patches = self.model.whole_images(batch.image)
        else:
            patches = random_patches(batch.image, self.model.patch_size, self.sampling.patches_per_image,
                                     self.sampling.structured_share)
        # channels-last, as the networks' weights during a fit: oneDNN's faster layout on CPUs (docs/speed.md)
        return self.model.to_tanh_range(patches).contiguous(memory_format=torch.channels_last)

    def step(self, loss: torch.Tensor, *optimisers: optim.Optimizer) -> None:
        """One manual optimisation step of ``loss`` for ``optimisers`` (their gradients cleared first)."""
        for optimiser in optimisers:
            optimiser.zero_grad()
        self.manual_backward(loss)
        for optimiser in optimisers:
            optimiser.step()

    def discriminator_step(
        self, optimiser: optim.Optimizer, logits_real: torch.Tensor, logits_generated: torch.Tensor
    ) -> torch.Tensor:
        """Step D on its binary cross-entropy (real -> 1, generated -> 0); returns the loss."""
        loss = self.discriminator_loss(logits_real, logits_generated)
        self.step(loss, optimiser)
        return loss

    def log_losses(self, batch: Batch, **losses: torch.Tensor) -> STEP_OUTPUT:
        """Stop a diverging run with the name of the loss that left the finite range; log the losses."""
        for name, value in losses.items():
            if not torch.isfinite(value).all():
                msg = (
                    f"training diverged at step {self.global_step}: {name} is {value.item()}. "
                    "Checkpoints already written are kept; lower the learning rate and retry."
                )
                raise FloatingPointError(msg)
        self.log_dict(losses, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch.image.shape[0],
                      sync_dist=True)
        return {"loss": next(iter(losses.values())).detach()}

    @staticmethod
    def reinitialise_if_collapsed(discriminator: nn.Module, loss: torch.Tensor, floor: float = 1e-5) -> None:
        """GANomaly's remedy when D wins outright (its loss near 0, no gradient left for G): start D afresh. Under
        DDP every process re-initialises when one does, all with rank 0's new weights."""
        if any_process(loss.item() < floor):
            discriminator.apply(init_dcgan_weights)
            broadcast_from_first(discriminator)
            logger.info("discriminator loss %.2e < %.0e: discriminator re-initialised", loss.item(), floor)

    # Lightning's hooks

    def configure_callbacks(self) -> list[Callback]:
        """anomalib's (the pre- and post-processor, evaluator and visualiser are callbacks), and a resume point every
        ``resume_every_n_epochs`` epochs (``checkpoints.ResumeCheckpoint``)."""
        return [*super().configure_callbacks(), ResumeCheckpoint(self.resume_every_n_epochs)]

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Set every optimiser's learning rate for this step (``AdamSettings.schedule``), from the step's place in
        the fit, so that a resumed run continues the schedule where it stopped."""
        del batch
        if self.optimiser.schedule == "constant":
            return
        step = self.current_epoch * self.trainer.num_training_batches + batch_idx
        rate = self.optimiser.rate_at(step / max(self.trainer.estimated_stepping_batches, 1))
        optimisers = self.optimizers()
        for optimiser in optimisers if isinstance(optimisers, list) else [optimisers]:
            for group in optimiser.param_groups:
                group["lr"] = rate
