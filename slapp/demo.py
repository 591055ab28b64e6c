"""A synthetic, labelled music collection to run the whole pipeline on: ``python -m
slapp.demo OUTPUT_DIR``.

Everything is synthesised from a seed (no download, no sample library), so the same seed
gives the same MP3 files on every machine. Five styles differ in tempo, metre, rhythm
pattern, timbre and harmony; inside a style every track draws its own key, tempo, mix,
instrument details and length (12-24 s). The styles overlap on purpose — tempo ranges
are shared, and each of a track's drums, bass and harmony is, one time in three, the
neighbouring style's (techno → funk → rock → techno, waltz ↔ ambient) — so a model needs
several epochs to learn them and still hesitates on some tracks:

==========  =========  ===================================================================
style       tempo      what plays
==========  =========  ===================================================================
techno      112-132    four-on-the-floor kick, off-beat hi-hats (not always), saw bass,
                       MINOR stabs
ambient     64-100     slow detuned pads, bell notes, soft noise wash; sometimes a soft
                       kick pulse
funk        96-122     syncopated kick/snare, 16th hats, plucked bass, dominant 7th chords
waltz       88-124     3/4 time: plucked arpeggios on the bar, light tick, MAJOR harmony;
                       sometimes a light snare
rock        104-140    back-beat snare, crash, power chords with more or less distortion,
                       root-note bass
==========  =========  ===================================================================

Writes ``OUTPUT_DIR/labelled/<style>/<style>_NN.mp3`` (the training collection) and
``OUTPUT_DIR/unseen/<style>/<style>_unseen_N.mp3`` (tracks drawn with another seed,
for ``predict_track.py --evaluate``, which compares labels with folder names). Existing files are kept, so a re-run only adds what is missing.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from slapp.store.atomic import atomic_write
from slapp.store.layout import DEMO_FOLDER

SAMPLE_RATE = 22050
STYLES = ("techno", "ambient", "funk", "waltz", "rock")
# tempo ranges overlap, so tempo alone never tells two styles apart
TEMPO = {"techno": (112, 132), "ambient": (64, 100), "funk": (96, 122), "waltz": (88, 124),
         "rock": (104, 140)}
# each of a track's drums, bass and harmony is, with this probability, the neighbouring
# style's
NEIGHBOUR = {"techno": "funk", "funk": "rock", "rock": "techno", "waltz": "ambient",
             "ambient": "waltz"}
BORROW_PROBABILITY = 0.2
SECONDS = (10.0, 20.0)


def _t(n: int) -> np.ndarray:
    return np.arange(n) / SAMPLE_RATE


def _env(n: int, attack: float, decay: float) -> np.ndarray:
    """Attack then exponential decay (seconds), ``(n,)``."""
    t = _t(n)
    a = np.minimum(1.0, t / max(attack, 1e-4))
    return a * np.exp(-np.maximum(t - attack, 0) / max(decay, 1e-4))


def _kick(rng, n):
    t = _t(n)
    f = 50 + 90 * np.exp(-t * 30)
    return np.sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE) * _env(n, 0.002, 0.12)


def _snare(rng, n):
    return (0.6 * rng.standard_normal(n) + 0.4 * np.sin(2 * np.pi * 190 * _t(n))) * _env(
        n, 0.001, 0.08)


def _hat(rng, n):
    noise = rng.standard_normal(n)
    noise = np.diff(noise, prepend=0)  # brighter
    return 0.5 * noise * _env(n, 0.001, 0.025)


def _saw(freq, n, detune=0.0):
    t = _t(n)
    out = 2 * ((freq * (1 + detune) * t) % 1.0) - 1
    return out


def _pluck(rng, freq, n, damping=0.996):
    """Karplus-Strong plucked string."""
    period = max(2, int(SAMPLE_RATE / freq))
    buf = rng.uniform(-1, 1, period)
    out = np.empty(n)
    for start in range(0, n, period):
        stop = min(n, start + period)
        out[start:stop] = buf[:stop - start]
        buf = damping * 0.5 * (buf + np.roll(buf, -1))
    return out


def _pad(freqs, n, rng):
    t = _t(n)
    out = np.zeros(n)
    for f in freqs:
        for d in (-0.004, 0.0, 0.005):
            out += np.sin(2 * np.pi * f * (1 + d) * t + rng.uniform(0, 2 * np.pi))
    return out / (3 * len(freqs))


def _place(track, sound, at):
    at = int(at)
    if at >= len(track):
        return
    end = min(len(track), at + len(sound))
    track[at:end] += sound[:end - at]


def _midi(note):
    return 440.0 * 2 ** ((note - 69) / 12)


MINOR = [0, 3, 7, 10]
MAJOR = [0, 4, 7, 11]


def _techno(rng, n: int, beat: float, root: int, optional: bool):
    """The techno layers ``(drums, bass, harmony, extra)``, each ``(n,)``."""
    drums, bass, harm, extra = (np.zeros(n) for _ in range(4))
    n_beats = int(n / beat) + 1
    for b in range(n_beats):
        _place(drums, _kick(rng, int(0.3 * SAMPLE_RATE)), b * beat)
        if not optional:
            _place(drums, 0.5 * _hat(rng, 2000), (b + 0.5) * beat)
        if rng.random() < 0.3:
            _place(drums, 0.3 * _hat(rng, 1500), (b + 0.75) * beat)
        note = root + int(rng.choice([0, 0, 0, 12, 7]))
        s = _saw(_midi(note), int(beat / 2)) * _env(int(beat / 2), 0.005, 0.1)
        _place(bass, s, (b + 0.5) * beat)
        if b % 4 == 2:
            chord = [_midi(root + 24 + i) for i in MINOR[:3]]
            _place(harm, sum(_saw(f, int(beat / 3)) for f in chord) / 3
                   * _env(int(beat / 3), 0.005, 0.08), b * beat)
    return drums, bass, harm, extra


def _ambient(rng, n: int, beat: float, root: int, optional: bool):
    """The ambient layers ``(drums, bass, harmony, extra)``, each ``(n,)``."""
    drums, bass, harm, extra = (np.zeros(n) for _ in range(4))
    n_beats = int(n / beat) + 1
    bar = 4 * beat
    for k in range(int(n / bar) + 1):
        degree = int(rng.choice([0, 5, 7, 3, -2]))
        chord = [_midi(root + 12 + degree + i) for i in (MAJOR if rng.random() < .5
                                                          else MINOR)[:3]]
        length = int(bar * 1.5)
        env = np.sin(np.pi * np.linspace(0, 1, length)) ** 2
        _place(harm, _pad(chord, length, rng) * env, k * bar)
        if rng.random() < 0.6:
            f = _midi(root + 36 + int(rng.choice(MAJOR)))
            m = int(2.5 * SAMPLE_RATE)
            _place(extra, np.sin(2 * np.pi * f * _t(m)) * _env(m, 0.01, 0.8),
                   k * bar + rng.uniform(0, bar))
    drums = 0.05 * np.convolve(rng.standard_normal(n), np.ones(40) / 40, mode="same")
    if optional:
        for b in range(0, n_beats, 2):
            _place(drums, 0.4 * _kick(rng, int(0.3 * SAMPLE_RATE)), b * beat)
    return drums, bass, harm, extra


def _funk(rng, n: int, beat: float, root: int, optional: bool):
    """The funk layers ``(drums, bass, harmony, extra)``, each ``(n,)``."""
    drums, bass, harm, extra = (np.zeros(n) for _ in range(4))
    n_beats = int(n / beat) + 1
    kick_pat = [0, 0.75, 1.5, 2.5, 2.75]
    for bar in range(n_beats // 4 + 1):
        base = bar * 4 * beat
        for k in kick_pat:
            _place(drums, _kick(rng, int(0.25 * SAMPLE_RATE)), base + k * beat)
        for k in (1, 3):
            _place(drums, 0.8 * _snare(rng, int(0.2 * SAMPLE_RATE)), base + k * beat)
        for k in range(16):
            _place(drums, (0.35 if k % 2 else 0.2) * _hat(rng, 1200), base + k * beat / 4)
        for k in (0, 0.75, 1.5, 2, 2.5, 3.25):
            note = root + int(rng.choice([0, 7, 10, 12, 5]))
            m = int(beat * 0.4)
            _place(bass, _pluck(rng, _midi(note), m, 0.99), base + k * beat)
        chord = [_midi(root + 24 + i) for i in (0, 4, 7, 10)]
        for k in (0.5, 2.5):
            m = int(beat * 0.25)
            _place(harm, sum(_saw(f, m) for f in chord) / 4 * _env(m, 0.002, 0.05),
                   base + k * beat)
    return drums, bass, harm, extra


def _waltz(rng, n: int, beat: float, root: int, optional: bool):
    """The waltz layers ``(drums, bass, harmony, extra)``, each ``(n,)``."""
    drums, bass, harm, extra = (np.zeros(n) for _ in range(4))
    n_beats = int(n / beat) + 1
    for bar in range(n_beats // 3 + 1):
        base = bar * 3 * beat
        degree = int(rng.choice([0, 5, 7, 0]))
        _place(bass, _pluck(rng, _midi(root + degree), int(beat * 1.5), 0.997), base)
        for k in range(6):
            note = root + 24 + degree + MAJOR[:3][k % 3] + 12 * (k // 3)
            _place(harm, 0.6 * _pluck(rng, _midi(note), int(beat), 0.996),
                   base + k * beat / 2)
        for k in (1, 2):
            _place(drums, 0.25 * _hat(rng, 800), base + k * beat)
            if optional:
                _place(drums, 0.3 * _snare(rng, 3000), base + k * beat)
    return drums, bass, harm, extra


def _rock(rng, n: int, beat: float, root: int, optional: bool):
    """The rock layers ``(drums, bass, harmony, extra)``, each ``(n,)``."""
    drums, bass, harm, extra = (np.zeros(n) for _ in range(4))
    n_beats = int(n / beat) + 1
    drive = rng.uniform(1.5, 6.0)
    for b in range(n_beats):
        if b % 2 == 0:
            _place(drums, _kick(rng, int(0.25 * SAMPLE_RATE)), b * beat)
        else:
            _place(drums, _snare(rng, int(0.25 * SAMPLE_RATE)), b * beat)
        _place(drums, 0.3 * _hat(rng, 1500), (b + 0.5) * beat)
        if b % 16 == 0:
            _place(drums, 0.5 * rng.standard_normal(int(SAMPLE_RATE)) * _env(
                int(SAMPLE_RATE), 0.001, 0.4), b * beat)
    for bar in range(n_beats // 4 + 1):
        degree = int(rng.choice([0, 5, 7, 3, 10]))
        m = int(4 * beat)
        chord = sum(_saw(_midi(root + 12 + degree + i), m, rng.uniform(-.003, .003))
                    for i in (0, 7, 12))
        _place(harm, np.tanh(drive * chord) * 0.5, bar * 4 * beat)
        _place(bass, 0.6 * _saw(_midi(root + degree), m), bar * 4 * beat)
    return drums, bass, harm, extra


_LAYERS = {"techno": _techno, "ambient": _ambient, "funk": _funk, "waltz": _waltz, "rock": _rock}


def synthesize(style: str, seed: int) -> np.ndarray:
    """One track of ``style``: ``(n_samples,)`` float32 mono at 22050 Hz, peak ≈ -1 dBFS."""
    rng = np.random.default_rng([seed, zlib.crc32(style.encode())])
    seconds = float(rng.uniform(*SECONDS))
    n = int(seconds * SAMPLE_RATE)
    bpm = rng.uniform(*TEMPO[style])
    beat = 60.0 / bpm * SAMPLE_RATE
    root = int(rng.integers(36, 48))  # bass root, MIDI
    optional = rng.random() < 0.35  # a style-specific layer left out or added
    drums, bass, harm, extra = _LAYERS[style](rng, n, beat, root, optional)
    borrow = rng.random(3) < BORROW_PROBABILITY  # styles overlap: the neighbour's layers
    if borrow.any():
        borrowed = _LAYERS[NEIGHBOUR[style]](rng, n, beat, root, optional)
        drums, bass, harm = [borrowed[i] if borrow[i] else layer
                             for i, layer in enumerate((drums, bass, harm))]
    mix = rng.uniform(0.3, 1.0, 4)
    y = mix[0] * drums + mix[1] * bass + mix[2] * harm + mix[3] * extra
    y = y / np.max(np.abs(y))
    y += 10 ** (rng.uniform(-45, -25) / 20) * rng.standard_normal(n)  # hiss
    fade = min(n // 4, SAMPLE_RATE)
    y[:fade] *= np.linspace(0, 1, fade)
    y[-fade:] *= np.linspace(1, 0, fade)
    return (0.89 * y / np.max(np.abs(y))).astype(np.float32)


def _write_mp3(path: Path, y: np.ndarray) -> None:
    buf = io.BytesIO()
    sf.write(buf, y, SAMPLE_RATE, format="MP3")
    data = buf.getvalue()
    atomic_write(path, lambda f: f.write(data))


def _write_track(job: tuple[Path, str, int]) -> None:
    path, style, track_seed = job
    _write_mp3(path, synthesize(style, track_seed))


def make_demo(out: str | Path, *, per_style: int = 12, unseen_per_style: int = 2,
              seed: int = 0, workers: int | None = None) -> dict:
    """Write the demo collection under ``out`` (``workers`` processes, default: every
    core); return counts of written/kept files."""
    out = Path(out)
    jobs = [(out / "labelled" / s / f"{s}_{i:02d}.mp3", s, seed * 10007 + i)
            for s in STYLES for i in range(per_style)]
    jobs += [(out / "unseen" / s / f"{s}_unseen_{i}.mp3", s, seed * 10007 + 5000 + i)
             for s in STYLES for i in range(unseen_per_style)]
    todo = [job for job in jobs if not job[0].exists()]
    workers = min(workers or os.cpu_count() or 1, len(todo))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_track, todo))
    else:
        for job in todo:
            _write_track(job)
    return {"written": len(todo), "kept": len(jobs) - len(todo), "total": len(jobs)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m slapp.demo",
        description="Synthesise the demo collection (synthetic music, not recordings): "
                    "OUTPUT_DIR/labelled/<style>/*.mp3 to train on and "
                    "OUTPUT_DIR/unseen/<style>/*.mp3 to label. Deterministic for a seed; existing "
                    "files are kept.")
    parser.add_argument("output_dir", help="folder to write (e.g. demo_music)")
    parser.add_argument("--per-style", type=int, default=12, help="labelled tracks per style")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    counts = make_demo(args.output_dir, per_style=args.per_style, seed=args.seed)
    print(f"demo music in {Path(args.output_dir).resolve()}: {counts['written']} file(s) "
          f"written, {counts['kept']} already there ({len(STYLES)} synthetic styles: "
          f"{', '.join(STYLES)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
