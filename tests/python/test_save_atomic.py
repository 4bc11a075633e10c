"""save() is atomic (issue 15, items 1 and 9): a save killed or failing at any rename or fsync
leaves the old model and data or the new ones, onnx loads either with its external data, and the
next save leaves no temporary file and no unreferenced data file of the model. The trials kill
or fail the saving child process with strace's fault injection (tests/python/save_kill.py)."""
import itertools
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import save_kill

needs_strace = pytest.mark.skipif(save_kill.STRACE is None, reason="strace is not installed: the kill and "
                                  "fault-injection trials need it")


@pytest.fixture(scope="module")
def programs():
    return {v: save_kill.program(v) for v in (1, 2, 3)}


@needs_strace
@pytest.mark.parametrize("ext", [True, False], ids=["external", "inline"])
def test_kill_or_fail_at_every_rename_and_fsync(tmp_path, programs, ext):
    folder = str(tmp_path / "m")
    os.mkdir(folder)
    expected = save_kill.expected_models(folder, ext, programs)
    calls = save_kill.save_calls(folder, ext, programs[1])
    assert calls["rename"][1] >= 1 and calls["fsync"][1] >= 1
    failures = []
    # injected errors inline as well are in `make stress` (tools/stress_save.py): each trial is a
    # child process exporting a model, which is slow on a loaded machine
    actions = ("kill", "error") if ext else ("kill",)
    for call in ("rename", "fsync"):
        before, count = calls[call]
        for n in range(1, count + 1):
            for action in actions:
                os.makedirs(folder, exist_ok=True)
                why = save_kill.trial(folder, ext, call, n, action, programs, expected, before)
                if why:
                    failures.append(why)
                for f in os.listdir(folder):
                    os.remove(os.path.join(folder, f))
    assert not failures, "\n".join(failures)


def _dead_pid():
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(p.stdout)


def test_next_save_removes_leftovers_of_killed_saves(tmp_path, programs):
    path = str(tmp_path / "model.onnx")
    programs[1].save(path, external_data=True)
    pid = _dead_pid()
    leftovers = [f".model.onnx.oxport-tmp-{pid}-1", f".model.onnx.oxport-tmp-{pid}-2", "model.onnx.0badf00d.data"]
    for f in leftovers:
        with open(tmp_path / f, "wb") as fh:
            fh.write(b"x" * 100)
    # another model's files and a file the writer never names are not touched
    programs[2].save(str(tmp_path / "other.onnx"), external_data=True)
    with open(tmp_path / "notes.data", "wb") as fh:
        fh.write(b"mine")
    programs[3].save(path, external_data=True)
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["model.onnx", "notes.data", "other.onnx", "other.onnx.data"] + sorted(save_kill.referenced(path)))
    assert save_kill.same(save_kill.initializers(path), save_kill.initializers(path))
    assert save_kill.referenced(str(tmp_path / "other.onnx")) == {"other.onnx.data"}
    save_kill.initializers(str(tmp_path / "other.onnx"))      # still loads


def test_resave_switches_data_with_the_model(tmp_path, programs):
    """Each save's data file is one the model it replaces does not use; the old one goes."""
    path = str(tmp_path / "model.onnx")
    seen = []
    for v in (1, 2, 3, 1):
        programs[v].save(path, external_data=True)
        (loc,) = save_kill.referenced(path)
        assert loc.startswith("model.onnx.") and loc.endswith(".data") and "/" not in loc
        assert sorted(os.listdir(tmp_path)) == sorted(["model.onnx", loc])
        seen.append(loc)
    assert seen[0] == "model.onnx.data"                    # torch.onnx's name when it is free
    assert all(a != b for a, b in itertools.pairwise(seen))
    programs[2].save(path, external_data=False)             # inline: the old data goes too
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_save_to_a_folder_changes_nothing(tmp_path, programs):
    path = tmp_path / "m.onnx"
    os.mkdir(path)
    with open(str(path) + ".data", "wb") as f:
        f.write(b"someone's data")
    with pytest.raises(OSError, match=r"m\.onnx"):
        programs[1].save(path, external_data=True)
    with open(str(path) + ".data", "rb") as f:
        assert f.read() == b"someone's data"
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.data"]
    assert os.listdir(path) == []
