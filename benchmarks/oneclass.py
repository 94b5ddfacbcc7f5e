"""The GAN anomaly-detection survey's one-class protocol (Di Mattia et al. 2019) on any labelled image set.

    python benchmarks/oneclass.py --data FILE.npz --out DIR [--anomaly-classes 0,1,...] [--models ...]
                                  [--presets paper,default] [--epochs N] [--max-train N]
    python benchmarks/oneclass.py --images train-images-idx3-ubyte.gz --labels train-labels-idx1-ubyte.gz --out DIR
    python benchmarks/oneclass.py --data digits --out DIR       # scikit-learn's bundled 8 x 8 digits (1,797 images)

Each class in turn is the anomaly: every model trains on a seeded 80 % of the images of the other classes (at most
--max-train of them) and scores the remaining 20 % plus every image of the anomaly class. Reported per class and as
a mean: AUROC and AUPRC (average precision, the anomaly class positive: the survey's metric), training seconds and
test images per second (torch, scoring only). Each of our models runs in its paper preset (configs/paper/, its
networks at --paper-size) and its default config; anomalib's own Ganomaly runs in the same run at the same image
size and epochs. The Ensemble combines the members just trained in --ensemble-preset (each standardised on normal
training images; its train_s includes theirs). Training goes through anomalib's Engine and Folder datamodule, as a
user's would; thresholds play no part (both metrics rank the scores). With --anogan-search, AnoGAN's paper preset is
also scored from its encoder's latent and in one pass (DIR/anogan_search.md).

Writes DIR/oneclass.csv (model, preset, anomaly_class, auroc, auprc, train_s, test_images_per_s), DIR/oneclass.md and
the bar chart DIR/oneclass.png after every model, and DIR/settings.json; with --docs also docs/oneclass.md, .csv and
.png. A long run stopped part way goes on with --resume and the same settings: the classes DIR/oneclass.csv holds for
every planned model are kept, the others run (settings that differ from DIR's are named and refused).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import logging
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[1]
OUR_MODELS = ("AnoGAN", "EGBAD", "GANomaly")
ENSEMBLE = "Ensemble"
BASELINE = "anomalib.Ganomaly"
COLUMNS = ("model", "preset", "anomaly_class", "auroc", "auprc", "train_s", "test_images_per_s")
SEARCH_COLUMNS = ("anomaly_class", "variant", "auroc", "auprc", "test_images_per_s")
# the options that change a row's figures; a resumed run must repeat them (--anomaly-classes may grow)
SETTINGS = ("data", "images", "labels", "models", "ensemble_preset", "presets", "epochs", "max_train", "image_size",
            "paper_size", "anogan_steps", "anogan_search", "encoder_steps", "batch_size", "seed")
IDX_IMAGES, IDX_LABELS = 2051, 2049  # MNIST's magic numbers


# the data


def read_idx(path: Path) -> np.ndarray:
    """An MNIST-style IDX file (gzipped or not) -> its array (uint8 images [N, H, W] or labels [N])."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        msg = f"{path}: not an IDX file of unsigned bytes (expected magic 0x00 0x00 0x08 <dims>)"
        raise ValueError(msg)
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        msg = f"{path}: header says {shape} ({int(np.prod(shape))} bytes) but the file holds {data.size}"
        raise ValueError(msg)
    return data.reshape(shape)


