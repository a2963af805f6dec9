"""The ``SSE_RESILIENCE_*`` keys of an app's config that have no effect,
said out loud: a key no setting is named (a misspelling, warned about at
``init_app`` with the nearest valid key), and a key set or changed after
``init_app`` read the config (logged at the first request of each process).
Either would otherwise be ignored without a word."""

from __future__ import annotations

import difflib
import logging
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigurationWarning
from .settings import DEFAULTS, PREFIX

log = logging.getLogger(__name__)


def prefixed(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``SSE_RESILIENCE_*`` entries of ``config``."""
    return {
        k: v for k, v in config.items() if isinstance(k, str) and k.startswith(PREFIX)
    }


def nearest_key(key: str) -> str | None:
    """The known config key most like ``key`` (a misspelling of it), or None."""
    names = [known.removeprefix(PREFIX) for known in DEFAULTS]
    found = difflib.get_close_matches(key.removeprefix(PREFIX), names, 1, 0.5)
    return PREFIX + found[0] if found else None


def warn_unknown_keys(config: Mapping[str, Any]) -> None:
    """Warn (:class:`ConfigurationWarning`) about each ``SSE_RESILIENCE_*``
    key of ``config`` that is no setting, naming the nearest one: a
    misspelt key would otherwise be ignored without a word."""
    for key in sorted(set(prefixed(config)) - set(DEFAULTS)):
        near = nearest_key(key)
        hint = f"did you mean {near}?" if near else "no setting has a name like it"
        config_warning(f"unknown config key {key} is ignored; {hint}")


def changed_keys(before: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """The ``SSE_RESILIENCE_*`` keys set, changed or removed in ``config``
    since ``before`` (its :func:`prefixed` entries at ``init_app``)."""
    now = prefixed(config)
    return sorted(
        key
        for key in set(before) | set(now)
        if before.get(key, _NONE) != now.get(key, _NONE)
    )


_NONE = object()
_PACKAGE = str(Path(__file__).parent) + os.sep


def config_warning(message: str) -> None:
    """Issue a :class:`ConfigurationWarning` attributed to the first caller
    outside this package: the app's ``SSEResilience(app)`` or ``init_app``
    line, whichever ran."""
    frame = sys._getframe(1)
    level = 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    warnings.warn(message, ConfigurationWarning, stacklevel=level)


def warn_late_keys(before: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Log a warning for each key :func:`changed_keys` finds: settings are
    read once, so it has no effect."""
    for key in changed_keys(before, config):
        log.warning(
            "%s was set after init_app (to %r), so it has no effect: set it "
            "before SSEResilience(app) / init_app reads the config",
            key, config.get(key, "<removed>"),
        )  # fmt: skip
