"""Kill and injected-failure trials of ONNXProgram.save (issue 15, items 1 and 9), shared by
tests/python/test_save_atomic.py and tools/stress_save.py.

A trial: a folder holds an old model (and its data); a child process exports a different model
and saves it over the old one under strace, which kills it (SIGKILL) or fails the call (EIO) at
the n-th rename or fsync of the save. After it the folder must hold a model that onnx loads with
its external data and whose initializers equal the old model's or the new one's; a further save
must leave no temporary or unreferenced data file.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

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
