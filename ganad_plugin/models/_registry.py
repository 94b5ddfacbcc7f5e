"""Make ``anomalib.models.get_model`` pick models by exact class name first.

anomalib matches names case-insensitively and, among equal matches, returns whichever subclass was
imported last, so after ``import ganad_plugin.models`` both ``"GANomaly"`` and ``"Ganomaly"`` would give
ours. This wrapper resolves an exact (case-sensitive) class name first, so ``"GANomaly"`` is ours and
``"Ganomaly"`` is anomalib's; an ambiguous spelling such as ``"ganomaly"`` keeps anomalib's built-in and says
how to ask for ours. Names that match only one model behave exactly as before.
"""

from __future__ import annotations

import logging

import anomalib.models as anomalib_models
from anomalib.models.components import AnomalibModule
from anomalib.utils.path import convert_snake_to_pascal_case

logger = logging.getLogger(__name__)
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


_original_lookup = anomalib_models._get_model_class_by_name  # noqa: SLF001


def prefer_exact_model_names() -> None:
    """Install the exact-name-first lookup in anomalib (idempotent)."""
    anomalib_models._get_model_class_by_name = _model_class_by_name  # noqa: SLF001
