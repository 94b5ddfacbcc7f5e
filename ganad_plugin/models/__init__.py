"""GAN anomaly detectors for anomalib: ``AnoGAN``, ``EGBAD``, ``GANomaly``.

Importing this package registers the models with anomalib (``anomalib.models.get_model("GANomaly")``, the
CLI's ``--model GANomaly``). Our ``GANomaly`` and anomalib's built-in ``Ganomaly`` differ only in case;
see ``_registry`` for how each is picked.
"""

from ._registry import prefer_exact_model_names
from .anogan import AnoGAN
from .egbad import EGBAD
from .ganomaly import GANomaly

prefer_exact_model_names()

__all__ = ["AnoGAN", "EGBAD", "GANomaly"]
