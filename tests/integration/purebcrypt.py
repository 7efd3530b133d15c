"""bcrypt (``$2b$``) in pure Python, for test fixtures that need a password hash.

Why: Prometheus' ``web.yml`` takes only bcrypt hashes for ``basic_auth_users``. Python's
``crypt`` module is gone in 3.13 and depends on the libc; the ``bcrypt`` package is not
in requirements.lock. This is the OpenBSD algorithm (EksBlowfish, "OrpheanBeholderScryDoubt"
encrypted 64 times) with Blowfish's constants computed as the hexadecimal digits of pi,
so nothing is fetched or hard-coded. It is slow (about 0.2 s at cost 4) and meant for
tests only; ``tests/integration/test_purebcrypt.py`` checks it against known hashes.
"""

from __future__ import annotations

import base64
import functools
import os

_MASK = 0xFFFFFFFF
_STD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_TO_BCRYPT = bytes.maketrans(_STD, _BCRYPT)
_FROM_BCRYPT = bytes.maketrans(_BCRYPT, _STD)


def _arctan_inv(x: int, one: int) -> int:
    """arctan(1/x) in fixed point with ``one`` as 1.0 (Taylor series)."""
    total = term = one // x
    x2, n, sign = x * x, 3, -1
    while term:
        term //= x2
        total += sign * (term // n)
        n, sign = n + 2, -sign
    return total


@functools.cache
def _pi_words() -> tuple[int, ...]:
    """The first 1042 32-bit words of pi's fractional hexadecimal digits (P then S)."""
    words = 18 + 4 * 256
    bits = 32 * words + 64  # guard bits
    one = 1 << bits
    pi = 16 * _arctan_inv(5, one) - 4 * _arctan_inv(239, one)  # Machin's formula
    frac = (pi - 3 * one) >> 64  # drop the integer part and the guard bits
    return tuple((frac >> (32 * (words - 1 - i))) & _MASK for i in range(words))


class _Blowfish:
    def __init__(self) -> None:
        w = _pi_words()
        self.p = list(w[:18])
        self.s = [list(w[18 + 256 * i : 18 + 256 * (i + 1)]) for i in range(4)]

    def encrypt(self, left: int, right: int) -> tuple[int, int]:
        p, s0, s1, s2, s3 = self.p, *self.s
        for i in range(16):
            left ^= p[i]
            f = ((s0[left >> 24] + s1[(left >> 16) & 0xFF]) & _MASK) ^ s2[(left >> 8) & 0xFF]
            right ^= (f + s3[left & 0xFF]) & _MASK
            left, right = right, left
        return right ^ p[17], left ^ p[16]

    def expand(self, key: bytes, salt: bytes | None) -> None:
        """Blowfish_expandstate (with ``salt``) / Blowfish_expand0state (without)."""
        keys = _stream(key)
        for i in range(18):
            self.p[i] ^= next(keys)
        salts = _stream(salt) if salt is not None else None
        left = right = 0
        tables = [self.p, *self.s]
        for table in tables:
            for i in range(0, len(table), 2):
                if salts is not None:
                    left ^= next(salts)
                    right ^= next(salts)
                left, right = self.encrypt(left, right)
                table[i], table[i + 1] = left, right


def _stream(data: bytes) -> object:
    """Big-endian 32-bit words read cyclically from ``data`` (Blowfish_stream2word)."""

    def gen() -> object:
        j = 0
        n = len(data)
        while True:
            word = 0
            for _ in range(4):
                word = (word << 8) | data[j]
                j = (j + 1) % n
            yield word

    return gen()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).translate(_TO_BCRYPT).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    raw = text.encode().translate(_FROM_BCRYPT)
    return base64.b64decode(raw + b"=" * (-len(raw) % 4))


def hashpw(password: str, cost: int = 4, salt: bytes | None = None) -> str:
    """``$2b$<cost>$<22-char salt><31-char hash>`` for ``password``."""
    if not 4 <= cost <= 31:
        raise ValueError("bcrypt cost must be 4..31")
    salt = os.urandom(16) if salt is None else salt
    if len(salt) != 16:
        raise ValueError("bcrypt salt must be 16 bytes")
    key = password.encode("utf-8")[:72] + b"\0"
    state = _Blowfish()
    state.expand(key, salt)  # type: ignore[arg-type]
    for _ in range(1 << cost):
        state.expand(key, None)
        state.expand(salt, None)
    words = [int.from_bytes(b"OrpheanBeholderScryDoubt"[i : i + 4], "big") for i in range(0, 24, 4)]
    for _ in range(64):
        for i in range(0, 6, 2):
            words[i], words[i + 1] = state.encrypt(words[i], words[i + 1])
    digest = b"".join(w.to_bytes(4, "big") for w in words)[:23]
    # The salt's 22 characters carry 132 bits; the last 4 are zero, as every bcrypt writes.
    return f"$2b${cost:02d}${_b64(salt)[:22]}{_b64(digest)}"


def checkpw(password: str, hashed: str) -> bool:
    """Whether ``hashed`` (``$2a$``/``$2b$``/``$2y$``) is the bcrypt of ``password``."""
    _, _, cost, rest = hashed.split("$")
    salt = _unb64(rest[:22])[:16]
    return hashpw(password, int(cost), salt)[7:] == hashed[7:]
