"""Accuracy of each model on a sample_data category, trained as a user would (the CLI, the model's config).

Floors, not targets: what the full configs reach is in docs/accuracy.md (``python benchmarks/accuracy.py``). These
tests guard against regressions within CI's time: GANomaly runs its config as shipped; EGBAD and AnoGAN run theirs
shortened to ``epochs``. GANomaly's trained weights are then also scored with each part of the evidence alone: the
GAN's own maps (memory weight 0) and the feature memory alone. Each part has a floor, and the combined score's
floor sits above what either part reaches alone, so that breaking the GAN or the memory fails a test.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import ganad_plugin.models
from ganad_plugin.edge.images import list_images, read_rgb
from ganad_plugin.edge.metrics import auroc

from .conftest import GANAD, REPO, run_cli

# model -> (epochs, None for the config's own; floors)
CASES = {
    # GAN training on a CPU is not bit-reproducible and AUROC moves between runs of the same seeded config, so the
    # floors sit below the measured spread (docs/accuracy.md) and catch a broken part rather than a bad draw
    # GANomaly's config measured 0.918 / 0.975 (docs/accuracy.md); EGBAD and AnoGAN at 10 epochs measured
    # 0.858 / 0.973 and 0.856 / 0.963 with the evidence before the detection-quality issue
    "GANomaly": (None, {"image_AUROC": 0.85, "pixel_AUROC": 0.95}),
    "EGBAD": (10, {"image_AUROC": 0.72, "pixel_AUROC": 0.92}),
    "AnoGAN": (10, {"image_AUROC": 0.72, "pixel_AUROC": 0.92}),
}
# GANomaly's evidence parts alone, on the same trained weights (image AUROC, pixel AUROC); measured on the config's
# weights (memory and scales refitted from all of train/good): combined 0.908 / 0.975, GAN only 0.837 / 0.900,
# memory only 0.873 / 0.960
PART_FLOORS = {"GAN only": (0.75, 0.85), "memory only": (0.78, 0.92)}
_trained: dict[str, Path] = {}


def train(model: str, work: Path) -> tuple[Path, dict[str, float]]:
    epochs, floors = CASES[model]
    shortened = [] if epochs is None else ["--trainer.max_epochs", str(epochs), "--trainer.check_val_every_n_epoch", str(epochs)]
    run_cli([*GANAD, "train", "--config", str(REPO / "configs" / f"{model.lower()}.yaml"), "--data.root",
             str(REPO / "sample_data"), "--data.category", "weave", "--default_root_dir", str(work),
             "--trainer.enable_progress_bar", "false", *shortened], cwd=REPO, log=work / "train.log")
    log = (work / "train.log").read_text()
    measured = {name: float(re.search(rf"{name}\s*│\s*([0-9.]+)", log).group(1)) for name in floors}
    return next(work.rglob("model.ckpt")), measured


@pytest.mark.slow
@pytest.mark.parametrize("model", list(CASES))
def test_config_reaches_the_auroc_floors_on_weave(model: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    checkpoint, measured = train(model, tmp_path_factory.mktemp(f"accuracy_{model.lower()}"))
    _trained[model] = checkpoint
    epochs, floors = CASES[model]
    print(f"{model} on sample_data/weave ({epochs or 'config'} epochs): {measured}")
    for name, floor in floors.items():
        assert measured[name] >= floor, f"{model} {name} {measured[name]:.3f} < {floor}"


@pytest.mark.slow
def test_gan_and_memory_each_earn_their_place_in_ganomalys_score() -> None:
    if "GANomaly" not in _trained:
        pytest.skip("needs test_config_reaches_the_auroc_floors_on_weave[GANomaly] in the same session")
    model = ganad_plugin.models.GANomaly.load_from_checkpoint(_trained["GANomaly"], map_location="cpu")
    root = REPO / "sample_data" / "weave"
    images, labels, masks = weave_test_split(root)
    train_images = torch.stack([to_tensor(read_rgb(p)) for p in list_images(root / "train" / "good")])
    settings = model.hparams["evidence"]
    results = {}
    # the parts leave the colour statistics out (no network in them): the GAN's maps, the feature memory
    for name, change in {"combined": {}, "GAN only": {"memory_weight": 0.0, "colour_weight": 0.0},
                         "memory only": {"residual_weight": 0.0, "distance_weight": 0.0, "colour_weight": 0.0}}.items():
        part = ganad_plugin.models.GANomaly(evidence=dataclasses.replace(settings, **change)).model
        state = {k: v for k, v in model.model.state_dict().items() if not k.startswith(("memory.", "scorer."))}
        part.load_state_dict(state, strict=False)
        part.eval()
        with torch.inference_mode():
            part.fit_normal(train_images.split(16), 256)
            outputs = [part(images[i : i + 8]) for i in range(0, len(images), 8)]
        scores = torch.cat([o.pred_score for o in outputs]).numpy()
        maps = torch.cat([o.anomaly_map for o in outputs])[:, 0].numpy()
        results[name] = (auroc(scores, labels), auroc(maps, masks))
    print(f"GANomaly on weave, image / pixel AUROC by evidence: {results}")
    for name, (image_floor, pixel_floor) in PART_FLOORS.items():
        assert results[name][0] >= image_floor and results[name][1] >= pixel_floor, (name, results[name])
    # the parts are scored on the same weights, so a good or bad draw moves them together: the combined score must
    # rank images better than either part and map pixels at least about as well as the better one
    best_image = max(results["GAN only"][0], results["memory only"][0])
    best_pixel = max(results["GAN only"][1], results["memory only"][1])
    assert results["combined"][0] > best_image, f"the combined score is no better than one part alone: {results}"
    assert results["combined"][1] >= best_pixel - 0.01, f"the combined map is worse than one part alone: {results}"


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255


def weave_test_split(root: Path) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    import cv2

    images, labels, masks = [], [], []
    for kind in sorted(p.name for p in (root / "test").iterdir()):
        for path in list_images(root / "test" / kind):
            images.append(to_tensor(read_rgb(path)))
            labels.append(kind != "good")
            if kind == "good":
                masks.append(np.zeros(images[-1].shape[1:], bool))
                continue
            mask = cv2.imread(str(root / "ground_truth" / kind / f"{path.stem}_mask.png"), cv2.IMREAD_GRAYSCALE)
            masks.append(mask > 127)
    return torch.stack(images), np.array(labels), np.stack(masks)
