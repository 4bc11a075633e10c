"""Types of oxport._core, the C extension (src/binding/module.c). Written by hand from the module's
method tables: a function added to or renamed in the binding is added or renamed here too, and
`make lint` checks the two agree (mypy.stubtest). Names with a leading underscore exist only here.

    from oxport import _core
    graph = _core.lower(20, inputs, initializers, nodes, outputs, None, nvalues, {})
    graph.optimize()
    graph.save(path="model.onnx", external_data=True)   # model.onnx.data beside it
"""
from collections.abc import Mapping, Sequence
from typing import TypeAlias, TypedDict, final

# ---- what the walker hands to lower() ----

_Shape: TypeAlias = Sequence[int | str]
"""Dims as ints, or strings naming a symbolic dim (written as dim_param)."""

_Arg: TypeAlias = bool | int | float | str | bytes | Ref | Sequence[_Arg] | None
"""One node argument: a Ref for a graph value, lists of arguments nested at most 8 deep."""

_Meta: TypeAlias = tuple[int | None, _Shape | None]
"""(ONNX dtype code or None, shape or None) of one node output; None: not a tensor."""

_Input: TypeAlias = tuple[int, str, int, _Shape | None]
"""(value id, name, ONNX dtype code, shape)."""

_Initializer: TypeAlias = tuple[int, str, int, Sequence[int], int, int, object]
"""(value id, name, ONNX dtype code, dims, data pointer, size in bytes, owner). Pointer 0: a fake
weight (no data). The owner (the tensor) is kept alive as long as the graph."""

_Node: TypeAlias = tuple[str, str, str | None, Sequence[_Arg], Sequence[int], Sequence[_Meta]]
"""(target, FX node name, where in the model or None, args in schema order, output ids, metas)."""

_FoldTensor: TypeAlias = tuple[int, Sequence[int], bytes]
"""(ONNX dtype code, dims, raw little-endian bytes) as fold_node takes and returns them (a
returned one has a tuple of dims)."""

_FoldAttribute: TypeAlias = tuple[str, str, object]
"""(name, kind, value); kind is int, float, string, ints, floats or tensor (value a _FoldTensor)."""

class _UnsupportedOp(TypedDict):
    """One entry of UnsupportedError.args[1]."""

    target: str
    count: int
    node: str
    where: str | None
    reason: str | None
    arg_dtypes: str

class _GraphStats(TypedDict):
    nodes: int
    initializers: int
    initializer_bytes: int
    op_counts: dict[str, int]
    opset: int

# ---- exceptions (module state of the extension) ----

class Error(RuntimeError):
    """A failure inside the core; the more precise ones below derive from it. Invalid input raises
    ValueError, file-system failures OSError, exhausted memory MemoryError."""

class UnsupportedError(Error):
    """Ops with no lowering: args is (message, list[_UnsupportedOp])."""

class LoweringError(Error):
    """A known op could not be lowered in the form it was used."""

# ---- types ----

@final
class Ref:
    """An FX value handed to the lowering by id."""

    def __new__(cls, id: int) -> Ref: ...
    @property
    def id(self) -> int: ...

@final
class Graph:
    """An ONNX graph held by the C core; only lower() makes one."""

    def set_weight(self, index: int, ptr: int, nbytes: int, owner: object, /) -> None:
        """Point weight `index` (in the order lower() was given them) at new bytes owned by
        `owner`. ValueError when the size differs or optimize() folded the weight away."""

    def optimize(self) -> dict[str, int]:
        """Run the passes in place; returns their statistics (nodes_before, nodes_after, folded,
        fused, ...)."""

    def serialize(self, *, include_initializers: bool = True,
                  keep_initializers_as_inputs: bool = False) -> bytes:
        """The ModelProto bytes."""

    def save(self, *, path: str, include_initializers: bool = True,
             keep_initializers_as_inputs: bool = False, external_data: bool = False,
             data_location: str | None = None) -> None:
        """Write the model (and its external data, a file beside it) atomically. data_location
        None: the writer names the data file (`<model>.data`, or `<model>.<hex>.data` while the
        old model still uses that name)."""

    def stats(self) -> _GraphStats: ...
    def initializer_names(self) -> list[str]: ...
    def has_fake_weights(self) -> bool:
        """Whether any initializer has no data (an export under fake mode)."""

    def rename_dim_params(self, mapping: Mapping[str, str], /) -> list[str]:
        """Rename every dim_param equal to a key (exact names); returns the distinct dim_params
        found before renaming. A dict is required ({} only lists them)."""

# ---- functions ----

def lower(opset: int, inputs: list[_Input], initializers: list[_Initializer], nodes: list[_Node],
          outputs: list[int], output_names: list[str | None] | None, nvalues: int,
          metadata: dict[str, str], /) -> Graph:
    """Lower the walked FX graph to an ONNX Graph in one call. Raises UnsupportedError listing
    every op without a lowering, LoweringError for one that cannot be lowered as used."""

def supported_targets(opset: int, /) -> frozenset[str]:
    """The ATen overloads lowered natively at this opset ("aten::add.Tensor", ...)."""

def fold_node(op_type: str, attrs: Sequence[_FoldAttribute], inputs: Sequence[_FoldTensor | None],
              noutputs: int, opset: int = 20) -> list[_FoldTensor]:
    """Evaluate one ONNX node with the optimizer's folding kernels (the conformance tests' door to
    them). None in inputs: an omitted optional input. NotImplementedError where the kernels do not
    fold the op, dtype or form; ValueError where the node breaks its op's rules."""
