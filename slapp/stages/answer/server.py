"""``predict_track.py --answer``: a local page to answer the suggested tracks on.

Served on 127.0.0.1 only, under a random token (``http://127.0.0.1:PORT/TOKEN/``): a
request without the token, or for anything but the page, its data, the audio of a row of
the answers file and an answer, is a 404 — no other file can be asked for. Each answer is
written at once into the answers file (:class:`~slapp.stages.answer.answers.AnswersFile`).
The server runs in the foreground; Ctrl-C or closing the terminal stops it.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import secrets
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from slapp.spec import NONE
from slapp.stages.answer.answers import AnswersFile
from slapp.stages.answer.page import page_html

logger = logging.getLogger(__name__)

NEXT = ("build_dataset.py, then process_dataset.py, then train_crnn.py: the answers join "
        "training and stage 3 suggests the next tracks")


def page_data(answers: AnswersFile, results: dict, classes: list[str]) -> dict:
    """What the page draws: the classes and, per row, the answer, the model's guess,
    confidence, ``known`` and timeline (``[start s, {class: p}]``) where labelled now."""
    tracks = []
    for i, row in enumerate(answers.rows):
        r = results.get(i)
        tracks.append({"i": i, "path": row["path"], "label": (row.get("label") or "").strip(),
                       "guess": (r.guess or r.label) if r and not r.error else row.get("guess", ""),
                       "confidence": r.confidence if r and not r.error else None,
                       "known": r.known if r else None,
                       "error": r.error if r else None,
                       "timeline": [[t["start"], t["scores"]] for t in (r.timeline or [])]
                       if r and not r.error else []})
    return {"classes": classes, "none": NONE, "tracks": tracks, "next": NEXT,
            "file": str(answers.path)}


class AnswerServer(ThreadingHTTPServer):
    """The page's server: ``url`` holds the token; :meth:`serve_forever` serves."""

    daemon_threads = True

    def __init__(self, answers: AnswersFile, results: dict, classes: list[str],
                 port: int = 0):
        self.answers, self.results, self.classes = answers, results, classes
        self.token = secrets.token_urlsafe(16)
        super().__init__(("127.0.0.1", port), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/{self.token}/"


class _Handler(BaseHTTPRequestHandler):
    server: AnswerServer

    def log_message(self, *args) -> None:  # the terminal stays quiet
        pass

    def _route(self) -> str | None:
        prefix = f"/{self.server.token}/"
        return self.path[len(prefix):] if self.path.startswith(prefix) else None

    def _send(self, code: int, body: bytes, kind: str, extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj) -> None:
        self._send(code, json.dumps(obj).encode("utf-8"), "application/json")

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        route, s = self._route(), self.server
        if route == "":
            self._send(200, page_html().encode("utf-8"), "text/html; charset=utf-8")
        elif route == "data":
            self._json(200, page_data(s.answers, s.results, s.classes))
        elif route is not None and re.fullmatch(r"audio/\d+", route):
            self._audio(int(route.split("/")[1]))
        else:
            self._send(404, b"not found", "text/plain")

    do_HEAD = do_GET

    def _audio(self, index: int) -> None:
        """Row ``index``'s audio file, whole or the asked byte range (seeking)."""
        if index >= len(self.server.answers.rows):
            return self._send(404, b"not found", "text/plain")
        path = self.server.answers.track(index)
        try:
            data = path.read_bytes()
        except OSError:
            return self._send(404, b"not found", "text/plain")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        found = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if not found or not data:
            return self._send(200, data, kind, {"Accept-Ranges": "bytes"})
        start = int(found[1]) if found[1] else max(0, len(data) - int(found[2] or 0))
        end = min(int(found[2]), len(data) - 1) if found[1] and found[2] else len(data) - 1
        if start > end:
            return self._send(416, b"", kind, {"Content-Range": f"bytes */{len(data)}"})
        self._send(206, data[start:end + 1], kind,
                   {"Accept-Ranges": "bytes", "Content-Range": f"bytes {start}-{end}/{len(data)}"})

    def do_POST(self) -> None:  # noqa: N802
        if self._route() != "answer":
            return self._send(404, b"not found", "text/plain")
        try:
            length = min(int(self.headers.get("Content-Length", "0")), 10_000)
            body = json.loads(self.rfile.read(length) or b"{}")
            index, label = int(body["i"]), str(body.get("label", "")).strip()
            self.server.answers.answer(index, label, self.server.classes)
        except IndexError:
            return self._json(404, {"error": "no such row"})
        except (ValueError, KeyError, TypeError) as exc:
            return self._json(400, {"error": str(exc)})
        except OSError as exc:
            return self._json(500, {"error": f"cannot write {self.server.answers.path}: {exc}"})
        rows = self.server.answers.rows
        self._json(200, {"ok": True, "answered": sum(bool((r.get("label") or "").strip())
                                                     for r in rows), "rows": len(rows)})


def label_unanswered(answers: AnswersFile, bundle) -> dict:
    """``{row: TrackResult}`` of the unanswered rows, labelled now with their timelines."""
    from slapp.stages.label.predict import PredictOptions, predict_tracks

    todo = [i for i, r in enumerate(answers.rows) if not (r.get("label") or "").strip()]
    if not todo:
        return {}
    report = predict_tracks([str(answers.track(i)) for i in todo], bundle,
                            PredictOptions(timeline=True), progress=False)
    return dict(zip(todo, report.results))


def serve_answers(csv_file: Path, bundle, port: int = 0) -> list[str]:
    """Label the unanswered rows of ``csv_file`` with ``bundle``, serve the page until
    Ctrl-C; the lines to print at the end."""
    answers = AnswersFile.read(csv_file)
    server = AnswerServer(answers, label_unanswered(answers, bundle), bundle.classes, port)
    print(f"answer the {len(answers.rows)} track(s) of {csv_file} at {server.url}\n"
          "(open it in a browser on this computer; Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # the way to stop it: not an interrupted run
        from slapp import signals

        signals.clear()
    finally:
        server.server_close()
    done = sum(bool((r.get("label") or "").strip()) for r in answers.rows)
    return [f"answers: {done} of {len(answers.rows)} row(s) of {csv_file} answered",
            f"next: {NEXT}"]
