"""Training in two processes (Lightning's DDP on the CPU, gloo): what keeps the processes' models the same, and a
real two-process fit and test through the ``ganad`` CLI."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

from .conftest import GANAD, NARROW_HEAD, REPO, SHORT_HEAD, run_cli

GOOD = 12  # validation images without a defect, then 6 with one
SPLIT = 10  # rank 0 scores the first 10 of the 18, rank 1 the other 8 (uneven, as DDP's sampler may leave them)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def validation_outputs() -> list:
    """18 scored validation images (12 good, 6 defective), one batch each: what a model hands the post-processor."""
    from anomalib.data import ImageBatch

    generator = torch.Generator().manual_seed(0)
    batches = []
    for index in range(GOOD + 6):
        defective = index >= GOOD
        mask = torch.zeros(1, 8, 8, dtype=torch.bool)
        anomaly_map = torch.rand(1, 8, 8, generator=generator) * 0.4
        if defective:
            mask[:, 2:5, 3:6] = True
            anomaly_map[mask] += 0.5
        batches.append(ImageBatch(
            image=torch.zeros(1, 3, 8, 8), gt_label=torch.tensor([int(defective)]), gt_mask=mask,
            pred_score=torch.rand(1, generator=generator) * 0.3 + (0.5 if defective else 0.2),
            anomaly_map=anomaly_map,
        ))
    return batches


def post_processor_state(batches: list) -> dict[str, torch.Tensor]:
    """The LinePostProcessor's thresholds and normalisation after one validation epoch over ``batches``."""
    from ganad_plugin.models.components.post_processing import LinePostProcessor

    # a 15 % false-alarm rate puts the good parts' floor inside the good scores' range, above anomalib's F1 threshold
    processor = LinePostProcessor(image_false_alarm_rate=0.15, pixel_false_alarm_rate=0.05)
    processor.on_validation_epoch_start(None, None)
    for batch in batches:
        processor.on_validation_batch_end(None, None, batch)
    processor.on_validation_epoch_end(None, None)
    return {name: value.clone() for name, value in processor.state_dict().items()}


def in_two_processes(rank: int, port: int, out: Path) -> None:
    from torch import distributed, nn

    from ganad_plugin.models.components.distributed import any_process, broadcast_from_first, gathered

    distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(100 + rank)  # each process starts with its own weights
        network = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).to(memory_format=torch.channels_last)
        network[1].running_mean.uniform_()
        before = {name: value.clone() for name, value in network.state_dict().items()}
        broadcast_from_first(network)
        batches = validation_outputs()
        mine = batches[:SPLIT] if rank == 0 else batches[SPLIT:]
        torch.save({
            "gathered": gathered(torch.arange(3) + 10 * rank if rank == 0 else torch.arange(2) + 10 * rank),
            "any_one": any_process(rank == 1), "any_none": any_process(False),
            "before": before, "after": network.state_dict(),
            "post_processor": post_processor_state(mine),
        }, out / f"rank{rank}.pt")
    finally:
        distributed.destroy_process_group()


def test_two_processes_end_with_the_same_model_and_thresholds(tmp_path: Path) -> None:
    mp.spawn(in_two_processes, args=(free_port(), tmp_path), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=False) for rank in (0, 1)]
    for result in ranks:
        assert result["gathered"].tolist() == [0, 1, 2, 10, 11]
        assert result["any_one"] is True and result["any_none"] is False
        # rank 0's weights and buffers everywhere (they differed before)
        for name, value in ranks[0]["before"].items():
            assert torch.equal(result["after"][name], value), name
    assert not torch.equal(ranks[1]["before"]["0.weight"], ranks[0]["before"]["0.weight"])
    # both processes hold the thresholds and normalisation one process computes from all 18 images
    alone = post_processor_state(validation_outputs())
    for result in ranks:
        for name, value in alone.items():
            assert torch.allclose(result["post_processor"][name], value, atol=1e-6), name
    # and those differ from a process's own share: the pooling matters
    share = post_processor_state(validation_outputs()[:SPLIT])
    assert not torch.allclose(share["_image_threshold"], alone["_image_threshold"], atol=1e-3)


# the networks at the suite's small size, one narrow defect head, validated (and so calibrated) once at the end, as the
# configs do: what DDP must keep in step does not depend on the networks' width (the whole run was 103-109 s at the
# default sizes, validating every epoch, on an AMD EPYC without AVX-512 under make test, 2026-12-07)
SMALL_FIT = ["--model.network.n_features", "8", "--model.network.latent_dim", "16",
             "--model.sampling.patches_per_image", "4", "--model.evidence.defect_heads", "1",
             *(part for name, value in NARROW_HEAD.items() for part in (f"--model.evidence.{name}", str(value))),
             "--trainer.check_val_every_n_epoch", "2"]


def test_ganad_trains_and_tests_in_two_processes(tiny_dataset: Path, tmp_path: Path) -> None:
    from ganad_plugin.models import GANomaly

    log = tmp_path / "ddp.log"
    run_cli([*GANAD, "train", "--model", "GANomaly", "--data", "anomalib.data.MVTecAD", "--data.root",
             str(tiny_dataset), "--data.category", "weave", "--data.num_workers", "0", "--data.val_split_mode",
             "synthetic", "--trainer.max_epochs", "2", "--trainer.strategy", "ddp", "--trainer.devices", "2",
             "--trainer.accelerator", "cpu", *SMALL_FIT, *SHORT_HEAD, "--default_root_dir", str(tmp_path / "run")],
            cwd=REPO, log=log)
    text = log.read_text()
    assert text.count("under DDP: find_unused_parameters=True") == 2  # both processes trained
    assert "image_AUROC" in text and "pixel_AUROC" in text  # and tested
    # the networks were channels-last before DDP built its gradient buckets: converted after, the gradients no longer
    # match the buckets' layout (this warning), and a weave fit fell from 0.95 to 0.70 image AUROC (docs/speed.md)
    assert "Grad strides do not match bucket view strides" not in text
    model = GANomaly.load_from_checkpoint(next((tmp_path / "run").rglob("model.ckpt")), map_location="cpu")
    assert model.model.calibrated
    assert np.isfinite(float(model.post_processor._image_threshold))
    with torch.inference_mode():
        prediction = model.eval()(torch.rand(1, 3, 256, 256))
    assert torch.isfinite(prediction.pred_score).all() and torch.isfinite(prediction.anomaly_map).all()

