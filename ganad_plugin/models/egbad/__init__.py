"""Patch EGBAD: a BiGAN whose encoder scores an image in one forward pass, with pixel-level anomaly maps."""

from .lightning_model import EGBAD

__all__ = ["EGBAD"]
