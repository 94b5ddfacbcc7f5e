"""``ResumeCheckpoint``: the fit's whole state every few epochs, so that a run killed mid-fit (SIGKILL, a power cut)
continues with ``ganad fit ... --ckpt_path <run>/weights/lightning/resume.ckpt`` instead of starting again.

anomalib's own checkpoint (``model.ckpt``) is written only after a validation, which the configs run once, at the
end. Each save goes to a temporary file renamed over the previous one, so a kill during a save leaves the previous
``resume.ckpt`` whole. When the fit ends normally, ``model.ckpt`` holds the same state and ``resume.ckpt`` is
removed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

RESUME_FILE = "resume"


class ResumeCheckpoint(ModelCheckpoint):
    """Saves ``<default_root_dir>/weights/lightning/resume.ckpt`` at the end of every ``every_n_epochs``-th epoch."""

    def __init__(self, every_n_epochs: int) -> None:
        super().__init__(filename=RESUME_FILE, every_n_epochs=every_n_epochs, save_on_train_epoch_end=True,
                         save_top_k=1, enable_version_counter=False)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.dirpath = str(Path(trainer.default_root_dir) / "weights" / "lightning")
        super().setup(trainer, pl_module, stage)

    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        partial = f"{filepath}.partial"
        super()._save_checkpoint(trainer, partial)
        if trainer.is_global_zero:
            os.replace(partial, filepath)
        self._last_checkpoint_saved = filepath

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        """The fit is complete: anomalib's ``model.ckpt`` has its final state; the resume point is not needed."""
        final = getattr(trainer.checkpoint_callback, "best_model_path", "")
        resume = Path(self.dirpath or "") / f"{RESUME_FILE}{self.FILE_EXTENSION}"
        if trainer.is_global_zero and final and Path(final).is_file() and Path(final) != resume:
            resume.unlink(missing_ok=True)
        super().on_train_end(trainer, pl_module)
