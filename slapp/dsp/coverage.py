"""What the training audio looked like, and whether a new track falls outside it.

Stage 3 records, from the build manifest's training tracks, their source sample rates,
effective bandwidths and loudness (:mod:`slapp.dsp.levels`) in ``bundle.json``
(``training_audio``). Prediction measures each input the same way and, when it falls
outside that range, adds a note to the track's row: the label is less reliable there.
"""

from __future__ import annotations

import numpy as np

BANDWIDTH_TOLERANCE = 0.9   # a track may stop 10 % below the training tracks' 5th percentile
LOUDNESS_MARGIN_DB = 3.0    # ... and be this much outside their loudness range


def training_range(entries: list[dict]) -> dict | None:
    """``{"tracks", "source_rates", "bandwidth_hz": {min, p05, median}, "loudness_db":
    {min, max}}`` of build-manifest entries that carry a profile; None if none does."""
    rows = [e for e in entries if "bandwidth_hz" in e and "loudness_db" in e]
    if not rows:
        return None
    bw = np.array([e["bandwidth_hz"] for e in rows], np.float64)
    loud = np.array([e["loudness_db"] for e in rows], np.float64)
    loud = loud[np.isfinite(loud)]
    return {"tracks": len(rows),
            "source_rates": sorted({int(e["source_rate"]) for e in rows if "source_rate" in e}),
            "bandwidth_hz": {"min": round(float(bw.min()), 1),
                             "p05": round(float(np.percentile(bw, 5)), 1),
                             "median": round(float(np.median(bw)), 1)},
            "loudness_db": ({"min": round(float(loud.min()), 2),
                             "max": round(float(loud.max()), 2)} if len(loud) else None)}


def model_band_hz(sample_rate: int, fmax: float | None) -> float:
    """The highest frequency (Hz) the features look at: ``fmax`` or Nyquist."""
    nyquist = sample_rate / 2
    return nyquist if fmax is None else min(fmax, nyquist)


def range_notes(*, bandwidth_hz: float, loudness_db: float, trained: dict | None,
                band_hz: float, levelled: bool) -> list[str]:
    """Notes for a track whose bandwidth or loudness lies outside ``trained`` (a
    :func:`training_range`); empty when it is inside or nothing was recorded.

    Bandwidth counts only up to ``band_hz``, what the model sees (:func:`model_band_hz`);
    loudness only when the tracks are not all ``levelled`` to one loudness anyway."""
    if not trained:
        return []
    notes = []
    known = min(trained["bandwidth_hz"]["p05"], band_hz)
    if bandwidth_hz < BANDWIDTH_TOLERANCE * known:
        notes.append(f"content stops at {bandwidth_hz / 1000:.1f} kHz; the model was "
                     f"trained on audio up to {known / 1000:.1f} kHz: this label is less "
                     "reliable")
    loud = trained.get("loudness_db")
    if loud and not levelled and np.isfinite(loudness_db):
        lo, hi = loud["min"] - LOUDNESS_MARGIN_DB, loud["max"] + LOUDNESS_MARGIN_DB
        if not lo <= loudness_db <= hi:
            notes.append(f"loudness {loudness_db:.0f} dBFS is outside the training range "
                         f"({loud['min']:.0f} to {loud['max']:.0f} dBFS): this label is "
                         "less reliable")
    return notes
