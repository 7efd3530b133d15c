"""Kubernetes label selectors: parse the ``labelSelector`` query string and match labels.

The HPA controller sends ``metric.selector`` as apimachinery's ``labels.Selector.String()``
(``a=1,b in (x,y),!c``); kubectl users type the general form, which also allows ``==``,
``!=``, ``>`` and ``<``. We parse the full grammar of apimachinery ``labels.Parse`` so that
every selector the real clients send selects the same series here as it would in
Kubernetes, and a malformed one is rejected (the API answers 400 ``BadRequest``).

Called by ``autoscaler.store.DecisionStore.query`` and the API request handlers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from models.errors import InputError

Operator = Literal["=", "!=", "in", "notin", "exists", "!", ">", "<"]

# A label name: optional DNS-subdomain prefix and '/', then 1-63 alphanumerics, '-', '_', '.'.
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY_RE = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_NAME}$")
_VALUE_RE = re.compile(rf"^({_NAME})?$")
# Characters that end an identifier in apimachinery's lexer.
_SPECIAL = set(" \t\r\n,()!=<>")


@dataclass(frozen=True)
class Requirement:
    """One clause of a selector: ``key`` ``op`` ``values``."""

    key: str
    op: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "exists":
            return value is not None
        if self.op == "!":
            return value is None
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        if self.op in ("!=", "notin"):
            # Like Kubernetes: a missing key satisfies "not equal" / "not in".
            return value is None or value not in self.values
        # '>' and '<' compare integers; a missing or non-integer label never matches.
        if value is None:
            return False
        try:
            have = int(value)
        except ValueError:
            return False
        bound = int(next(iter(self.values)))
        return have > bound if self.op == ">" else have < bound


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(req.matches(labels) for req in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _tokens(text: str, where: str) -> list[str]:
    """Split into identifiers and the operators ``! != = == ( ) , > <``."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch in "(),<>":
            out.append(ch)
            i += 1
        elif ch == "!":
            if i + 1 < n and text[i + 1] == "=":
                out.append("!=")
                i += 2
            else:
                out.append("!")
                i += 1
        elif ch == "=":
            if i + 1 < n and text[i + 1] == "=":
                out.append("==")
                i += 2
            else:
                out.append("=")
                i += 1
        else:
            j = i
            while j < n and text[j] not in _SPECIAL:
                j += 1
            out.append(text[i:j])
            i = j
    if any(tok == "" for tok in out):  # pragma: no cover - the lexer never yields empties
        raise InputError(where, f"cannot tokenise selector {text!r}")
    return out


_OPERATORS = {"!", "!=", "=", "==", "(", ")", ",", "<", ">"}


def _check_key(key: str, where: str) -> str:
    if key in _OPERATORS or key in ("in", "notin") or not _KEY_RE.match(key):
        raise InputError(
            where, f"invalid label key {key!r}", "keys look like app or example.com/app"
        )
    return key


def _check_value(value: str, where: str) -> str:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise InputError(
            where,
            f"invalid label value {value!r}",
            "values are at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric",
        )
    return value


def parse_selector(text: str | None, where: str = "labelSelector") -> LabelSelector:
    """Parse a selector string; raise ``InputError`` if it is malformed.

    ``None`` and the empty string select everything (the HPA sends no parameter then).
    """
    if text is None or not text.strip():
        return LabelSelector()
    toks = _tokens(text, where)
    reqs: list[Requirement] = []
    pos = 0

    def peek() -> str | None:
        return toks[pos] if pos < len(toks) else None

    def bad(problem: str) -> InputError:
        return InputError(
            where, f"malformed selector {text!r}: {problem}", "see kubectl's label selector syntax"
        )

    while True:
        tok = peek()
        if tok is None:
            raise bad("expected a requirement")
        if tok == "!":
            pos += 1
            key = peek()
            if key is None:
                raise bad("'!' needs a key")
            reqs.append(Requirement(_check_key(key, where), "!"))
            pos += 1
        else:
            key = _check_key(tok, where)
            pos += 1
            op = peek()
            if op is None or op == ",":
                reqs.append(Requirement(key, "exists"))
            elif op in ("=", "==", "!="):
                pos += 1
                value = peek()
                if value is None or value == ",":
                    value = ""  # "a=" is legal: the label must be present and empty
                elif value in _OPERATORS:
                    raise bad(f"unexpected {value!r} after {op!r}")
                else:
                    pos += 1
                norm: Operator = "!=" if op == "!=" else "="
                reqs.append(Requirement(key, norm, frozenset({_check_value(value, where)})))
            elif op in (">", "<"):
                pos += 1
                value = peek()
                if value is None or not re.fullmatch(r"-?\d+", value):
                    raise bad(f"{op!r} needs an integer")
                pos += 1
                reqs.append(Requirement(key, ">" if op == ">" else "<", frozenset({value})))
            elif op in ("in", "notin"):
                pos += 1
                if peek() != "(":
                    raise bad(f"{op!r} needs a parenthesised list")
                pos += 1
                values: set[str] = set()
                while True:
                    value = peek()
                    if value is None:
                        raise bad("missing ')'")
                    if value in (",", ")"):
                        # An empty element ("(a,)" or "()") is an empty string value.
                        values.add("")
                    else:
                        if value in _OPERATORS:
                            raise bad(f"unexpected {value!r} in list")
                        values.add(_check_value(value, where))
                        pos += 1
                    sep = peek()
                    if sep == ",":
                        pos += 1
                        continue
                    if sep == ")":
                        pos += 1
                        break
                    raise bad("missing ')'")
                reqs.append(Requirement(key, op, frozenset(values)))  # type: ignore[arg-type]
            else:
                raise bad(f"unexpected {op!r} after key {key!r}")
        tok = peek()
        if tok is None:
            break
        if tok != ",":
            raise bad(f"expected ',' but found {tok!r}")
        pos += 1
    return LabelSelector(tuple(reqs))
