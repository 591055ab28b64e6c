"""The answering page (``predict_track.py --answer``), driven through its HTTP interface:
every answer lands in the labels file at once, "none of these" is written as ``none``,
and nothing but the page, its data, the rows' audio and answers can be asked for."""

from __future__ import annotations

import csv
import json
import threading
import urllib.error
import urllib.request

import pytest

from slapp.stages.answer.answers import AnswersFile
from slapp.stages.answer.server import AnswerServer, label_unanswered


def _get(url: str, headers: dict | None = None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def _post(url: str, body: dict):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def page(trained, tmp_path):
    from slapp.stages.train.bundle import load_bundle

    root, _ = trained
    tracks = sorted((root / "music").rglob("*.wav"))[:3]
    answers = tmp_path / "to-label.csv"
    with open(answers, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "guess", "confidence", "artist"])
        writer.writerows([[str(p), "", "", "", ""] for p in tracks])
    bundle = load_bundle(root / "out" / "model")
    rows = AnswersFile.read(answers)
    server = AnswerServer(rows, label_unanswered(rows, bundle), bundle.classes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, answers, tracks, bundle
    server.shutdown()
    server.server_close()


def test_answers_land_in_the_labels_file_at_once(page):
    server, answers, tracks, bundle = page
    assert server.url.startswith("http://127.0.0.1:") and server.token in server.url
    status, body, _ = _get(server.url)
    assert status == 200 and b"none of these" in body
    data = json.loads(_get(server.url + "data")[1])
    assert data["classes"] == bundle.classes and len(data["tracks"]) == 3
    assert data["tracks"][0]["guess"] in bundle.classes and data["tracks"][0]["timeline"]

    assert _post(server.url + "answer", {"i": 0, "label": bundle.classes[1]})[0] == 200
    assert _post(server.url + "answer", {"i": 2, "label": "none"}) == (
        200, {"ok": True, "answered": 2, "rows": 3})
    rows = list(csv.DictReader(answers.open()))
    assert [r["label"] for r in rows] == [bundle.classes[1], "", "none"]
    assert [r["path"] for r in rows] == [str(p) for p in tracks]
    # skip: the answer taken back
    assert _post(server.url + "answer", {"i": 0, "label": ""})[0] == 200
    assert [r["label"] for r in csv.DictReader(answers.open())] == ["", "", "none"]


def test_a_bad_answer_is_refused_and_changes_nothing(page):
    server, answers, _, bundle = page
    before = answers.read_bytes()
    status, out = _post(server.url + "answer", {"i": 0, "label": "jazz"})
    assert status == 400 and "label 'jazz' is not a class" in out["error"]
    assert _post(server.url + "answer", {"i": 7, "label": bundle.classes[0]})[0] == 404
    assert answers.read_bytes() == before


def test_only_the_rows_audio_can_be_asked_for(page):
    server, _, tracks, _ = page
    status, body, _ = _get(server.url + "audio/1")
    assert status == 200 and body == tracks[1].read_bytes()
    status, body, headers = _get(server.url + "audio/1", {"Range": "bytes=10-19"})
    assert status == 206 and body == tracks[1].read_bytes()[10:20]
    assert headers["Content-Range"] == f"bytes 10-19/{tracks[1].stat().st_size}"
    base = server.url.rsplit("/", 2)[0]
    for path in (f"{base}/", f"{base}/data", f"{base}/wrongtoken/data",
                 server.url + "audio/3", server.url + "audio/../../etc/passwd",
                 server.url + str(tracks[0])):
        assert _get(path)[0] == 404, path
