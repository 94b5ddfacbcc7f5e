"""``ganad``: anomalib's CLI with the plugin's models pre-loaded, plus the torch-free ``ganad infer`` and
``ganad calibrate``.

``ganad train|test|predict|export|fit|validate ...`` takes exactly anomalib's arguments; because the plugin is
imported first, ``--model GANomaly`` (or ``EGBAD``, ``AnoGAN``) names the plugin's classes. anomalib's own
``Ganomaly`` stays reachable as ``--model Ganomaly`` or ``--model anomalib.models.Ganomaly``.
"""

from __future__ import annotations

import argparse
import sys

ANOMALIB_SUBCOMMANDS = {"train", "test", "predict", "export", "fit", "validate", "benchmark", "install"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ANOMALIB_SUBCOMMANDS:
        # imported here, not at the top: ``ganad infer`` must run where torch and anomalib are not installed
        import ganad_plugin.models  # noqa: F401  registers the plugin's models
        from anomalib.cli.cli import main as anomalib_main

        sys.argv = ["ganad", *argv]
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
