"""oxport-inspect (tools/oxport_inspect.c) against the onnx package's view of the same file: inputs
and outputs with shapes, opsets, op histogram, parameters by dtype, external data; bad files give an
error and a non-zero exit, never a crash; tensor data is never read."""
import collections
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

import oxport

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _binary():
    for cand in (os.environ.get("OXPORT_INSPECT"), os.path.join(sys.prefix, "bin", "oxport-inspect"),
                 os.path.join(ROOT, "build", "release", "oxport-inspect")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return shutil.which("oxport-inspect")


INSPECT = _binary()
pytestmark = pytest.mark.skipif(INSPECT is None, reason="oxport-inspect is not built (make build puts it "
                                                        "in .venv/bin; OXPORT_INSPECT=path overrides)")


def run(path):
    return subprocess.run([INSPECT, str(path)], capture_output=True, text=True, timeout=60)


def parse(text):
    """The figures of oxport-inspect's output."""
    out = {"inputs": [], "outputs": [], "ops": {}, "dtypes": {}, "external": {}}
    section = None
    for line in text.splitlines():
        m = re.match(r"(\w[\w ]*): ?(.*)", line)
        if m and not line.startswith(" "):
            key, rest = m.groups()
            section = key
            if key == "ir_version":
                out["ir_version"] = int(rest)
            elif key == "opset_import":
                out["opsets"] = {d: int(v) for d, v in (p.split() for p in rest.split(","))}
            elif key == "parameters":
                e, b = re.match(r"(\d+) elements, (\d+) bytes", rest).groups()
                out["params"] = (int(e), int(b))
            elif key == "nodes":
                out["nodes"] = int(rest.split()[0])
            continue
        body = line.strip()
        if section in ("inputs", "outputs"):
            name, dtype, shape = body.split("  ")
            dims = [] if shape == "[]" else [d if not d.isdigit() else int(d) for d in shape[1:-1].split(", ")]
            out[section].append((name, dtype, dims))
        elif section == "nodes":
            n, op = body.split()
            out["ops"][op] = int(n)
        elif section == "parameters":
            m = re.match(r"(\w+)\s+(\d+) elements, (\d+) bytes", body)
            out["dtypes"][m.group(1)] = (int(m.group(2)), int(m.group(3)))
        elif section == "external data":
            m = re.match(r"(\S+)  (\d+) bytes referenced by (\d+) tensors .*, file (\d+) bytes", body)
            out["external"][m.group(1)] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
    return out


def onnx_view(path):
    """The same figures from onnx.load (without loading external data)."""
    model = onnx.load(str(path), load_external_data=False)
    g = model.graph
    inits = {t.name for t in g.initializer}

    def value(v):
        t = v.type.tensor_type
        dims = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in t.shape.dim]
        dtype = str(helper.tensor_dtype_to_np_dtype(t.elem_type))
        return v.name, dtype, dims

    dtypes = collections.defaultdict(lambda: [0, 0])
    external = collections.defaultdict(lambda: [0, 0])
    for t in g.initializer:
        n = int(np.prod(t.dims, dtype=np.int64))
        size = n * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        d = dtypes[str(helper.tensor_dtype_to_np_dtype(t.data_type))]
        d[0] += n
        d[1] += size
        if t.data_location == onnx.TensorProto.EXTERNAL:
            e = {x.key: x.value for x in t.external_data}
            external[e["location"]][0] += int(e.get("length", size))
            external[e["location"]][1] += 1
    return {
        "ir_version": model.ir_version,
        "opsets": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "inputs": [value(v) for v in g.input if v.name not in inits],
        "outputs": [value(v) for v in g.output],
        "ops": dict(collections.Counter((n.domain + ":" if n.domain else "") + n.op_type for n in g.node)),
        "nodes": len(g.node),
        "dtypes": {k: tuple(v) for k, v in dtypes.items()},
        "params": (sum(v[0] for v in dtypes.values()), sum(v[1] for v in dtypes.values())),
        "external": {k: tuple(v) for k, v in external.items()},
    }


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(100, 32)
        self.fc = torch.nn.Linear(32, 64)
        self.out = torch.nn.Linear(64, 10)

    def forward(self, ids, scale):
        h = torch.relu(self.fc(self.emb(ids))) * scale
        return self.out(h).softmax(-1), h.sum(-1)


