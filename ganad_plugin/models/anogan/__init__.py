"""Patch AnoGAN with f-AnoGAN's encoder: a DCGAN of normal patches, a batched latent search, pixel-level maps."""

from .lightning_model import AnoGAN

__all__ = ["AnoGAN"]
