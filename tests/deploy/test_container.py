"""The Dockerfile's promises: multi-stage, pinned base, hashed lock, non-root.

No Docker engine runs on these machines, so the image is not built here. What can be
checked without one is checked: the Dockerfile's instructions, and that the runtime
and build locks it installs from are exact subsets of requirements.lock (same
versions, same hashes), so the image cannot drift from what CI tested.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.deploy.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"
LOCK_RE = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)((?:\s*\\\n\s+--hash=\S+)+)", re.M)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def lock_pins(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    text = path.read_text(encoding="utf-8")
    return {
        m.group(1).lower(): (m.group(2), frozenset(re.findall(r"--hash=(\S+)", m.group(3))))
        for m in LOCK_RE.finditer(text)
    }


def test_multi_stage_with_a_pinned_base() -> None:
    ins = instructions()
    args = {a.split("=")[0]: a.split("=", 1)[1] for i, a in ins if i == "ARG" and "=" in a}
    froms = [a for i, a in ins if i == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    for f in froms:
        image = f.split()[0]
        image = args.get(image.strip("${}"), image) if image.startswith("$") else image
        name, _, tag = image.partition(":")
        # an exact patch version and Debian release (or a digest), never a floating tag
        assert re.fullmatch(r"\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", tag), image
    assert "AS runtime" in froms[-1]


def test_installs_only_from_hashed_locks() -> None:
    runs = " ".join(a for i, a in instructions() if i == "RUN")
    installs = re.findall(r"pip install ([^&]*)", runs)
    assert installs
    for cmd in installs:
        assert "--require-hashes" in cmd or "--no-deps /tmp/wheels/" in cmd, cmd
    assert "--no-build-isolation" in runs or "build_meta" in runs


def test_runtime_is_non_root() -> None:
    ins = instructions()
    last_from = max(n for n, (i, _) in enumerate(ins) if i == "FROM")
    users = [a for i, a in ins[last_from:] if i == "USER"]
    assert users, "the runtime stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root uid (runAsNonRoot can check it)"
    entry = [a for i, a in ins if i == "ENTRYPOINT"][-1]
    assert "autoscaler" in entry


def test_locks_are_exact_subsets_of_requirements_lock() -> None:
    main = lock_pins(REPO / "requirements.lock")
    assert len(main) > 50
    for name in ("requirements-runtime.lock", "requirements-build.lock"):
        sub = lock_pins(REPO / "deploy" / "docker" / name)
        assert sub, name
        for pkg, (version, hashes) in sub.items():
            assert pkg in main, f"{name}: {pkg} is not in requirements.lock"
            assert main[pkg][0] == version, f"{name}: {pkg}=={version}, lock has {main[pkg][0]}"
            assert hashes <= main[pkg][1], f"{name}: {pkg} hashes differ from requirements.lock"


def test_runtime_lock_has_no_dev_tools_and_all_runtime_deps() -> None:
    runtime = lock_pins(REPO / "deploy" / "docker" / "requirements-runtime.lock")
    for dev in ("pytest", "ruff", "mypy", "hypothesis", "import-linter"):
        assert dev not in runtime
    for dep in ("fastapi", "uvicorn", "kubernetes", "prometheus-client", "grpcio", "pandas"):
        assert dep in runtime, f"{dep} missing from the runtime lock"


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for entry in (".git", ".venv", "*.key", "*.pem"):
        assert entry in ignored
    # and the files the Dockerfile copies are not ignored
    assert "!deploy/docker/requirements-runtime.lock" in ignored
