"""save(): the four initializer modes and external data, checked by onnx's full checker and by
running the saved file in ONNX Runtime against eager; the writer's bytes equal onnx's."""
import os

import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

import oxport

MODES = [(True, False), (True, True), (False, False), (False, True)]


def _session(model_or_path):
    arg = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    return ort.InferenceSession(arg, providers=["CPUExecutionProvider"])


@pytest.fixture
def exported(model_case):
    name, model, args, expected = model_case
    program = oxport.export(model, args, verbose=False)
    return name, program, args, expected


def _feeds(program, args):
    return {n: a.numpy() for n, a in zip(program._input_names, args)}


@pytest.mark.parametrize("include,keep", MODES)
def test_save_modes(exported, tmp_path, include, keep):
    name, program, args, expected = exported
    path = str(tmp_path / f"{name}.onnx")
    program.save(path, include_initializers=include, keep_initializers_as_inputs=keep)
    weights = {t.name: numpy_helper.to_array(t) for t in program.model_proto.graph.initializer}
    feeds = _feeds(program, args)
    saved = onnx.load(path)
    input_names = [i.name for i in saved.graph.input]
    kept = {t.name for t in saved.graph.initializer}
    if include:
        assert kept == set(weights)
    else:
        # the weights are left out; the exporter's own constants (shapes, axes) stay
        state = set(program.exported_program.state_dict)
        assert kept < set(weights) and not kept & state and state & set(weights)
    assert (set(weights) <= set(input_names)) == keep
    if not include and not keep:
        # The documented use of this mode: initializers are attached in a post-processing step.
        saved.graph.initializer.extend(numpy_helper.from_array(w, n) for n, w in weights.items() if n not in kept)
        onnx.save(saved, path)
    if not include and keep:
        feeds.update((n, w) for n, w in weights.items() if n not in kept)   # weights supplied at inference time
    onnx.checker.check_model(path, full_check=True)
    (actual,) = _session(path).run(None, feeds)
    torch.testing.assert_close(torch.from_numpy(actual), expected)


def test_external_data(exported, tmp_path):
    name, program, args, expected = exported
    path = str(tmp_path / f"{name}.onnx")
    program.save(path, external_data=True)
    data = path + ".data"
    assert os.path.exists(data)
    model = onnx.load(path, load_external_data=False)
    full = {t.name: t for t in program.model_proto.graph.initializer}
    external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    # Tensors of 1 KiB and more go to the data file; smaller ones (shapes, scalars) stay inline.
    assert {t.name for t in external} == {n for n, t in full.items() if len(t.raw_data) >= 1024}
    for t in external:
        entries = {e.key: e.value for e in t.external_data}
        assert entries["location"] == f"{name}.onnx.data"    # bare file name, relative
    onnx.checker.check_model(path, full_check=True)
    (actual,) = _session(path).run(None, _feeds(program, args))
    torch.testing.assert_close(torch.from_numpy(actual), expected)


def test_export_with_f_saves(tmp_path):
    import demo_models
    model, args = demo_models.cnn()
    path = tmp_path / "cnn.onnx"
    oxport.export(model, args, f=path, verbose=False)
    # As torch.onnx: with f, weights go to external data by default.
    assert os.path.exists(str(path) + ".data")
    onnx.checker.check_model(str(path), full_check=True)
    path2 = tmp_path / "cnn_inline.onnx"
    oxport.export(model, args, f=path2, external_data=False, verbose=False)
    assert not os.path.exists(str(path2) + ".data")
    (actual,) = _session(str(path2)).run(None, {"images": args[0].numpy()})
    torch.testing.assert_close(torch.from_numpy(actual), model(*args))


@pytest.mark.parametrize("include,keep", MODES)
def test_writer_bytes_equal_onnx_serializer(exported, include, keep):
    """Parse the core's bytes with onnx, serialize again: the bytes are the same."""
    _, program, _, _ = exported
    program.optimize()
    raw = program._graph.serialize(include_initializers=include, keep_initializers_as_inputs=keep)
    assert onnx.load_from_string(raw).SerializeToString() == raw


