"""An ensemble of trained plugin models as an anomalib model (the GAN survey's closing suggestion).

The members are trained checkpoints (``members: {GANomaly: <model.ckpt>, EGBAD: <model.ckpt>, AnoGAN: <model.ckpt>}``);
the ensemble trains nothing. Its fit reads the category once (one epoch without an optimiser step) and, before its
validation, fits each member's normal score and map statistics on the training images (``EnsembleModel.fit_normal``);
anomalib's post-processor then sets thresholds and normalisation from the validation split, as for every model. The
checkpoint holds the members' structure (``member_specs``) and weights, so it loads without the members' files; the
export is one graph with every member.
"""

from __future__ import annotations

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

from ganad_plugin.models.anogan import AnoGAN
from ganad_plugin.models.components.normal_module import NormalImageModule
from ganad_plugin.models.egbad import EGBAD
from ganad_plugin.models.ganomaly import GANomaly

from .torch_model import EnsembleModel

MEMBER_MODELS = {"AnoGAN": AnoGAN, "EGBAD": EGBAD, "GANomaly": GANomaly}


def member_class(name: str) -> type[AnomalibModule]:
    if name not in MEMBER_MODELS:
        msg = f"ensemble member {name!r} is not one of {', '.join(MEMBER_MODELS)}"
        raise ValueError(msg)
    return MEMBER_MODELS[name]


def load_member(name: str, checkpoint: str | Path) -> AnomalibModule:
    """A trained member from its checkpoint, refused (naming it) when missing, of another model, or uncalibrated."""
    path = Path(checkpoint)
    if not path.is_file():
        msg = f"ensemble member {name}: checkpoint {path} not found"
        raise FileNotFoundError(msg)
    try:
        member = member_class(name).load_from_checkpoint(path, map_location="cpu")
    except (RuntimeError, TypeError, KeyError) as error:
        msg = f"ensemble member {name}: {path} is not a {name} checkpoint ({type(error).__name__}: {str(error)[:200]})"
        raise ValueError(msg) from error
    if not member.model.calibrated:
        msg = f"ensemble member {name}: {path} is not calibrated (a resume point, or a fit that never validated)"
        raise ValueError(msg)
    return member


class Ensemble(NormalImageModule, AnomalibModule):
    """The mean of trained members' scores and maps, each standardised on normal training images.

    Args:
        members: member model name -> trained checkpoint, e.g. ``{"GANomaly": "a/model.ckpt", "EGBAD": "b/model.ckpt"}``.
        member_specs: the members' model names and hyper-parameters (written by the ensemble into its checkpoint, so
            that it loads without the members' files); give ``members`` instead.
        pre_processor, post_processor, evaluator, visualizer: anomalib's components (True: the defaults).
    """

    default_max_epochs = 1

    def __init__(
        self,
        members: dict[str, str] | None = None,
        member_specs: list[dict[str, Any]] | None = None,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        super().__init__(
            pre_processor=pre_processor, post_processor=post_processor, evaluator=evaluator, visualizer=visualizer
        )
        if member_specs is None and not members:
            # a placeholder: anomalib's CLI builds the model before `export --ckpt_path` loads it from the checkpoint
            self.model = None
            return
        if member_specs is None:
            loaded = {name: load_member(name, path) for name, path in members.items()}
            member_specs = [{"model": name, "init_args": dict(member.hparams)} for name, member in loaded.items()]
            torch_members = [member.model for member in loaded.values()]
        else:
            torch_members = [member_class(spec["model"])(**spec["init_args"]).model for spec in member_specs]
        self.hparams["member_specs"] = member_specs
        self.model = EnsembleModel(torch_members)

    @classmethod
    def from_models(cls, members: dict[str, AnomalibModule], **kwargs: Any) -> Ensemble:
        """An ensemble of members already in memory (e.g. just trained), with their weights."""
        specs = [{"model": name, "init_args": dict(member.hparams)} for name, member in members.items()]
        ensemble = cls(member_specs=specs, **kwargs)
        for target, member in zip(ensemble.model.members, members.values(), strict=True):
            target.load_state_dict(member.model.state_dict())
        return ensemble

    def require_members(self) -> None:
        if self.model is None:
            msg = ("Ensemble needs its members' checkpoints: --model.members "
                   "'{GANomaly: <model.ckpt>, EGBAD: <model.ckpt>, AnoGAN: <model.ckpt>}' (or --ckpt_path of a trained "
                   "ensemble)")
            raise ValueError(msg)

    def on_fit_start(self) -> None:
        self.require_members()
        super().on_fit_start()

    def require_calibration(self, what: str) -> None:
        self.require_members()
        super().require_calibration(what)

    def configure_optimizers(self) -> None:
        return None  # nothing to train: the members are trained

    def training_step(self, batch: Batch, batch_idx: int) -> STEP_OUTPUT:
        """Nothing to learn; a constant loss, as anomalib's PaDiM, so that Lightning counts the step and the
        checkpoint is written after the fit."""
        del batch, batch_idx
        return torch.tensor(0.0, requires_grad=True, device=self.device)

    def require_exportable(self) -> None:
        """ONNX and OpenVINO exports are refused while a member runs a latent search."""
        for spec, member in zip(self.hparams["member_specs"], self.model.members, strict=True):
            steps = getattr(member, "latent_search_steps", 0)
            if steps > 0:
                msg = (f"the ensemble's {spec['model']} member runs a latent search (latent_search_steps={steps}), "
                       "which an ONNX/OpenVINO graph cannot hold: build the ensemble from an AnoGAN checkpoint "
                       "trained with latent_search_steps 0 (its default config)")
                raise ValueError(msg)
        super().require_exportable()
