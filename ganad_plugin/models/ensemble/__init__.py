"""Ensemble: trained AnoGAN, EGBAD and GANomaly models, each standardised on normal images, averaged."""

from .lightning_model import Ensemble

__all__ = ["Ensemble"]
