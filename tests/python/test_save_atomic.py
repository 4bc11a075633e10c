"""save() is atomic (issue 15, items 1 and 9): a save killed or failing at any rename or fsync
leaves the old model and data or the new ones, onnx loads either with its external data, and the
next save leaves no temporary file and no unreferenced data file of the model. The trials kill
or fail the saving child process with strace's fault injection; tools/stress_save.py (make stress)
runs the same trial() 50 times per mode."""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

# ---- the trial, shared with tools/stress_save.py ----
#
# A trial: a folder holds an old model (and its data); a child process exports a different model
# and saves it over the old one under strace, which kills it (SIGKILL) or fails the call (EIO) at
# the n-th rename, fsync, ... of the save. After it the folder must hold a model that onnx loads
# with its external data and whose initializers equal the old model's or the new one's; a further
# save must leave no temporary or unreferenced data file.

STRACE = shutil.which("strace") or ("/usr/bin/strace" if os.path.exists("/usr/bin/strace") else None)
RENAMES = "rename,renameat,renameat2"
FSYNCS = "fsync,fdatasync"
MARKER = "/nonexistent-oxport-save-begins"

CHILD = r"""
import os, sys
import torch, oxport
path, version, ext = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
m = torch.nn.Linear(64, 48 + 16 * version)       # the shapes differ, so do the data layouts
with torch.no_grad():
    m.weight.fill_(float(version))
    m.bias.fill_(version / 10)
p = oxport.export(m, (torch.rand(2, 64),), verbose=False)
try:
    os.stat(MARKER)                              # where the save begins, in strace's log
except OSError:
    pass
p.save(path, external_data=ext)
""".replace("MARKER", repr(MARKER))


def program(version: int) -> Any:
    """The child's model, exported in this process."""
    import torch

    import oxport
    m = torch.nn.Linear(64, 48 + 16 * version)
    with torch.no_grad():
        m.weight.fill_(float(version))
        m.bias.fill_(version / 10)
    return oxport.export(m, (torch.rand(2, 64),), verbose=False)


def run_child(path: str, version: int, ext: bool, strace_args: list[str] | None = None,
              log: str | None = None) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-c", CHILD, path, str(version), "1" if ext else "0"]
    if strace_args is not None:
        assert STRACE
        cmd = [STRACE, "-f", "-qq", "-o", log or os.devnull, *strace_args, *cmd]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(cmd, capture_output=True, env=env, timeout=300)


CALLS = {"rename": RENAMES, "fsync": FSYNCS, "write": "write,pwrite64,writev", "unlink": "unlink,unlinkat",
         "openat": "open,openat"}


def save_calls(folder: str, ext: bool, old: Any = None) -> dict[str, tuple[int, int]]:
    """Per kind of call in CALLS: (how many the child makes before its save, how many in it),
    from a traced run with no injection; over a model saved by program `old` first, as in a
    trial, when given (the save then also removes the old data)."""
    path = os.path.join(folder, "model.onnx")
    if old is not None:
        old.save(path, external_data=ext)
    log = os.path.join(folder, "strace.log")
    traced = ",".join(CALLS.values())
    r = run_child(path, 1, ext, ["-e", f"trace={traced},stat,newfstatat,statx"], log)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    counts = {k: [0, 0] for k in CALLS}
    seen = False
    with open(log) as f:
        for line in f:
            if MARKER in line:
                seen = True
            call = line.split(None, 1)[-1].split("(", 1)[0]
            for kind, names in CALLS.items():
                if call in names.split(","):
                    counts[kind][1 if seen else 0] += 1
    shutil.rmtree(folder)
    os.mkdir(folder)
    return {k: (v[0], v[1]) for k, v in counts.items()}


def initializers(path: str) -> dict[str, Any]:
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path, load_external_data=True)
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import numpy as np
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a)


def referenced(path: str) -> set[str]:
    import onnx
    model = onnx.load(path, load_external_data=False)
    return {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}


def trial(folder: str, ext: bool, call: str, n: int, action: str, programs: dict[int, Any],
          expected: dict[int, dict[str, Any]], before: int = 0) -> str:
    """One trial in an empty `folder`, the n-th `call` of the save (the child makes `before` such
    calls before it) killed or failed: '' when it survived, else what went wrong. `programs` are
    versions 1 (the old model), 3 (the next save) of program(); `expected` maps 1, 2 (the child's
    new model) and 3 to their initializers."""
    path = os.path.join(folder, "model.onnx")
    programs[1].save(path, external_data=ext)
    how = "signal=SIGKILL" if action == "kill" else "error=EIO"
    syscalls = CALLS[call]
    run_child(path, 2, ext, ["-e", f"trace={syscalls}", "-e", f"inject={syscalls}:{how}:when={before + n}"])
    try:
        got = initializers(path)
    except Exception as e:   # any failure to load is the finding
        return f"{call} #{n} {action}: the model does not load: {e}"
    if not (same(got, expected[1]) or same(got, expected[2])):
        return f"{call} #{n} {action}: the model is neither the old one nor the new one"
    try:
        programs[3].save(path, external_data=ext)
    except OSError as e:
        return f"{call} #{n} {action}: the next save failed: {e}"
    if not same(initializers(path), expected[3]):
        return f"{call} #{n} {action}: the next save did not write the new model"
    left = sorted(set(os.listdir(folder)) - {"model.onnx"} - referenced(path))
    if left:
        return f"{call} #{n} {action}: files left after the next save: {left}"
    return ""


def expected_models(folder: str, ext: bool, programs: dict[int, Any]) -> dict[int, dict[str, Any]]:
    out = {}
    for v in (1, 2, 3):
        path = os.path.join(folder, f"v{v}.onnx")
        programs[v].save(path, external_data=ext)
        out[v] = initializers(path)
    shutil.rmtree(folder)
    os.mkdir(folder)
    return out


# ---- the tests ----

needs_strace = pytest.mark.skipif(STRACE is None, reason="strace is not installed: the kill and "
                                  "fault-injection trials need it")


@pytest.fixture(scope="module")
def programs():
    return {v: program(v) for v in (1, 2, 3)}


@needs_strace
@pytest.mark.parametrize("ext", [True, False], ids=["external", "inline"])
def test_kill_or_fail_at_every_rename_and_fsync(tmp_path, programs, ext):
    folder = str(tmp_path / "m")
    os.mkdir(folder)
    expected = expected_models(folder, ext, programs)
    calls = save_calls(folder, ext, programs[1])
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
                why = trial(folder, ext, call, n, action, programs, expected, before)
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
        ["model.onnx", "notes.data", "other.onnx", "other.onnx.data"] + sorted(referenced(path)))
    assert same(initializers(path), initializers(path))
    assert referenced(str(tmp_path / "other.onnx")) == {"other.onnx.data"}
    initializers(str(tmp_path / "other.onnx"))      # still loads


def test_resave_switches_data_with_the_model(tmp_path, programs):
    """Each save's data file is one the model it replaces does not use; the old one goes."""
    path = str(tmp_path / "model.onnx")
    seen = []
    for v in (1, 2, 3, 1):
        programs[v].save(path, external_data=True)
        (loc,) = referenced(path)
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
