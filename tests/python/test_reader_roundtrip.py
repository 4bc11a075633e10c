"""Read → write round trip of every ONNX backend node test model through the C reader and writer.

The C tool `ox_roundtrip` (tests/c/roundtrip_tool.c, built by `make ctest` into build/asan) reads a
model with ox_model_read_file and writes it back with ox_model_write_buffer. For each model.onnx of
onnx/backend/test/data/node this test checks that:

* the reader never fails on a model it should read: the only refusals allowed are OX_EUNSUPPORTED
  (subgraphs, sequence types, float8 ...), and each is counted with its reason;
* the rewritten bytes parse with onnx, and equal the original bytes, either exactly ("identical") or
  after the original is put through the writer's documented policies (onnx/write.h), each named, so
  that every difference is explained ("normalized"). Anything else fails the test.

The counts are printed (pytest -s) and summarized in the assertion messages.
"""
import collections
import concurrent.futures
import copy
import os
import re
import subprocess

import pytest

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")


def _tool():
    for sub in ("asan", "core", "release", "fuzz"):
        p = os.path.join(ROOT, "build", sub, "ox_roundtrip")
        if os.access(p, os.X_OK):
            return p
    return None


def _models():
    if not os.path.isdir(NODE_DIR):
        return []
    out = []
    for d in sorted(os.listdir(NODE_DIR)):
        p = os.path.join(NODE_DIR, d, "model.onnx")
        if os.path.isfile(p):
            out.append(p)
    return out


# ---- the writer's policies, applied to the original (onnx/write.h documents each) ----

def _clear(msg, field):
    if msg.HasField(field):
        msg.ClearField(field)
        return True
    return False


def _tensors_of_graph(g):
    for t in g.initializer:
        yield t, False
    for n in g.node:
        for a in n.attribute:
            if a.HasField("t"):
                yield a.t, True


def _to_raw(t):
    """A tensor with typed data fields as the writer writes it: raw_data (bytes as
    numpy lays them)."""
    if t.HasField("raw_data") or t.data_location == onnx.TensorProto.EXTERNAL:
        return False
    arr = numpy_helper.to_array(t)
    raw = arr.tobytes()
    if t.data_type in (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16):
        raw = arr.view("uint16").tobytes() if arr.dtype.itemsize == 2 else raw
    dims, dt, name, has_name = list(t.dims), t.data_type, t.name, t.HasField("name")
    t.Clear()
    t.dims.extend(dims)
    t.data_type = dt
    if has_name:
        t.name = name
    t.raw_data = raw
    return True


def _writer_value_info(name, elem_type, dims):
    """A ValueInfoProto as value_info_msg writes it."""
    vi = onnx.ValueInfoProto()
    vi.name = name
    if elem_type:
        tt = vi.type.tensor_type
        tt.elem_type = elem_type
        if dims is not None:
            shape = tt.shape
            shape.SetInParent()
            for d in dims:
                shape.dim.add().dim_value = d
    return vi


def _normalize(m, keep_inits_as_inputs):
    """m as the writer would write what the reader keeps; returns the names of the policies that
    changed something."""
    why = set()
    g = m.graph
    if _clear(m, "doc_string") | _clear(g, "doc_string"):
        why.add("doc_string")
    for fld in ("domain", "model_version"):
        if _clear(m, fld):
            why.add("model " + fld + " (not written)")
    if not m.HasField("producer_name"):
        m.producer_name = ""
        why.add("producer_name absent (written as \"\")")
    if m.HasField("producer_version") and not m.producer_version:
        m.ClearField("producer_version")
        why.add("empty producer_version (not written)")
    for n in g.node:
        if _clear(n, "doc_string"):
            why.add("doc_string")
        if n.HasField("domain") and n.domain == "":
            n.ClearField("domain")
            why.add("empty node domain (not written)")
        for a in n.attribute:
            if _clear(a, "doc_string"):
                why.add("doc_string")
            if a.HasField("t") and a.t.HasField("name"):
                a.t.ClearField("name")
                why.add("name of a tensor attribute (not written)")
    for t, _ in _tensors_of_graph(g):
        if _clear(t, "doc_string"):
            why.add("doc_string")
        if _to_raw(t):
            why.add("typed tensor data (written as raw_data)")

    # opset_import: {"" opset} then {d, 1} per non-default node domain in order of first use.
    default = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
    domains = []
    for n in g.node:
        if n.domain and n.domain != "ai.onnx" and n.domain not in domains:
            domains.append(n.domain)
    new = [onnx.helper.make_operatorsetid("", default[-1] if default else 0)]
    new += [onnx.helper.make_operatorsetid(d, 1) for d in domains]
    if any(o.domain not in ("", "ai.onnx") and o.domain in domains and o.version != 1 for o in m.opset_import):
        # Not cosmetic: the IR has no per-domain opset version, so e.g. ai.onnx.ml 5 becomes 1.
        why.add("SEMANTIC: custom-domain opset version lost (the writer writes 1)")
    if [(o.domain, o.version) for o in m.opset_import] != [(o.domain, o.version) for o in new]:
        why.add("opset_import policy (default domain as \"\", custom domains at version 1, unused ones dropped)")
    del m.opset_import[:]
    m.opset_import.extend(new)

    # Inputs: initializers listed as inputs go after the real ones, as their tensor's type.
    inits = {t.name: t for t in g.initializer}
    real = [copy.deepcopy(i) for i in g.input if i.name not in inits]
    new_inputs = real
    if keep_inits_as_inputs:
        new_inputs = real + [_writer_value_info(t.name, t.data_type, list(t.dims)) for t in g.initializer]
    if [i.SerializeToString() for i in g.input] != [i.SerializeToString() for i in new_inputs]:
        why.add("initializers listed as inputs (written from the tensor / left out)")
    del g.input[:]
    g.input.extend(new_inputs)

    # value_info: only typed node outputs that are not graph outputs, in node output order.
    outputs = {o.name for o in g.output}
    produced = []
    for n in g.node:
        produced += [o for o in n.output if o]
    by_name = {}
    for vi in g.value_info:
        by_name.setdefault(vi.name, vi)
    new_vi = []
    for name in produced:
        vi = by_name.get(name)
        if vi is None or name in outputs:
            continue
        if vi.type.WhichOneof("value") != "tensor_type" or not vi.type.tensor_type.elem_type:
            continue
        new_vi.append(vi)
    if [v.SerializeToString() for v in g.value_info] != [v.SerializeToString() for v in new_vi]:
        why.add("value_info policy (node outputs only, in node order)")
    new_vi = [copy.deepcopy(v) for v in new_vi]
    del g.value_info[:]
    g.value_info.extend(new_vi)
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if _clear(vi, "doc_string"):
            why.add("doc_string")
    return why


