"""The peer: flask-sse (PyPI ``flask-sse``) in an app equivalent to ours.

Clients follow ``/stream?channel=bench``; flask-sse opens one Redis pub/sub
connection per client and ignores Last-Event-ID.
"""

from __future__ import annotations

import os

from flask import Flask
from flask_sse import sse

app = Flask(__name__)
app.config["REDIS_URL"] = os.environ["BENCH_REDIS_URL"]
app.register_blueprint(sse, url_prefix="/stream")
