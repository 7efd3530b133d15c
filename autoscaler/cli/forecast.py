"""Placeholder for the `forecast` command group; replaced by its owner."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """No commands yet."""