def _run(tool, path):
    p = subprocess.run([tool, path], capture_output=True, timeout=120)
    return path, p.returncode, p.stdout, p.stderr.decode(errors="replace")


def test_reader_roundtrip_backend_node_models():
    tool = _tool()
    if tool is None:
        pytest.skip("build/asan/ox_roundtrip is not built: run `make ctest` (CMake builds it with the C tests)")
    paths = _models()
    if not paths:
        pytest.skip(f"no ONNX backend node test models in {NODE_DIR} (onnx==1.22 carries them)")

    counts = collections.Counter()
    unsupported = collections.Counter()
    reasons = collections.Counter()
    problems = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        results = list(ex.map(lambda p: _run(tool, p), paths))
    for path, rc, out, err in results:
        name = os.path.basename(os.path.dirname(path))
        if rc == 2:
            counts["unsupported"] += 1
            # "unsupported: node 'x' (If): attribute 'then_branch' of type GRAPH ... (at ...)":
            # group refusals by kind, without the quoted names
            msg = err.split(": ", 1)[-1].split(" (at ")[0]
            key = re.sub(r"node #\d+ ", "node ", "".join(msg.split("'")[0::2]))
            unsupported[key.strip()] += 1
            continue
        if rc != 0:
            problems.append(f"{name}: exit {rc}: {err.strip()}")
            continue
        with open(path, "rb") as f:
            orig = f.read()
        try:
            rewritten = onnx.load_from_string(out)
        except Exception as e:
            problems.append(f"{name}: the rewritten bytes do not parse with onnx: {e}")
            continue
        if out == orig:
            counts["identical"] += 1
            continue
        m = onnx.load_from_string(orig)
        keep = len(m.graph.initializer) > 0 and all(
            i.name in {t.name for t in m.graph.initializer} for i in m.graph.input[-len(m.graph.initializer):])
        why = _normalize(m, keep and len(m.graph.input) >= len(m.graph.initializer))
        if m.SerializeToString() == out:
            counts["normalized"] += 1
            for w in why:
                reasons[w] += 1
        else:
            # The last resort: the same after onnx re-serializes both (packed vs unpacked input).
            if m.SerializeToString() == rewritten.SerializeToString():
                counts["normalized"] += 1
                reasons["re-encoded by protobuf (packed fields or field order in the original)"] += 1
                for w in why:
                    reasons[w] += 1
            else:
                problems.append(f"{name}: differs in a way no writer policy explains ({sorted(why)})")

    report = [f"{len(paths)} models: {counts['identical']} byte-identical, {counts['normalized']} equal "
              f"after the writer's policies, {counts['unsupported']} refused as unsupported"]
    report += [f"  differs by: {w}: {n}" for w, n in reasons.most_common()]
    report += [f"  unsupported: {w}: {n}" for w, n in unsupported.most_common()]
    print("\n".join(report))
    assert not problems, "\n".join(report + problems[:40])
    assert counts["identical"] > 0, "\n".join(report)
