"""A bundle's network on the chosen backend, checked against the reference, never assumed.

When ``train_crnn.py`` writes a bundle it stores ``check.npz``: up to :data:`CHECK_ROWS` of
the bundle's own test snippets (a few from each test track), their track numbers and the
reference's probabilities (onnxruntime fp32, itself checked against Keras). The first time a
backend and precision label with a bundle on a machine, :func:`verdict` runs those snippets
through it:

- probabilities within :data:`F32_BOUND` (f32) or :data:`BF16_BOUND` (bf16) of the
  reference's, and
- every test track's label identical (a track whose top two scores are closer than the
  tie margin counts as re-scored, as prediction does with it),

else the reference labels, after one line. The verdict is kept in the user's cache folder
(``<user cache>/slapp/engine-checks/``), keyed by the network file's digest, the backend, its
version and the precision, so later runs start at once.

bf16 keeps 8 bits of mantissa: probabilities move by up to a few hundredths (a bundle's own
figure is its ``max_difference``), so a label could flip where two classes nearly tie. The
tie margin is :data:`MIN_TIE_MARGIN` or 4× the largest track-score difference the check
measured, whichever is larger (a flip needs the gap to close by both scores' errors, 2×,
and the other 2× is room for tracks unlike the test ones); prediction re-scores a track
within it on the f32 path (:class:`CheckedNetwork`), so labels never depend on the precision.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from slapp.dsp.aggregate import aggregate
from slapp.errors import StageError
from slapp.models.runtime import REFERENCE, Choice, Network, network, resolve
from slapp.store.atomic import read_json, write_json, write_npz
from slapp.store.cache import file_digest

logger = logging.getLogger(__name__)

CHECK_ROWS, PER_TRACK = 48, 4  # snippets kept in check.npz, at most this many per track
F32_BOUND = 1e-4               # largest probability difference from the reference, f32
BF16_BOUND = 0.05              # ... bf16 (typically 0.002-0.02 on musicnn bundles)
MIN_TIE_MARGIN = 0.04          # track scores (sum 1) closer than this are re-scored in f32
CHECK_VERSION = 1              # bump to invalidate every cached verdict


@dataclass(frozen=True)
class Verdict:
    """What the check found: ``ok``, the largest probability difference, the tie margin
    (0: exact path) and, when not ok, why."""

    ok: bool
    max_difference: float = 0.0
    tie_margin: float = 0.0
    why: str = ""


def relative_difference(got: np.ndarray, expected: np.ndarray) -> float:
    """The largest absolute difference, relative to the largest value of ``expected``."""
    return float(np.max(np.abs(got - expected)) / max(1e-6, float(np.max(np.abs(expected)))))


def check_rows(x: np.ndarray, track: np.ndarray) -> np.ndarray:
    """Row numbers of ``x`` to keep for the check: up to :data:`PER_TRACK` spread over each
    track (``track`` ``(n,)`` ids), as many tracks as :data:`CHECK_ROWS` allows."""
    rows: list[int] = []
    for t in np.unique(track)[:CHECK_ROWS // PER_TRACK]:
        where = np.flatnonzero(track == t)
        rows += [int(where[i]) for i in np.linspace(0, len(where) - 1, min(PER_TRACK,
                                                                           len(where))).astype(int)]
    return np.unique(np.array(rows, np.int64))


def write_check(check_file: Path, portable_file: Path, x: np.ndarray, track: np.ndarray
                ) -> None:
    """Store ``check.npz``: snippets ``x`` ``(n, ...)``, their ``track`` ids ``(n,)`` and the
    reference's probabilities on them."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    reference = network(portable_file, REFERENCE, threads=1)(x)
    write_npz(check_file, {"x": x, "track": np.asarray(track, np.int64),
                           "reference": reference})


def _track_scores(probs: np.ndarray, track: np.ndarray) -> np.ndarray:
    return np.stack([aggregate(probs[track == t]) for t in np.unique(track)])


def _gap(scores: np.ndarray) -> np.ndarray:
    top = np.sort(scores, axis=1)
    return top[:, -1] - top[:, -2]


