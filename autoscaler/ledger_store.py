"""Persist the spend ledgers (``policies.ledger.LedgerState``) to a JSON file, atomically.

Why: the monthly pacing depends on what was spent this month; a controller restart
must not forget it (later the CostBudget status carries it; for now, a file). A write
goes to a temporary file in the same directory, is fsynced, then renamed over the old
file (rename is atomic on POSIX), and the directory is fsynced so the rename itself
survives a crash: a reader sees the old ledger or the new one, never half of one.

A file that exists but cannot be read as a ledger is an error (``LedgerCorruptError``),
never a silent reset to zero: zero spend would lift the monthly cap and overspend.
The operator decides (restore a backup, or move the file aside to start afresh).

Callers: ``autoscaler.controller`` (load at start, save after each accrual),
``autoscaler.cli.budget`` (``budget report --ledger``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.errors import PermanentError
from policies.ledger import LedgerState

#: Bumped when the file layout changes; an unknown version is refused, not guessed.
FORMAT_VERSION = 1


class LedgerCorruptError(PermanentError):
    """The ledger file exists but is not a valid ledger; retrying will not help."""


class _LedgerFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    ledgers: dict[str, LedgerState] = Field(default_factory=dict)


class LedgerStore:
    """One JSON file holding every environment's ledger (environment -> state)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, LedgerState]:
        """All ledgers; an absent file is an empty dict (first start), a bad one raises."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise LedgerCorruptError(f"{self.path}: cannot read the ledger: {err}") from err
        fix = (
            "restore it from a backup, or move it aside to start a new ledger"
            " (the monthly pacing then forgets this month's spend)"
        )
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise LedgerCorruptError(
                f"{self.path}:{err.lineno}: the ledger is not valid JSON ({err.msg}); {fix}"
            ) from err
        if not isinstance(raw, dict) or raw.get("version") != FORMAT_VERSION:
            found = raw.get("version") if isinstance(raw, dict) else type(raw).__name__
            raise LedgerCorruptError(
                f"{self.path}: unknown ledger format version {found!r}"
                f" (expected {FORMAT_VERSION}); {fix}"
            )
        try:
            return dict(_LedgerFile.model_validate(raw).ledgers)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise LedgerCorruptError(f"{self.path}: {where}: {first['msg']}; {fix}") from err

    def get(self, environment: str) -> LedgerState | None:
        return self.load().get(environment)

    def save(self, ledgers: Mapping[str, LedgerState]) -> None:
        """Replace the file with ``ledgers``, atomically and durably."""
        body = {
            "version": FORMAT_VERSION,
            "ledgers": {
                name: state.model_dump(mode="json", by_alias=True)
                for name, state in sorted(ledgers.items())
            },
        }
        data = json.dumps(body, indent=1, sort_keys=True).encode("utf-8")
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(directory)

    def put(self, environment: str, state: LedgerState) -> None:
        """Save one environment's ledger, keeping the others."""
        ledgers = self.load()
        ledgers[environment] = state
        self.save(ledgers)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; some filesystems cannot open a directory (then skip)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
