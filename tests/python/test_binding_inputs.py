"""oxport._core.lower is fed by the walker, but whatever it is fed, it raises instead of
crashing."""
import pytest

from oxport import _core

FLOAT, INT64 = 1, 7


def lower(inputs=(), inits=(), nodes=(), outputs=(), names=None, nvalues=4, meta=None, opset=20):
    return _core.lower(opset, list(inputs), list(inits), list(nodes), list(outputs), names, nvalues,
                       meta or {})


def sigmoid(i, o, name="s"):
    return ("aten::sigmoid.default", name, None, [_core.Ref(i)], [o], [(FLOAT, (2, 3))])


def test_minimal_graph():
    g = lower(inputs=[(0, "x", FLOAT, (2, "n"))], nodes=[sigmoid(0, 1)], outputs=[1])
    assert g.stats()["nodes"] == 1
    assert g.stats()["op_counts"] == {"Sigmoid": 1}


@pytest.mark.parametrize("kwargs, exc", [
    (dict(inputs=[("x",)]), TypeError),
    (dict(inputs=[(9, "x", FLOAT, (2,))]), ValueError),                # id out of range
    (dict(inputs=[(0, "x", 999, (2,))]), ValueError),                  # bad dtype code
    (dict(inputs=[(0, "x", FLOAT, tuple(range(100)))]), ValueError),   # rank above 64
    (dict(inputs=[(0, "x", FLOAT, (2.5,))]), TypeError),               # dim not int or str
    (dict(inputs=[(0, "x", FLOAT, (2,))], nodes=[("t", "n", None, [object()], [1], [(FLOAT, ())])]), TypeError),
    (dict(inputs=[(0, "x", FLOAT, (2,))], nodes=[("t", "n", None, [], [7], [(FLOAT, ())])]), ValueError),
    (dict(inputs=[(0, "x", FLOAT, (2,))], nodes=[("t", "n", None, [], [1], [])]), ValueError),
    (dict(inputs=[(0, "x", FLOAT, (2,))], nodes=["not a tuple"]), TypeError),
    (dict(inputs=[(0, "x", FLOAT, (2,))], nodes=[("t", "n", None, [2 ** 70], [1], [(FLOAT, ())])]), OverflowError),
    (dict(inputs=[(0, "x", FLOAT, (2,))], outputs=[3]), _core.LoweringError),   # never produced
    (dict(inputs=[(0, "x", FLOAT, (2,))], outputs=[0], names=["a", "b"]), ValueError),
    (dict(inits=[(0, "w", FLOAT, (2,), 0, -1, None)]), ValueError),
    (dict(inits=[(0, "w", FLOAT, ("n",), 0, 8, None)]), ValueError),
    (dict(nvalues=2 ** 40), (ValueError, OverflowError)),
])
def test_bad_input_raises(kwargs, exc):
    with pytest.raises(exc):
        lower(**kwargs)


def test_deep_nesting_raises():
    arg = [1]
    for _ in range(20):
        arg = [arg]
    with pytest.raises(ValueError, match="nested"):
        lower(inputs=[(0, "x", FLOAT, (2,))], nodes=[("t", "n", None, [arg], [1], [(FLOAT, ())])])


def test_unsupported_details():
    node = ("mylib::op.default", "op", "blk (Mod), m.py:3", [_core.Ref(0), 2, 1.5, "s", None, [1, 2]],
            [1], [(FLOAT, (2,))])
    with pytest.raises(_core.UnsupportedError) as info:
        lower(inputs=[(0, "x", FLOAT, (2,))], nodes=[node], outputs=[1])
    (item,) = info.value.args[1]
    assert item["target"] == "mylib::op.default"
    assert item["where"] == "blk (Mod), m.py:3"
    assert item["arg_dtypes"] == "float32, int, float, str, None, list"


def test_fake_weight_cannot_be_serialized():
    g = lower(inputs=[(0, "x", FLOAT, (2,))], inits=[(1, "w", FLOAT, (2,), 0, 8, None)],
              nodes=[("aten::sigmoid.default", "s", None, [_core.Ref(1)], [2], [(FLOAT, (2,))])],
              outputs=[2])
    assert g.has_fake_weights()
    with pytest.raises(ValueError, match="fake"):
        g.serialize()
    g.serialize(include_initializers=False)      # fine without weights


def test_graph_and_ref_types():
    with pytest.raises(TypeError):
        _core.Graph()
    assert _core.Ref(3).id == 3
    with pytest.raises(ValueError):
        _core.Ref(2 ** 32)
