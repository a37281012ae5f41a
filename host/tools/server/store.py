"""Vehicle reports in SQLite, stored as the exact bytes received and listed rendered as JSON."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from otalink.host.tools.server.reports import ReportInvalid, render
from pydantic import JsonValue


class ReportStore:
    """Vehicle reports in SQLite (one connection per call: the server is threaded)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS reports (id INTEGER PRIMARY KEY, vehicle TEXT NOT NULL,"
                " received REAL NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS reports_vehicle ON reports(vehicle, id)")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:
                yield db
        finally:
            db.close()

    def add(self, vehicle: str, content_type: str, body: bytes) -> int:
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO reports (vehicle, received, content_type, body) VALUES (?,?,?,?)",
                (vehicle, time.time(), content_type, body),
            )
            return int(cur.lastrowid or 0)

    def listing_rows(self, vehicle: str, limit: int = 50) -> list[bytes]:
        """One standard-JSON document per stored report, newest first. A row that does not
        render (written by an older server, or damaged) becomes ``{"report": null, "error":
        {...}, "body_b64": ...}``: one bad row never breaks the listing, and nothing is lost."""
        with self._db() as db:
            rows = db.execute(
                "SELECT id, received, content_type, body FROM reports WHERE vehicle=? "
                "ORDER BY id DESC LIMIT ?",
                (vehicle, limit),
            ).fetchall()
        return [_render_row(*r) for r in rows]

    def list(self, vehicle: str, limit: int = 50) -> list[JsonValue]:
        """The newest ``limit`` reports, each rendered on its own (see ``listing_json``)."""
        return [json.loads(row) for row in self.listing_rows(vehicle, limit)]

    def counts(self) -> dict[str, int]:
        with self._db() as db:
            rows = db.execute("SELECT vehicle, COUNT(*) FROM reports GROUP BY vehicle").fetchall()
        return {str(v): int(n) for v, n in rows}


def _render_row(rid: Any, received: Any, content_type: Any, body: Any) -> bytes:
    ctype = str(content_type)
    try:
        row = {"id": rid, "received": received, "content_type": ctype}
        row["report"] = render(ctype, bytes(body))
        return json.dumps(row, allow_nan=False).encode()
    except Exception as exc:  # defence in depth: any stored row, whatever is in it
        reason = exc.reason if isinstance(exc, ReportInvalid) else type(exc).__name__
        raw = body if isinstance(body, bytes) else str(body).encode()
        safe = {
            "id": rid if isinstance(rid, int) else None,
            "received": received if isinstance(received, float | int) else None,
            "content_type": ctype,
            "report": None,
            "error": {"code": "report_unrenderable", "reason": reason, "detail": str(exc)[:200]},
            "body_b64": base64.b64encode(raw).decode(),
        }
        try:
            return json.dumps(safe, allow_nan=False).encode()
        except ValueError:  # a non-finite "received"
            safe["received"] = None
            return json.dumps(safe, allow_nan=False).encode()
