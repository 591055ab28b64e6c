"""A frozen musicnn backbone as ONNX: its embeddings without TensorFlow.

The weights are TF1 checkpoints that only TensorFlow reads, so the ONNX file is made once
per output folder by a short child process (``python -m slapp.models.backbone_onnx
CHECKPOINT FILE``): the process that asks for it never imports TensorFlow, and the
embedding workers it then starts (forked or on Dask) load onnxruntime alone.

The file maps musicnn input patches ``(batch, 187, 96)`` to two outputs: ``penultimate``
``(batch, 200)`` and ``pooled`` ``(batch, 1506)`` (:func:`slapp.models.musicnn.build_backbone`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from slapp.errors import StageError
from slapp.models.musicnn import OUTPUTS as _BACKBONE_OUTPUTS

OUTPUTS = _BACKBONE_OUTPUTS[1:]  # the embeddings: the ONNX file's outputs, in order
TOLERANCE = 1e-3  # largest difference accepted, relative to the largest embedding value


def check_patches(sample: Path | None) -> np.ndarray:
    """Input patches ``(n, 187, 96)`` float32 to check the export on: up to 8 real snippets
    spread over ``sample`` (a track cache file of the build: ``mel``), else seeded noise."""
    from slapp.models import musicnn

    if sample is not None:
        with np.load(sample, allow_pickle=False) as data:
            mel = data["mel"]
        if len(mel) and mel.shape[1:] == (musicnn.N_FRAMES, musicnn.N_MELS):
            rows = np.unique(np.linspace(0, len(mel) - 1, min(8, len(mel))).astype(int))
            return np.ascontiguousarray(mel[rows], dtype=np.float32)
    x = np.random.default_rng(0).uniform(0.0, 4.0, (4, musicnn.N_FRAMES, musicnn.N_MELS))
    return x.astype(np.float32)


def export_backbone(checkpoint: str, path: Path, sample: Path | None = None) -> float:
    """Write ``checkpoint``'s backbone as ONNX to ``path`` (atomically), both embeddings
    checked against Keras on real snippets of ``sample`` (:func:`check_patches`); returns
    the largest relative difference. Imports TensorFlow: call it in a child process
    (:func:`ensure_backbone`)."""
    from slapp.models import musicnn
    from slapp.models.keras_env import import_keras
    from slapp.models.engine_check import relative_difference
    from slapp.models.portable import quiet_export
    from slapp.models.runtime import network
    from slapp.store.atomic import atomic_path

    keras = import_keras()
    backbone = musicnn.load_backbone(checkpoint=checkpoint)
    model = keras.Model(backbone.input, [backbone.outputs[1], backbone.outputs[2]])
    x = check_patches(sample)
    expected = [np.asarray(o) for o in model(x, training=False)]
    with atomic_path(path, suffix=".onnx") as tmp:
        with quiet_export():
            model.export(str(tmp), format="onnx", verbose=False)
        got = network(Path(tmp), threads=1).outputs(x)
        diff = max(relative_difference(g, e) for g, e in zip(got, expected))
        if not diff <= TOLERANCE:
            raise StageError(f"The ONNX backbone differs from Keras by {diff:.2g} (relative); "
                             "not written.")
    return diff


def ensure_backbone(checkpoint: str, path: Path, sample: Path | None = None) -> Path:
    """``path``, made first if missing by a child process that imports TensorFlow (so
    this one does not), checked on ``sample``'s snippets (a track cache file; None: seeded
    noise); its failure is a :class:`StageError` with the child's last line."""
    from slapp.store.atomic import remove_temp_files

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_temp_files(path.parent)  # what a killed export left
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    extra = [str(Path(sample).resolve())] if sample is not None else []
    done = subprocess.run([sys.executable, "-m", __name__, checkpoint, str(path.resolve()),
                           *extra], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[2])
    if done.returncode != 0 or not path.exists():
        lines = [ln for ln in (done.stderr or "").splitlines() if ln.strip()]
        raise StageError(f"Cannot make the ONNX copy of the {checkpoint} backbone at '{path}': "
                         f"{lines[-1] if lines else f'exit status {done.returncode}'}")
    return path


def main(argv: list[str]) -> int:
    checkpoint, path, *sample = argv
    try:
        export_backbone(checkpoint, Path(path), Path(sample[0]) if sample else None)
    except StageError as exc:
        print(f"{exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
