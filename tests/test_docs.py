"""The docs promise every config key with its default: hold them to it."""

from __future__ import annotations

import re
from pathlib import Path

from flask_sse_resilience.settings import DEFAULTS

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.rst"


def documented() -> dict[str, str]:
    rows = re.findall(
        r"\* - ``(SSE_RESILIENCE_\w+)``\n\s+- ``([^`]*)``", DOC.read_text()
    )
    return dict(rows)


def shown(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return repr(value)
    return str(value)


def test_every_key_is_documented_with_its_default() -> None:
    docs = documented()
    assert set(docs) == set(DEFAULTS), "keys documented vs keys read differ"
    for key, default in DEFAULTS.items():
        assert docs[key] == shown(default), key
