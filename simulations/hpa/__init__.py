"""The HPA emulation, moving from ``simulations/hpa.py`` to a package (see ``calculator``).

Transitional: this commit only renames the module so that history follows it; the next
commit splits it into one module per upstream file and documents the map here.
"""

from simulations.hpa.calculator import *  # noqa: F403
from simulations.hpa.calculator import __all__ as __all__
