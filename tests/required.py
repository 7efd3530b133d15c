"""Prerequisites of tests: skip loudly where one is missing, FAIL under ``CI=true``.

A skipped check is not a green check: in CI (``CI=true``) a missing tool or module fails
the test that needs it, with a message that says what to install. Outside CI the test is
skipped, and the reason is printed to stderr so it is not lost among the dots. The same
pattern as ``tests/deploy/conftest.require_tool``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from types import ModuleType

import pytest


def missing(message: str) -> None:
    """Fail under ``CI=true``, else skip loudly."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: failing instead of skipping)", pytrace=False)
    sys.stderr.write(f"\n*** {message}: SKIPPING ***\n")
    pytest.skip(message)


def require_tool(name: str, install: str = "") -> str:
    """Path of the executable ``name`` on PATH, or skip/fail."""
    path = shutil.which(name)
    if path is None:
        hint = f" (install: {install})" if install else ""
        missing(f"{name} is not installed{hint}")
        raise AssertionError("unreachable")  # pytest.skip/fail raise
    return path


def require_module(name: str) -> ModuleType:
    """``importlib.import_module(name)``, or skip/fail when it cannot be imported."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        missing(f"cannot import {name}: {err}")
        raise AssertionError("unreachable") from err
