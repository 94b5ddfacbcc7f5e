"""What ``ganad_plugin.models._anomalib_private`` relies on in anomalib: these fail when anomalib changes it."""

from __future__ import annotations

import inspect

import anomalib.models
from anomalib.models.components import AnomalibModule

import ganad_plugin.models
from ganad_plugin.models._anomalib_private import PRIVATE_LOOKUP, _original_lookup


def test_get_model_resolves_names_through_the_private_lookup_the_plugin_wraps() -> None:
    assert PRIVATE_LOOKUP in inspect.getsource(anomalib.models.get_model)
    assert list(inspect.signature(_original_lookup).parameters) == ["name"]
    assert getattr(anomalib.models, PRIVATE_LOOKUP) is not _original_lookup  # the plugin's wrapper is installed


def test_anomalibs_lookup_sees_only_direct_subclasses_so_the_models_stay_direct_subclasses() -> None:
    assert "AnomalibModule.__subclasses__()" in inspect.getsource(_original_lookup)
    for model in (ganad_plugin.models.AnoGAN, ganad_plugin.models.EGBAD, ganad_plugin.models.GANomaly):
        assert model in AnomalibModule.__subclasses__()
    # names only the plugin has: anomalib's own lookup finds them without the wrapper
    assert _original_lookup("egbad") is ganad_plugin.models.EGBAD
    assert _original_lookup("AnoGAN") is ganad_plugin.models.AnoGAN