def measure(net: Network, data: dict, precision: str) -> Verdict:
    """Compare ``net`` with the stored reference on ``data`` (``check.npz``'s arrays)."""
    ref, track = data["reference"], data["track"]
    got = net(data["x"])
    diff = float(np.max(np.abs(got - ref))) if len(ref) else 0.0
    ref_scores, got_scores = _track_scores(ref, track), _track_scores(got, track)
    track_diff = float(np.max(np.abs(got_scores - ref_scores))) if len(ref) else 0.0
    margin = 0.0 if precision != "bf16" else max(MIN_TIE_MARGIN, 4 * track_diff)
    sure = _gap(got_scores) >= margin  # the others are re-scored on the exact path
    flipped = int(np.sum(ref_scores.argmax(1)[sure] != got_scores.argmax(1)[sure]))
    bound = BF16_BOUND if precision == "bf16" else F32_BOUND
    why = ""
    if not diff <= bound:
        why = f"probabilities differ by {diff:.2g} (more than {bound:g})"
    elif flipped:
        why = f"{flipped} of {len(ref_scores)} test tracks labelled differently"
    return Verdict(ok=not why, max_difference=diff, tie_margin=margin, why=why)


def _backend_version(choice: Choice) -> str:
    import importlib.metadata as md

    return md.version(choice.backend)


def verdict(portable_file: Path, check_file: Path, choice: Choice) -> Verdict:
    """The check of ``choice`` on a bundle (its ``model.onnx`` and ``check.npz``), from the
    user's cache folder or measured now (and kept there)."""
    return _verdict(portable_file, check_file, choice)[0]


def _verdict(portable_file: Path, check_file: Path, choice: Choice) -> tuple[Verdict, bool]:
    """``(verdict, measured just now)``."""
    if choice == REFERENCE:
        return Verdict(ok=True), False
    from slapp.store.user_dirs import cache_dir

    folder = cache_dir("engine-checks")
    name = (f"{file_digest(portable_file)}-{choice.backend}-{_backend_version(choice)}-"
            f"{choice.precision}-v{CHECK_VERSION}.json")
    if folder is not None and (folder / name).exists():
        try:
            return Verdict(**read_json(folder / name)), False
        except (StageError, TypeError):
            pass  # a damaged verdict: measured again
    if not check_file.exists():
        return Verdict(ok=False, why=f"the bundle has no {check_file.name} (made before slapp "
                                     "checked backends; train_crnn.py --retrain makes it)"), True
    try:
        with np.load(check_file, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("x", "track", "reference")}
    except (OSError, ValueError, KeyError) as exc:
        return Verdict(ok=False, why=f"'{check_file}' is damaged ({exc})"), True
    try:
        net = network(portable_file, choice)
    except StageError as exc:  # e.g. OpenVINO cannot convert the CRNN's recurrent loop
        network(portable_file, REFERENCE)  # a damaged file: the reference's error, alone
        found = Verdict(ok=False, why=f"{choice.backend} cannot run it ("
                                      f"{str(exc).rsplit(': ', 1)[-1]})")
    else:
        found = measure(net, arrays, choice.precision)
    if folder is not None:
        write_json(folder / name, asdict(found))
    return found, True


class CheckedNetwork:
    """The bundle's network on the backend chosen and checked (:func:`open_checked`):
    called like a :class:`~slapp.models.runtime.Network`; :meth:`near_tie` says whether a
    track's scores must be re-scored on :meth:`exact` (bf16 only)."""

    def __init__(self, net: Network, tie_margin: float):
        self.net, self.tie_margin = net, tie_margin
        self.name = net.choice.name

    def __getattr__(self, name: str):
        if name == "net":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.net, name)  # outputs, with_embedding, n_classes, batch, ...

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.net(x)

    def near_tie(self, scores: np.ndarray) -> bool:
        """Whether track ``scores`` ``(n_classes,)`` (sum 1) are too close to trust bf16."""
        if self.tie_margin <= 0 or len(scores) < 2:
            return False
        top = np.sort(scores)
        return bool(top[-1] - top[-2] < self.tie_margin)

    def exact(self) -> Network:
        """The same network at full precision (opened on first use)."""
        return network(self.net.path, self.net.choice.exact, threads=self.net.threads)


def open_checked(portable_file: Path, check_file: Path, engine: str, *,
                 batch: int | None = None, allow_emulated: bool = False) -> CheckedNetwork:
    """The bundle's network on ``engine`` (:data:`~slapp.models.runtime.ENGINES`), checked;
    a backend that fails its check (or cannot read the file) gives way to the reference
    after one line: a warning when found, a note on later runs."""
    choice = resolve(engine, allow_emulated=allow_emulated)
    found, fresh = _verdict(portable_file, check_file, choice)
    if not found.ok:  # a warning when found, a note on later runs (the verdict is kept)
        logger.log(logging.WARNING if fresh else logging.INFO,
                   "%s not used for this bundle: %s; labelling on %s.", choice.name,
                   found.why, REFERENCE.name)
        choice, found = REFERENCE, Verdict(ok=True)
    return CheckedNetwork(network(portable_file, choice, batch=batch), found.tie_margin)
