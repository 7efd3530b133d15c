"""The project's error hierarchy, at the lowest layer so that every package can use it.

Every error a user can cause by bad input is an ``InputError``: it names where the
problem is (file, line, field), what is wrong, and how to fix it. The CLI turns it
into one message and exit status 2, never a traceback. Errors from the outside world
are split into ``RetryableError`` (try again later: timeouts, 5xx, connection refused)
and ``PermanentError`` (retrying will not help: bad query, 4xx).
"""

from __future__ import annotations


class AutoscalerError(Exception):
    """Base of every error we raise on purpose."""


class InputError(AutoscalerError):
    """Bad input from a user: a file, a flag, a request body, a policy.

    ``where`` names the place (``trace.csv:17``, ``spec.minReplicas``), ``problem``
    says what is wrong and ``fix`` what to do about it.
    """

    def __init__(self, where: str, problem: str, fix: str = "") -> None:
        self.where = where
        self.problem = problem
        self.fix = fix
        text = f"{where}: {problem}" if where else problem
        if fix:
            text += f" ({fix})"
        super().__init__(text)

    def __reduce__(self) -> tuple[type[InputError], tuple[str, str, str]]:
        # Pickled by its three parts, so that it survives a worker process: the
        # default (the message alone) cannot rebuild it, and the pool then breaks.
        return (type(self), (self.where, self.problem, self.fix))


class NotFittedError(AutoscalerError):
    """``predict`` was called on a forecaster before ``fit``."""


class RetryableError(AutoscalerError):
    """A transient failure of something outside: worth retrying later."""


class PermanentError(AutoscalerError):
    """A failure outside that retrying will not fix."""


def validation_input_error(
    err: Exception, where: str, fix: str = "", dotted: bool = False
) -> InputError:
    """The first problem of a pydantic ``ValidationError`` as an ``InputError``.

    ``where`` names the file or object; the failing field is appended
    (``scenario.yaml: period.days``; ``dotted``: a field path, ``prometheus.url``).
    The one conversion every loader uses, so that
    every bad file reads the same way (``policies.budget.input_errors`` lists all of
    a CostBudget's problems instead).
    """
    errors = getattr(err, "errors", None)
    first: dict[str, object] = errors(include_url=False)[0] if callable(errors) else {}
    loc = ".".join(str(part) for part in first.get("loc", ()) or ())  # type: ignore[attr-defined]
    msg = str(first.get("msg", err)).removeprefix("Value error, ")
    place = f"{where}{'.' if dotted else ': '}{loc}" if where and loc else (where or loc)
    return InputError(place, msg, fix)


def yaml_problem(err: Exception) -> str:
    """A YAML parse error in one line: what and where (``line 3, column 7``)."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    if mark is not None:
        return f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"not valid YAML: {problem}"