def load_dataset(data: str | None, images: Path | None = None, labels: Path | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, H, W] or [N, H, W, C], labels int [N]) from an .npz, IDX files, or ``digits``."""
    if data == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        pictures = np.round(digits.images * (255 / 16)).astype(np.uint8)
        return pictures, digits.target.astype(np.int64)
    if data is not None:
        with np.load(data) as arrays:
            missing = {"images", "labels"} - set(arrays.files)
            if missing:
                msg = f"{data}: the .npz lacks {sorted(missing)} (it has {arrays.files})"
                raise ValueError(msg)
            pictures, targets = arrays["images"], arrays["labels"]
    else:
        if images is None or labels is None:
            msg = "give --data FILE.npz (or digits), or both --images and --labels (IDX files)"
            raise ValueError(msg)
        pictures, targets = read_idx(images), read_idx(labels)
    if pictures.dtype != np.uint8 or pictures.ndim not in (3, 4):
        msg = f"images must be uint8 [N, H, W] or [N, H, W, C], got {pictures.dtype} {pictures.shape}"
        raise ValueError(msg)
    if targets.shape != (len(pictures),):
        msg = f"labels must be [N] = [{len(pictures)}], got {targets.shape}"
        raise ValueError(msg)
    return pictures, targets.astype(np.int64)


def split_one_class(labels: np.ndarray, anomaly: int, seed: int, max_train: int | None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (train, test normal, test anomalous) of the survey's protocol: a seeded 80 % of the other classes
    trains (at most ``max_train``), the other 20 % of them and every image of the ``anomaly`` class test."""
    normal = np.flatnonzero(labels != anomaly)
    anomalous = np.flatnonzero(labels == anomaly)
    if len(anomalous) == 0:
        msg = f"anomaly class {anomaly} has no images (classes: {sorted(set(labels.tolist()))})"
        raise ValueError(msg)
    order = np.random.default_rng(seed).permutation(normal)
    cut = round(0.8 * len(order))
    train = order[:cut] if max_train is None else order[: min(cut, max_train)]
    return train, order[cut:], anomalous


def write_folder(pictures: np.ndarray, indices: np.ndarray, folder: Path, size: int) -> None:
    """Write the images as PNGs of ``size`` x ``size`` (upsampled smoothly, as the survey did for digits)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in indices:
        picture = pictures[index]
        if picture.shape[:2] != (size, size):
            picture = cv2.resize(picture, (size, size), interpolation=cv2.INTER_CUBIC)
        if picture.ndim == 3 and picture.shape[-1] == 3:
            picture = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"{index:06d}.png"), picture)


def read_folder(folder: Path) -> tuple[list[Path], torch.Tensor]:
    import torch

    paths = sorted(folder.glob("*.png"))
    images = [cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in paths]
    return paths, torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


# the models


def paper_init_args(model: str, paper_size: int) -> dict:
    """The paper preset's constructor arguments from configs/paper/<model>.yaml, networks at ``paper_size``."""
    import yaml

    from ganad_plugin.models.components.settings import AdamSettings, Evidence, PatchNetwork, PatchSampling

    init = dict(yaml.safe_load((REPO / "configs" / "paper" / f"{model.lower()}.yaml").read_text())["model"]["init_args"])
    init["network"] = PatchNetwork(**{**init["network"], "patch_size": paper_size})
    init["evidence"] = Evidence(**init["evidence"])
    settings = {"optimiser": AdamSettings, "sampling": PatchSampling}
    return {key: settings[key](**value) if key in settings else value for key, value in init.items()}


def build_model(model: str, preset: str, image_size: int, paper_size: int, anogan_steps: int | None,
                members: dict | None = None):
    import ganad_plugin.models as ours

    if model == ENSEMBLE:
        return ours.Ensemble.from_models(members, pre_processor=ours.Ensemble.configure_pre_processor((image_size,) * 2))
    if model == BASELINE:
        from anomalib.models import Ganomaly

        return Ganomaly(pre_processor=Ganomaly.configure_pre_processor(image_size=(image_size, image_size)))
    cls = getattr(ours, model)
    init = paper_init_args(model, paper_size) if preset == "paper" else {}
    if model == "AnoGAN" and anogan_steps is not None and preset == "paper":
        init["latent_search_steps"] = anogan_steps
    return cls(pre_processor=cls.configure_pre_processor((image_size, image_size)), **init)


def train_model(model_name: str, preset: str, folder: Path, args: argparse.Namespace, work: Path,
                members: dict | None = None):
    """(the model trained through anomalib's Engine on ``folder``/train, its training seconds). The ensemble of the
    ``members`` just trained fits one epoch: its members' normal statistics and the thresholds."""
    from anomalib.data import Folder
    from anomalib.engine import Engine
    from lightning.pytorch import seed_everything

    seed_everything(args.seed)
    model = build_model(model_name, preset, args.image_size, args.paper_size, args.anogan_steps, members)
    epochs = 1 if model_name == ENSEMBLE else args.epochs
    datamodule = Folder(name=folder.name, root=folder, normal_dir="train", abnormal_dir="test_anomalous",
                        normal_test_dir="test_normal", train_batch_size=args.batch_size, eval_batch_size=32,
                        num_workers=0, val_split_mode="synthetic", val_split_ratio=0.1, seed=args.seed)
    engine = Engine(logger=False, enable_progress_bar=False, max_epochs=epochs, accelerator="cpu", devices=1,
                    default_root_dir=work / f"{model_name}-{preset}", check_val_every_n_epoch=epochs)
    start = time.perf_counter()
    engine.fit(model=model, datamodule=datamodule)
    return model, time.perf_counter() - start


