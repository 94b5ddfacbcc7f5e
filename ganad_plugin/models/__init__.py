"""GAN anomaly detectors for anomalib: ``AnoGAN``, ``EGBAD``, ``GANomaly``, their ``Ensemble``, and the settings they
share.

Importing this package registers the models with anomalib (``anomalib.models.get_model("GANomaly")``, the
CLI's ``--model GANomaly``). Our ``GANomaly`` and anomalib's built-in ``Ganomaly`` differ only in case;
see ``_anomalib_private`` for how each is picked.
"""

from ._anomalib_private import prefer_exact_model_names
from .anogan import AnoGAN
from .components.settings import AdamSettings, Evidence, PatchNetwork, PatchSampling
from .egbad import EGBAD
from .ensemble import Ensemble
from .ganomaly import GANomaly

prefer_exact_model_names()

__all__ = ["EGBAD", "AdamSettings", "AnoGAN", "Ensemble", "Evidence", "GANomaly", "PatchNetwork", "PatchSampling"]