@pytest.fixture(scope="module")
def program():
    ids = torch.randint(0, 100, (2, 7))
    scale = torch.ones(2, 7, 64)
    batch, seq = torch.export.Dim("batch", max=64), torch.export.Dim("seq", max=512)
    return oxport.export(Net().eval(), (ids, scale), verbose=False,
                         dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}))


@pytest.mark.parametrize("external", [False, True], ids=["inline", "external"])
@pytest.mark.parametrize("keep", [False, True], ids=["", "inits_as_inputs"])
def test_figures_match_onnx(program, tmp_path, external, keep):
    path = tmp_path / "net.onnx"
    program.save(path, external_data=external, keep_initializers_as_inputs=keep)
    r = run(path)
    assert r.returncode == 0, r.stderr
    got, want = parse(r.stdout), onnx_view(path)
    for key in ("ir_version", "opsets", "inputs", "outputs", "ops", "nodes", "dtypes", "params"):
        assert got[key] == want[key], key
    # dim_param names are shown
    assert [d for _, _, dims in got["inputs"] for d in dims if isinstance(d, str)] == ["batch", "seq"] * 2
    ops = list(got["ops"].values())
    assert ops == sorted(ops, reverse=True)       # most frequent first
    if external:
        data = str(path) + ".data"
        assert set(got["external"]) == set(want["external"]) == {"net.onnx.data"}
        referenced, ntensors, file_bytes = got["external"]["net.onnx.data"]
        assert (referenced, ntensors) == want["external"]["net.onnx.data"]
        assert file_bytes == os.path.getsize(data) >= referenced > 0
    else:
        assert got["external"] == {} and want["external"] == {}
    if keep:
        assert "initializers listed as inputs" in r.stdout


def test_model_saved_without_initializers(program, tmp_path):
    """include_initializers=False, keep_initializers_as_inputs=False: the nodes read weights the
    file does not define (onnx's checker refuses it); oxport-inspect still describes the model and
    counts them."""
    path = tmp_path / "arch.onnx"
    program.save(path, include_initializers=False)
    full = onnx.load_from_string(program._graph.serialize())
    r = run(path)
    assert r.returncode == 0, r.stderr
    got, want = parse(r.stdout), onnx_view(path)
    for key in ("inputs", "outputs", "ops", "params"):
        assert got[key] == want[key], key
    kept = onnx.load(str(path)).graph.initializer   # the exporter's constants stay, the weights go
    assert got["params"] == (sum(numpy_helper.to_array(t).size for t in kept), sum(len(t.raw_data) for t in kept))
    n = int(re.search(r"^undefined values: (\d+)", r.stdout, re.M).group(1))
    assert n == len(full.graph.initializer) - len(kept) > 0


def test_static_shapes_and_backend_model(tmp_path):
    """A model oxport did not write: one of onnx's backend node tests."""
    node_dir = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
    path = os.path.join(node_dir, "test_conv_with_strides_padding", "model.onnx")
    if not os.path.exists(path):
        pytest.skip("the onnx wheel carries no backend node test data")
    r = run(path)
    assert r.returncode == 0, r.stderr
    got, want = parse(r.stdout), onnx_view(path)
    for key in ("ir_version", "opsets", "inputs", "outputs", "ops", "params"):
        assert got[key] == want[key], key