def score_test(model, folder: Path, batch_size: int, what: str) -> dict:
    """AUROC, AUPRC and test images/s of a trained model on ``folder``'s test images (torch, scoring only)."""
    import torch
    from sklearn.metrics import average_precision_score, roc_auc_score

    torch.manual_seed(0)  # AnoGAN's random search start: the same for every variant and run
    scores, labels, seconds = [], [], 0.0
    model.eval()
    for split, label in (("test_normal", 0), ("test_anomalous", 1)):
        _, images = read_folder(folder / split)
        started = time.perf_counter()
        with torch.inference_mode():
            for first in range(0, len(images), batch_size):
                batch = model.pre_processor.transform(images[first : first + batch_size])
                scores.append(model.model(batch).pred_score.float().reshape(-1))
        seconds += time.perf_counter() - started
        labels += [label] * len(images)
    score = torch.cat(scores).numpy()
    if not np.isfinite(score).all():
        msg = f"{what} gave {int((~np.isfinite(score)).sum())} non-finite scores"
        raise FloatingPointError(msg)
    truth = np.asarray(labels)
    return {"auroc": float(roc_auc_score(truth, score)), "auprc": float(average_precision_score(truth, score)),
            "test_images_per_s": len(truth) / seconds}


def search_variants(model, folder: Path, args: argparse.Namespace, paper_figures: dict) -> list[dict]:
    """AnoGAN's paper preset scored three ways on the same weights: the paper's random-start search (the preset's
    own row), the search from the encoder's latent (--encoder-steps), and one pass through the encoder (Γ = 0)."""
    steps = model.model.latent_search_steps
    rows = [{"variant": f"random start, {steps} steps (paper)", **paper_figures}]
    for name, encoder_steps in ((f"encoder start, {args.encoder_steps} steps", args.encoder_steps),
                                ("encoder, one pass (exportable)", 0)):
        model.model.encoder_start, model.model.latent_search_steps = True, encoder_steps
        rows.append({"variant": name, **score_test(model, folder, args.score_batch, f"AnoGAN {name}")})
    model.model.encoder_start, model.model.latent_search_steps = False, steps
    return rows


# the report


def mean_rows(rows: list[dict]) -> list[dict]:
    """One row per (model, preset): the mean of each figure over the anomaly classes."""
    keys = list(dict.fromkeys((row["model"], row["preset"]) for row in rows))
    means = []
    for model, preset in keys:
        group = [row for row in rows if (row["model"], row["preset"]) == (model, preset)]
        means.append({"model": model, "preset": preset, "classes": len(group),
                      **{name: float(np.mean([float(row[name]) for row in group]))
                         for name in ("auroc", "auprc", "train_s", "test_images_per_s")},
                      "auprc_std": float(np.std([float(row["auprc"]) for row in group]))})
    return means


