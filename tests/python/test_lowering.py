"""One small module per lowering row family: export, run in ONNX Runtime, compare with eager, and
run the ONNX checker. Then the uses a row declines (with the reason it gives) and float16."""
import onnx
import pytest
import torch
import torch.nn.functional as F

import oxport


class Fn(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def r(*shape, dtype=torch.float32):
    return torch.randn(*shape).to(dtype)


def ints(*shape, high=5):
    return torch.randint(-high, high, shape)


def _put_columns(x, cols, v):   # x[:, cols] = v: an index_put whose index starts at dim 1
    y = x.clone()
    y[:, cols] = v
    return y


def _copy_into(x, v):   # x.copy_(v) on a fresh value: aten.copy
    y = x * 1
    y.copy_(v)
    return y


def _case(fn, *args):
    return fn, args


# name → (fn or module, args). Inputs are made under a fixed seed at collection time.
torch.manual_seed(0)
CASES = {
    # elementwise
    "unary": _case(lambda x: torch.sigmoid(x) + torch.tanh(x) + torch.erf(x) + torch.exp(x) - torch.abs(x).sqrt()
                   + torch.sin(x) * torch.cos(x) + x.floor() + x.ceil() + x.round() + x.sign(), r(3, 4)),
    "log_reciprocal_rsqrt": _case(lambda x: x.abs().add(0.5).log() + (x.abs() + 1).reciprocal() + (x.abs() + 1).rsqrt(), r(3, 4)),
    "sqrt_of_int": _case(lambda x: torch.sqrt(x.abs()), ints(3, 4)),
    "activations": _case(lambda x: F.silu(x) + F.leaky_relu(x, 0.1) + F.elu(x) + F.hardsigmoid(x) + F.hardswish(x)
                         + F.hardtanh(x) + F.relu(x) + F.gelu(x) + F.gelu(x, approximate="tanh"), r(2, 8)),
    "clamp": _case(lambda x, lo: x.clamp(-0.5, 0.5) + x.clamp(min=lo) + x.clamp_min(0.1) + x.clamp_max(0.2), r(3, 4), r(4)),
    "arith_promotion": _case(lambda a, b: a + b * 2 - 3 * a / (b.abs() + 1) + (a - b) * 0.5 + torch.rsub(a, b, alpha=2), r(3, 4), ints(4)),
    "int_division": _case(lambda a, b: (a // b, a % b, torch.fmod(a, b), torch.div(a, b, rounding_mode="trunc"),
                                        torch.div(a, b, rounding_mode="floor"), a / b),
                          ints(3, 4, high=20), ints(4).abs() + 1),
    "float_division_modes": _case(lambda a, b: (torch.div(a, b, rounding_mode="trunc"), torch.div(a, b, rounding_mode="floor"),
                                                a % b, torch.fmod(a, b), torch.floor_divide(a, b)),
                                  r(3, 4) * 5, r(4).abs() + 0.5),
    "pow": _case(lambda a, b: a.abs() ** 1.5 + a.abs() ** b + 2 ** b + a ** 2, r(3, 4), r(4)),
    "min_max": _case(lambda a, b: torch.maximum(a, b) + torch.minimum(a, b), r(3, 4), r(3, 4)),
    "compare": _case(lambda a, b: ((a < b) | (a >= 0.5), (a == b) & (a != 0), a > b, a <= 0.1, (a > 0) ^ (b > 0), ~(a > b)),
                     r(3, 4), r(3, 4)),
    "logical": _case(lambda a, b: (torch.logical_and(a > 0, b > 0), torch.logical_or(a > 0, b), torch.logical_xor(a, b > 0),
                                   torch.logical_not(a)), r(3, 4), r(3, 4)),
    "bitwise_int": _case(lambda a, b: (a & b, a | b, a ^ b, ~a), ints(3, 4), ints(3, 4)),
    "where_masked_fill": _case(lambda x, m: (torch.where(m, x, 0.0), torch.where(m, 1.0, x), x.masked_fill(m, -1e4),
                                             x.masked_fill(~m, torch.tensor(2.0))), r(3, 4), r(3, 4) > 0),
    "to_dtype": _case(lambda x: (x.to(torch.int32), x.long().float(), x.type_as(torch.zeros(1, dtype=torch.float64)), x.half().float()),
                      r(3, 4) * 10),
    # shape
    "view_reshape_flatten": _case(lambda x: (x.view(4, 6), x.reshape(-1), x.flatten(1), x.unflatten(2, (2, 2)), x.view(2, -1, 2)),
                                  r(2, 3, 4)),
    "permute_transpose": _case(lambda x: (x.permute(2, 0, 1), x.transpose(0, 2), x[0].t(), x.mT), r(2, 3, 4)),
    "select_slice": _case(lambda x: (x[1], x[:, 1:3], x[..., ::2], x[:, -1], x[0, 1:, :-1], x[:, None]), r(3, 4, 5)),
    "cat_stack_split": _case(lambda a, b: (torch.cat([a, b], 1), torch.stack([a, b], 0), *a.split(2, 1), *a.chunk(2, 0),
                                           *b.split([1, 3], 1), *a.unbind(0)), r(4, 4), r(4, 4)),
    # torch.cat drops legacy empty 1-D inputs; torch.stack keeps them: (2, 0), and (3, 0) beside
    # rows
    "stack_empty": _case(lambda a, b: (torch.stack([a, b]), torch.stack([a, a * 2, b], 1), torch.cat([a, b])),
                         torch.zeros(0), torch.zeros(0)),
    "squeeze_unsqueeze_expand": _case(lambda x: (x.unsqueeze(0), x.squeeze(1), x.squeeze(), x.expand(2, 3, 4), x.expand_as(torch.empty(5, 2, 2, 4)),
                                                 x.repeat(2, 1, 3)), r(2, 1, 4)),
    "repeat_symbolic": _case(lambda x, n: x.repeat(n.item(), 2, 1), r(2, 3), torch.tensor(3)),   # repeats from a traced size
    "factories": _case(lambda x: (torch.arange(5) + x.sum().long(), torch.arange(1, 7, 2, dtype=torch.float32), torch.full((2, 3), 1.5),
                                  torch.zeros(2, 3), torch.ones(2), torch.zeros_like(x), torch.ones_like(x), torch.full_like(x, 7),
                                  x.new_zeros(2, 2), x.new_ones(3), x.new_full((2,), 4.0)), r(2, 3)),
    # indexing and scans
    "index_one": _case(lambda x, i: (x[i], x[:, i], x[..., i]), r(5, 6, 7), torch.tensor([[0, 4], [-1, 2]])),
    "index_adjacent": _case(lambda x, i, j: (x[:, i, j], x[i, j]), r(5, 6, 7), torch.tensor([[0], [3]]), torch.tensor([1, -2, 5])),
    "index_split": _case(lambda x, i, j: x[i, :, j], r(5, 6, 7), torch.tensor([0, 3, -1]), torch.tensor([1, 2, 6])),
    "gather": _case(lambda x, i: (torch.gather(x, 1, i), torch.gather(x, 0, i[:2])), r(4, 5), torch.randint(0, 4, (4, 3))),
    "cumsum": _case(lambda x: (x.cumsum(1), (x > 0).cumsum(-1), x.long().cumsum(0), x.cumsum(0, dtype=torch.float64)), r(3, 4) * 3),
    "diff": _case(lambda x, p: (torch.diff(x), torch.diff(x, n=2, dim=0), torch.diff(x, prepend=p, dim=1), torch.diff(x > 0)),
                  r(4, 5), r(4, 1)),
    # nn
    "linear_matmul": _case(torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3, bias=False)), r(2, 5, 8)),
    "addmm_bmm_baddbmm": _case(lambda b, x, y, z: (torch.addmm(b, x, y, beta=0.5, alpha=2), torch.bmm(z, z.transpose(1, 2)),
                                                   torch.baddbmm(z, z, z.transpose(1, 2)[..., :4]), x @ y, torch.mm(x, y)),
                               r(3), r(2, 4), r(4, 3), r(2, 4, 4)),
    "conv": _case(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8).eval(), torch.nn.ReLU(),
                                      torch.nn.Conv2d(8, 8, 3, stride=2, groups=4, dilation=1, padding="valid"),
                                      torch.nn.ConvTranspose2d(8, 4, 2, stride=2)), r(1, 3, 12, 12)),
    "conv1d_3d": _case(lambda x, y: (F.conv1d(x, torch.ones(2, 3, 3), padding="same"), F.conv3d(y, torch.ones(2, 1, 2, 2, 2))),
                       r(1, 3, 9), r(1, 1, 4, 4, 4)),
    "pools": _case(lambda x: (F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 2), F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                              F.max_pool2d(x, 2, ceil_mode=True), F.adaptive_avg_pool2d(x, 1), F.adaptive_avg_pool2d(x, (3, 3)),
                              F.max_pool1d(x[0], 2), F.avg_pool1d(x[0], 2), F.adaptive_avg_pool1d(x[0], 3)), r(1, 2, 9, 9)),
    "norms": _case(torch.nn.Sequential(torch.nn.LayerNorm(8), torch.nn.Linear(8, 8), torch.nn.LayerNorm(8, elementwise_affine=False)), r(2, 3, 8)),
    "reductions": _case(lambda x: (x.mean(), x.mean(1), x.mean((0, 2), keepdim=True), x.sum(), x.sum(-1), (x > 1).any(), (x > 0).any(1),
                                   (x > 0).sum(1)), r(2, 3, 4)),
    "softmax": _case(lambda x: (x.softmax(-1), x.log_softmax(1), F.dropout(x, 0.5, training=False)), r(2, 3, 4)),
    "embedding": _case(torch.nn.Embedding(10, 4), torch.randint(0, 10, (2, 5))),
    "amax_amin_max_min": _case(lambda x, b: (x.amax(1), x.amin((0, 2), keepdim=True), x.max(), x.min(), x.max(1), x.min(-1, keepdim=True),
                                             b.amax(0), b.max(), b.all(), b.all(1), b.any(0), x.argmax(), x.argmin(1), x.argmax(2, keepdim=True),
                                             x.argmax(keepdim=True)),
                               r(2, 3, 4), r(3, 4) > 0),
    "max_min_int": _case(lambda i: (i.max(0), i.min(), i.amax(), i.argmin(0)), ints(4, 5)),
    "prod_var_std": _case(lambda x, i: (x.prod(), x.prod(1), x.prod(0, keepdim=True), i.prod(1), x.var(), x.var(1), x.var(1, correction=0),
                                        x.std((0, 1), keepdim=True), x.std(-1, correction=2)),
                          r(3, 4, 5), ints(3, 4)),
    "logsumexp_norms": _case(lambda x: (x.logsumexp(1), x.logsumexp((0, 2), keepdim=True), (x * 100).logsumexp(-1),
                                        torch.linalg.vector_norm(x), torch.linalg.vector_norm(x, 1, dim=1),
                                        torch.linalg.vector_norm(x, float("inf"), dim=(0, 2), keepdim=True),
                                        torch.linalg.vector_norm(x, 3.0, dim=-1), torch.linalg.vector_norm(x, 0, dim=1), x.norm(dim=1)),
                             r(2, 3, 4)),
    "reductions_of_0d": _case(lambda x, i: (x.sum(0), x.mean(-1, keepdim=True), x.amax(0), x.max(0), x.argmax(0), x.prod(0),
                                            x.var(0), i.sum(0), i.all(0), x.logsumexp(0), x.topk(1), x.sort()),
                              torch.tensor(3.0), torch.tensor(2)),
    "pads": _case(lambda x, i, b: (F.pad(x, (1, 2)), F.pad(x, (1, 0, 2, 1), value=-2.5), F.pad(x, (-1, 1)), F.pad(x, (1, 1, 1, 1), mode="reflect"),
                                   F.pad(x, (2, 1, 0, 1), mode="replicate"), F.pad(x[0], (1, 2), mode="reflect"), F.pad(i, (1, 1), value=7),
                                   F.pad(b, (1, 0)), F.pad(x, (1, 1, 1, 1, 1, 1)),
                                   F.pad(x.unsqueeze(0), (1, 1, 1, 1, 1, 1), mode="replicate"),
                                   F.pad(x.unsqueeze(0), (1, 1, 0, 1, 1, 0), mode="reflect")),
                  r(2, 3, 4), ints(2, 3), r(2, 3) > 0),
    "einsum_pixel_shuffle": _case(lambda a, b, x, i: (torch.einsum("ij,jk->ik", a, b), torch.einsum("b i j, b j k -> b i k", x, x),
                                                      torch.einsum("ii->i", a[:, :3][:3]), torch.einsum("...j,jk", a, b), torch.einsum("ij->", a),
                                                      torch.einsum("ij,ij->i", i, i), F.pixel_shuffle(x.reshape(1, 8, 2, 2), 2),
                                                      F.pixel_unshuffle(x.reshape(1, 2, 4, 4), 2)),
                                  r(3, 4), r(4, 5), r(2, 4, 4), ints(3, 4)),
    "opinfo_gaps": _case(lambda x, m, v, i: (torch.var_mean(x, 1), torch.var_mean(x, (0, 1), correction=0, keepdim=True),
                                             x.diagonal(), x.diagonal(1), x.diagonal(-1, 0, 2), torch.diagonal(x[0], 2),
                                             torch.narrow_copy(x, 2, 1, 2), torch.signbit(x), torch.signbit(torch.tensor([-0.0, 0.0, -1.0])),
                                             torch.signbit(i), torch.addmv(v, m, torch.ones(5)),
                                             torch.addmv(v, m, torch.ones(5), beta=0.5, alpha=2.0), torch.ldexp(x, torch.tensor([2.0])),
                                             torch.round(x * 10, decimals=1), torch.round(x * 100, decimals=-1),
                                             x.masked_scatter(x > 0, torch.arange(40.0).reshape(2, 20)),
                                             x.as_strided((2, 2), (1, 2)), x.as_strided((3,), (4,), 2), x.sum().item() * x),
                         r(2, 3, 4), r(4, 5), r(4), ints(3)),
    "adaptive_avg_unequal": _case(lambda x, y: (F.adaptive_avg_pool1d(x, 2), F.adaptive_avg_pool1d(x, 4), F.adaptive_avg_pool2d(y, (3, 5)),
                                                F.adaptive_avg_pool2d(y, (2, 7)), F.adaptive_avg_pool3d(y.unsqueeze(0), (2, 3, 4)),
                                                F.adaptive_avg_pool2d(y[0], (5, 2))),
                                  r(1, 2, 9), r(2, 3, 7, 10)),
    "bool_bf16_compare_extremes": _case(lambda b, c, h: (torch.maximum(b, c), torch.minimum(b, c), b.sign(), torch.sgn(b), h == h.flip(0),
                                                      h < 0.5, h >= h.flip(0), h != 1, torch.maximum(h, h.flip(0)), torch.minimum(h, h.flip(0))),
                                        r(6) > 0, r(6) > 0.5, r(6, dtype=torch.bfloat16)),
    "opinfo_gaps_2": _case(lambda x, y, i, j, b1, b2: (torch.dist(x, y), torch.dist(x, y, 1), torch.dist(x, y, 3.0), torch.angle(x),
                                                       torch.addbmm(y[:, :2], b1, b2), torch.addbmm(y[:, :2], b1, b2, beta=0.5, alpha=2.0),
                                                       torch.bitwise_left_shift(i, j), torch.bitwise_right_shift(i, j),
                                                       torch.bitwise_right_shift(i.int(), j.int()),
                                                       torch.bucketize(x, torch.tensor([-1.0, 0.0, 0.5])),
                                                       torch.bucketize(x, torch.tensor([-1.0, 0.0, 0.5]), right=True, out_int32=True),
                                                       _copy_into(x, y[0])),
                           r(4, 5), r(4, 5), ints(4, 5, high=100), ints(4, 5, high=3).abs(), r(3, 4, 6), r(3, 6, 2)),
    "bool_mask_index": _case(lambda x, m, rows: (x[m], x[rows], x[x > 0.5], x[m] * 2), r(3, 4), r(3, 4) > 0, r(3) > 0),
    "trig": _case(lambda x, i: (x.tan(), (x / 4).asin(), (x / 4).acos(), x.atan(), x.sinh(), x.cosh(), x.asinh(),
                                (x.abs() + 1).acosh(), (x / 4).atanh(), i.atan()),
                  r(3, 4), ints(3, 4)),
    "classify_log_exp": _case(lambda x, i: (x.isnan(), (x / 0).isinf(), (x / 0).isfinite(), i.isnan(), i.isinf(), i.isfinite(),
                                            x.abs().log2(), x.abs().log10(), x.abs().log1p(), x.expm1(), x.exp2(), i.exp2(),
                                            (x * 3).trunc(), (x * 3).frac(), i.trunc()),
                              r(3, 4), ints(3, 4)),
    "softplus_family": _case(lambda x: (F.softplus(x), F.softplus(x * 30, beta=2, threshold=10), F.mish(x), F.logsigmoid(x * 50)),
                             r(3, 4)),
    "binary_math": _case(lambda y, x, i: (torch.atan2(y, x), torch.atan2(y, torch.zeros(4)), torch.hypot(y, x), torch.xlogy(x.abs(), y.abs()),
                                          torch.xlogy(torch.zeros(3, 4), y), torch.xlogy(2.0, x.abs()), torch.lerp(x, y, 0.3),
                                          torch.lerp(x, y, y.sigmoid()), torch.logit(x.sigmoid()), torch.logit(x.sigmoid(), eps=0.1),
                                          torch.nan_to_num(x / 0), torch.nan_to_num(x / 0, nan=1.0, posinf=2.0, neginf=-3.0),
                                          torch.atan2(i, i + 1)),
                         r(3, 4), r(3, 4), ints(3, 4)),
    "tril_flip_roll": _case(lambda x, b: (x.tril(), x.triu(1), x.tril(-1), b.triu(), x.flip(0), x.flip((1, 2)), x.roll(1, 0),
                                          x.roll((2, -1), (1, 2)), x.roll(5), x.roll(0, 1)),
                            r(3, 4, 5), r(4, 4) > 0),
    "topk_sort": _case(lambda x, i, b: (x.topk(3), x.topk(2, dim=0, largest=False), x.sort(), x.sort(0, descending=True),
                                        x.argsort(1), torch.sort(i, stable=True), i.argsort(descending=True), b.sort(),
                                        torch.argsort(x, dim=-1, stable=True)),
                       r(4, 6), ints(3, 8, high=3), r(5) > 0),
    "nonzero": _case(lambda x: (torch.nonzero(x > 0), (x > 0).nonzero()), r(4, 5)),
    "scatter_family": _case(lambda x, i, s: (x.scatter(1, i, s), x.scatter(1, i, 2.5), x.scatter_add(1, i, s),
                                            x.scatter(1, i, s, reduce="add"), x.scatter_reduce(1, i, s, "amax"),
                                            x.scatter_reduce(1, i, s, "prod", include_self=False),
                                            x.scatter_reduce(1, i, s, "sum", include_self=False), x.scatter(1, i[:, :2], s)),
                            r(3, 5), torch.tensor([[0, 1, 4], [2, 2, 0], [1, 3, 3]]), r(3, 4)),
    "index_family": _case(lambda x, i, v, w: (x.index_select(1, i), x.index_add(0, torch.tensor([2, 0]), w), x.index_add(1, i, v, alpha=2.0),
                                              x.index_copy(1, torch.tensor([3, 1, 0]), v), x.index_fill(1, i, -1.0),
                                              torch.index_put(x, (torch.tensor([0, 2]),), w[:, :]),
                                              torch.index_put(x, (torch.tensor([0, 2, 0]), torch.tensor([1, 1, 1])), torch.tensor(1.0), accumulate=True),
                                              torch.index_put(x, (torch.tensor([-1]),), torch.tensor(7.0)),
                                              _put_columns(x, torch.tensor([4, 0]), v[:, :2]), _put_columns(x, torch.tensor([1]), 5.0),
                                              torch.index_put(x, (x[:, 0] > 0,), w[0]), torch.index_put(x, (x > 0,), torch.tensor(0.0)),
                                              torch.index_put(x, (x > 0.5,), torch.tensor(1.0), accumulate=True)),
                          r(3, 5), torch.tensor([3, 1, 0]), r(3, 3), r(2, 5)),
    "slice_select_scatter": _case(lambda x, s, t: (torch.slice_scatter(x, s, 1, 1, 5, 2), torch.slice_scatter(x, s, -1, -4, None, 2),
                                                  torch.select_scatter(x, t, 1, -2), torch.select_scatter(x, t, 1, 0)),
                                  r(3, 6), r(3, 2), r(3)),
    "sdpa": _case(lambda q, k, v, m: (F.scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v, is_causal=True),
                                      F.scaled_dot_product_attention(q, k, v, attn_mask=m), F.scaled_dot_product_attention(q, k, v, attn_mask=m > 0),
                                      F.scaled_dot_product_attention(q, k, v, scale=0.3)),
                  r(2, 4, 6, 8), r(2, 4, 6, 8), r(2, 4, 6, 8), r(2, 1, 6, 6)),
    # bool and bfloat16 data where ONNX Runtime lacks kernels (Where, Less, Resize, ReduceMean)
    "where_bool_bf16": _case(lambda c, a, b, x: (torch.where(c, a, b), a.masked_fill(c, True), torch.where(c, x, 1.5),
                                                 x.masked_fill(c, -2.0), torch.signbit(a), torch.signbit(x),
                                                 torch.masked_scatter(a, c, b)),
                             r(3, 4) > 0, r(3, 4) > 0.5, r(3, 4) < 0, r(3, 4, dtype=torch.bfloat16)),
    "bf16_resize_var_mean": _case(lambda x: (F.interpolate(x, scale_factor=2.0, mode="linear"),
                                             F.interpolate(x, size=7, mode="nearest-exact"), torch.var_mean(x, dim=2)),
                                  r(1, 2, 5, dtype=torch.bfloat16)),
    "index_ops_0d_and_bool": _case(lambda s, v, b, c: (s.index_add(0, torch.tensor([0]), v, alpha=-2), s.index_copy(0, torch.tensor([0]), v),
                                                       s.index_fill(0, torch.tensor([0]), 4.0),
                                                       b.index_add(0, torch.tensor([1, 1, 0]), c)),
                                   torch.tensor(1.5), torch.tensor(-0.5), r(3, 2) > 0, r(3, 2) > 0),
    "unfold": _case(lambda x, s: (x.unfold(1, 3, 2), x.unfold(-1, 5, 1), x.unfold(0, 1, 1), s.unfold(0, 1, 1)),
                    r(2, 7, 5), torch.tensor(3.0)),
    "var_std_dim_bitwise_scalar": _case(lambda x, i: (torch.ops.aten.var.dim(x, [1], False, True), torch.ops.aten.std.dim(x, [0]),
                                                      torch.ops.aten.var.dim(x, None), i & 6, i | 1, i ^ 3),
                                        r(3, 4), ints(3, 4, high=8)),
}


