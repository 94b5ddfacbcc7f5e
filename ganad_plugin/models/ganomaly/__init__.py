"""Patch GANomaly: encoder-decoder-encoder GAN with pixel-level anomaly maps."""

from .lightning_model import GANomaly

__all__ = ["GANomaly"]
