"""Where the package runs, found before anything heavy is imported: the
gunicorn worker or arbiter on the call stack (:func:`on_stack`), and, in a
gunicorn master that preloads the app (``--preload``) for gevent workers,
monkey-patching before the package first imports Redis
(:func:`patch_gevent_master`).

The workers patch themselves after the fork; by then the master's import of
the app had imported redis-py, which holds direct references to ``ssl``
names, and gevent warns (``MonkeyPatchWarning``) that those stay unpatched.
Patching in the master first, exactly as each worker will, leaves nothing
unpatched. Nothing happens anywhere else: outside gunicorn, in its workers, for
other worker classes, or once Redis is imported already.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any


def on_stack(module: str, name: str) -> Any:
    """The innermost ``self`` on the caller's stack that is an instance of
    ``module.name``, or None (also when that module is not imported): how
    the package finds gunicorn's worker or arbiter it runs under."""
    cls = getattr(sys.modules.get(module), name, None)
    if cls is None:
        return None
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, cls):
            return candidate
        frame = frame.f_back
    return None


def patch_gevent_master() -> bool:
    """Monkey-patch with gevent if this is a gunicorn master loading the app
    for gevent workers and Redis is not imported yet; return whether it did."""
    if "redis" in sys.modules:
        return False
    arbiter = on_stack("gunicorn.arbiter", "Arbiter")
    if arbiter is None:
        return False
    worker_class = arbiter.cfg.worker_class
    if not any(
        c.__module__ == "gunicorn.workers.ggevent" for c in worker_class.__mro__
    ):
        return False
    from gevent import monkey

    monkey.patch_all()
    return True
