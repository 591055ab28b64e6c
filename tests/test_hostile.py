"""Folders as real collections look: odd names, clutter, files that change or vanish,
links, damaged files, full disks. Each case checks the message, the exit status, what
was still processed, and that nothing written before was lost."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest

from conftest import TINY, make_dataset, run_stages, tone, write_audio, write_params
from slapp.store.layout import BuildLayout

LATIN1 = os.fsdecode(b"caf\xe9.wav")  # a Latin-1 name: not UTF-8, kept raw by Linux


def _build(params, capsys, *extra):
    import build_dataset

    code = build_dataset.main(["--params", str(params), "--quiet", *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _manifest(out):
    return json.loads((out / "build_manifest.json").read_text())["tracks"]


@pytest.fixture
def music(tmp_path):
    return make_dataset(tmp_path / "music", per_class=4, seconds=2.0)


@pytest.fixture
def params(tmp_path, music):
    return write_params(tmp_path / "p.json", music, tmp_path / "out", **TINY)


# --- names -----------------------------------------------------------------------------

def test_non_utf8_file_name_goes_through_every_stage(tmp_path, music, params, capsys):
    shutil.move(music / "bass" / "bass_0.wav", os.path.join(music / "bass", LATIN1))
    code, text = _build(params, capsys)
    assert code == 0 and "0 failed" in text
    key = "bass/caf\\xe9.wav"  # readable everywhere: the byte as an escape
    assert _manifest(tmp_path / "out")[key]["status"] == "done"
    split = json.loads((tmp_path / "out" / "train_val_test_dict.json").read_text())
    assert key in [k for part in split["bass"].values() for k in part]
    run_stages(params, "process", "train")
    import predict_track

    out = tmp_path / "labels.csv"
    assert predict_track.main(["--params", str(params), "--quiet", "--output", str(out),
                               str(music / "bass")]) == 0
    text = capsys.readouterr().out
    assert "caf\\xe9.wav" in text and "caf\\xe9.wav" in out.read_text(encoding="utf-8")


def test_non_utf8_class_folder_is_a_class_with_a_readable_name(tmp_path, music, params,
                                                               capsys):
    os.rename(music / "treble", os.path.join(music, os.fsdecode(b"tr\xe8ble")))
    code, text = _build(params, capsys)
    assert code == 0
    info = json.loads((tmp_path / "out" / "build_info.json").read_text())
    assert info["classes"] == ["bass", "mid", "tr\\xe8ble"]


def test_names_differing_only_in_case_are_two_tracks(tmp_path, music, params, capsys):
    shutil.copy(music / "mid" / "mid_0.wav", music / "mid" / "MID_0.wav")
    code, _ = _build(params, capsys)
    entries = _manifest(tmp_path / "out")
    assert code == 0 and entries["mid/MID_0.wav"]["status"] == "done"
    assert entries["mid/mid_0.wav"]["status"] == "done"


def test_a_very_long_file_name_is_built(tmp_path, music, params, capsys):
    long_name = "x" * 240 + ".wav"  # 244 bytes: the file system's limit is 255
    shutil.copy(music / "mid" / "mid_1.wav", music / "mid" / long_name)
    code, text = _build(params, capsys)
    assert code == 0 and "0 failed" in text
    assert _manifest(tmp_path / "out")[f"mid/{long_name}"]["status"] == "done"


# --- clutter ---------------------------------------------------------------------------

def test_system_folders_and_files_are_ignored_and_listed(tmp_path, music, params, capsys):
    for folder in ("__MACOSX", "$RECYCLE.BIN", "System Volume Information", "@eaDir"):
        write_audio(music / folder / "junk.wav", tone(1.0), 22050)
    write_audio(music / "bass" / "@eaDir" / "thumb.wav", tone(1.0), 22050)
    (music / "bass" / "Thumbs.db").write_bytes(b"\0" * 100)
    (music / "mid" / "desktop.ini").write_text("[.ShellClassInfo]")
    (music / "mid" / "._mid_0.wav").write_bytes(b"\0\5\26\7" + b"\0" * 80)  # AppleDouble
    code, text = _build(params, capsys)
    assert code == 0 and "0 failed" in text
    info = json.loads((tmp_path / "out" / "build_info.json").read_text())
    assert info["classes"] == ["bass", "mid", "treble"]
    assert len(_manifest(tmp_path / "out")) == 12
    assert ("ignored 8 system folders/files ($RECYCLE.BIN, @eaDir, System Volume "
            "Information, __MACOSX, bass/@eaDir and 3 more)") in text


def test_a_class_folder_that_is_a_symlink_is_a_class(tmp_path, music, params, capsys):
    elsewhere = tmp_path / "elsewhere"
    shutil.move(music / "treble", elsewhere)
    os.symlink(elsewhere, music / "treble")
    code, _ = _build(params, capsys)
    assert code == 0 and _manifest(tmp_path / "out")["treble/treble_2.wav"]["status"] == "done"


def test_symlinked_and_hard_linked_tracks_are_built_under_their_own_names(
        tmp_path, music, params, capsys):
    os.symlink(music / "bass" / "bass_0.wav", music / "bass" / "link.wav")
    os.link(music / "bass" / "bass_1.wav", music / "bass" / "hard.wav")
    code, _ = _build(params, capsys)
    entries = _manifest(tmp_path / "out")
    assert code == 0 and entries["bass/link.wav"]["status"] == "done"
    assert entries["bass/hard.wav"]["snippets"] == entries["bass/bass_1.wav"]["snippets"]


def test_a_broken_symlink_is_one_failed_track(tmp_path, music, params, capsys):
    os.symlink(tmp_path / "nowhere.wav", music / "mid" / "gone.wav")
    code, text = _build(params, capsys)
    assert code == 0
    assert _manifest(tmp_path / "out")["mid/gone.wav"] == {
        "status": "failed", "reason": "the file disappeared during the run", "split":
        _manifest(tmp_path / "out")["mid/gone.wav"]["split"]}
    assert "12 cached now" in text


def test_read_only_input_folder_builds(tmp_path, music, params, capsys):
    for dirpath, _, files in os.walk(music):
        for name in files:
            os.chmod(os.path.join(dirpath, name), 0o444)
        os.chmod(dirpath, 0o555)
    try:
        code, text = _build(params, capsys)
    finally:
        for dirpath, _, _ in os.walk(music):
            os.chmod(dirpath, 0o755)
    assert code == 0 and "12 cached now" in text


# --- files that change or vanish -------------------------------------------------------

def test_a_track_replaced_in_place_is_rebuilt_and_later_stages_notice(
        tmp_path, music, params, capsys):
    run_stages(params, "build", "process")
    layout = BuildLayout(tmp_path / "out")
    from slapp.store.cache import read_track

    before, _ = read_track(layout, "mid/mid_1.wav")
    # same length (same snippet count): only the recorded source stamp tells stage 2
    write_audio(music / "mid" / "mid_1.wav", tone(2.25, sr=22050, freq=3000.0, seed=9), 22050)
    code, text = _build(params, capsys)
    assert code == 0
    assert "rebuilt 1 track(s) whose file changed since it was cached: mid/mid_1.wav" in text
    assert "1 cached now, 11 already cached" in text
    after, _ = read_track(layout, "mid/mid_1.wav")
    assert after.shape != before.shape or not np.allclose(after, before)
    import process_dataset

    assert process_dataset.main(["--params", str(params), "--quiet"]) == 0
    assert "nothing to do" not in capsys.readouterr().out  # the arrays were remade
    code, text = _build(params, capsys)
    assert "rebuilt" not in text and "0 cached now, 12 already cached" in text


def test_a_track_whose_file_is_gone_is_reported(tmp_path, music, params, capsys):
    run_stages(params, "build")
    (music / "bass" / "bass_2.wav").unlink()
    code, text = _build(params, capsys, "--resplit")
    assert code == 0
    assert "1 cached track(s) whose file is gone (no longer used): bass/bass_2.wav" in text
    assert "bass/bass_2.wav" not in _manifest(tmp_path / "out")


def test_a_file_vanishing_during_the_run_fails_alone(tmp_path, music, params, capsys,
                                                     monkeypatch):
    import slapp.stages.build.dataset as build

    real = build.find_tracks

    def scan_then_delete(root, **kw):
        found = real(root, **kw)
        (music / "treble" / "treble_0.wav").unlink()
        return found

    monkeypatch.setattr(build, "find_tracks", scan_then_delete)
    code, text = _build(params, capsys)
    assert code == 0
    assert "treble/treble_0.wav: the file disappeared during the run" in text
    assert "11 cached now" in text


# --- containers, codecs, tags ----------------------------------------------------------

def test_mp3_with_a_huge_id3_picture_decodes(tmp_path, music, params, capsys):
    mp3 = write_audio(tmp_path / "plain.mp3", tone(2.0, sr=22050, seed=5), 22050)
    picture = b"\xff\xd8\xff\xe0" + os.urandom(3_000_000)  # a 3 MB "JPEG"
    frame = b"APIC" + _syncsafe(len(picture) + 14) + b"\0\0" + b"\0image/jpeg\0\3\0" + picture
    tag = b"ID3\4\0\0" + _syncsafe(len(frame)) + frame
    (music / "bass" / "tagged.mp3").write_bytes(tag + mp3.read_bytes())
    code, _ = _build(params, capsys)
    entry = _manifest(tmp_path / "out")["bass/tagged.mp3"]
    assert code == 0 and entry["status"] == "done" and abs(entry["seconds"] - 2.0) < 0.15


def _syncsafe(n: int) -> bytes:
    return bytes([(n >> 21) & 127, (n >> 14) & 127, (n >> 7) & 127, n & 127])


def test_vbr_mp3_made_by_ffmpeg_decodes_to_its_length(tmp_path, music, params, capsys):
    import subprocess

    import imageio_ffmpeg

    wav = write_audio(tmp_path / "src.wav", tone(3.0, sr=44100, seed=6), 44100)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(wav),
                    "-codec:a", "libmp3lame", "-q:a", "5", str(music / "mid" / "vbr.mp3")],
                   check=True)
    code, _ = _build(params, capsys)
    entry = _manifest(tmp_path / "out")["mid/vbr.mp3"]
    assert code == 0 and entry["status"] == "done" and abs(entry["seconds"] - 3.0) < 0.1


def test_wav_content_behind_an_mp3_extension_decodes(tmp_path, music, params, capsys):
    shutil.copy(music / "mid" / "mid_2.wav", music / "mid" / "really_wav.mp3")
    code, _ = _build(params, capsys)
    assert code == 0 and _manifest(tmp_path / "out")["mid/really_wav.mp3"]["status"] == "done"


def test_zero_byte_and_garbage_files_fail_alone_with_reasons(tmp_path, music, params, capsys):
    (music / "bass" / "empty.mp3").write_bytes(b"")
    (music / "bass" / "noise.flac").write_bytes(os.urandom(5000))
    code, text = _build(params, capsys)
    assert code == 0 and "2 failed" in text and "12 cached now" in text
    entries = _manifest(tmp_path / "out")
    assert entries["bass/empty.mp3"]["reason"] == "empty file (0 bytes)"
    assert "not a readable audio file" in entries["bass/noise.flac"]["reason"]



def test_a_pipe_a_device_or_a_link_loop_named_like_audio_fails_alone_and_never_blocks(
        tmp_path, music, params, capsys):
    os.mkfifo(music / "bass" / "pipe.mp3")               # no writer: reading it blocks
    os.symlink("/dev/zero", music / "mid" / "zero.wav")  # a read that never ends
    (music / "mid" / "folder.mp3").mkdir()               # a folder named like a track
    os.symlink("loop_b.wav", music / "treble" / "loop_a.wav")  # a link with no end
    os.symlink("loop_a.wav", music / "treble" / "loop_b.wav")
    def hung(signum, frame):
        raise TimeoutError("the build blocked on a pipe or an endless device")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        code, text = _build(params, capsys)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert code == 0 and "4 failed" in text and "12 cached now" in text
    entries = _manifest(tmp_path / "out")
    assert entries["treble/loop_a.wav"]["reason"] == (
        "a symbolic link that loops back on itself (no file at its end): fix or remove the link")
    assert entries["bass/pipe.mp3"]["reason"] == (
        "not a file but a named pipe (FIFO): slapp reads audio files only")
    assert entries["mid/zero.wav"]["reason"] == (
        "not a file but a character device: slapp reads audio files only")

# --- full disk, locks, damaged outputs -------------------------------------------------

def _disk_full(monkeypatch):
    import slapp.store.atomic as atomic

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)


def test_a_full_disk_while_predicting_is_one_clear_error(trained, tmp_path, capsys,
                                                         monkeypatch):
    """(The shared trained bundle: only the output file is written.)"""
    import predict_track

    root, params = trained
    out = tmp_path / "l.csv"
    _disk_full(monkeypatch)
    code = predict_track.main(["--params", str(params), "--quiet", "--output", str(out),
                               str(root / "music" / "bass")])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "No space left on device" in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("stage", ["build", "process"])
def test_a_full_disk_is_one_clear_error_and_keeps_what_was_written(
        tmp_path, music, params, capsys, monkeypatch, stage):
    run_stages(params, *{"build": ["build"], "process": ["build"]}[stage])
    if stage == "build":  # one more track to write: the disk is full by then
        shutil.copy(music / "mid" / "mid_0.wav", music / "mid" / "new.wav")
    cached = sorted(p.name for p in (tmp_path / "out" / "cache").rglob("*.npz"))
    import build_dataset
    import process_dataset

    _disk_full(monkeypatch)
    if stage == "build":
        code = build_dataset.main(["--params", str(params), "--quiet"])
    else:
        code = process_dataset.main(["--params", str(params), "--quiet"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "No space left on device" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out" / "cache").rglob("*.npz")) == cached


def test_two_runs_at_the_same_instant_the_refused_one_names_the_holder(tmp_path):
    """The race: the holder has the lock but has not written its name yet."""
    from filelock import FileLock

    from slapp.errors import StageError
    from slapp.store.lock import LOCK_NAME, output_lock
    from slapp.store.atomic import write_json

    folder = tmp_path / "out"
    folder.mkdir()
    lock = FileLock(str(folder / LOCK_NAME))
    lock.acquire()
    late = threading.Timer(0.5, write_json, (folder / (LOCK_NAME + ".owner"), {
        "stage": "train_crnn.py", "pid": os.getpid(), "since": "2026-11-21 10:00:00"}))
    late.start()
    with pytest.raises(StageError, match=r"in use by another slapp run \(train_crnn.py, pid "
                                         rf"{os.getpid()}, since 2026-11-21 10:00:00\)"):
        with output_lock(folder, "build_dataset.py"):
            pass
    late.join()
    lock.release()


def test_a_stale_owner_name_is_never_shown(tmp_path, monkeypatch):
    """The owner file of a finished run is removed; one left by a killed process (dead
    pid) is not believed."""
    from filelock import FileLock

    import slapp.store.lock as lock_mod
    from slapp.store.atomic import write_json
    from slapp.errors import StageError

    folder = tmp_path / "out"
    with lock_mod.output_lock(folder, "build_dataset.py"):
        assert (folder / (lock_mod.LOCK_NAME + ".owner")).exists()
    assert not (folder / (lock_mod.LOCK_NAME + ".owner")).exists()
    write_json(folder / (lock_mod.LOCK_NAME + ".owner"),
               {"stage": "old.py", "pid": 2 ** 22 + 12345, "since": "yesterday"})
    monkeypatch.setattr(lock_mod, "OWNER_WAIT_S", 0.3)
    held = FileLock(str(folder / lock_mod.LOCK_NAME))
    held.acquire()
    try:
        with pytest.raises(StageError) as info:
            with lock_mod.output_lock(folder, "build_dataset.py"):
                pass
    finally:
        held.release()
    assert "old.py" not in str(info.value)
    assert "(it has not written its name: it may be on another machine)" in str(info.value)


@pytest.mark.parametrize("damage, how", [("truncated", "--engine keras"),
                                         ("empty", "--engine keras"), ("text", "no onnx")])
def test_a_damaged_model_file_says_it_exists_but_cannot_be_read(trained, tmp_path, capsys,
                                                                damage, how):
    """model.keras is read by --engine keras, and to make the portable copy of a bundle
    that has none; the portable copy alone labels without it."""
    import predict_track

    root, _ = trained
    bundle = tmp_path / "model"
    shutil.copytree(root / "out" / "model", bundle)
    model = bundle / "model.keras"
    data = model.read_bytes()
    model.write_bytes({"truncated": data[:len(data) // 2], "empty": b"",
                       "text": b"not a model"}[damage])
    args = ["--quiet", "--model", str(bundle), "--params", str(tmp_path / "none.json"),
            str(root / "music" / "bass")]
    assert predict_track.main(args) == 0  # the portable copy labels
    capsys.readouterr()
    if how == "no onnx":
        (bundle / "model.onnx").unlink()
    code = predict_track.main(args + (["--engine", "keras"] if how != "no onnx" else []))
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert (f"Model file '{model}' exists ({model.stat().st_size} bytes) but cannot be read: "
            "it is damaged or incomplete") in err
    assert "File not found" not in err


def test_running_a_finished_build_again_changes_nothing(tmp_path, music, params,
                                                        capsys):
    """A re-run after a finished build changes nothing on disk (same bytes)."""
    run_stages(params, "build")
    cache = tmp_path / "out" / "cache"
    before = {p: p.read_bytes() for p in cache.rglob("*.npz")}
    time.sleep(0.01)
    code, text = _build(params, capsys)
    assert code == 0 and "0 cached now, 12 already cached" in text
    assert {p: p.read_bytes() for p in cache.rglob("*.npz")} == before


def test_an_output_folder_inside_the_input_folder_is_never_read_as_music(tmp_path, music,
                                                                         capsys):
    params = write_params(tmp_path / "inside.json", music, music / "slapp-out", **TINY)
    code, text = _build(params, capsys)
    assert code == 0 and "12 cached now" in text
    (music / "slapp-out" / "model").mkdir()  # and a bundle there, as stage 3 leaves it
    code, text = _build(params, capsys)  # the folder now exists: not a third class
    assert code == 0, text
    assert f"output folder '{(music / 'slapp-out').resolve()}' lies inside the input folder" \
        in text
    assert "0 cached now, 12 already cached" in text
    info = json.loads((music / "slapp-out" / "build_info.json").read_text())
    assert info["classes"] == ["bass", "mid", "treble"]


# --- files whose name or header lies ----------------------------------------------------

def _ffmpeg(*args):
    import subprocess

    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", *args],
                   check=True)


def test_an_aac_stream_named_mp3_is_recognised_by_its_content(tmp_path, music, params,
                                                              capsys):
    liar = music / "mid" / "phone_recording.mp3"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=600:duration=4", "-ar", "44100",
            "-c:a", "aac", "-b:a", "96k", "-f", "adts", str(liar))
    code, text = _build(params, capsys)
    assert code == 0 and "0 failed" in text
    entry = _manifest(tmp_path / "out")["mid/phone_recording.mp3"]
    assert entry["status"] == "done" and entry["seconds"] == pytest.approx(4.0, abs=0.1)
    assert entry["notes"][0] == ("its content is AAC (ADTS), not the MP3 its name says: "
                                 "decoded as AAC (ADTS)")


def test_an_mp3_that_changes_format_midway_is_decoded_whole(tmp_path, music, params,
                                                            capsys):
    parts = []
    for rate, freq in ((22050, 300), (44100, 500)):
        part = tmp_path / f"part{rate}.mp3"
        _ffmpeg("-f", "lavfi", "-i", f"sine=frequency={freq}:duration=3", "-ar", str(rate),
                "-b:a", "64k", str(part))
        parts.append(part.read_bytes())
    (music / "mid" / "joined.mp3").write_bytes(b"".join(parts))
    code, text = _build(params, capsys)
    assert code == 0 and "0 failed" in text
    entry = _manifest(tmp_path / "out")["mid/joined.mp3"]
    assert entry["seconds"] == pytest.approx(6.0, abs=0.15)  # not the first 3 s only
    assert "the MP3 decoder stopped after 3.0 s" in entry["notes"][0]


def test_two_predictions_writing_the_same_output_file_are_refused_one_line(tmp_path, music,
                                                                          params, capsys):
    from slapp.store.lock import file_lock
    import predict_track

    run_stages(params, "build", "process", "train")
    out = tmp_path / "labels.csv"
    with file_lock(out, "predict_track.py"):  # another run holds it
        code = predict_track.main(["--params", str(params), "--quiet", "--output", str(out),
                                   str(music / "bass")])
        err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert err.strip() == (f"error: '{out}' is being written by another predict_track.py "
                           "run. Wait for it to finish or choose another output file.")
    assert predict_track.main(["--params", str(params), "--quiet", "--output", str(out),
                               str(music / "bass")]) == 0  # free again: it runs
    assert len(out.read_text().splitlines()) == 5  # header + 4 tracks


def test_audio_longer_than_the_limit_is_refused_while_decoding(tmp_path, music, params,
                                                               capsys, monkeypatch):
    """Whatever the header says: decoding stops at audio.MAX_HOURS (here 3 s) with a
    reason, and the other tracks go on."""
    import slapp.dsp.audio as audio

    monkeypatch.setattr(audio, "MAX_HOURS", 3 / 3600)
    monkeypatch.setattr(audio, "BLOCK_FRAMES", 4096)
    write_audio(music / "mid" / "endless.wav", tone(5.0, sr=22050, seed=3), 22050)
    code, text = _build(params, capsys)  # workers 1: in this process
    entry = _manifest(tmp_path / "out")["mid/endless.wav"]
    assert entry["status"] == "failed"
    assert entry["reason"].startswith("too long: more than 0.000833333 hours of audio")
    assert "12 cached now" in text
