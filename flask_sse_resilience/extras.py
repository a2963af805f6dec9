"""Optional dependencies: the import error that says which extra installs
them, as ``pip install 'flask-sse-resilience[<extra>]'``."""

from __future__ import annotations

#: What each extra is for, as its error message names it.
_USES = {"client": "The Python client (flask_sse_resilience.client)"}


def missing(exc: ImportError, extra: str) -> ModuleNotFoundError:
    """The error to raise from ``exc``, a failed import of a dependency of
    ``extra``: it names the missing module and the install command."""
    name = exc.name or "a dependency"
    return ModuleNotFoundError(
        f"{_USES.get(extra, extra)} needs {name}, which is not installed: "
        f"pip install 'flask-sse-resilience[{extra}]'",
        name=exc.name,
    )
