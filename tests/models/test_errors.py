"""Errors must survive a process boundary: the simulator and sweeps run in workers."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from models.errors import InputError


def _raise_input_error(where: str) -> None:
    raise InputError(where, "file not found", "give a path")


def test_input_error_pickles_with_its_parts() -> None:
    err = pickle.loads(pickle.dumps(InputError("trace.csv:3", "value 'x' is not a number", "fix")))
    assert isinstance(err, InputError)
    assert (err.where, err.problem, err.fix) == ("trace.csv:3", "value 'x' is not a number", "fix")
    assert str(err) == "trace.csv:3: value 'x' is not a number (fix)"


def test_input_error_from_a_worker_reaches_the_caller_intact() -> None:
    with ProcessPoolExecutor(max_workers=1) as pool:
        future = pool.submit(_raise_input_error, "bad.csv")
        with pytest.raises(InputError) as info:
            future.result(timeout=60)
    assert info.value.where == "bad.csv"
    assert info.value.fix == "give a path"