def _model(fn):
    return (fn if isinstance(fn, torch.nn.Module) else Fn(fn)).eval()


def _flat(out):
    return torch.utils._pytree.tree_leaves(out)   # torch.return_types (max.dim, ...) included


@pytest.mark.parametrize("name", list(CASES))
def test_row_matches_eager(name):
    fn, args = CASES[name]
    model = _model(fn)
    program = oxport.export(model, args, verbose=False)
    onnx.checker.check_model(program.model_proto, full_check=True)
    with torch.no_grad():
        expected = _flat(model(*args))
    actual = program(*args)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5, check_dtype=True, equal_nan=True)


UNSUPPORTED = {
    "cumsum_bool_out": (lambda x: torch.ops.aten.cumsum.default(x, 0, dtype=torch.bool), (r(3) > 0,), "aten::cumsum.default",
                        "cumsum to bool"),
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_declined_use_says_why(name):
    fn, args, target, reason = UNSUPPORTED[name]
    with pytest.raises(oxport.UnsupportedOpError) as info:
        oxport.export(Fn(fn), args, verbose=False)
    assert target in str(info.value) and reason in str(info.value)


HALF = {
    "activations": (lambda x: F.gelu(x) + F.silu(x) + torch.sigmoid(x) + F.hardswish(x), (r(2, 8, dtype=torch.float16),)),
    "linear_layer_norm": (torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8)).half(), (r(2, 8, dtype=torch.float16),)),
    "softmax_sdpa": (lambda q: F.scaled_dot_product_attention(q, q, q, is_causal=True).softmax(-1),
                     (r(1, 2, 4, 8, dtype=torch.float16),)),
    "cumsum_mean": (lambda x: (x.cumsum(1), x.mean(-1)), (r(3, 4, dtype=torch.float16),)),
}


