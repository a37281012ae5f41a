"""A scripted peer on a real pty: the test double of a broken or out-of-order device.

``Peer(answer)`` opens a pty pair; the client opens ``peer.port``; a thread reads the client's
frames from the master side and calls ``answer(msg) -> list[bytes]`` (payloads to send back, in
order) for each decoded message. ``peer.seen`` lists every message received.
"""

from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Callable
from typing import Any

from otalink.protocol import codes, messages
from otalink.protocol.frame import FrameParser, frame

Answer = Callable[[list[Any]], list[bytes]]


class Peer:
    def __init__(self, answer: Answer) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.answer = answer
        self.seen: list[list[Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        parser = FrameParser(codes.MAX_PAYLOAD_ABS)
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            for p in parser.feed_all(data):
                try:
                    msg = messages.parse(p, True)
                except Exception:  # a test double: ignore what it cannot read
                    continue
                self.seen.append(msg)
                for out in self.answer(msg):
                    os.write(self.master, frame(out))

    def count(self, mtype: int) -> int:
        return sum(1 for m in self.seen if m[0] == mtype)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
