"""Shared fixtures: seeded synthetic audio written as real files (MP3 included)."""

from __future__ import annotations

import json
import signal
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _user_cache(tmp_path_factory):
    """The user's cache folder (engine verdicts, OpenVINO's model cache) in a temp folder:
    the tests never read or write the real one."""
    import os

    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))
    yield
    if old is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = old

# Small, fast settings for tests: the CRNN, 1 s snippets, 0.5 s overlap, 32 mels.
FAST = {
    "audio": {"sample_rate": 16000},
    "slicing": {"snippet_seconds": 1.0, "overlap_seconds": 0.5, "max_snippets_per_track": 6,
                "min_track_seconds": 0.5},
    "features": {"n_fft": 512, "hop_length": 256, "n_mels": 32},
    "split": {"val_share": 0.25, "test_share": 0.25, "seed": 1},
    "model": {"backbone": "crnn"},  # the tests' default: tiny and quick to train
    "workers": 1,
}


def tone(seconds: float, *, sr: int = 22050, freq: float = 440.0, channels: int = 1,
         seed: int = 0, amp: float = 0.3) -> np.ndarray:
    """A seeded tone + noise, ``(n_samples, channels)`` float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = amp * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))
    y = y * (0.6 + 0.4 * np.sin(2 * np.pi * 2.0 * t))  # some movement over time
    return np.repeat(y[:, None], channels, axis=1).astype(np.float32)


def write_audio(path: Path, y: np.ndarray, sr: int) -> Path:
    """Write ``y`` with soundfile; the format follows the extension (MP3 included)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".mp3": "MP3", ".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".au": "AU"}[
        path.suffix.lower()]
    sf.write(str(path), y, sr, format=fmt)
    return path


def make_dataset(root: Path, *, classes=("bass", "mid", "treble"), per_class: int = 4,
                 seconds: float = 2.5, ext: str = ".wav") -> Path:
    """``root/<class>/<class>_<i><ext>``: tones whose pitch depends on the class."""
    freqs = {c: 110.0 * 4 ** i for i, c in enumerate(classes)}
    for c in classes:
        for i in range(per_class):
            y = tone(seconds + 0.25 * i, sr=22050, freq=freqs[c] * (1 + 0.03 * i),
                     seed=zlib.crc32(f"{c}{i}".encode()))
            write_audio(root / c / f"{c}_{i}{ext}", y, 22050)
    return root


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen_script(cmd: list[str], **kw) -> subprocess.Popen:
    """Start a script as a terminal would for Ctrl-C: with SIGINT at its default. (A
    process started in the background by a non-interactive shell — as some CI runners
    start the tests — inherits SIGINT *ignored*, and a SIGINT test would then wait for
    nothing.)"""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint, **kw)


def write_params(path: Path, input_dir: Path, output_dir: Path, **overrides) -> Path:
    """A parameters file with :data:`FAST` settings; ``overrides`` merge per section."""
    raw = json.loads(json.dumps(FAST))
    raw["paths"] = {"input_dir": str(input_dir), "output_dir": str(output_dir)}
    for section, values in overrides.items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    path.write_text(json.dumps(raw, indent=2))
    return path


@pytest.fixture(autouse=True, scope="session")
def _state_folder(tmp_path_factory):
    """Tag journals and other per-user state go to a temporary folder, not the home of
    whoever runs the tests (subprocesses inherit it)."""
    import os

    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))


@pytest.fixture
def dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "music")


@pytest.fixture
def params_file(tmp_path, dataset) -> Path:
    return write_params(tmp_path / "params.json", dataset, tmp_path / "out")


# A tiny CRNN and a few epochs: enough to test the stages, seconds to train.
TINY = {
    "model": {"crnn": {"conv_filters": [4, 8], "pool_sizes": [[2, 4], [2, 8]],
                       "recurrent_units": [8], "conv_dropout": 0.0, "recurrent_dropout": 0.0}},
    "training": {"batch_size": 8, "epochs": 3, "learning_rate": 0.01},
}


def run_stages(params_path: Path, *stages: str) -> None:
    """Run the given scripts' ``main`` in-process (``build``, ``process``, ``train``)."""
    import importlib

    names = {"build": "build_dataset", "process": "process_dataset", "train": "train_crnn"}
    for stage in stages:
        module = importlib.import_module(names[stage])
        code = module.main(["--params", str(params_path), "--quiet"])
        assert code == 0, f"{names[stage]}.py exited with {code}"


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A dataset, its parameters file and a trained tiny bundle (shared: do not modify;
    copy ``out/model`` first)."""
    root = tmp_path_factory.mktemp("trained")
    music = make_dataset(root / "music", per_class=6, seconds=3.0)
    params = write_params(root / "params.json", music, root / "out", **TINY)
    run_stages(params, "build", "process", "train")
    return root, params