def test_saved_file_bytes_equal_onnx_serializer(exported, tmp_path):
    _, program, _, _ = exported
    for ext in (False, True):
        path = str(tmp_path / f"m{ext}.onnx")
        program.save(path, external_data=ext)
        with open(path, "rb") as f:
            raw = f.read()
        assert onnx.load(path, load_external_data=False).SerializeToString() == raw


def test_failed_save_leaves_old_file(exported, tmp_path):
    """A data file's usual name taken by a folder: the save picks a free name (it never writes
    over what the old model may use) and leaves the folder alone."""
    _, program, _, _ = exported
    path = str(tmp_path / "model.onnx")
    program.save(path)
    os.mkdir(path + ".data")
    program.save(path, external_data=True)
    rest = set(os.listdir(tmp_path)) - {"model.onnx", "model.onnx.data"}   # data only for weights >= 1 KiB
    assert len(rest) <= 1 and all(n.startswith("model.onnx.") and n.endswith(".data") for n in rest)
    assert os.path.isdir(path + ".data")
    onnx.checker.check_model(path, full_check=True)


def test_save_to_missing_folder(exported, tmp_path):
    _, program, _, _ = exported
    path = tmp_path / "no" / "such" / "dir" / "m.onnx"
    with pytest.raises(OSError, match="no"):
        program.save(path)
    assert not os.path.exists(tmp_path / "no")


def test_save_rejects_non_path(exported):
    import io
    _, program, _, _ = exported
    with pytest.raises(TypeError, match="destination"):
        program.save(io.BytesIO())


class _Wide(torch.nn.Module):
    """Two 1 MiB weights and a small one: external data, alignment and the 2 GB rule at small
    scale."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(512, 512)
        self.b = torch.nn.Linear(512, 512)
        self.c = torch.nn.Linear(512, 3)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def test_large_tensors_are_aligned_and_location_relative(tmp_path):
    model, x = _Wide().eval(), torch.rand(2, 512)
    program = oxport.export(model, (x,), verbose=False)
    path = tmp_path / "wide.onnx"
    program.save(path, external_data=True)
    saved = onnx.load(str(path), load_external_data=False)
    big = 0
    for t in saved.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        e = {x.key: x.value for x in t.external_data}
        assert e["location"] == "wide.onnx.data" and not os.path.isabs(e["location"])
        if int(e["length"]) >= 1 << 20:
            big += 1
            assert int(e["offset"]) % 65536 == 0, (t.name, e["offset"])
    assert big == 2
    (out,) = _session(str(path)).run(None, {saved.graph.input[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), model(x))


def test_over_the_size_limit(monkeypatch, tmp_path):
    """Over 2 GB (here the limit lowered to 1 MiB): save() writes external data unasked, model_proto
    refuses, and the session is made from a temporary folder with external data that release()
    removes."""
    import oxport._program as program_module
    monkeypatch.setattr(program_module, "_LARGE_MODEL", 1 << 20)
    model, x = _Wide().eval(), torch.rand(2, 512)
    program = oxport.export(model, (x,), verbose=False)
    program.save(tmp_path / "m.onnx")
    assert os.path.getsize(tmp_path / "m.onnx.data") > 2 << 20
    with pytest.raises(ValueError, match="over 2 GB"):
        _ = program.model_proto
    seen = []

    def initializer(model_path):
        seen.append(model_path)
        assert isinstance(model_path, str)
        folder = os.path.dirname(model_path)
        assert sorted(os.listdir(folder)) == ["model.onnx", "model.onnx.data"]
        return ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])

    program.initialize_inference_session(initializer)
    torch.testing.assert_close(program(x)[0], model(x))
    folder = os.path.dirname(seen[0])
    assert os.path.isdir(folder)
    program.release()
    assert not os.path.exists(folder)
    torch.testing.assert_close(program(x)[0], model(x))      # the default session, same way
    folder = program._tempdir.name
    assert os.path.exists(os.path.join(folder, "model.onnx.data"))
    program.release()
    assert not os.path.exists(folder)
