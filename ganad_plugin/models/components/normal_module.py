"""The anomalib side every model of the plugin shares, whatever it trains: components, calibration, checks.

``NormalImageModule`` is mixed in before ``AnomalibModule`` (through ``PatchGanModule`` for the three GANs, directly
for ``Ensemble``), so that each model stays a direct subclass of ``AnomalibModule``, which anomalib's model lookup by
name requires. Its torch model (``self.model``) has ``fit_normal(batches, max_images)`` and ``calibrated``. It holds:
the pre-processor, post-processor and evaluator; reading the category's files before a fit; a sensible epoch budget;
fitting the model's normal statistics on the training images before each validation of a fit (the last epoch always
validates); refusing to test, predict or export an uncalibrated model; and (through ``NormalImageExportMixin``) export.
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
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import Resize

from .distributed import broadcast_from_first
from .export import NormalImageExportMixin
from .inputs import check_category
from .post_processing import LinePostProcessor

logger = logging.getLogger(__name__)

LIGHTNING_DEFAULT_MAX_EPOCHS = 1000
DEFAULT_IMAGE_SIZE = (256, 256)
CALIBRATION_MAX_IMAGES = 256


class NormalImageModule(NormalImageExportMixin):
    """What every plugin model does around its own training step (``self.model`` fits on normal images).

    A model sets ``default_max_epochs`` (its config's ``trainer.max_epochs``) and builds ``self.model``.
    """

    default_max_epochs: int

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

    def setup(self, stage: str) -> None:
        """Channels-last networks for a fit. Under DDP, let the processes skip the parameters a step does not use:
        the GANs step each network on its own loss (the discriminator's loss leaves the generator without a
        gradient), which DDP's default refuses. Lightning calls this before it wraps the model, so that plain
        ``--trainer.strategy ddp`` works."""
        super().setup(stage)
        if stage == "fit":
            # oneDNN's faster layout on CPUs (docs/speed.md); here, before DDP builds its gradient buckets on it
            self.model.to(memory_format=torch.channels_last)
        strategy = self.trainer.strategy
        ddp_arguments = strategy._ddp_kwargs if isinstance(strategy, DDPStrategy) else None  # read when it wraps
        if ddp_arguments is not None and not ddp_arguments.get("find_unused_parameters"):
            ddp_arguments["find_unused_parameters"] = True
            logger.info("%s under DDP: find_unused_parameters=True (each network steps on its own loss)",
                        type(self).__name__)

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
        broadcast_from_first(self.model)  # under DDP: every process on all images, then rank 0's to the bit
        self.model.train(was_training)
        if seen:
            logger.info("feature memory and evidence scales from %d normal training images", seen)
        fitted = getattr(getattr(self.model, "scorer", None), "calibration", None)
        if seen and fitted is not None and fitted.fitted_weights is not None:
            logger.info("evidence weights refitted on defects drawn on held-out good images: %s", ", ".join(
                f"{name} {weight:.2f}" for name, weight in zip(self.model.evidence_names,
                                                               fitted.fitted_weights.tolist(), strict=True)))

    def unaugmented_training_images(self) -> DataLoader:
        """The training images in a fixed order and without ``train_augmentations`` (only the model's resize):
        the memory and the evidence scales describe good parts as the camera sees them."""
        datamodule = self.trainer.datamodule
        dataset = copy.copy(datamodule.train_data)
        dataset.augmentations = self.pre_processor.transform if self.pre_processor is not None else None
        return DataLoader(dataset, batch_size=datamodule.train_batch_size, shuffle=False,
                          collate_fn=dataset.collate_fn, num_workers=0)
