"""GANomaly: outputs, losses, sizes, registration next to anomalib's own Ganomaly."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from anomalib.data import InferenceBatch

from ganad_plugin.models import GANomaly
from ganad_plugin.models.ganomaly.loss import DiscriminatorLoss, GeneratorLoss
from ganad_plugin.models.ganomaly.torch_model import GanomalyModel


@pytest.mark.parametrize("size", [(64, 64), (96, 160), (256, 256), (512, 384)])
def test_eval_output_is_score_and_map_at_preprocessed_resolution(size: tuple[int, int]) -> None:
    model = GANomaly(pre_processor=GANomaly.configure_pre_processor(size)).eval()
    images = model.pre_processor(torch.rand(2, 3, 300, 280))
    with torch.no_grad():
        output = model.model(images)
    assert isinstance(output, InferenceBatch)
    assert output.pred_score.shape == (2,)
    assert output.anomaly_map.shape == (2, 1, *size)
    assert torch.isfinite(output.anomaly_map).all()


def test_image_size_below_two_patches_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="too small for patch_size=32"):
        GANomaly(pre_processor=GANomaly.configure_pre_processor((48, 256)))


def test_generator_loss_is_zero_for_a_perfect_reconstruction_and_weights_its_terms() -> None:
    loss = GeneratorLoss(w_adv=1, w_con=50, w_enc=1)
    x, z, f = torch.rand(4, 3, 32, 32), torch.rand(4, 8, 1, 1), torch.rand(4, 16, 4, 4)
    assert loss(x, x, z, z, f, f)["total"] == 0
    terms = loss(x, x + 0.1, z, z + 0.2, f, f + 0.3)
    assert math.isclose(terms["contextual"].item(), 0.1, rel_tol=1e-4)
    assert math.isclose(terms["encoder"].item(), 0.04, rel_tol=1e-4)
    assert math.isclose(terms["adversarial"].item(), 0.09, rel_tol=1e-4)
    assert math.isclose(terms["total"].item(), 0.09 + 50 * 0.1 + 0.04, rel_tol=1e-4)


def test_discriminator_loss_is_log2_for_undecided_logits() -> None:
    zeros = torch.zeros(6)
    assert math.isclose(DiscriminatorLoss()(zeros, zeros).item(), math.log(2), rel_tol=1e-6)


def test_plain_lightning_fit_lowers_the_reconstruction_loss(tiny_dataset) -> None:
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine

    model = GANomaly(patches_per_image=16)
    datamodule = MVTecAD(root=tiny_dataset, category="flange", train_batch_size=2, eval_batch_size=4, num_workers=0)
    datamodule.setup()
    batch = next(iter(datamodule.train_dataloader()))
    images = model.pre_processor.transform(batch.image)

    def reconstruction_error() -> float:
        model.model.eval()
        with torch.no_grad():
            patches = model.model.grid.split(model.model.to_tanh_range(images))
            error = (model.model.generator(patches)[0] - patches).abs().mean().item()
        model.model.train()
        return error

    before = reconstruction_error()
    engine = Engine(max_epochs=10, check_val_every_n_epoch=10, logger=False, enable_progress_bar=False,
                    default_root_dir=tiny_dataset.parent / "fit_lowers")
    engine.fit(model=model, datamodule=datamodule)
    assert reconstruction_error() < 0.97 * before
    assert bool(model.model.scorer.calibration.calibrated) and bool(model.model.memory.filled)


def test_fit_normal_fills_the_memory_from_images_it_does_not_calibrate_on() -> None:
    torch.manual_seed(0)
    net = GanomalyModel(n_features=8, latent_dim=16, memory_size=1024).eval()
    images = torch.rand(8, 3, 64, 64)
    assert net.fit_normal(images.split(3)) == 8
    with torch.no_grad():
        in_memory = net.memory(net.dense_features(images[:1]))  # image 0 filled the memory
        held_out = net.memory(net.dense_features(images[3:4]))  # every fourth image calibrates instead
    assert in_memory.max() < 0.1 * held_out.min()
    assert bool(net.scorer.calibration.calibrated)
    with pytest.raises(RuntimeError, match="at least 4 normal images, got 3"):
        GanomalyModel(n_features=8, latent_dim=16, memory_size=8).fit_normal([images[:3]])


def test_get_model_tells_our_ganomaly_from_anomalibs() -> None:
    from anomalib.models import get_model

    assert type(get_model("GANomaly")) is GANomaly
    assert type(get_model("Ganomaly")).__module__.startswith("anomalib.models")
    # the ambiguous spelling keeps anomalib's historical meaning
    assert type(get_model("ganomaly")).__module__.startswith("anomalib.models")


def test_importing_the_top_level_package_imports_neither_torch_nor_anomalib() -> None:
    code = "import sys, ganad_plugin; print(any(m in sys.modules for m in ('torch', 'anomalib')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
