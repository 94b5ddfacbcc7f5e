"""``ganad``: anomalib's CLI with the plugin's models pre-loaded, plus the torch-free ``ganad infer`` and
``ganad calibrate``.

``ganad train|test|predict|export|fit|validate ...`` takes exactly anomalib's arguments; because the plugin is
imported first, ``--model GANomaly`` (or ``EGBAD``, ``AnoGAN``) names the plugin's classes. anomalib's own
``Ganomaly`` stays reachable as ``--model Ganomaly`` or ``--model anomalib.models.Ganomaly``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ANOMALIB_SUBCOMMANDS = {"train", "test", "predict", "export", "fit", "validate", "benchmark", "install"}
DATA_SUBCOMMANDS = {"train", "fit", "test", "validate"}
DATA_KEYS = {"--data", "--data.class_path", "--data.root", "--data.category", "--data.init_args.root",
             "--data.init_args.category"}


def data_folder(argv: list[str]) -> Path | None:
    """The MVTec-style category folder that ``argv`` (its ``--config`` files, then its ``--data.*`` arguments)
    trains on, or None when the data is not anomalib's ``MVTecAD``."""
    import yaml

    section: dict = {}
    given: dict[str, str] = {}
    index = 0
    while index < len(argv):
        key, has_value, value = argv[index].partition("=")
        if not has_value and key in ({"--config", "-c"} | DATA_KEYS) and index + 1 < len(argv):
            value = argv[index + 1]
            index += 1
        if key in ("--config", "-c"):
            loaded = yaml.safe_load(Path(value).read_text(encoding="utf-8")) if Path(value).is_file() else None
            section = (loaded or {}).get("data", section) if isinstance(loaded, dict) else section
        elif key == "--data" and value.endswith((".yaml", ".yml")) and Path(value).is_file():
            section = yaml.safe_load(Path(value).read_text(encoding="utf-8")) or {}
        elif key in DATA_KEYS:
            given[key.replace(".init_args", "").replace("--data.class_path", "--data")] = value
        index += 1
    if isinstance(section, str):
        section = {"class_path": section}
    init = section.get("init_args", {}) or {}
    class_path = given.get("--data", section.get("class_path", ""))
    if str(class_path).split(".")[-1] != "MVTecAD":
        return None
    root = given.get("--data.root", init.get("root", "./datasets/MVTecAD"))
    category = given.get("--data.category", init.get("category", "bottle"))
    return Path(root) / str(category)


def check_data_folder(argv: list[str]) -> int:
    """Refuse a missing category folder, a defective test image without its mask and an unusable image or mask
    before anomalib starts (it would try to download MVTec AD, or fail with an error that names no file, some of
    them while it sets up the data, before a model can check); 0 when all is well."""
    from ganad_plugin.models.components.inputs import TrainingInputError, check_images, mvtec_layout

    try:
        folder = data_folder(argv)
        if folder is not None:
            check_images(mvtec_layout(folder), smallest_side_px=0)  # the notes are the model's to log
    except TrainingInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ANOMALIB_SUBCOMMANDS:
        reads_data = not {"--help", "-h"} & set(argv) and not any(a.startswith("--print_config") for a in argv)
        if argv[0] in DATA_SUBCOMMANDS and reads_data and (status := check_data_folder(argv[1:])):
            return status
        # imported here, not at the top: ``ganad infer`` must run where torch and anomalib are not installed
        from anomalib.cli.cli import main as anomalib_main

        import ganad_plugin.models  # noqa: F401  registers the plugin's models

        # the program keeps its own path: Lightning's DDP launcher starts the other ranks by running it again
        program = sys.argv[0] if sys.argv and Path(sys.argv[0]).is_file() else "ganad"
        sys.argv = [program, *argv]
        anomalib_main()
        return 0
    parser = argparse.ArgumentParser(
        prog="ganad",
        description="GAN anomaly detectors for anomalib. Subcommands train|test|predict|export take anomalib's "
        "arguments with the plugin loaded; 'infer' runs an exported model with OpenVINO only.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    from ganad_plugin.edge import calibrate, infer

    infer.add_arguments(sub.add_parser("infer", help="run an exported model.xml on images, videos or a camera "
                                       "(no torch needed)"))
    calibrate.add_arguments(sub.add_parser("calibrate", help="set thresholds from normal images at a false-alarm "
                                           "rate (no torch needed)"))
    for name in sorted(ANOMALIB_SUBCOMMANDS):
        sub.add_parser(name, help=f"anomalib {name}, plugin models pre-loaded", add_help=False)
    args = parser.parse_args(argv)
    return calibrate.run(args) if args.command == "calibrate" else infer.run(args)


if __name__ == "__main__":
    sys.exit(main())
