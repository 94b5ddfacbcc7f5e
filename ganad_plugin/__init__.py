"""ganad-plugin: GAN-based anomaly detectors (AnoGAN, EGBAD, GANomaly) for anomalib, with a torch-free
OpenVINO edge runtime.

This top-level package imports neither torch nor anomalib: ``ganad_plugin.models`` brings the models,
``ganad_plugin.edge`` the OpenVINO inferencer.
"""

__version__ = "0.1.0"
