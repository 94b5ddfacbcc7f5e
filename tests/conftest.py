"""Shared fixtures: small generated MVTec-style data, and each model trained briefly by the CLI and exported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

REPO = Path(__file__).resolve().parents[1]
GANAD = [sys.executable, "-m", "ganad_plugin.cli"]
# the defect head's training batches in the tests that fit a model for another reason than its accuracy (thresholds,
# export, resuming, determinism): the head still trains and exports, in a fifth of the default's time (about 25 s a
# fit on 2 cores); what the head's longer training reaches is test_accuracy's and test_defect_head's to check
SHORT_HEAD_STEPS = 16
SHORT_HEAD = ["--model.evidence.defect_steps", str(SHORT_HEAD_STEPS)]
# a narrow defect head (32 channels, one full-resolution convolution; the configs' 48 with three cost about three times
# as much a batch), for fits whose head's width is not what a test is about (Evidence keyword arguments)
NARROW_HEAD = {"defect_width": 32, "defect_fine": 1}


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs two workers, a test file each at a time) each worker, and every
    command it starts, gets its share of the cores, so that the workers do not fight over them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


# the files that take longest on one of make test's workers (seconds on 2026-12-01: 540, 440, 440, 175, 135, 120,
# 115, 110, 105, 55, 50, 40; the others under 40 each), collected first in this order: pytest-xdist's loadfile hands
# a worker the next file as it nears the end of its last, so the longest go out first and the short ones fill in at
# the end, and the two workers finish together
LONGEST_FILES = ("test_accuracy_bigan.py", "test_accuracy.py", "test_cli_export.py", "test_compression.py",
                 "test_ensemble.py", "test_paper_presets.py", "test_reliability.py", "test_evidence.py", "test_ddp.py",
                 "test_validation.py", "test_egbad.py", "test_ganomaly.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FILES)))  # stable: the rest keep their order


def run_cli(args: list[str], cwd: Path, log: Path) -> None:
    """Run a CLI command; on failure, fail the test with the tail of its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w", encoding="utf-8") as handle:
        result = subprocess.run(args, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {result.returncode}:\n{log.read_text()[-3000:]}")


def run_in_process(args: list[str], log: Path) -> None:
    """``ganad ARGS`` (anomalib's CLI with the plugin loaded) in this process, its output in ``log``; on failure,
    fail the test with the tail of it. For the commands whose program is not what a test checks: a new process
    spends about 15 s on imports on 2 cores (``run_cli`` still runs every program a user runs: ``ganad train``
    here, ``anomalib train`` in test_cli_export, and each model's ``anomalib export`` in the contract check)."""
    from ganad_plugin import cli

    program = sys.argv
    with open(log, "w", encoding="utf-8") as handle, redirect_stdout(handle), redirect_stderr(handle):
        try:
            status = cli.main(args)
        except SystemExit as finished:
            status = finished.code
        except Exception:  # noqa: BLE001  the traceback is the failure's message
            traceback.print_exc(file=handle)
            status = 1
        finally:
            sys.argv = program
    if status not in (0, None):
        pytest.fail(f"ganad {' '.join(map(str, args))} ended with {status}:\n{log.read_text()[-3000:]}")


def made_once(key: str, make: Callable[[Path], dict], tmp_path_factory: pytest.TempPathFactory,
              wait: bool = True) -> dict | None:
    """What ``make(folder)`` returns (a JSON-able dict), made once for the whole run: under pytest-xdist the first
    worker to ask makes it in a folder all workers share, the others wait for it and read its record (each worker
    used to train the exported models again); a make that fails leaves no record, so the next asker fails too.
    With ``wait=False``, None while another worker is making it (the caller can make something else meanwhile)."""
    shared = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        shared = shared.parent  # .../pytest-N/, above each worker's popen-gwK/
    record = shared / f"{key}.json"
    try:
        with FileLock(str(record) + ".lock", timeout=-1 if wait else 0):
            if not record.is_file():
                folder = shared / key
                folder.mkdir(exist_ok=True)
                record.write_text(json.dumps(make(folder), default=str))
    except Timeout:
        return None
    return json.loads(record.read_text())


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both sample categories at a few images per split (same generator as sample_data/)."""

    def generate(root: Path) -> dict:
        from ganad_plugin.sample_data import SplitSizes, generate_category

        for category in ("weave", "flange"):
            generate_category(root, category, SplitSizes(train_good=8, test_good=3, test_per_defect=2))
        return {"root": root}

    return Path(made_once("tiny_data", generate, tmp_path_factory)["root"])


def fit_briefly(model, data_root: Path, epochs: int, work: Path):
    """(the pre-processed images of the tiny flange's first training batch, to measure ``model`` on before and
    after; a function that fits ``model`` for ``epochs`` there with a plain anomalib Engine, validating once at the
    end, and returns the Engine)."""
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine

    datamodule = MVTecAD(root=data_root, category="flange", train_batch_size=2, eval_batch_size=4, num_workers=0)
    datamodule.setup()
    images = model.pre_processor.transform(next(iter(datamodule.train_dataloader())).image)

    def fit() -> Engine:
        engine = Engine(max_epochs=epochs, check_val_every_n_epoch=epochs, logger=False, enable_progress_bar=False,
                        default_root_dir=work)
        engine.fit(model=model, datamodule=datamodule)
        return engine

    return images, fit


MODELS = ("GANomaly", "EGBAD", "AnoGAN")


def train_and_export(name: str, data_root: Path, work: Path) -> dict[str, Path]:
    """Train ``name`` one epoch on the tiny weave as a user of anomalib would (its own ``anomalib train`` program
    with the model's config, which validates on the training images' synthetic split), then export it (``ganad
    export``, in this process). The fit's log is ``work/train.log``."""
    anomalib = str(Path(sys.executable).parent / "anomalib")
    run_cli(
        [anomalib, "train", "--config", str(REPO / "configs" / f"{name.lower()}.yaml"), "--data.root",
         str(data_root), "--data.category", "weave", "--trainer.max_epochs", "1",
         "--trainer.check_val_every_n_epoch", "1", *SHORT_HEAD, "--default_root_dir", str(work / "train")],
        cwd=REPO, log=work / "train.log",
    )
    checkpoint = next((work / "train").rglob("*.ckpt"))
    run_in_process(["export", "--model", f"ganad_plugin.models.{name}", "--export_type", "openvino",
                    "--ckpt_path", str(checkpoint), "--default_root_dir", str(work / "export")], log=work / "export.log")
    return {"name": name, "checkpoint": checkpoint, "xml": next((work / "export").rglob("model.xml")), "work": work}


def exported(name: str, tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory, wait: bool = True) -> dict | None:
    """``name`` trained and exported by ``train_and_export``, once a run (shared by the workers); with
    ``wait=False``, None while another worker is making it."""
    record = made_once(f"{name.lower()}_cli", lambda work: train_and_export(name, tiny_dataset, work), tmp_path_factory,
                       wait)
    return None if record is None else {key: value if key == "name" else Path(value) for key, value in record.items()}


def all_exported(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every model of ``MODELS`` as ``exported`` gives it: those another worker is making are left to it while this
    one makes the others (rather than the two taking turns with one core idle), then waited for."""
    made: dict[str, dict] = {}
    for name in MODELS:
        record = exported(name, tiny_dataset, tmp_path_factory, wait=False)
        if record is not None:
            made[name] = record
    return {name: made.get(name) or exported(name, tiny_dataset, tmp_path_factory) for name in MODELS}


@pytest.fixture(scope="session", params=MODELS)
def exported_model(request: pytest.FixtureRequest, tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """Each model trained one epoch by ``anomalib train --config`` and exported to OpenVINO (once per run)."""
    return exported(request.param, tiny_dataset, tmp_path_factory)


@pytest.fixture(scope="session")
def exported_ganomaly(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """GANomaly trained one epoch by its config, then exported (``train_and_export``)."""
    return exported("GANomaly", tiny_dataset, tmp_path_factory)


def assert_ir_matches(model, xml: Path, tiny_dataset: Path, count: int = 3) -> None:
    """The OpenVINO IR ``xml``, compiled at f32, scores and maps the tiny weave's first ``count`` test images as the
    checkpoint's ``model`` (in eval mode) does, within 1e-3."""
    import numpy as np
    import openvino as ov
    import torch

    from ganad_plugin.edge.images import list_images, read_rgb

    compiled = ov.Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    for path in list_images(tiny_dataset / "weave" / "test")[:count]:
        image = (read_rgb(path).astype(np.float32) / 255).transpose(2, 0, 1)[None]
        with torch.no_grad():
            expected = model(torch.from_numpy(image))
        actual = compiled(image)
        np.testing.assert_allclose(actual[compiled.output("pred_score")], expected.pred_score.numpy(), atol=1e-3)
        np.testing.assert_allclose(actual[compiled.output("anomaly_map")], expected.anomaly_map.numpy(), atol=1e-3)
