"""A missing prerequisite fails under ``CI=true`` and is a loud skip elsewhere.

Reproduces a CI machine without kubectl (PATH without it): the kubectl-driven API tests
must fail there, not turn into 30 skips.
"""

from __future__ import annotations

import pytest

from tests.api.conftest import Kubectl
from tests.required import require_module, require_tool


@pytest.fixture
def no_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")


def test_kubectl_missing_fails_under_ci(no_tools: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    try:
        with pytest.raises(pytest.fail.Exception, match="kubectl is not installed"):
            Kubectl("http://127.0.0.1:1").raw("/healthz")
    except pytest.skip.Exception as skipped:  # the fault itself: a skip where CI must fail
        pytest.fail(f"skipped under CI=true: {skipped}")


def test_kubectl_missing_skips_outside_ci(
    no_tools: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        Kubectl("http://127.0.0.1:1").raw("/healthz")
    assert "SKIPPING" in capsys.readouterr().err  # loudly


def test_tool_and_module_missing_fail_under_ci(
    no_tools: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="openssl"):
        require_tool("openssl")
    with pytest.raises(pytest.fail.Exception, match="no_such_module_here"):
        require_module("no_such_module_here")
