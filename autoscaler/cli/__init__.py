"""The ``autoscaler`` command line.

One typer app; each sub-command lives in its own module under ``autoscaler.cli`` and
is listed in ``COMMAND_MODULES``. ``main()`` turns every ``InputError`` (bad file, bad
flag, bad request) into one message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

from models.errors import AutoscalerError, InputError

#: Modules that each define ``register(app: typer.Typer) -> None``.
COMMAND_MODULES: tuple[str, ...] = (
    "autoscaler.cli.backtest",
    "autoscaler.cli.simulate",
    "autoscaler.cli.budget",
    "autoscaler.cli.serve",
    "autoscaler.cli.run",
    "autoscaler.cli.forecast",
    "autoscaler.cli.calibrate",
)

HELP = (
    "Predictive autoscaler for Kubernetes, with a cost guard.\n\n"
    "Forecasts each workload's load, turns it into replicas, clamps them by finance's "
    "budgets and serves the result on the External Metrics API for ordinary HPAs."
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )

    @app.command()
    def version() -> None:
        """Print the version."""
        from importlib.metadata import version as dist_version

        typer.echo(dist_version("predictive-autoscaler"))

    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(app)
    return app


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one error line to stderr; return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def main() -> None:
    """Console entry point."""
    app = build_app()
    try:
        app(standalone_mode=True)
    except InputError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except AutoscalerError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(1)
