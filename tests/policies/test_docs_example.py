"""docs/cost-guard.md's worked example is real: re-run its request, compare the output."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from policies.budget import AllocationRequest
from policies.costguard import allocate

DOC = Path(__file__).resolve().parents[2] / "docs" / "cost-guard.md"


def _block(text: str, marker: str) -> object:
    match = re.search(rf"<!-- {marker} -->\s*```json\n(.*?)\n```", text, re.S)
    assert match, f"no ```json block after <!-- {marker} --> in {DOC}"
    return json.loads(match.group(1))


def test_worked_example_matches_allocate() -> None:
    text = DOC.read_text(encoding="utf-8")
    request = AllocationRequest.model_validate(_block(text, "worked-example-request"))
    expected = _block(text, "worked-example-result")
    result = allocate(request, datetime.now(UTC)).model_dump(mode="json", by_alias=True)
    assert result == expected
    # What the example is meant to show: three priorities, a binding budget, backfill.
    assert len({w.priority for w in request.workloads}) == 3
    constraints = [w["bindingConstraint"] for w in result["workloads"]]
    assert "budget" in constraints and constraints[-1] == "none"
