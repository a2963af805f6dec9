"""A real nginx (Debian's package) in front of a demo, from the shipped
``examples/deploy/nginx.conf``: free ports, a self-signed certificate made
for the run, stopped by PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "examples" / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def make_certificate(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1, valid one day, written to
    ``directory`` as ``cert.pem`` and ``key.pem``; returns ``directory``."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem"),
         "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return directory


class Nginx:
    """nginx proxying ``127.0.0.1:<upstream>``: HTTP/1.1 on :attr:`http_port`,
    HTTP/2 over TLS on :attr:`https_port`. Its prefix is a fresh, empty
    directory (plus the certificate), as a user's would be: nginx makes what
    else it needs. ``server_extra`` goes at the top of the ``server`` block,
    as a site's own directives would (say, ``gzip on;``); ``replace`` edits
    the shipped file (``(old, new)`` pairs)."""

    def __init__(
        self,
        upstream: int,
        server_extra: str = "",
        replace: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sse-nginx-"))
        self.http_port, self.https_port = free_port(), free_port()
        make_certificate(self.dir)
        conf = (
            CONF.read_text()
            .replace("127.0.0.1:8000", f"127.0.0.1:{upstream}")
            .replace("127.0.0.1:8080", f"127.0.0.1:{self.http_port}")
            .replace("127.0.0.1:8443", f"127.0.0.1:{self.https_port}")
        )
        for old, new in replace:  # a variant of the shipped file, for a control
            assert old in conf, old
            conf = conf.replace(old, new)
        if server_extra:
            conf = conf.replace(
                "    server {\n", f"    server {{\n        {server_extra}\n", 1
            )
        (self.dir / "nginx.conf").write_text(conf)
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
             "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.http_port), 0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"nginx did not start:\n{self.errors()}"
                    ) from None
                time.sleep(0.05)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def errors(self) -> str:
        log = self.dir / "error.log"
        return log.read_text() if log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)
