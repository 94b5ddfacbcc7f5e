"""Accuracy of each model on a sample_data category, trained as a user would (the CLI, the model's config).

Floors, not targets: the issues' target is 0.85 image and pixel AUROC on each category; the figures the full
configs reach are recorded in each model's README (``python benchmarks/accuracy.py``). These tests guard against
regressions within CI's time: GANomaly runs its config as shipped (about 5 minutes on 2 cores); EGBAD and
AnoGAN run theirs shortened to ``epochs`` (about 2 minutes each), with floors set below what that length reached.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import GANAD, REPO, run_cli

# model -> (epochs, None for the config's own; floors)
CASES = {
    # measured on weave with the coreset memory and the top-0.25 % image score: GANomaly's config 0.859-0.882 image /
    # 0.963-0.972 pixel AUROC (two runs; 0.858 for an earlier run's weights rescored); EGBAD 0.858 / 0.973 at 10
    # epochs (0.860 / 0.968 at 25); AnoGAN with the reconstruction term (w_rec 10) 0.856 / 0.963 at 10 epochs
    # (0.856-0.872 / 0.967-0.968 at 25; 0.748 / 0.935 at 10 epochs before the term). GAN training on a CPU
    # is not bit-reproducible and image AUROC has moved by up to 0.1 between runs of the same seeded config, so the
    # floors sit below those spreads and catch a collapse rather than a bad draw
    "GANomaly": (None, {"image_AUROC": 0.75, "pixel_AUROC": 0.92}),
    "EGBAD": (10, {"image_AUROC": 0.72, "pixel_AUROC": 0.92}),
    "AnoGAN": (10, {"image_AUROC": 0.72, "pixel_AUROC": 0.92}),
}


@pytest.mark.slow
@pytest.mark.parametrize("model", list(CASES))
def test_config_reaches_the_auroc_floors_on_weave(model: str, tmp_path: Path) -> None:
    epochs, floors = CASES[model]
    shortened = [] if epochs is None else ["--trainer.max_epochs", str(epochs), "--trainer.check_val_every_n_epoch", str(epochs)]
    run_cli([*GANAD, "train", "--config", str(REPO / "configs" / f"{model.lower()}.yaml"), "--data.root",
             str(REPO / "sample_data"), "--data.category", "weave", "--default_root_dir", str(tmp_path),
             "--trainer.enable_progress_bar", "false", *shortened], cwd=REPO, log=tmp_path / "train.log")
    log = (tmp_path / "train.log").read_text()
    measured = {name: float(re.search(rf"{name}\s*│\s*([0-9.]+)", log).group(1)) for name in floors}
    print(f"{model} on sample_data/weave ({epochs or 'config'} epochs): {measured}")
    for name, floor in floors.items():
        assert measured[name] >= floor, f"{model} {name} {measured[name]:.3f} < {floor}"
