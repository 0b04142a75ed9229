"""Masking credentials inside free text: error bodies DevLake (or a proxy) echoes back, log values.

An `Authorization` header's value is masked whatever its scheme (Bearer, Basic, Token, a custom
one) and however it is quoted: `Authorization: Basic dXNlcjpw`, `"authorization":"Token abc"`,
Go's `map[Authorization:[Bearer abc]]`.
"""
from __future__ import annotations

import re

MASK = "***"
# The header name, its separator and opening quotes or brackets; then an optional scheme word
# followed by whitespace; then the credential itself, up to whitespace, a quote, a comma or `]`.
AUTHORIZATION_VALUE = re.compile(
    r"(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\[\"']*)(?:[A-Za-z][\w.~+/-]*\s+)?[^\s\"',\]]+", re.I)


def mask_authorization(text: str) -> str:
    """`text` with every Authorization value (scheme and credential) replaced by ***."""
    return AUTHORIZATION_VALUE.sub(lambda m: m.group(1) + MASK, text)
