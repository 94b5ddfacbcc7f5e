"""``make demo``: train a model on one sample_data category, export it to OpenVINO, run the edge
inferencer on the category's test images, and print image/pixel AUROC, stage timings and where the overlays are.

    python -m ganad_plugin.demo --model ganomaly --category weave --out results/demo
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ganad_plugin.edge import EdgeInferencer
from ganad_plugin.edge.images import list_images, read_rgb
from ganad_plugin.edge.metrics import auroc
from ganad_plugin.edge.regions import save_overlay

MODEL_CLASSES = {"ganomaly": "GANomaly", "egbad": "EGBAD", "anogan": "AnoGAN"}


def ground_truth_mask(image_path: Path, category_root: Path, shape: tuple[int, int]) -> np.ndarray:
    defect = image_path.parent.name
    if defect == "good":
        return np.zeros(shape, bool)
    mask_path = category_root / "ground_truth" / defect / f"{image_path.stem}_mask.png"
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        msg = f"missing ground-truth mask {mask_path} for {image_path}"
        raise FileNotFoundError(msg)
    return mask > 0


def last_step(log: Path) -> str:
    """The message of the last INFO line a stage has logged so far ("" before the first)."""
    marker = " - INFO - "
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if marker in line]
    return lines[-1].split(marker, 1)[1].strip()[:110] if lines else ""


def run_stage(name: str, command: list[str], log: Path, heartbeat_s: float = 60.0) -> float:
    """Run one stage with its output in ``log``; every ``heartbeat_s`` print the time so far and its last step, so
    that a fit of several minutes shows it is moving (a CPU without bf16 units trains for over ten)."""
    print(f"== {name}: {' '.join(command)}\n   (its output: {log})", flush=True)
    start = time.perf_counter()
    with (
        open(log, "w", encoding="utf-8") as handle,
        subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT) as process,
    ):
        try:
            while True:
                try:
                    returncode = process.wait(timeout=heartbeat_s)
                    break
                except subprocess.TimeoutExpired:
                    print(f"   {time.perf_counter() - start:6.0f} s  {last_step(log)}", flush=True)
        except BaseException:  # Ctrl-C or any other way out: the stage stops with the demo
            process.kill()
            raise
    if returncode != 0:
        print(log.read_text(encoding="utf-8")[-3000:], file=sys.stderr)
        msg = f"{name} failed (exit {returncode}); full log in {log}"
        raise SystemExit(msg)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ganomaly", choices=sorted(MODEL_CLASSES))
    parser.add_argument("--category", default="weave")
    parser.add_argument("--root", type=Path, default=Path("sample_data"))
    parser.add_argument("--out", type=Path, default=Path("results/demo"))
    parser.add_argument("--max-epochs", type=int, default=None, help="override the config's epochs")
    args = parser.parse_args(argv)

    config = Path("configs") / f"{args.model}.yaml"
    category_root = args.root / args.category
    if not (category_root / "train" / "good").is_dir():
        raise SystemExit(f"{category_root}/train/good not found: is --root/--category right?")
    run_dir = args.out / args.model / args.category
    run_dir.mkdir(parents=True, exist_ok=True)
    ganad = [sys.executable, "-m", "ganad_plugin.cli"]
    timings = {}

    train = [*ganad, "train", "--config", str(config), "--data.root", str(args.root), "--data.category", args.category,
             "--default_root_dir", str(run_dir / "train")]
    if args.max_epochs:
        train += ["--trainer.max_epochs", str(args.max_epochs), "--trainer.check_val_every_n_epoch", str(args.max_epochs)]
    timings["train + test (anomalib)"] = run_stage("train", train, run_dir / "train.log")
    checkpoints = sorted((run_dir / "train").rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        raise SystemExit(f"no checkpoint under {run_dir / 'train'}")
    checkpoint = checkpoints[-1]

    export = [*ganad, "export", "--model", MODEL_CLASSES[args.model], "--export_type", "openvino",
              "--ckpt_path", str(checkpoint), "--default_root_dir", str(run_dir / "export")]
    timings["export (OpenVINO)"] = run_stage("export", export, run_dir / "export.log")
    model_xml = next((run_dir / "export").rglob("model.xml"))

    print("== edge inference (OpenVINO only)", flush=True)
    start = time.perf_counter()
    inferencer = EdgeInferencer(model_xml)
    files = list_images(category_root / "test")
    scores, labels, flagged, pixel_scores, pixel_labels = [], [], [], [], []
    overlays = run_dir / "overlays"
    with open(run_dir / "results.jsonl", "w", encoding="utf-8") as results:
        for path in files:
            image = read_rgb(path)
            result = inferencer.predict_array(image, str(path))
            results.write(json.dumps(result.to_json()) + "\n")
            scores.append(result.score)
            labels.append(path.parent.name != "good")
            flagged.append(bool(result.label))
            pixel_scores.append(result.anomaly_map.ravel())
            pixel_labels.append(ground_truth_mask(path, category_root, result.anomaly_map.shape).ravel())
            save_overlay(overlays / path.parent.name / f"{path.stem}.png", image, result)
    timings[f"edge inference ({len(files)} images)"] = time.perf_counter() - start

    image_auroc = auroc(np.array(scores), np.array(labels))
    pixel_auroc = auroc(np.concatenate(pixel_scores), np.concatenate(pixel_labels))
    print(f"\n{args.model} on {args.category}, measured on the exported OpenVINO model:")
    print(f"  image AUROC {image_auroc:.3f}   pixel AUROC {pixel_auroc:.3f}")
    is_defective, is_flagged = np.array(labels), np.array(flagged)
    print(f"  at the threshold in the IR (from training images only): {is_flagged[~is_defective].sum()} of "
          f"{(~is_defective).sum()} good parts flagged NG, {is_flagged[is_defective].sum()} of "
          f"{is_defective.sum()} defective parts caught")
    for stage, seconds in timings.items():
        print(f"  {stage:<32} {seconds:7.1f} s")
    print(f"  checkpoint   {checkpoint}\n  OpenVINO IR  {model_xml}\n  overlays     {overlays}/\n  results      {run_dir / 'results.jsonl'}")


if __name__ == "__main__":
    main()
