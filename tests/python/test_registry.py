"""OnnxRegistry, custom translations (oxport.op builder and onnxscript functions), ExportOptions,
dynamo_export and DiagnosticOptions."""
import logging

import pytest
import torch

import demo_models
import oxport
from oxport import op


@torch.library.custom_op("oxport_reg::scaled_relu", mutates_args=())
def scaled_relu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return torch.relu(x) * alpha


@scaled_relu.register_fake
def _(x, alpha):
    return torch.empty_like(x)


class UsesCustomOp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        return scaled_relu(self.fc(x) - 0.25, 3.0)


def builder_translation(x, alpha):
    return op.Mul(op.Relu(x), op.constant(alpha, dtype=x.dtype))


def test_custom_op_with_builder():
    model, x = UsesCustomOp(), torch.randn(5, 4)
    program = oxport.export(model, (x,), verbose=False,
                            custom_translation_table={torch.ops.oxport_reg.scaled_relu.default: builder_translation})
    ops = [n.op_type for n in program.model_proto.graph.node]
    assert "Relu" in ops and "Mul" in ops
    torch.testing.assert_close(program(x)[0], model(x))


def test_custom_op_with_onnxscript_function():
    """The function travels to C as its FunctionProto and is inlined there: the model holds its
    nodes, no function and no call of one. alpha=3.0 comes from the call site (the default is
    2.0)."""
    from onnxscript_functions import scaled_relu_fn  # module-level source: onnxscript parses it
    model, x = UsesCustomOp(), torch.randn(5, 4)
    program = oxport.export(model, (x,), verbose=False,
                            custom_translation_table={torch.ops.oxport_reg.scaled_relu.default: scaled_relu_fn})
    proto = program.model_proto
    assert not proto.functions and [o.domain for o in proto.opset_import] == [""]
    ops = [n.op_type for n in proto.graph.node]
    assert "Relu" in ops and "Mul" in ops and "scaled_relu_fn" not in ops
    torch.testing.assert_close(program(x)[0], model(x))


