"""``autoscaler budget``: drive the cost guard from files, without a cluster.

``allocate`` runs ``policies.costguard.allocate`` on a REQUEST.json (or one request per
line of a ``.jsonl``, for batch what-ifs); ``validate`` checks CostBudget YAML files;
``report`` shows spend, projection and clamps, and what a budget costs in SLO via the
simulator (``--frontier`` sweeps budgets and plots the curve for finance).

Bad input never shows a traceback: it raises ``InputError`` naming the file, the line
(where we can know it) and the field, which ``autoscaler.cli.main`` prints as one line
with exit status 2. This module reads the wall clock only to fill a missing
``budget.now``; the policy code below it never does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from models.errors import InputError
from policies.budget import (
    AllocationRequest,
    CostBudgetManifest,
    input_error,
)
from policies.costguard import allocate

HELP = "Cost guard: clamp replicas to an environment's budget, by priority."


def register(app: typer.Typer) -> None:
    """Add the ``budget`` command group to the ``autoscaler`` app."""
    group = typer.Typer(help=HELP, no_args_is_help=True)
    group.command("allocate")(allocate_command)
    group.command("validate")(validate_command)
    group.command("report")(report_command)
    app.add_typer(group, name="budget")


# ------------------------------------------------------------------------ allocate


def allocate_command(
    input: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            help="REQUEST.json, or a .jsonl file with one request per line.",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write RESULT here instead of stdout."),
    ] = None,
) -> None:
    """Allocate replicas under a budget: REQUEST.json in, RESULT.json out."""
    now = datetime.now(UTC)
    results = [
        allocate(request, now).model_dump(mode="json", by_alias=True)
        for request in read_requests(input)
    ]
    if input.suffix == ".jsonl":
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in results)
    else:
        text = json.dumps(results[0], indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as err:
            raise InputError(
                str(output), f"cannot write: {err.strerror}", "check the path"
            ) from err


def read_requests(path: Path) -> list[AllocationRequest]:
    """Every request in ``path`` (``.jsonl``: one per non-blank line), validated."""
    text = _read(path)
    if path.suffix == ".jsonl":
        requests = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                where = f"{path}:{lineno}"
                requests.append(_request(_json(line, where, add_line=False), where, line))
        if not requests:
            raise InputError(str(path), "no requests in the file", "write one JSON request a line")
        return requests
    return [_request(_json(text, str(path), add_line=True), str(path), text)]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "no such file", "check the path") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(str(path), f"cannot read: {err}", "give a UTF-8 JSON file") from None


def _json(text: str, where: str, *, add_line: bool) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        # A .json file: the decoder's line is the file's; a .jsonl line is named already.
        place = f"{where}:{err.lineno}" if add_line else where
        raise InputError(
            place, f"not valid JSON: {err.msg} (column {err.colno})", "fix the JSON syntax"
        ) from None


def _request(data: Any, where: str, text: str) -> AllocationRequest:
    try:
        return AllocationRequest.model_validate(data)
    except ValidationError as err:
        loc = tuple(err.errors(include_url=False)[0]["loc"])
        line = _json_line(text, loc) if "\n" in text.strip() else None
        raise input_error(err, f"{where}:{line}" if line else where) from None


def _json_line(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best-effort line of the last named key of ``loc`` in a pretty-printed JSON file."""
    names = [p for p in loc if isinstance(p, str)]
    if not names:
        return None
    needle = json.dumps(names[-1]) + ":"
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    # Only trust an unambiguous hit; otherwise the field path alone names it.
    return hits[0] if len(hits) == 1 else None


# ------------------------------------------------------------------------ validate


def validate_command(
    paths: Annotated[list[Path], typer.Argument(help="CostBudget YAML files.")],
) -> None:
    """Check CostBudget YAML files (every document in each); exit 2 if any is bad."""
    bad = 0
    for path in paths:
        try:
            budgets = load_budgets(path)
        except InputError as err:
            typer.echo(f"error: {err}", err=True)
            bad += 1
            continue
        for manifest in budgets:
            spec = manifest.spec
            limits = ", ".join(
                f"{label} ${value:g}"
                for label, value in (("hourly", spec.hourly_limit), ("monthly", spec.monthly_limit))
                if value is not None
            )
            typer.echo(
                f"ok: {path}: CostBudget {manifest.metadata.name} (environment"
                f" {spec.environment}; {limits}; pacing {spec.pacing}; mode {spec.mode};"
                f" {len(spec.priority_tiers)} priority tiers)"
            )
    if bad:
        raise typer.Exit(2)


def load_budgets(path: Path) -> list[CostBudgetManifest]:
    """Every CostBudget document in a YAML file; errors name the file, line and field."""
    text = _read(path)
    try:
        nodes = list(yaml.compose_all(text))
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise InputError(where, f"not valid YAML: {err}", "fix the YAML syntax") from None
    manifests = []
    for node, doc in zip(nodes, docs, strict=True):
        if doc is None:
            continue
        try:
            manifests.append(CostBudgetManifest.model_validate(doc))
        except ValidationError as err:
            loc = tuple(err.errors(include_url=False)[0]["loc"])
            line = _yaml_line(node, loc)
            raise input_error(err, f"{path}:{line}") from None
    if not manifests:
        raise InputError(str(path), "no CostBudget in the file", "see policies/examples/")
    return manifests


def _yaml_line(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """1-based line of the deepest node of ``loc`` that exists (the key, for mappings)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


# -------------------------------------------------------------------------- report


def report_command(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario YAML (default: the demo scenario).")
    ] = None,
) -> None:
    """Spend, projection and clamps; what a budget costs in SLO (not built yet)."""
    raise InputError("budget report", "not implemented yet", "use budget allocate")
