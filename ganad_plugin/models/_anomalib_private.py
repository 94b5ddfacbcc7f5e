"""The one place the plugin reaches into anomalib's private API: the model lookup behind ``get_model(name)``.

Why: anomalib 2.7 resolves ``get_model("...")`` and the CLI's ``--model <name>`` through the private
``anomalib.models._get_model_class_by_name``, which matches names case-insensitively and, among equal matches,
returns whichever subclass was imported last. After ``import ganad_plugin.models`` both ``"GANomaly"`` and
``"Ganomaly"`` would then give ours. anomalib has no public hook for this, so ``prefer_exact_model_names`` wraps
the private function: an exact (case-sensitive) class name is resolved first, so ``"GANomaly"`` is ours and
``"Ganomaly"`` anomalib's; an ambiguous spelling such as ``"ganomaly"`` keeps anomalib's built-in and logs how to
ask for ours. Names that match one model only behave as before. ``tests/test_anomalib_private.py`` fails when
anomalib changes what this relies on.
"""

from __future__ import annotations

import logging

import anomalib.models as anomalib_models
from anomalib.models.components import AnomalibModule
from anomalib.utils.path import convert_snake_to_pascal_case

logger = logging.getLogger(__name__)
PRIVATE_LOOKUP = "_get_model_class_by_name"
_PLUGIN_PACKAGE = "ganad_plugin."


def _model_class_by_name(name: str) -> type[AnomalibModule]:
    candidates = AnomalibModule.__subclasses__()
    exact = [model for model in candidates if model.__name__ == name]
    if exact:
        return exact[-1]
    wanted = convert_snake_to_pascal_case(name).lower()
    matches = [model for model in candidates if model.__name__.lower() == wanted]
    builtin = [model for model in matches if not model.__module__.startswith(_PLUGIN_PACKAGE)]
    if builtin and len(matches) > 1:
        ours = next(model for model in matches if model.__module__.startswith(_PLUGIN_PACKAGE))
        logger.warning(
            "model name %r matches anomalib's %s and ganad-plugin's %s; using anomalib's. "
            "Ask for %r (exact case) or 'ganad_plugin.models.%s' to get the plugin's.",
            name, builtin[0].__name__, ours.__name__, ours.__name__, ours.__name__,
        )
        return builtin[0]
    if matches:
        return matches[-1]
    return _original_lookup(name)


_original_lookup = getattr(anomalib_models, PRIVATE_LOOKUP)


def prefer_exact_model_names() -> None:
    """Install the exact-name-first lookup in anomalib (idempotent)."""
    setattr(anomalib_models, PRIVATE_LOOKUP, _model_class_by_name)
