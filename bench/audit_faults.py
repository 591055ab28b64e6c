#!/usr/bin/env python3
"""The collection audit on real clips with planted faults: what it finds, what it misses.

A copy of gtzan-mini made of symbolic links (never the files themselves), plus planted
faults made with the imageio-ffmpeg binary:

- duplicates: a blues clip re-encoded at 64 kbps into ``rock/``; a jazz clip trimmed by
  5 s (and 4 dB quieter) into ``jazz/``; a pop clip resampled to 16 kHz into ``pop/``;
- wrong labels: three clips moved into the wrong class (found through their artist tags,
  a track whose artist has most tracks in another class, and by their sound: out-of-fold
  predictions on musicnn's embedding ranked by confident learning; the 64 kbps blues copy
  in ``rock/`` is a wrong label too, and counts as one there);
- a shortcut: every reggae clip converted to 44.1 kHz stereo.

Then ``build_dataset.py`` and ``audit_dataset.py`` run on it, and on gtzan-mini and
gtzan-other-artists as they are. Prints precision and recall per finding and the audit's
summaries.

Usage: python bench/audit_faults.py [--data ../shared/data] [--work /tmp/slapp-audit]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def ffmpeg(*args) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", *args],
                   check=True)


def plant(data: Path, music: Path) -> dict:
    """The planted copy of gtzan-mini; returns what was planted."""
    for src in sorted((data / "gtzan-mini").rglob("*.mp3")):
        dst = music / src.parent.name / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.parent.name != "reggae":
            dst.symlink_to(src.resolve())
        else:  # the shortcut: one class of another encoding
            ffmpeg("-i", str(src), "-ar", "44100", "-ac", "2", "-b:a", "192k", str(dst))
    mini = data / "gtzan-mini"
    ffmpeg("-i", str(mini / "blues/blues.00000.mp3"), "-b:a", "64k",
           str(music / "rock/planted_reencoded.mp3"))
    ffmpeg("-ss", "5", "-i", str(mini / "jazz/jazz.00001.mp3"), "-af", "volume=-4dB",
           str(music / "jazz/planted_trimmed.mp3"))
    ffmpeg("-i", str(mini / "pop/pop.00002.mp3"), "-ar", "16000",
           str(music / "pop/planted_16k.mp3"))
    moved = {"blues/blues.00003.mp3": "metal", "country/country.00004.mp3": "classical",
             "disco/disco.00005.mp3": "hiphop"}
    for key, target in moved.items():
        src = music / key
        shutil.move(src, music / target / f"moved_{src.name}")
    return {"duplicates": {frozenset({"blues/blues.00000.mp3", "rock/planted_reencoded.mp3"}),
                           frozenset({"jazz/jazz.00001.mp3", "jazz/planted_trimmed.mp3"}),
                           frozenset({"pop/pop.00002.mp3", "pop/planted_16k.mp3"})},
            "shortcuts": {"reggae"},
            "wrong labels": {f"{c}/moved_{Path(k).name}" for k, c in moved.items()}}


def run(script: str, params: Path) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / script), "--params", str(params),
                           "--quiet"], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return proc.stdout


def audit(music: Path, out: Path) -> tuple[dict, str]:
    params = out / "params.json"
    out.mkdir(parents=True, exist_ok=True)
    params.write_text(json.dumps({"paths": {"input_dir": str(music),
                                            "output_dir": str(out / "out")}}))
    run("build_dataset.py", params)
    text = run("audit_dataset.py", params)
    return json.loads((out / "out" / "audit.json").read_text()), text


def pr(found: set, planted: set) -> str:
    hit = len(found & planted)
    precision = hit / len(found) if found else float("nan")
    return (f"precision {precision:.2f} ({hit}/{len(found)}), recall "
            f"{hit / len(planted):.2f} ({hit}/{len(planted)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--work", default="/tmp/slapp-audit")
    args = parser.parse_args()
    data, work = Path(args.data), Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    planted = plant(data, work / "music")
    result, text = audit(work / "music", work / "planted")
    print(f"command: python bench/audit_faults.py --data {args.data}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores")
    found = {frozenset(t["key"] for t in g["tracks"]) for g in result["duplicates"]}
    print(f"duplicates: {pr(found, planted['duplicates'])}")
    flagged = {s.split(":")[0] for s in result["shortcuts"]}
    print(f"shortcuts: {pr(flagged, planted['shortcuts'])}")
    suspects = {s["key"] for s in result["wrong_folder_by_artist"]}
    print(f"wrong labels (by artist): {pr(suspects, planted['wrong labels'])}")
    by_sound = [s["key"] for s in result["wrong_label_by_sound"]]
    wrong = planted["wrong labels"] | {"rock/planted_reencoded.mp3"}
    print(f"wrong labels (by sound, all flagged): {pr(set(by_sound), wrong)}")
    print(f"wrong labels (by sound, top 5): {pr(set(by_sound[:5]), wrong)}")
    for key in sorted(wrong):
        rank = by_sound.index(key) + 1 if key in by_sound else None
        print(f"  {key}: " + (f"rank {rank} of {len(by_sound)}" if rank else "not flagged"))
    print("\n--- audit of the planted copy ---\n" + text)
    for name in ("gtzan-mini", "gtzan-other-artists"):
        _, text = audit(data / name, work / name)
        print(f"--- audit of {name} as it is ---\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
