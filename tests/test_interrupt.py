"""kill -9 and Ctrl-C in the middle of build_dataset.py, then re-run: nothing lost."""

import signal
import sys
import time

import numpy as np
import pytest

from slapp.store.cache import read_track
from slapp.store.layout import BuildLayout

from conftest import ROOT, make_dataset, popen_script, write_params

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def start(params):
    return popen_script([sys.executable, str(ROOT / "build_dataset.py"), "--params",
                         str(params), "--quiet"], cwd=ROOT)


def wait_for_files(folder, n, proc, timeout=60):
    """Block until ``n`` cached tracks exist (or the process ended)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if sum(1 for _ in folder.rglob("*.npz")) >= n:
            return True
        time.sleep(0.005)
    return False


def cache_contents(out):
    layout = BuildLayout(out)
    keys = sorted(str(p.relative_to(layout.cache_dir))[:-4] for p in layout.cache_dir.rglob("*.npz"))
    return {k: read_track(layout, k) for k in keys}


@pytest.fixture(scope="module")
def slow_dataset(tmp_path_factory):
    # 24 tracks of 12 s, all snippets kept: slow enough to be killed in the middle
    return make_dataset(tmp_path_factory.mktemp("music"), per_class=8, seconds=12.0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, slow_dataset):
    tmp = tmp_path_factory.mktemp("ref")
    params = write_params(tmp / "p.json", slow_dataset, tmp / "out", workers=2,
                          slicing={"max_snippets_per_track": None})
    proc = start(params)
    assert proc.wait(120) == 0, proc.stderr.read()
    return tmp / "out"


def test_kill_9_at_several_moments_then_rerun_gives_the_same_cache(tmp_path, slow_dataset,
                                                                     reference):
    params = write_params(tmp_path / "p.json", slow_dataset, tmp_path / "out", workers=2,
                          slicing={"max_snippets_per_track": None})
    out = tmp_path / "out"
    kills = 0
    for n in (0, 3, 9, 15):  # right at the start, then deeper into the run
        proc = start(params)
        if n == 0:
            time.sleep(0.3)
        elif not wait_for_files(out / "cache", n, proc):
            proc.wait(60)
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        kills += 1
    assert kills >= 3
    proc = start(params)  # immediately: the lock of the killed run must not block us
    assert proc.wait(120) == 0, proc.stderr.read()
    got, want = cache_contents(out), cache_contents(reference)
    assert sorted(got) == sorted(want) and len(got) == 24
    for key in want:
        assert np.array_equal(got[key][0], want[key][0]), key
        assert np.array_equal(got[key][1], want[key][1]), key
    assert (out / "train_val_test_dict.json").read_text() == \
        (reference / "train_val_test_dict.json").read_text()
    assert not any((out / ".tmp").iterdir())  # no temp file survives


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_exits_cleanly_and_rerun_continues(tmp_path, slow_dataset, sig,
                                                             status):
    params = write_params(tmp_path / "p.json", slow_dataset, tmp_path / "out", workers=2,
                          slicing={"max_snippets_per_track": None})
    proc = start(params)
    assert wait_for_files(tmp_path / "out" / "cache", 2, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0 and "24 cached now" in out:
        pytest.skip("the build finished before the signal arrived (machine too fast/slow)")
    assert proc.returncode == status
    assert "Traceback" not in err
    assert "build interrupted" in out and "run the same command again" in out
    done = sum(1 for _ in (tmp_path / "out" / "cache").rglob("*.npz"))
    assert 2 <= done < 24
    proc = start(params)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"{24 - done} cached now, {done} already cached" in out


def test_kill_9_while_building_the_library_then_rerun_gives_the_same_library(
        tmp_path, slow_dataset, reference):
    """The unlabelled library (paths.unlabelled_dir) has the labelled tracks' guarantees:
    killed at several moments, a re-run ends with the cache an uninterrupted run makes,
    and the library never enters the split."""
    import json

    library = make_dataset(tmp_path / "lib", classes=("x",), per_class=10, seconds=12.0)
    ref_out, out = tmp_path / "ref", tmp_path / "out"
    raw_params = {target: write_params(
        tmp_path / f"{target.name}.json", slow_dataset, target, workers=2,
        slicing={"max_snippets_per_track": None},
        model={"backbone": "musicnn-msd"},  # the CRNN builds no library
        paths={"input_dir": str(slow_dataset), "output_dir": str(target),
               "unlabelled_dir": str(library)}) for target in (ref_out, out)}
    proc = start(raw_params[ref_out])
    assert proc.wait(180) == 0, proc.stderr.read()
    kills = 0
    for n in (1, 4, 8):
        proc = start(raw_params[out])
        if not wait_for_files(out / "library" / "cache", n, proc):
            proc.wait(60)
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        kills += 1
    assert kills >= 2
    proc = start(raw_params[out])
    stdout, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "library (paths.unlabelled_dir, for training only): 10 unlabelled tracks, 10 cached" in stdout
    got = cache_contents(out / "library")
    want = cache_contents(ref_out / "library")
    assert sorted(got) == sorted(want) and len(got) == 10
    for key in want:
        assert np.array_equal(got[key][0], want[key][0]), key
    manifest = json.loads((out / "library" / "build_manifest.json").read_text())
    assert manifest["complete"] and {e["status"] for e in manifest["tracks"].values()} == {"done"}
    split = json.loads((out / "train_val_test_dict.json").read_text())
    assert not any(k.startswith("x/") for c in split.values() for p in c.values() for k in p)
