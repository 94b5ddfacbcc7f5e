"""Lightning-side behaviour the three GAN models share: pre-processing, evaluator, a sensible epoch budget,
calibrating the evidence scales on normal images before validation, and guards that stop a diverging run
with a clear message."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from anomalib import LearningType
from anomalib.data import Batch
from anomalib.deploy import CompressionType
from anomalib.metrics import AUPRO, AUROC, Evaluator, F1Score
from anomalib.pre_processing import PreProcessor
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch import nn
from torchvision.transforms.v2 import Resize

from .blocks import init_dcgan_weights
from .quantisation import check_int8_accuracy, quantise_on_normal_images

logger = logging.getLogger(__name__)

LIGHTNING_DEFAULT_MAX_EPOCHS = 1000
DEFAULT_IMAGE_SIZE = (256, 256)


def default_evaluator() -> Evaluator:
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


class GanTrainingMixin:
    """Mixed into each model's ``AnomalibModule`` subclass (kept a mixin so that the models stay direct
    subclasses of ``AnomalibModule``, which ``anomalib.models.get_model`` requires).

    The host class sets ``default_max_epochs`` and its torch model is a ``PatchAnomalyModel``.
    """

    default_max_epochs: int = 30
    calibration_max_images: int = 256

    @classmethod
    def configure_pre_processor(cls, image_size: tuple[int, int] | None = None) -> PreProcessor:
        """Resize only: the networks take [0, 1] images and map them to tanh's [-1, 1] themselves."""
        return PreProcessor(transform=Resize(image_size or DEFAULT_IMAGE_SIZE, antialias=True))

    @staticmethod
    def configure_evaluator() -> Evaluator:
        return default_evaluator()

    def validation_step(self, batch: Batch, *args, **kwargs) -> STEP_OUTPUT:
        del args, kwargs
        return batch.update(**self.model(batch.image)._asdict())

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        # the evidence scales are calibrated before validation; a sanity check would run uncalibrated
        return {"num_sanity_val_steps": 0}

    @property
    def learning_type(self) -> LearningType:
        return LearningType.ONE_CLASS

    @staticmethod
    def _post_training_quantization_ov(model: Any, datamodule: Any = None) -> Any:
        # anomalib calibrates INT8 on the validation (= test) split; calibrate on normal training images instead
        return quantise_on_normal_images(model, datamodule)

    def to_openvino(self, export_root: Path | str, *args: Any, **kwargs: Any) -> Path:
        """anomalib's OpenVINO export; an ``INT8_PTQ`` export is then checked against FP32 (``quantisation.py``)."""
        names = ("model_file_name", "input_size", "compression_type", "datamodule", "metric", "task", "max_drop")
        options = {**dict(zip(names, args, strict=False)), **kwargs}
        path = Path(super().to_openvino(export_root, **options))
        if options.get("compression_type") == CompressionType.INT8_PTQ:
            reference_root = Path(export_root) / "fp32_reference"
            reference = super().to_openvino(reference_root, **{**options, "compression_type": None})
            try:
                check_int8_accuracy(path, Path(reference), options["datamodule"], options.get("max_drop", 0.01))
            finally:
                shutil.rmtree(reference_root, ignore_errors=True)
        return path

    def on_fit_start(self) -> None:
        trainer = self.trainer
        if trainer.fit_loop.max_epochs == LIGHTNING_DEFAULT_MAX_EPOCHS and trainer.max_steps == -1:
            # nobody chose a length: Lightning's 1000 epochs would take many hours on a CPU
            logger.warning(
                "%s: no --trainer.max_epochs given; training %d epochs (the configs/ default). "
                "Pass --trainer.max_epochs to change it.",
                type(self).__name__, self.default_max_epochs,
            )
            trainer.fit_loop.max_epochs = self.default_max_epochs
        super().on_fit_start()

    def on_validation_start(self) -> None:
        if self.trainer.state.fn == "fit":
            self.calibrate_on_training_images()
        super().on_validation_start()

    def on_test_start(self) -> None:
        self.warn_if_uncalibrated()
        super().on_test_start()

    def on_predict_start(self) -> None:
        self.warn_if_uncalibrated()
        super().on_predict_start()

    def warn_if_uncalibrated(self) -> None:
        if not (bool(self.model.memory.filled) and bool(self.model.scorer.calibration.calibrated)):
            logger.warning(
                "%s has no feature memory or evidence scales yet: they are set from normal training images at the "
                "validation that ends training (keep check_val_every_n_epoch <= max_epochs, or load a trained "
                "checkpoint with --ckpt_path). Scores and maps of this model mean little.",
                type(self).__name__,
            )

    @torch.no_grad()
    def calibrate_on_training_images(self) -> None:
        """Fill the feature memory and fit the evidence scales on (up to ``calibration_max_images``) normal
        training images (``PatchAnomalyModel.fit_normal``)."""
        was_training = self.model.training
        self.model.eval()

        def images():
            for batch in self.trainer.datamodule.train_dataloader():
                batch_images = batch.image.to(self.device)
                yield self.pre_processor.transform(batch_images) if self.pre_processor is not None else batch_images

        seen = self.model.fit_normal(images(), self.calibration_max_images)
        self.model.train(was_training)
        logger.info("feature memory and evidence scales from %d normal training images", seen)


def check_finite(step: int, **losses: torch.Tensor) -> None:
    """Raise a clear error naming the loss term that stopped being finite."""
    for name, value in losses.items():
        if not torch.isfinite(value).all():
            msg = (
                f"training diverged at step {step}: {name} is {value.item()}. "
                "Checkpoints already written are kept; lower the learning rate or raise w_con and retry."
            )
            raise FloatingPointError(msg)


def reinitialise_if_collapsed(discriminator: nn.Module, discriminator_loss: torch.Tensor, floor: float = 1e-5) -> bool:
    """GANomaly's remedy when D wins outright (its loss near 0, no gradient left for G): start D afresh."""
    if discriminator_loss.item() < floor:
        discriminator.apply(init_dcgan_weights)
        logger.info("discriminator loss %.2e < %.0e: discriminator re-initialised", discriminator_loss.item(), floor)
        return True
    return False


def check_patch_fits(name: str, patch_size: int, image_size: tuple[int, int] | None) -> None:
    """Fail at construction when the pre-processor's image size cannot hold the model's patches."""
    if image_size is None:
        return
    height, width = image_size
    if min(height, width) < 2 * patch_size:
        msg = (
            f"{name}: image_size {height}x{width} is too small for patch_size={patch_size}; "
            f"each side must be at least {2 * patch_size} px"
        )
        raise ValueError(msg)

