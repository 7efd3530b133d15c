"""The registry table of forecasters: name -> factory.

To add a model: write ``models/<name>.py`` with one class implementing
``models.base.Forecaster``, add one row here, and the contract test in
``tests/models/test_contract.py`` runs it automatically (see docs/models.md).
"""

from __future__ import annotations

from collections.abc import Callable

from models.base import Forecaster
from models.errors import InputError
from models.last import LastValue

FORECASTERS: dict[str, Callable[[], Forecaster]] = {
    "last": LastValue,
}


def make_forecaster(name: str) -> Forecaster:
    """A fresh, unfitted forecaster by registry name."""
    try:
        factory = FORECASTERS[name]
    except KeyError as err:
        raise InputError(
            "model", f"unknown model {name!r}", f"choose one of {', '.join(sorted(FORECASTERS))}"
        ) from err
    return factory()