@pytest.mark.parametrize("name", list(HALF))
def test_float16(name):
    fn, args = HALF[name]
    model = _model(fn)
    program = oxport.export(model, args, verbose=False)
    onnx.checker.check_model(program.model_proto, full_check=True)
    with torch.no_grad():
        expected = _flat(model(*args))
    for a, e in zip(program(*args), expected):
        assert a.dtype == torch.float16
        torch.testing.assert_close(a, e, rtol=2e-3, atol=2e-3)


def test_randperm_is_a_permutation():
    class Perm(torch.nn.Module):
        def forward(self, x):
            return x[torch.randperm(x.shape[0])], torch.randperm(5, dtype=torch.int32), torch.randperm(0)

    x = torch.arange(9.0)
    program = oxport.export(Perm(), (x,), verbose=False)
    orders = set()
    for _ in range(4):
        shuffled, p, empty = program(x)
        assert sorted(shuffled.tolist()) == x.tolist()
        assert sorted(p.tolist()) == list(range(5)) and p.dtype == torch.int32
        assert empty.shape == (0,) and empty.dtype == torch.int64
        orders.add(tuple(shuffled.tolist()))
    assert len(orders) > 1, "four runs gave the same order: the permutation is not random"


@pytest.mark.parametrize("dead_row", [False, True])
def test_attention_guard_goes_when_the_constant_mask_leaves_every_row_something(dead_row):
    mask = torch.triu(torch.full((6, 6), float("-inf")), 1)
    if dead_row:
        mask[2] = float("-inf")

    class Att(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mask", mask)

        def forward(self, q):
            return F.scaled_dot_product_attention(q, q, q, attn_mask=self.mask)

    q = r(1, 2, 6, 4)
    program = oxport.export(Att().eval(), (q,), verbose=False)
    ops = [n.op_type for n in program.model_proto.graph.node]
    assert ("IsNaN" in ops) == dead_row
    torch.testing.assert_close(program(q)[0], Att()(q), rtol=1e-4, atol=1e-5)
