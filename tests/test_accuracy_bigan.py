"""EGBAD's and AnoGAN's accuracy floors on weave (test_accuracy.py's protocol): a file of their own, so that
pytest-xdist's workers (a file each at a time) train them beside GANomaly's rather than after it."""

from __future__ import annotations

import pytest

from .test_accuracy import check_floors


@pytest.mark.slow
@pytest.mark.parametrize("model", ["EGBAD", "AnoGAN"])
def test_config_reaches_the_auroc_floors_on_weave(model: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_floors(model, tmp_path_factory)