def _external_model(tmp_path, location, numel, data_bytes=None, offset=0):
    t = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[numel])
    t.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(numel * 4))):
        t.external_data.add(key=k, value=v)
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [numel])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [numel])
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [t])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]), path)
    if data_bytes is not None and not os.path.isabs(location) and ".." not in location:
        with open(tmp_path / location, "wb") as f:
            f.truncate(data_bytes)        # sparse: no disk, and zeros if anything read it
    return path


def test_instant_on_a_large_model_without_reading_data(tmp_path):
    """1 GiB of external weights: inspected without paging in any of it (the child's peak RSS stays
    far below the data size)."""
    numel = 256 * 1024 * 1024
    path = _external_model(tmp_path, "big.data", numel, data_bytes=numel * 4)
    # A fresh parent, so that RUSAGE_CHILDREN holds oxport-inspect alone.
    probe = ("import resource, subprocess, sys\n"
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
             "sys.stderr.write(r.stderr)\nsys.stdout.write(r.stdout)\n"
             "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
             "sys.exit(r.returncode)\n")
    r = subprocess.run([sys.executable, "-c", probe, INSPECT, str(path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    text, peak = r.stdout.rsplit("PEAK_KIB", 1)
    got = parse(text)
    assert got["external"] == {"big.data": (numel * 4, 1, numel * 4)}
    assert got["params"] == (numel, numel * 4)
    assert int(peak) < 64 * 1024, f"oxport-inspect paged in tensor data: peak RSS {int(peak)} KiB"


BAD_FILES = {
    "empty": b"",
    "garbage": b"\xff\xfe this is not protobuf \x00\x01",
    "text": b"ir_version: 8\ngraph { }\n",
    "truncated": None,     # a valid model cut in half
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_is_an_error_not_a_crash(program, tmp_path, kind):
    path = tmp_path / f"{kind}.onnx"
    if BAD_FILES[kind] is None:
        program.save(path)
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    else:
        path.write_bytes(BAD_FILES[kind])
    r = run(path)
    assert r.returncode == 1, (r.returncode, r.stderr)     # negative would be a signal
    assert r.stderr.startswith(f"oxport-inspect: {path}: ") and r.stdout == ""


@pytest.mark.parametrize("location, why", [
    ("../../etc/passwd", "'..' component"),
    ("/etc/passwd", "absolute path"),
    ("missing.data", "cannot be resolved"),
])
def test_bad_external_location_refused(tmp_path, location, why):
    path = _external_model(tmp_path, location, 4)
    r = run(path)
    assert r.returncode == 1, r.stderr
    assert why in r.stderr and "'w'" in r.stderr


def test_external_data_past_end_of_file(tmp_path):
    path = _external_model(tmp_path, "short.data", 1024, data_bytes=100)
    r = run(path)
    assert r.returncode == 1 and "past the end" in r.stderr


def test_missing_file_and_usage(tmp_path):
    r = run(tmp_path / "nope.onnx")
    assert r.returncode == 1 and "cannot open" in r.stderr
    r = run(tmp_path)                   # a directory
    assert r.returncode == 1 and "not a regular file" in r.stderr
    r = subprocess.run([INSPECT], capture_output=True, text=True)
    assert r.returncode == 64 and "usage" in r.stderr


def _cpu_limited(seconds):
    """A preexec_fn holding the child to `seconds` of CPU (RLIMIT_CPU): a bound on work, which a
    loaded machine cannot make flake as a wall-clock bound could."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))
    return limit


def test_many_op_types_inspect_in_linear_time(tmp_path):
    """Issue 15, item 6: 200,000 distinct op types took 111 s (a linear scan per node); now a sort.
    Held to 10 s of CPU, which the quadratic histogram missed by 10x."""
    n = 200_000
    g = onnx.GraphProto(name="g")
    for i in range(n):
        g.node.add(op_type=f"Op{i}", domain="x.ops", output=[f"v{i}"])
    g.output.add(name="v0")
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("x.ops", 1)])
    path = tmp_path / "ops.onnx"
    path.write_bytes(model.SerializeToString())
    r = subprocess.run([INSPECT, str(path)], capture_output=True, text=True, timeout=300,
                       preexec_fn=_cpu_limited(10))
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert f"nodes: {n} ({n} op types)" in r.stdout
    got = parse(r.stdout)["ops"]
    assert len(got) == n and set(got.values()) == {1} and got["x.ops:Op123456"] == 1


def test_fifo_model_and_external_data_refused_at_once(tmp_path):
    """Issue 15, item 7: open() of a FIFO waits for a writer forever; the reader opens without
    blocking and refuses what is not a regular file (the timeout turns a hang into a failure)."""
    os.mkfifo(tmp_path / "fifo.onnx")
    r = subprocess.run([INSPECT, str(tmp_path / "fifo.onnx")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "is not a regular file (a FIFO)" in r.stderr, r.stderr
    path = _external_model(tmp_path, "fifo.data", 4)
    os.mkfifo(tmp_path / "fifo.data")
    r = subprocess.run([INSPECT, str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    assert "'w'" in r.stderr and "'fifo.data' is not a regular file (a FIFO)" in r.stderr, r.stderr


HOSTILE = "t\x1b]0;owned\x07\r\x1b[2J\x9b6n\u202eevil\\"
HOSTILE_SHOWN = "t\\x1B]0;owned\\x07\\x0D\\x1B[2J\\u009B6n\\u202Eevil\\\\"


def _hostile_model(tmp_path, duplicate=False):
    x = helper.make_tensor_value_info(HOSTILE, onnx.TensorProto.FLOAT, ["d" + HOSTILE])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.zeros(1, np.float32), "BADUTF8X")
    inits = [w, numpy_helper.from_array(np.zeros(1, np.float32), "BADUTF8X")] if duplicate else [w]
    node = helper.make_node("Op" + HOSTILE, [HOSTILE, "BADUTF8X"], ["y"], domain="dom" + HOSTILE)
    g = helper.make_graph([node], "graph" + HOSTILE + "BADUTF8X", [x], [y], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("dom" + HOSTILE, 1)],
                              producer_name="prod" + HOSTILE)
    path = tmp_path / "hostile.onnx"
    # A name that is not UTF-8 (onnx cannot build one): same length, so the protobuf stays valid.
    path.write_bytes(model.SerializeToString().replace(b"BADUTF8X", b"bad\xff\xc3(\xe2\x82"))
    return path


def test_names_printed_escaped(tmp_path):
    """Issue 15, item 11: names from the file could retitle or clear the terminal. Control bytes
    (ESC, BEL, CR), C1 and bidi controls, invalid UTF-8 and the backslash come out escaped."""
    r = subprocess.run([INSPECT, str(_hostile_model(tmp_path))], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode("utf-8")              # what it prints is valid UTF-8, whatever the file held
    assert not any(c in out for c in "\x1b\x07\r\x9b\u202e"), out
    for shown in ("producer: prod" + HOSTILE_SHOWN,
                  "graph: graph" + HOSTILE_SHOWN + "bad\\xFF\\xC3(\\xE2\\x82\n",
                  "  " + HOSTILE_SHOWN + "  float32  [d" + HOSTILE_SHOWN + "]\n",
                  "dom" + HOSTILE_SHOWN + ":Op" + HOSTILE_SHOWN,
                  "opset_import: ai.onnx 20, dom" + HOSTILE_SHOWN + " 1\n"):
        assert shown in out, (shown, out)
    # The reader's messages quote names too: stderr is escaped alike.
    r = subprocess.run([INSPECT, str(_hostile_model(tmp_path, duplicate=True))], capture_output=True, timeout=60)
    err = r.stderr.decode("utf-8")
    assert r.returncode == 1 and "bad\\xFF\\xC3(\\xE2\\x82" in err and "given twice" in err, err
    assert "\x1b" not in err and "\xff" not in err
