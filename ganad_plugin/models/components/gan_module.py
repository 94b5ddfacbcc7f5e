"""The Lightning side the three GAN models share: everything but their paper's generator and encoder steps.

``PatchGanModule`` is mixed in before ``AnomalibModule`` (``class EGBAD(PatchGanModule, AnomalibModule)``), so that
each model stays a direct subclass of ``AnomalibModule``, which anomalib's model lookup by name requires. It holds:
drawing training patches, the optimisers' settings, the discriminator step, the guards against a diverging run,
fitting the feature memory and the evidence scales on normal training images before each validation of a fit,
the pre-processor and evaluator, a sensible epoch budget, and (through ``NormalImageExportMixin``) export.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable
from typing import Any

import torch
from anomalib import LearningType
from anomalib.data import Batch
from anomalib.metrics import AUPRO, AUROC, Evaluator, F1Score
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch import Callback
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch import nn, optim
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import Resize

from .blocks import init_dcgan_weights
from .checkpoints import ResumeCheckpoint
from .export import NormalImageExportMixin
from .inputs import check_category
from .losses import DiscriminatorLoss
from .patches import check_image_fits, random_patches
from .post_processing import LinePostProcessor
from .settings import AdamSettings, Evidence, PatchNetwork, PatchSampling

logger = logging.getLogger(__name__)

LIGHTNING_DEFAULT_MAX_EPOCHS = 1000
DEFAULT_IMAGE_SIZE = (256, 256)
CALIBRATION_MAX_IMAGES = 256


class PatchGanModule(NormalImageExportMixin):
    """Shared training, calibration and export of a patch GAN (its torch model a ``PatchAnomalyModel``).

    A model sets ``default_max_epochs`` (its config's ``trainer.max_epochs``), builds ``self.model`` and writes
    ``configure_optimizers`` and ``training_step`` from the helpers here.

    Args:
        sampling: how training patches are drawn from each image.
        optimiser: Adam's settings for every network.
        pre_processor, post_processor, evaluator, visualizer: anomalib's components (True: the defaults).
    """

    default_max_epochs: int
    resume_every_n_epochs: int = 5  # how often a fit writes its resume point (weights/lightning/resume.ckpt)

    def __init__(
        self,
        *,
        sampling: PatchSampling = PatchSampling(),
        optimiser: AdamSettings = AdamSettings(),
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        super().__init__(
            pre_processor=pre_processor, post_processor=post_processor, evaluator=evaluator, visualizer=visualizer
        )
        self.sampling = sampling
        self.optimiser = optimiser
        self.discriminator_loss = DiscriminatorLoss()
        self.automatic_optimization = False

    def check_input_fits(self, network: PatchNetwork, evidence: Evidence) -> None:
        """Fail at construction when the pre-processor's image size cannot hold two patches a side (the paper's
        whole-image networks take any size: the image is resized to theirs)."""
        if self.input_size is not None and not evidence.paper_score:
            check_image_fits(network.patch_size, *self.input_size, what=f"{type(self).__name__}: image_size")

    # training helpers

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
        self.log_dict(losses, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch.image.shape[0])
        return {"loss": next(iter(losses.values())).detach()}

    @staticmethod
    def reinitialise_if_collapsed(discriminator: nn.Module, loss: torch.Tensor, floor: float = 1e-5) -> None:
        """GANomaly's remedy when D wins outright (its loss near 0, no gradient left for G): start D afresh."""
        if loss.item() < floor:
            discriminator.apply(init_dcgan_weights)
            logger.info("discriminator loss %.2e < %.0e: discriminator re-initialised", loss.item(), floor)

    # anomalib's and Lightning's hooks

    @classmethod
    def configure_pre_processor(cls, image_size: tuple[int, int] | None = None) -> PreProcessor:
        """Resize only: the networks take [0, 1] images and map them to tanh's [-1, 1] themselves."""
        return PreProcessor(transform=Resize(image_size or DEFAULT_IMAGE_SIZE, antialias=True))

    def configure_post_processor(self) -> PostProcessor:
        """anomalib's PostProcessor with thresholds raised to good-part levels (``LinePostProcessor``)."""
        return LinePostProcessor()

    @staticmethod
    def configure_evaluator() -> Evaluator:
        """Image AUROC and F1, pixel AUROC, F1 and AUPRO."""
        return Evaluator(
            test_metrics=[
                AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
                F1Score(fields=["pred_label", "gt_label"], prefix="image_"),
                AUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
                F1Score(fields=["pred_mask", "gt_mask"], prefix="pixel_", strict=False),
                AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
            ],
        )

    def configure_callbacks(self) -> list[Callback]:
        """anomalib's (the pre- and post-processor, evaluator and visualiser are callbacks), and a resume point every
        ``resume_every_n_epochs`` epochs (``checkpoints.ResumeCheckpoint``)."""
        return [*super().configure_callbacks(), ResumeCheckpoint(self.resume_every_n_epochs)]

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        # the evidence scales are fitted before validation; a sanity check would run uncalibrated
        return {"num_sanity_val_steps": 0}

    @property
    def learning_type(self) -> LearningType:
        return LearningType.ONE_CLASS

    def validation_step(self, batch: Batch, *args, **kwargs) -> STEP_OUTPUT:
        del args, kwargs
        return batch.update(**self.model(batch.image)._asdict())

    def on_fit_start(self) -> None:
        trainer = self.trainer
        if trainer.fit_loop.max_epochs == LIGHTNING_DEFAULT_MAX_EPOCHS and trainer.max_steps == -1:
            # nobody chose a length: Lightning's 1000 epochs would take many hours on a CPU
            logger.warning(
                "%s: no --trainer.max_epochs given; training %d epochs (its configs/ default). "
                "Pass --trainer.max_epochs to change it.",
                type(self).__name__, self.default_max_epochs,
            )
            trainer.fit_loop.max_epochs = self.default_max_epochs
        self.model.to(memory_format=torch.channels_last)  # the layout training_patches gives
        split = str(getattr(getattr(trainer, "datamodule", None), "val_split_mode", "")).lower()
        if split.endswith(("same_as_test", "from_test")):
            logger.warning(
                "%s: the validation split comes from the test images (val_split_mode %s), so the thresholds and the "
                "normalisation stored in the checkpoint and the export are fitted to them. A line's model should use "
                "training images only: --data.val_split_mode synthetic (as configs/ do).",
                type(self).__name__, split.rsplit(".", 1)[-1],
            )
        self.check_inputs()
        super().on_fit_start()

    def check_inputs(self) -> None:
        """Read every image and mask of the category once before training (``inputs.check_category``): an unusable
        file stops the run here, naming it; conversions anomalib will make are logged."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            return  # dataloaders given directly: nothing to list the files by
        size = getattr(self.pre_processor.transform, "size", None) if self.pre_processor is not None else None
        started = time.perf_counter()
        notes = check_category(datamodule, min(size) if size else DEFAULT_IMAGE_SIZE[0])
        for note in notes:
            logger.warning("%s: %s", type(self).__name__, note)
        logger.info("inputs checked in %.1f s", time.perf_counter() - started)

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

    def on_train_epoch_start(self) -> None:
        """Make the last epoch end with a validation, whatever ``check_val_every_n_epoch`` says: the memory, the
        evidence scales and the thresholds are set there, and the checkpoint written after it."""
        trainer = self.trainer
        every = trainer.check_val_every_n_epoch
        epoch = trainer.current_epoch + 1
        if epoch == trainer.max_epochs and every is not None and epoch % every != 0:
            logger.info(
                "%s: epoch %d is the last and check_val_every_n_epoch=%d would skip its validation; validating after "
                "it, so that the model is calibrated and its thresholds set", type(self).__name__, epoch, every,
            )
            trainer.check_val_every_n_epoch = 1
        super().on_train_epoch_start()

    def on_validation_start(self) -> None:
        if self.trainer.state.fn == "fit":
            self.calibrate_on_training_images()
        super().on_validation_start()

    def on_test_start(self) -> None:
        self.require_calibration("test")
        super().on_test_start()

    def on_predict_start(self) -> None:
        self.require_calibration("predict")
        super().on_predict_start()

    @torch.no_grad()
    def calibrate_on_training_images(self) -> None:
        """Fill the feature memory and fit the evidence scales on (up to ``CALIBRATION_MAX_IMAGES``) normal
        training images (``PatchAnomalyModel.fit_normal``)."""
        was_training = self.model.training
        self.model.eval()

        def images() -> Iterable[torch.Tensor]:
            for batch in self.unaugmented_training_images():
                batch_images = batch.image.to(self.device)
                yield self.pre_processor.transform(batch_images) if self.pre_processor is not None else batch_images

        seen = self.model.fit_normal(images(), CALIBRATION_MAX_IMAGES)
        self.model.train(was_training)
        if seen:
            logger.info("feature memory and evidence scales from %d normal training images", seen)

    def unaugmented_training_images(self) -> DataLoader:
        """The training images in a fixed order and without ``train_augmentations`` (only the model's resize):
        the memory and the evidence scales describe good parts as the camera sees them."""
        datamodule = self.trainer.datamodule
        dataset = copy.copy(datamodule.train_data)
        dataset.augmentations = self.pre_processor.transform if self.pre_processor is not None else None
        return DataLoader(dataset, batch_size=datamodule.train_batch_size, shuffle=False,
                          collate_fn=dataset.collate_fn, num_workers=0)