@torch.library.custom_op("oxport_reg::relu_and_neg", mutates_args=())
def relu_and_neg_op(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.relu(x), -x


@relu_and_neg_op.register_fake
def _(x):
    return torch.empty_like(x), torch.empty_like(x)


class TwoCalls(torch.nn.Module):
    """scaled_relu twice (two instantiations of one function) and a two-output custom op."""
    def forward(self, x):
        a, b = relu_and_neg_op(scaled_relu(x, 3.0))
        return scaled_relu(a - b, 0.5), b


def test_onnxscript_names_unique_and_two_outputs():
    from onnxscript_functions import relu_and_neg, scaled_relu_fn
    model, x = TwoCalls(), torch.randn(4, 3)
    table = {torch.ops.oxport_reg.scaled_relu.default: scaled_relu_fn,
             torch.ops.oxport_reg.relu_and_neg.default: relu_and_neg}
    program = oxport.export(model, (x,), verbose=False, optimize=False, custom_translation_table=table)
    graph = program.model_proto.graph
    node_names = [n.name for n in graph.node]
    values = [o for n in graph.node for o in n.output] + [i.name for i in graph.input] + \
        [i.name for i in graph.initializer]
    assert len(set(node_names)) == len(node_names) and len(set(values)) == len(values)
    assert sum(n.op_type == "CastLike" for n in graph.node) == 2                # two instantiations
    assert any(n.startswith("scaled_relu/") for n in node_names)               # named after the call
    assert any(n.startswith("scaled_relu_1/") for n in node_names)
    for got, want in zip(program(x), model(x)):
        torch.testing.assert_close(got, want)


def test_onnxscript_nested_functions():
    """A function calling functions of its domain, an attribute passed down two calls (alpha has
    no default in relu_then_times): all inlined, the domain never reaches the model."""
    from onnxscript_functions import scaled_relu_nested
    model, x = UsesCustomOp(), torch.randn(5, 4)
    program = oxport.export(model, (x,), verbose=False,
                            custom_translation_table={torch.ops.oxport_reg.scaled_relu.default: scaled_relu_nested})
    proto = program.model_proto
    assert not proto.functions
    assert all(n.domain == "" for n in proto.graph.node)
    assert [o.domain for o in proto.opset_import] == [""]
    torch.testing.assert_close(program(x)[0], model(x))


def test_onnxscript_newer_opset_refused():
    """A function importing opset 22 does not go into an opset-20 model; at opset 22 it does."""
    from onnxscript_functions import scaled_relu_opset22
    model, x = UsesCustomOp(), torch.randn(5, 4)
    table = {torch.ops.oxport_reg.scaled_relu.default: scaled_relu_opset22}
    with pytest.raises(oxport.LoweringError, match=r"oxport_reg::scaled_relu.default \(node scaled_relu.*"
                       r"function this::scaled_relu_opset22: it imports opset 22 of the default domain, newer "
                       r"than the model's opset 20"):
        oxport.export(model, (x,), verbose=False, custom_translation_table=table)
    program = oxport.export(model, (x,), verbose=False, opset_version=22, custom_translation_table=table)
    torch.testing.assert_close(program(x)[0], model(x))


def test_onnxscript_other_domain_version_refused():
    from onnxscript_functions import binarize_ml2
    model, x = UsesCustomOp(), torch.randn(5, 4)
    with pytest.raises(oxport.LoweringError, match=r"imports domain 'ai\.onnx\.ml' at version 2"):
        oxport.export(model, (x,), verbose=False,
                      custom_translation_table={torch.ops.oxport_reg.scaled_relu.default: binarize_ml2})


def test_onnxscript_arguments_must_fit():
    from onnxscript_functions import relu_and_neg  # takes x only; scaled_relu passes alpha too
    with pytest.raises(oxport.LoweringError, match="do not fit its parameters"):
        oxport.export(UsesCustomOp(), (torch.randn(2, 4),), verbose=False,
                      custom_translation_table={torch.ops.oxport_reg.scaled_relu.default: relu_and_neg})


def test_onnxscript_replaces_builtin():
    from onnxscript_functions import sigmoid_as_tanh_fn
    model, args = demo_models.mlp()
    program = oxport.export(model, args, verbose=False,
                            custom_translation_table={torch.ops.aten.sigmoid.default: sigmoid_as_tanh_fn})
    ops = [n.op_type for n in program.model_proto.graph.node]
    assert "Sigmoid" not in ops and ops.count("Tanh") == 3
    torch.testing.assert_close(program(*args)[0], model(*args))


def test_translation_replaces_builtin():
    """A translation for an op oxport lowers natively wins over the built-in lowering."""
    def sigmoid_as_tanh(x):   # sigmoid(x) = (tanh(x/2) + 1) / 2
        half = op.constant(0.5, dtype=x.dtype)
        return op.Mul(op.Add(op.Tanh(op.Mul(x, half)), op.constant(1.0, dtype=x.dtype)), half)
    model, args = demo_models.mlp()
    program = oxport.export(model, args, verbose=False,
                            custom_translation_table={torch.ops.aten.sigmoid.default: [sigmoid_as_tanh]})
    ops = [n.op_type for n in program.model_proto.graph.node]
    assert "Sigmoid" not in ops and ops.count("Tanh") == 3
    torch.testing.assert_close(program(*args)[0], model(*args))


def test_translation_error_names_op_and_node():
    def broken(x, alpha):
        raise KeyError("boom")
    with pytest.raises(oxport.LoweringError, match=r"oxport_reg::scaled_relu.default \(node scaled_relu.*broken.*boom"):
        oxport.export(UsesCustomOp(), (torch.randn(2, 4),), verbose=False,
                      custom_translation_table={torch.ops.oxport_reg.scaled_relu.default: broken})


def test_translation_must_return_values():
    with pytest.raises(oxport.LoweringError, match=r"must return values made with oxport\.op"):
        oxport.export(UsesCustomOp(), (torch.randn(2, 4),), verbose=False,
                      custom_translation_table={torch.ops.oxport_reg.scaled_relu.default: lambda x, a: 3})


def test_op_outside_translation():
    with pytest.raises(RuntimeError, match="outside a translation"):
        op.Relu(None)


def test_bad_translation_table():
    model, args = demo_models.mlp()
    with pytest.raises(TypeError, match="op overload"):
        oxport.export(model, args, custom_translation_table={"aten::relu": builder_translation})
    with pytest.raises(TypeError, match="must be a dict"):
        oxport.export(model, args, custom_translation_table=[builder_translation])


def test_registry_api():
    reg = oxport.OnnxRegistry()
    assert reg.opset_version == 20
    assert reg.is_registered_op("aten", "sigmoid")                     # built in
    assert reg.is_registered_op("aten", "add", "Tensor")
    assert not reg.is_registered_op("oxport_reg", "scaled_relu")
    assert reg.get_op_functions("oxport_reg", "scaled_relu") is None

    def first(x, a):
        return x

    def second(x, a):
        return x
    reg.register_op(first, "aten", "sigmoid")
    reg.register_op(second, "aten", "sigmoid")
    fns = reg.get_op_functions("aten", "sigmoid")
    assert isinstance(fns[0], oxport._registry.BuiltinLowering)       # built-in first
    assert fns[1:] == [first, second]                                  # then in registration order
    for bad in [("aten::sigmoid", "x"), ("", "sigmoid"), ("aten", "sig moid"), ("aten", "")]:
        with pytest.raises(ValueError):
            reg.register_op(first, *bad)
    with pytest.raises(ValueError):
        reg.is_registered_op("aten", "sigmoid", "not an overload")


def test_dynamo_export_with_registry():
    reg = oxport.OnnxRegistry()
    reg.register_op(builder_translation, "oxport_reg", "scaled_relu")
    model, x = UsesCustomOp(), torch.randn(3, 4)
    with pytest.warns(DeprecationWarning, match="oxport.export"):
        program = oxport.dynamo_export(model, x, export_options=oxport.ExportOptions(onnx_registry=reg))
    torch.testing.assert_close(program(x)[0], model(x))


def test_dynamo_export_dynamic_shapes_true():
    model, args = demo_models.cnn()
    with pytest.warns(DeprecationWarning):
        program = oxport.dynamo_export(model, *args, export_options=oxport.ExportOptions(dynamic_shapes=True))
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(program(x)[0], model(x))


def test_dynamo_export_with_fake_context():
    """torch.onnx's documented fake-mode flow: the model and inputs made under the context, its
    mode passed as ExportOptions(fake_context=...), real weights applied afterwards."""
    with oxport.enable_fake_mode() as fake_context:
        model = demo_models.MLPModel()
        x = torch.rand(97, 8)
    with pytest.warns(DeprecationWarning):
        program = oxport.dynamo_export(model, x, export_options=oxport.ExportOptions(fake_context=fake_context))
    assert program._graph.has_fake_weights()
    real, (xr,) = demo_models.mlp()
    program.apply_weights(dict(real.state_dict()))
    torch.testing.assert_close(program(xr)[0], real(xr))
    with pytest.raises(TypeError, match="fake_context"), pytest.warns(DeprecationWarning):
        oxport.dynamo_export(real, xr, export_options=oxport.ExportOptions(fake_context=object()))


def test_export_options_validation():
    with pytest.raises(TypeError, match="onnx_registry"):
        oxport.ExportOptions(onnx_registry=object())
    with pytest.raises(TypeError, match="diagnostic_options"):
        oxport.ExportOptions(diagnostic_options=object())


class MutatesBuffer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("count", torch.zeros(1))

    def forward(self, x):
        self.count.add_(1)
        return x * 2


def test_dropped_mutation_warns_and_can_raise():
    x = torch.randn(2)
    with pytest.warns(oxport.OnnxExporterWarning, match="mutates state"):
        oxport.export(MutatesBuffer(), (x,), verbose=False)
    options = oxport.ExportOptions(diagnostic_options=oxport.DiagnosticOptions(warnings_as_errors=True))
    with pytest.warns(DeprecationWarning), pytest.raises(oxport.OnnxExporterWarning, match="mutates state"):
        oxport.dynamo_export(MutatesBuffer(), x, export_options=options)


def test_diagnostic_verbosity_restored():
    logger = logging.getLogger("oxport")
    before = logger.level
    options = oxport.ExportOptions(diagnostic_options=oxport.DiagnosticOptions(verbosity_level=logging.DEBUG))
    model, args = demo_models.mlp()
    with pytest.warns(DeprecationWarning):
        oxport.dynamo_export(model, *args, export_options=options)
    assert logger.level == before
