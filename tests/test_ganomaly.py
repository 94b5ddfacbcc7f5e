"""GANomaly: outputs, losses, sizes, registration next to anomalib's own Ganomaly."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from ganad_plugin.models import Evidence, GANomaly, PatchNetwork, PatchSampling
from ganad_plugin.models.components.settings import AdamSettings
from ganad_plugin.models.ganomaly.loss import GeneratorLoss
from ganad_plugin.models.ganomaly.torch_model import GanomalyModel

from .conftest import SHORT_HEAD_STEPS, fit_briefly


def test_generator_loss_is_zero_for_a_perfect_reconstruction_and_weights_its_terms() -> None:
    loss = GeneratorLoss(w_adv=1, w_con=50, w_enc=1)
    x, z, f = torch.rand(4, 3, 32, 32), torch.rand(4, 8, 1, 1), torch.rand(4, 16, 4, 4)
    assert loss(x, x, z, z, f, f)["total"] == 0
    terms = loss(x, x + 0.1, z, z + 0.2, f, f + 0.3)
    assert math.isclose(terms["contextual"].item(), 0.1, rel_tol=1e-4)
    assert math.isclose(terms["encoder"].item(), 0.04, rel_tol=1e-4)
    assert math.isclose(terms["adversarial"].item(), 0.09, rel_tol=1e-4)
    assert math.isclose(terms["total"].item(), 0.09 + 50 * 0.1 + 0.04, rel_tol=1e-4)


def test_plain_lightning_fit_lowers_the_reconstruction_loss(tiny_dataset) -> None:
    model = GANomaly(sampling=PatchSampling(patches_per_image=16), evidence=Evidence(defect_steps=SHORT_HEAD_STEPS))
    net = model.model
    images, fit = fit_briefly(model, tiny_dataset, 10, tiny_dataset.parent / "ganomaly_fit")

    def reconstruction_error() -> float:
        with torch.no_grad():
            patches = net.grid.split(net.to_tanh_range(images))
            return (net.eval().generator(patches)[0] - patches).abs().mean().item()

    before = reconstruction_error()
    fit()
    assert reconstruction_error() < 0.97 * before
    assert net.calibrated and bool(net.memory.filled)


def test_a_cosine_schedule_lowers_every_optimisers_rate_from_lr_towards_zero_over_the_fit(tiny_dataset) -> None:
    model = GANomaly(sampling=PatchSampling(patches_per_image=4), optimiser=AdamSettings(lr=1e-3, schedule="cosine"),
                     evidence=Evidence(defect_steps=SHORT_HEAD_STEPS))
    rates: list[list[float]] = []
    scheduled = model.on_train_batch_start

    def record(batch, batch_idx: int) -> None:
        scheduled(batch, batch_idx)
        rates.append([group["lr"] for optimiser in model.optimizers() for group in optimiser.param_groups])

    model.on_train_batch_start = record
    fit_briefly(model, tiny_dataset, 3, tiny_dataset.parent / "ganomaly_cosine")[1]()
    assert len(rates) >= 6 and all(len(set(step)) == 1 for step in rates)  # D and G at the same rate
    firsts = [step[0] for step in rates]
    assert firsts[0] == pytest.approx(1e-3)
    assert all(later < earlier for earlier, later in zip(firsts, firsts[1:], strict=False))
    assert firsts[-1] < 0.1 * firsts[0]


def test_fit_normal_fills_the_memory_from_images_it_does_not_calibrate_on() -> None:
    torch.manual_seed(0)
    net = GanomalyModel(network=PatchNetwork(n_features=8, latent_dim=16), evidence=Evidence(memory_size=1024)).eval()
    images = torch.rand(8, 3, 64, 64)
    assert net.fit_normal(images.split(3)) == 8
    with torch.no_grad():
        in_memory = net.memory(net.dense_features(images[:1]))  # image 0 filled the memory
        held_out = net.memory(net.dense_features(images[3:4]))  # every fourth image calibrates instead
    assert in_memory.max() < 0.1 * held_out.min()
    assert bool(net.scorer.calibration.calibrated)
    with pytest.raises(RuntimeError, match="at least 4 normal images, got 3"):
        GanomalyModel(network=PatchNetwork(n_features=8, latent_dim=16), evidence=Evidence(memory_size=8)).fit_normal([images[:3]])


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


@pytest.mark.parametrize("precision", ["bf16", "float32"])
def test_training_steps_run_the_networks_in_the_training_precision_and_calibration_in_float32(
        tiny_dataset, precision: str) -> None:
    model = GANomaly(sampling=PatchSampling(patches_per_image=4), training_precision=precision,
                     evidence=Evidence(defect_steps=SHORT_HEAD_STEPS, defect_heads=1))
    seen: dict[bool, set[torch.dtype]] = {True: set(), False: set()}  # by the generator's mode: training, evaluation
    generator = model.model.generator
    generator.register_forward_hook(lambda module, inputs, outputs: seen[module.training].add(outputs[0].dtype))
    fit_briefly(model, tiny_dataset, 1, tiny_dataset.parent / f"ganomaly_{precision}")[1]()
    expected = torch.bfloat16 if precision == "bf16" else torch.float32
    assert seen[True] == {expected}
    assert seen[False] == {torch.float32}  # the memory, scales and thresholds after training
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_an_unknown_training_precision_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="training_precision"):
        GANomaly(training_precision="fp16")