def table(rows: list[dict], command: str, carried: tuple[int, ...] = ()) -> str:
    classes = sorted({int(row["anomaly_class"]) for row in rows})
    lines = [f"`{command}`", ""]
    if carried:
        note = (f"Anomaly classes {', '.join(map(str, carried))} carried over from an earlier run into the same folder "
                "with the same settings (`--resume`).")
        lines += [note, ""]
    lines += ["Mean over the anomaly classes (AUPRC: the anomaly class positive; ± its spread over the classes):", "",
              "| model | preset | mean AUPRC | mean AUROC | train s | test images/s |", "|---|---|---|---|---|---|"]
    for mean in sorted(mean_rows(rows), key=lambda m: -m["auprc"]):
        lines.append(f"| {mean['model']} | {mean['preset']} | {mean['auprc']:.3f} ± {mean['auprc_std']:.3f} | "
                     f"{mean['auroc']:.3f} | {mean['train_s']:.0f} | {mean['test_images_per_s']:.0f} |")
    lines += ["", "AUPRC per anomaly class:", "",
              "| model | preset | " + " | ".join(str(c) for c in classes) + " |",
              "|---|---|" + "---|" * len(classes)]
    for mean in mean_rows(rows):
        by_class = {int(r["anomaly_class"]): float(r["auprc"]) for r in rows
                    if (r["model"], r["preset"]) == (mean["model"], mean["preset"])}
        cells = " | ".join(f"{by_class[c]:.3f}" if c in by_class else "" for c in classes)
        lines.append(f"| {mean['model']} | {mean['preset']} | {cells} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = mean_rows(rows)
    names = [f"{m['model']}\n{m['preset']}" for m in means]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(means)), 4))
    ax.bar(range(len(means)), [m["auprc"] for m in means], yerr=[m["auprc_std"] for m in means], capsize=4,
           color=["#888888" if m["model"] == BASELINE else "#3b75af" if m["preset"] == "paper" else "#e07b39"
                  for m in means])
    for i, mean in enumerate(means):
        values = [float(r["auprc"]) for r in rows if (r["model"], r["preset"]) == (mean["model"], mean["preset"])]
        ax.scatter([i] * len(values), values, color="black", s=8, zorder=3)
    ax.set_xticks(range(len(means)), names, fontsize=8)
    ax.set_ylabel("AUPRC (anomaly class positive)")
    ax.set_ylim(0, 1)
    ax.set_title("One-class protocol: mean AUPRC over anomaly classes (dots: each class)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_csv(rows: list[dict], path: Path, columns: tuple[str, ...]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({key: row[key] for key in columns} for row in rows)


def read_csv(path: Path) -> list[dict]:
    """Rows written by ``write_csv``: anomaly_class an int, the figures floats."""
    with path.open(newline="") as handle:
        return [{key: value if key in ("model", "preset", "variant") else
                 int(value) if key == "anomaly_class" else float(value) for key, value in row.items()}
                for row in csv.DictReader(handle)]


def write_outputs(rows: list[dict], out: Path, command: str, carried: tuple[int, ...] = ()) -> None:
    write_csv(rows, out / "oneclass.csv", COLUMNS)
    (out / "oneclass.md").write_text("# One-class protocol\n\n" + table(rows, command, carried) + "\n")
    plot(rows, out / "oneclass.png")


def run_settings(args: argparse.Namespace) -> dict:
    """The options that decide the figures, as JSON values."""
    values = {name: getattr(args, name) for name in SETTINGS}
    return {name: str(value) if isinstance(value, Path) else value for name, value in values.items()}


def earlier_settings(out: Path, parser: argparse.ArgumentParser) -> dict:
    """The settings of the run that wrote ``out``: its settings.json, or (a folder from before the file existed) the
    command line its oneclass.md records, parsed again."""
    if (out / "settings.json").is_file():
        return json.loads((out / "settings.json").read_text())
    report = out / "oneclass.md"
    command = next((line.strip("`") for line in report.read_text().splitlines()
                    if line.startswith("`python benchmarks/oneclass.py")), None) if report.is_file() else None
    if command is None:
        msg = f"--resume: {out} holds no settings.json and no oneclass.md with the command that made it"
        raise SystemExit(msg)
    return run_settings(parser.parse_args(shlex.split(command)[2:]))


def resumed_rows(out: Path, parser: argparse.ArgumentParser, args: argparse.Namespace,
                 runs: list[tuple[str, str]]) -> tuple[list[dict], list[dict]]:
    """(rows, AnoGAN search rows) of the classes ``out`` holds for every planned run; settings that differ from the
    earlier run's are refused, naming them."""
    if not (out / "oneclass.csv").is_file():
        msg = f"--resume: {out / 'oneclass.csv'} does not exist; nothing to go on from (run without --resume)"
        raise SystemExit(msg)
    before, now = earlier_settings(out, parser), run_settings(args)
    differing = [f"--{name.replace('_', '-')} {before.get(name)!r} there, {now[name]!r} now"
                 for name in SETTINGS if before.get(name) != now[name]]
    if differing:
        msg = f"--resume: {out} was made with other settings: " + "; ".join(differing)
        raise SystemExit(msg)
    rows = read_csv(out / "oneclass.csv")
    complete = {c for c in {row["anomaly_class"] for row in rows}
                if set(runs) <= {(row["model"], row["preset"]) for row in rows if row["anomaly_class"] == c}}
    searches = []
    if args.anogan_search and ("AnoGAN", "paper") in runs and complete:
        if not (out / "anogan_search.csv").is_file():
            msg = f"--resume: {out / 'anogan_search.csv'} is missing; the carried classes' search rows would be lost"
            raise SystemExit(msg)
        searches = [row for row in read_csv(out / "anogan_search.csv") if row["anomaly_class"] in complete]
    return [row for row in rows if row["anomaly_class"] in complete], searches


def write_search(searches: list[dict], out: Path, command: str) -> None:
    variants = list(dict.fromkeys(row["variant"] for row in searches))
    paper = [row for row in searches if row["variant"] == variants[0]]
    paper_rate = float(np.mean([row["test_images_per_s"] for row in paper]))
    lines = ["# AnoGAN's latent search on the one-class protocol", "", f"`{command}`", "",
             ("The paper preset's weights scored three ways, every test image, batched; mean over anomaly classes "
              f"{sorted({row['anomaly_class'] for row in searches})}:"), "",
             "| variant | mean AUPRC | mean AUROC | test images/s | throughput against the paper's search |",
             "|---|---|---|---|---|"]
    for variant in variants:
        group = [row for row in searches if row["variant"] == variant]
        rate = float(np.mean([row["test_images_per_s"] for row in group]))
        lines.append(f"| {variant} | {np.mean([r['auprc'] for r in group]):.3f} | "
                     f"{np.mean([r['auroc'] for r in group]):.3f} | {rate:.1f} | {rate / paper_rate:.0f}x |")
    (out / "anogan_search.md").write_text("\n".join(lines) + "\n")
    write_csv(searches, out / "anogan_search.csv", SEARCH_COLUMNS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data", help="an .npz with images and labels, or 'digits' (scikit-learn's 8 x 8 digits)")
    parser.add_argument("--images", type=Path, help="MNIST-style IDX images file (gzipped or not)")
    parser.add_argument("--labels", type=Path, help="MNIST-style IDX labels file")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--anomaly-classes", help="comma-separated (default: every class)")
    parser.add_argument("--models", default=",".join((*OUR_MODELS, ENSEMBLE, BASELINE)),
                        help=f"comma-separated among {', '.join((*OUR_MODELS, ENSEMBLE, BASELINE))}")
    parser.add_argument("--ensemble-preset", default="default",
                        help="the preset of the members the ensemble combines (paper: AnoGAN's search runs again)")
    parser.add_argument("--presets", default="paper,default", help="our models' presets: paper, default or both")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--max-train", type=int, default=None, help="at most this many training images per class")
    parser.add_argument("--image-size", type=int, default=64, help="side every model's input is resized to")
    parser.add_argument("--paper-size", type=int, default=32, help="the paper presets' network size (digits: 32)")
    parser.add_argument("--anogan-steps", type=int, default=None,
                        help="the AnoGAN paper preset's search steps (default: its config's 500)")
    parser.add_argument("--anogan-search", action="store_true",
                        help="also score AnoGAN's paper preset from the encoder's latent (--encoder-steps) and in one "
                             "pass: DIR/anogan_search.md")
    parser.add_argument("--encoder-steps", type=int, default=20, help="search steps from the encoder's latent")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--score-batch", type=int, default=256, help="test images scored at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--docs", action="store_true", help="also write docs/oneclass.{md,csv,png}")
    parser.add_argument("--resume", action="store_true",
                        help="keep the classes DIR already holds for every model (the same settings), run the rest")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = "python benchmarks/oneclass.py " + " ".join(sys.argv[1:] if argv is None else argv)

    pictures, labels = load_dataset(args.data, args.images, args.labels)
    classes = (sorted(set(labels.tolist())) if not args.anomaly_classes
               else [int(c) for c in args.anomaly_classes.split(",")])
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(models) - {*OUR_MODELS, ENSEMBLE, BASELINE}
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; choose among {', '.join((*OUR_MODELS, ENSEMBLE, BASELINE))}")
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    if set(presets) - {"paper", "default"} or not presets:
        parser.error(f"--presets takes paper and/or default, got {args.presets!r}")
    ours = [m for m in models if m in OUR_MODELS]
    runs = [(m, p) for m in ours for p in presets]
    if ENSEMBLE in models:
        if len(ours) < 2 or args.ensemble_preset not in presets:
            parser.error(f"the ensemble needs at least two of {', '.join(OUR_MODELS)} in --models and its preset "
                         f"({args.ensemble_preset}) in --presets")
        runs.append((ENSEMBLE, args.ensemble_preset))
    runs += [(BASELINE, "default")] * (BASELINE in models)

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("anomalib").setLevel(logging.ERROR)
    rows, searches = resumed_rows(args.out, parser, args, runs) if args.resume else ([], [])
    carried = tuple(sorted({row["anomaly_class"] for row in rows}))
    if carried:
        print(f"resuming {args.out}: anomaly classes {', '.join(map(str, carried))} already measured", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "settings.json").write_text(json.dumps(run_settings(args), indent=1) + "\n")
    for anomaly in (c for c in classes if c not in carried):
        work = args.out / "work" / f"class_{anomaly}"
        shutil.rmtree(work, ignore_errors=True)
        train, test_normal, test_anomalous = split_one_class(labels, anomaly, args.seed, args.max_train)
        for name, indices in (("train", train), ("test_normal", test_normal), ("test_anomalous", test_anomalous)):
            write_folder(pictures, indices, work / "data" / name, args.image_size)
        print(f"anomaly class {anomaly}: {len(train)} training, {len(test_normal)} normal and "
              f"{len(test_anomalous)} anomalous test images", flush=True)
        trained: dict[tuple[str, str], tuple] = {}
        for model_name, preset in runs:
            members = {m: trained[(m, p)][0] for m, p in trained if p == preset} if model_name == ENSEMBLE else None
            model, train_s = train_model(model_name, preset, work / "data", args, work, members)
            if model_name == ENSEMBLE:  # the ensemble's training is its members' and its own calibration
                train_s += sum(trained[(m, preset)][1] for m in members)
            elif model_name in OUR_MODELS and ENSEMBLE in models and preset == args.ensemble_preset:
                trained[(model_name, preset)] = (model, train_s)
            figures = {**score_test(model, work / "data", args.score_batch, f"{model_name} ({preset})"),
                       "train_s": train_s}
            rows.append({"model": model_name, "preset": preset, "anomaly_class": anomaly, **figures})
            print(f"  {model_name:18s} {preset:7s} AUROC {figures['auroc']:.3f}  AUPRC {figures['auprc']:.3f}  "
                  f"train {figures['train_s']:.0f} s  {figures['test_images_per_s']:.0f} test images/s", flush=True)
            if args.anogan_search and (model_name, preset) == ("AnoGAN", "paper"):
                for row in search_variants(model, work / "data", args, figures):
                    searches.append({"anomaly_class": anomaly, **row})
                    print(f"    AnoGAN {row['variant']:34s} AUROC {row['auroc']:.3f}  AUPRC {row['auprc']:.3f}  "
                          f"{row['test_images_per_s']:.1f} test images/s", flush=True)
                write_search(searches, args.out, command)
            write_outputs(rows, args.out, command, carried)  # after every run: nothing is lost if a later one fails
        shutil.rmtree(work, ignore_errors=True)
    if rows:
        write_outputs(rows, args.out, command, carried)
    print(table(rows, command, carried))
    if args.docs:  # the tables go between their markers in docs/*.md, the prose around them stays
        from sample_sets import write_generated_block

        for name in ("oneclass.csv", "oneclass.png"):
            shutil.copyfile(args.out / name, REPO / "docs" / name)
        write_generated_block(REPO / "docs" / "oneclass.md", "oneclass", table(rows, command, carried),
                              "One-class protocol")
        if searches:
            body = (args.out / "anogan_search.md").read_text().split("\n", 2)[2].strip()
            write_generated_block(REPO / "docs" / "anogan_search.md", "anogan-search", body,
                                  "AnoGAN's latent search on the one-class protocol")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
