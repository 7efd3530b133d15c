"""``purebcrypt`` (the test fixtures' bcrypt) against hashes made by other implementations.

The first vector is from OpenBSD's bcrypt test set; the others were made with glibc's
libxcrypt ``crypt()`` (``$2b$``, cost 4), including a password longer than 72 bytes and a
non-ASCII one. A hash made here must verify, and must differ for another password.
"""

from __future__ import annotations

import pytest

from tests.integration.purebcrypt import checkpw, hashpw

VECTORS = [
    ("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"),
    ("wonderland", "$2b$04$a8Vv57fl9Ev1rK4rraLBO.UXGDI1NZeQCrlDPF.P9det54WJqeWZi"),
    ("", "$2b$04$pS5X3aJEMPdl3/FX.sIB8.uofmiIKXyYUOrsK6.t02u7cwZLG9OTS"),
    ("x" * 80, "$2b$04$fJGXlEhqhXUfMsXa7cqd9OHJzVMdphCiJ7eL5M9rPBkMr6V2AnaTG"),
    ("ünï", "$2b$04$18aYNq.mmG8cbV1j8DxeRuqSqLu6YZeX8jw5w1HVymi0U9hCLpVpK"),
]


@pytest.mark.parametrize(("password", "hashed"), VECTORS, ids=range(len(VECTORS)))
def test_known_hashes(password: str, hashed: str) -> None:
    assert checkpw(password, hashed)
    assert not checkpw("!" + password, hashed)


def test_fresh_hash_round_trips() -> None:
    hashed = hashpw("wonderland")
    assert hashed.startswith("$2b$04$") and len(hashed) == 60
    assert checkpw("wonderland", hashed) and not checkpw("Wonderland", hashed)
    assert hashpw("wonderland") != hashed  # a fresh salt each time
