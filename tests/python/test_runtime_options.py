"""ONNXRuntimeOptions (torch.onnx.ONNXRuntimeOptions): session options, execution providers and
their options reach the default ONNX Runtime session, given to ONNXProgram.__call__ as torch.onnx
took it, or to initialize_inference_session."""
import onnxruntime as ort
import pytest
import torch

import demo_models
import oxport


def _program():
    model, args = demo_models.mlp()
    return oxport.export(model, args, verbose=False), model, args


def test_options_reach_the_default_session(monkeypatch):
    calls = []
    real = ort.InferenceSession

    def spy(*a, **kw):
        calls.append(kw)
        return real(*a, **kw)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    program, model, args = _program()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    options = oxport.ONNXRuntimeOptions(session_options=[so], execution_providers=["CPUExecutionProvider"],
                                        execution_provider_options=[{"arena_extend_strategy": "kSameAsRequested"}])
    (out,) = program(*args, options=options)
    torch.testing.assert_close(out, model(*args))
    sess = program._inference_session
    got = sess.get_session_options()
    assert got.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert got.intra_op_num_threads == 1
    assert sess.get_providers() == ["CPUExecutionProvider"]
    assert calls[-1]["providers"] == ["CPUExecutionProvider"]
    assert calls[-1]["provider_options"] == [{"arena_extend_strategy": "kSameAsRequested"}]
    program(*args)                                  # no options: the session stays
    assert program._inference_session is sess
    program(*args, options=oxport.ONNXRuntimeOptions())   # other options: a new default session
    assert program._inference_session is not sess
    assert program._inference_session.get_session_options().graph_optimization_level != \
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL


def test_options_through_initialize_inference_session():
    program, model, args = _program()
    so = ort.SessionOptions()
    so.inter_op_num_threads = 1
    so.enable_mem_pattern = False
    program.initialize_inference_session(options=oxport.ONNXRuntimeOptions(session_options=so))
    assert program._inference_session.get_session_options().enable_mem_pattern is False
    torch.testing.assert_close(program(*args)[0], model(*args))


def test_options_are_checked():
    with pytest.raises(ValueError, match="one dict per entry"):
        oxport.ONNXRuntimeOptions(execution_provider_options=[{}])
    with pytest.raises(ValueError, match="one SessionOptions"):
        oxport.ONNXRuntimeOptions(session_options=[ort.SessionOptions(), ort.SessionOptions()])
    program, _, _ = _program()
    with pytest.raises(TypeError, match="ONNXRuntimeOptions"):
        program.initialize_inference_session(options={"execution_providers": ["CPUExecutionProvider"]})
    with pytest.raises(ValueError, match="not both"):
        program.initialize_inference_session(lambda m: None, options=oxport.ONNXRuntimeOptions())


def test_providers_reach_onnxruntime():
    """The providers go to ONNX Runtime as given: it warns about one it lacks (and falls back to
    the CPU, its own behaviour)."""
    program, model, args = _program()
    with pytest.warns(UserWarning, match="NoSuchExecutionProvider"):
        (out,) = program(*args, options=oxport.ONNXRuntimeOptions(execution_providers=["NoSuchExecutionProvider"]))
    torch.testing.assert_close(out, model(*args))


def test_model_argument_named_options_passes_through():
    class M(torch.nn.Module):
        def forward(self, x, options):
            return x * options

    x, o = torch.rand(3), torch.rand(3)
    program = oxport.export(M(), (x,), kwargs={"options": o}, verbose=False)
    torch.testing.assert_close(program(x, options=o)[0], x * o)
