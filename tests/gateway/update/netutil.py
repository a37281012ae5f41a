"""Real network pieces for the trust tests: a connection-cutting TCP proxy, an nginx instance,
and a hostile HTTP server (trickle / endless body). All loopback, free ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {port}")


class CuttingProxy:
    """TCP proxy to ``upstream``; connection i may carry at most ``budgets[i]`` bytes from the
    server to the client, then both sides are closed (a link dropping mid-transfer). Connections
    past the list are passed through untouched. ``down_bytes`` counts bytes sent to clients."""

    def __init__(self, upstream_port: int, budgets: list[int]) -> None:
        self.upstream_port = upstream_port
        self.budgets = list(budgets)
        self.down_bytes = 0
        self.cuts = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = int(self._sock.getsockname()[1])
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                idx = self.connections
                self.connections += 1
            budget = self.budgets[idx] if idx < len(self.budgets) else None
            threading.Thread(target=self._serve, args=(client, budget), daemon=True).start()

    def _serve(self, client: socket.socket, budget: int | None) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            client.close()
            return

        def up() -> None:
            try:
                while data := client.recv(65536):
                    upstream.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    upstream.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        threading.Thread(target=up, daemon=True).start()
        left = budget
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if left is not None:
                    data = data[:left]
                    left -= len(data)
                client.sendall(data)
                with self._lock:
                    self.down_bytes += len(data)
                if left == 0:
                    with self._lock:
                        self.cuts += 1
                    break
        except OSError:
            pass
        finally:
            # shutdown() wakes the other thread's recv(); a bare close() would not
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self._stop = True
        self._sock.close()


@contextmanager
def nginx(root: Path, workdir: Path) -> Iterator[str]:
    """An nginx serving ``root`` statically on a free loopback port; yields its base URL."""
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(exe).exists():
        raise RuntimeError("nginx is not installed: apt-get install -y nginx (tools/sysdeps.sh)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = "\n".join(
        f"  {k}_temp_path {workdir}/{k};"
        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""{user}worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
{temps}
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    location / {{ }}
  }}
}}
"""
    )
    proc = subprocess.Popen(
        [exe, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        try:
            wait_port(port)
        except TimeoutError:
            proc.kill()
            err = proc.communicate()[1].decode(errors="replace")
            raise RuntimeError(f"nginx did not start: {err}") from None
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class HostileServer:
    """Answers every GET with 200 and, by ``mode``: ``trickle`` (a body of 1 byte every ``gap``
    s, honest Content-Length), ``endless`` (no Content-Length, bytes forever) or ``headers`` (a
    header line that grows by 1 byte every ``gap`` s)."""

    def __init__(self, mode: str, length: int = 1 << 20, gap: float = 0.05) -> None:
        self.mode = mode
        self.length = length
        self.gap = gap
        self.sent = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        try:
            c.recv(65536)
            if self.mode == "headers":  # a response head that never ends
                c.sendall(b"HTTP/1.1 200 OK\r\n")
                while not self._stop.is_set():
                    c.sendall(b"X")
                    self.sent += 1
                    time.sleep(self.gap)
            elif self.mode == "trickle":
                c.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {self.length}\r\n\r\n".encode())
                while not self._stop.is_set():
                    c.sendall(b"x")
                    self.sent += 1
                    time.sleep(self.gap)
            else:
                c.sendall(b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n")
                block = b"A" * 65536
                while not self._stop.is_set():
                    c.sendall(block)
                    self.sent += len(block)
        except OSError:
            pass
        finally:
            c.close()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()


class ScriptedServer:
    """Answers every request with ``response(request_bytes) -> raw response bytes`` and closes
    (a server that says whatever a test wants: odd headers, lying lengths)."""

    def __init__(self, response: Callable[[bytes], bytes]) -> None:
        self.response = response
        self.requests: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = int(self._sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        try:
            req = b""
            while b"\r\n\r\n" not in req:
                chunk = c.recv(65536)
                if not chunk:
                    return
                req += chunk
            self.requests.append(req)
            c.sendall(self.response(req))
            c.shutdown(socket.SHUT_WR)
            c.recv(1)  # until the client closes
        except OSError:
            pass
        finally:
            c.close()

    def close(self) -> None:
        self._sock.close()


class ThrottlingProxy:
    """TCP proxy to ``upstream`` whose server-to-client direction passes ``fast_bytes`` bytes
    (counted over all connections) at full speed, then trickles at ``slow_bps`` bytes/s in
    ``piece`` byte pieces: a cellular link dying slowly, never dropping. ``heal()`` makes it
    fast again. ``down_bytes`` counts bytes sent to clients (headers included)."""

    def __init__(
        self, upstream_port: int, fast_bytes: int, slow_bps: int = 200, piece: int = 20
    ) -> None:
        self.upstream_port = upstream_port
        self.fast_bytes = fast_bytes
        self.slow_bps = slow_bps
        self.piece = piece
        self.healed = False
        self.down_bytes = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = int(self._sock.getsockname()[1])
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def heal(self) -> None:
        self.healed = True

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _allowance(self, want: int) -> tuple[int, float]:
        """(bytes that may go now, seconds to wait after sending them)."""
        with self._lock:
            fast_left = self.fast_bytes - self.down_bytes
        if self.healed or fast_left >= want:
            return want, 0.0
        if fast_left > 0:
            return fast_left, 0.0
        n = min(want, self.piece)
        return n, n / self.slow_bps

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            client.close()
            return

        def up() -> None:
            try:
                while data := client.recv(65536):
                    upstream.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    upstream.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        threading.Thread(target=up, daemon=True).start()
        try:
            while not self._stop:
                data = upstream.recv(65536)
                if not data:
                    break
                while data:
                    n, wait = self._allowance(len(data))
                    client.sendall(data[:n])
                    with self._lock:
                        self.down_bytes += n
                    data = data[n:]
                    if wait:
                        time.sleep(wait)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self._stop = True
        self._sock.close()
