"""The foundation path end to end: export, model_proto, run in ONNX Runtime, compare with eager."""
import onnx
import pytest
import torch

import demo_models
import oxport


@pytest.mark.parametrize("opset", [18, 20, 23])
def test_models_match_eager(model_case, opset):
    _name, model, args, expected = model_case
    program = oxport.export(model, args, dynamo=True, opset_version=opset, verbose=False)
    program.optimize()
    proto = program.model_proto
    assert isinstance(proto, onnx.ModelProto)
    assert proto.opset_import[0].version == opset
    onnx.checker.check_model(proto, full_check=True)
    (actual,) = program(*args)
    torch.testing.assert_close(actual, expected)


def test_documented_example(tmp_path):
    model, (tensor_x,) = demo_models.mlp()
    onnx_program = oxport.export(model, (tensor_x,), dynamo=True)
    onnx_program.optimize()
    onnx_program.save(tmp_path / "mlp.onnx")
    outputs = onnx_program(tensor_x)
    assert isinstance(outputs, tuple) and all(isinstance(o, torch.Tensor) for o in outputs)
    torch.testing.assert_close(outputs[0], model(tensor_x))
    assert onnx_program.model_proto.graph.input[0].name == "tensor_x"
    names = {i.name for i in onnx_program.model_proto.graph.initializer}
    assert {"fc0.weight", "fc0.bias", "fc3.weight"} <= names


def test_other_inputs_than_traced_run():
    """The exported model computes, not replays: fresh inputs of the same shape match eager."""
    model, args = demo_models.transformer()
    program = oxport.export(model, args, verbose=False)
    ids = torch.randint(0, 100, args[0].shape)
    torch.testing.assert_close(program(ids)[0], model(ids))


def test_exported_program_as_model():
    model, args = demo_models.cnn()
    ep = torch.export.export(model, args)
    program = oxport.export(ep, args, verbose=False)
    assert program.capture_strategy == "given"
    torch.testing.assert_close(program(*args)[0], model(*args))


def test_decomposed_forms_lower(model_case):
    """The core-ATen forms torch produces after run_decompositions lower too."""
    _name, model, args, expected = model_case
    ep = torch.export.export(model, args).run_decompositions()
    program = oxport.export(ep, args, verbose=False)
    torch.testing.assert_close(program(*args)[0], expected)


def test_skipping_the_retrace_matches_decomposing(model_case):
    """The export that skips run_decompositions (every op native) computes what the export of the
    decomposed program computes."""
    _name, model, args, _expected = model_case
    ep = torch.export.export(model, args)
    native = oxport.export(ep, args, verbose=False)
    decomposed = oxport.export(ep.run_decompositions(), args, verbose=False)
    for a, b in zip(native(*args), decomposed(*args)):
        torch.testing.assert_close(a, b)


def test_input_and_output_names():
    model, args = demo_models.mlp()
    program = oxport.export(model, args, input_names=["x"], output_names=["logits"], verbose=False)
    g = program.model_proto.graph
    assert [i.name for i in g.input] == ["x"]
    assert [o.name for o in g.output] == ["logits"]
    torch.testing.assert_close(program(*args)[0], model(*args))


def test_no_decomposition_needed_for_native_models(capsys):
    """Every op of the three models is lowered natively: the re-trace is skipped."""
    for build in demo_models.MODELS.values():
        model, args = build()
        oxport.export(model, args)
        err = capsys.readouterr().err
        assert "[oxport] capture" in err and "[oxport] lower" in err
        assert "[oxport] decompose" not in err


def test_verbose_false_is_silent(capsys):
    model, args = demo_models.mlp()
    oxport.export(model, args, verbose=False)
    captured = capsys.readouterr()
    assert "[oxport]" not in captured.err + captured.out


def test_release_drops_session():
    model, args = demo_models.mlp()
    program = oxport.export(model, args, verbose=False)
    program(*args)
    assert program._inference_session is not None
    program.release()
    assert program._inference_session is None
    torch.testing.assert_close(program(*args)[0], model(*args))   # a new session on demand


def test_custom_session_initializer():
    import onnxruntime as ort

    seen = []

    def initializer(model):
        seen.append(type(model))
        return ort.InferenceSession(model, providers=["CPUExecutionProvider"])

    model, args = demo_models.mlp()
    program = oxport.export(model, args, verbose=False)
    program.initialize_inference_session(initializer)
    torch.testing.assert_close(program(*args)[0], model(*args))
    assert seen == [bytes]


def test_optimize_removes_dead_code():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Linear(4, 4)
            self.used = torch.nn.Linear(4, 4)

        def forward(self, x):
            self.unused(x)   # computed and dropped
            return self.used(x)

    x = torch.randn(2, 4)
    program = oxport.export(Model(), (x,), optimize=False, verbose=False)
    before = len(program.model_proto.graph.node)
    program.optimize()
    after = program.model_proto.graph.node
    assert len(after) < before
    assert not any(i.name.startswith("unused") for i in program.model_proto.graph.initializer)


def test_optimize_keeps_outputs_and_shrinks(model_case):
    """The optimized graph computes what the unoptimized one does, with no more nodes, and no
    Identity or Constant node is left."""
    _name, model, args, _expected = model_case
    program = oxport.export(model, args, optimize=False, verbose=False)
    before = program(*args)
    n_before = len(program.model_proto.graph.node)
    program.optimize()
    after = program(*args)
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * max(1.0, b.abs().max().item()))
    ops = [n.op_type for n in program.model_proto.graph.node]
    assert len(ops) <= n_before
    assert "Identity" not in ops and "Constant" not in ops
    onnx.checker.check_model(program.model_proto, full_check=True)


def test_cnn_batchnorm_folded_into_conv():
    model, args = demo_models.cnn()
    program = oxport.export(model, args, verbose=False)
    ops = [n.op_type for n in program.model_proto.graph.node]
    assert "BatchNormalization" not in ops
    assert ops.count("Conv") == 2
    names = [i.name for i in program.model_proto.graph.initializer]
    assert len(names) == len(set(names))


def test_bfloat16_inputs_and_outputs():
    """numpy has no bfloat16: inputs and outputs cross to ONNX Runtime as OrtValues. (ONNX Runtime's
    CPU kernels take bfloat16 for data movement, not arithmetic: the model only moves data.)"""
    class M(torch.nn.Module):
        def forward(self, x, y):
            return torch.cat([x, y]).t(), x.float()

    x, y = torch.randn(2, 4).bfloat16(), torch.randn(3, 4).bfloat16()
    program = oxport.export(M(), (x, y), verbose=False)
    got = program(x, y)
    assert got[0].dtype == torch.bfloat16
    for g, w in zip(got, M()(x, y)):
        assert torch.equal(g, w)
    (cat,) = program.compute_values(["cat"], (x, y))
    assert cat.dtype == torch.bfloat16 and torch.equal(cat, torch.cat([x, y]))

