/*
 * lower_more.c — ops the OpInfo coverage run found missing that fit no family file: var_mean,
 * diagonal, narrow_copy, signbit, _local_scalar_dense (.item()), addmv, ldexp, round with decimals,
 * masked_scatter, as_strided (static shapes: the element indices are computed at export) and sign.
 */
#include "lower/lower.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* var_mean.correction(self, dim?, *, correction?, keepdim) -> (var, mean) */
int lower_var_mean(ox_lower *L) {
    int rc = lower_var(L);   /* output 0; then the mean over the same dims */
    if (rc != OX_OK || L->node->noutputs < 2) return rc;
    ox_value *x = ox_arg_value(L, 0);
    ox_dtype t = ox_out_dtype(L, 1);
    int64_t dims[OX_MAX_RANK];
    int n = ox_arg_ints(L, 1, dims, OX_MAX_RANK);
    if (!x || n < 0) return ox_bind(L, 1, NULL);
    if (t == OX_UNDEFINED) t = x->dtype;
    if (x->rank == 0) return ox_bind(L, 1, ox_cast(L, x, t));
    for (int k = 0; k < n; k++)
        if (!ox_norm_dim(L, &dims[k], x->rank, "dim")) return OX_ELOWER;
    /* 16-bit floats are averaged in float, as the variance is: ONNX Runtime has no bfloat16 ReduceMean */
    ox_dtype ct = t == OX_FLOAT16 || t == OX_BFLOAT16 ? OX_FLOAT : t;
    ox_value *xc = ox_cast(L, x, ct);
    ox_node *r = n ? ox_op(L, "ReduceMean", 2, xc, ox_const_ints(L, n, dims)) : ox_op(L, "ReduceMean", 1, xc);
    if (r) ox_node_set_int(L->g, r, "keepdims", ox_arg_bool(L, 3, false));
    return ox_bind(L, 1, ox_cast(L, ox_typed(ox_out(r), ct), t));
}

/* diagonal(self, offset=0, dim1=0, dim2=1): dims dim1, dim2 moved last, the diagonal gathered
 * from them flattened (static sizes). */
int lower_diagonal(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t off = ox_arg_int(L, 1, 0), d1 = ox_arg_int(L, 2, 0), d2 = ox_arg_int(L, 3, 1);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank < 2 || x->rank > OX_MAX_RANK) return ox_lower_fail(L, "diagonal of a %d-d tensor", x->rank);
    if (!ox_norm_dim(L, &d1, x->rank, "dim1") || !ox_norm_dim(L, &d2, x->rank, "dim2")) return OX_ELOWER;
    if (d1 == d2) return ox_lower_fail(L, "dim1 and dim2 are both %lld", (long long)d1);
    if (!x->dims || x->dims[d1].param || x->dims[d2].param) return ox_lower_unsupported(L, "diagonal over symbolic sizes");
    int64_t n1 = x->dims[d1].value, n2 = x->dims[d2].value;
    if (n1 > (1 << 30) || n2 > (1 << 30)) return ox_lower_unsupported(L, "diagonal of a %lld x %lld matrix", (long long)n1, (long long)n2);
    int64_t start1 = 0, start2 = 0, len = 0;
    if (off > -n1 && off < n2) {   /* else the diagonal is empty */
        start1 = off < 0 ? -off : 0;
        start2 = off > 0 ? off : 0;
        len = n1 - start1 < n2 - start2 ? n1 - start1 : n2 - start2;
    }
    int64_t perm[OX_MAX_RANK], shape[OX_MAX_RANK];
    int p = 0;
    for (int k = 0; k < x->rank; k++)
        if (k != d1 && k != d2) perm[p++] = k;
    perm[p++] = d1;
    perm[p++] = d2;
    ox_node *tr = ox_op(L, "Transpose", 1, x);
    if (tr) ox_node_set_ints(L->g, tr, "perm", perm, x->rank);
    for (int k = 0; k < x->rank - 2; k++) shape[k] = 0;
    shape[x->rank - 2] = n1 * n2;
    ox_value *flat = ox_typed(ox_reshape(L, ox_typed(ox_out(tr), x->dtype), x->rank - 1, shape), x->dtype);
    int64_t *idx = ox_arena_array(L->g->arena, (size_t)(len ? len : 1), sizeof *idx);
    if (!idx) return ox_bind(L, 0, NULL);
    for (int64_t i = 0; i < len; i++) idx[i] = (start1 + i) * n2 + start2 + i;
    ox_node *g = ox_op(L, "Gather", 2, flat, ox_const_tensor(L, OX_INT64, 1, &len, idx));
    if (g) ox_node_set_int(L->g, g, "axis", x->rank - 2);
    return ox_bind(L, 0, ox_typed(ox_out(g), x->dtype));
}

/* narrow_copy(self, dim, start, length) */
int lower_narrow_copy(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, 1, 0), start = ox_arg_int(L, 2, 0), len = ox_arg_int(L, 3, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    if (x->rank == 0) return ox_lower_fail(L, "narrow of a 0-d tensor");
    if (len < 0 || start < -(INT64_C(1) << 62) || start > (INT64_C(1) << 62) || len > (INT64_C(1) << 62))
        return ox_lower_fail(L, "start %lld, length %lld", (long long)start, (long long)len);
    if (start < 0) {
        if (!x->dims || x->dims[dim].param) return ox_lower_unsupported(L, "a negative start on a symbolic size");
        start += x->dims[dim].value;
    }
    return ox_bind(L, 0, ox_op_typed(L, "Slice", x->dtype, 4, x, ox_const_i64_1d(L, start),
                                     ox_const_i64_1d(L, start + len), ox_const_i64_1d(L, dim)));
}

/* signbit(self): x < 0, and -0.0 too (1 / -0.0 is -inf). */
int lower_signbit(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    /* ONNX Runtime compares neither bools nor bfloat16: int32 and float hold them exactly */
    if (x->dtype == OX_BOOL || x->dtype == OX_UINT8) x = ox_cast(L, x, OX_INT32);
    else if (x->dtype == OX_BFLOAT16) x = ox_cast(L, x, OX_FLOAT);
    ox_value *neg = ox_binary(L, "Less", x, ox_const_scalar(L, x->dtype, 0), OX_BOOL);
    if (!ox_dtype_is_float(x->dtype)) return ox_bind(L, 0, neg);
    ox_value *zero = ox_binary(L, "Equal", x, ox_const_scalar(L, x->dtype, 0), OX_BOOL);
    ox_value *inv = ox_binary(L, "Div", ox_const_scalar(L, x->dtype, 1), x, x->dtype);
    ox_value *negzero = ox_binary(L, "And", zero, ox_binary(L, "Less", inv, ox_const_scalar(L, x->dtype, 0),
                                                            OX_BOOL), OX_BOOL);
    return ox_bind(L, 0, ox_binary(L, "Or", neg, negzero, OX_BOOL));
}

/* _local_scalar_dense(self): .item(), a 0-d value from a one-element tensor. */
int lower_local_scalar(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    ox_dtype t = ox_out_dtype(L, 0);
    return ox_bind(L, 0, ox_cast(L, ox_typed(ox_reshape(L, x, 0, NULL), x->dtype),
                                 t == OX_UNDEFINED ? x->dtype : t));
}

/* addmv(self, mat, vec, *, beta=1, alpha=1) = beta * self + alpha * (mat @ vec) */
int lower_addmv(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *s = ox_arg_value(L, 0), *m = ox_arg_value(L, 1), *v = ox_arg_value(L, 2);
    if (!s || !m || !v) return ox_bind(L, 0, NULL);
    if (t == OX_UNDEFINED) t = s->dtype;
    ox_value *mv = ox_binary(L, "MatMul", ox_cast(L, m, t), ox_cast(L, v, t), t);
    double beta = ox_arg_float(L, 3, 1), alpha = ox_arg_float(L, 4, 1);
    if (alpha != 1) mv = ox_binary(L, "Mul", mv, ox_const_scalar(L, t, alpha), t);
    if (beta == 0) return ox_bind(L, 0, ox_binary(L, "Expand", mv, ox_unary(L, "Shape", s, OX_INT64), t));
    ox_value *bs = ox_cast(L, s, t);
    if (beta != 1) bs = ox_binary(L, "Mul", bs, ox_const_scalar(L, t, beta), t);
    return ox_bind(L, 0, ox_binary(L, "Add", bs, mv, t));
}

/* ldexp.Tensor(self, other) = self * 2 ** other */
int lower_ldexp(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *x = ox_arg_scalar(L, 0, t), *e = ox_arg_scalar(L, 1, t);
    if (!x || !e) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_binary(L, "Mul", x, ox_binary(L, "Pow", ox_const_scalar(L, t, 2), e, t), t));
}

/* round.decimals(self, *, decimals): round(x * 10^d) / 10^d, half to even as torch. */
int lower_round_decimals(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t d = ox_arg_int(L, 1, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_dtype_is_float(x->dtype)) return ox_bind(L, 0, x);
    ox_value *s = ox_const_scalar(L, x->dtype, pow(10.0, (double)d));
    ox_value *r = ox_unary(L, "Round", ox_binary(L, "Mul", x, s, x->dtype), x->dtype);
    return ox_bind(L, 0, ox_binary(L, "Div", r, s, x->dtype));
}

/* masked_scatter(self, mask, source): where mask is set, the next element of source in order. The
 * k-th set position takes source.flatten()[k]: k is the running count of set positions - 1. */
int lower_masked_scatter(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *mask = ox_arg_value(L, 1), *src = ox_arg_value(L, 2);
    if (!x || !mask || !src) return ox_bind(L, 0, NULL);
    ox_value *shape = ox_unary(L, "Shape", x, OX_INT64);
    ox_value *m = ox_binary(L, "Expand", ox_cast(L, mask, OX_BOOL), shape, OX_BOOL);
    int64_t flat_shape = -1;
    ox_value *mf = ox_typed(ox_reshape(L, ox_cast(L, m, OX_INT64), 1, &flat_shape), OX_INT64);
    ox_value *pos = ox_binary(L, "CumSum", mf, ox_const_scalar(L, OX_INT64, 0), OX_INT64);
    pos = ox_binary(L, "Sub", pos, ox_const_scalar(L, OX_INT64, 1), OX_INT64);
    pos = ox_binary(L, "Max", pos, ox_const_scalar(L, OX_INT64, 0), OX_INT64);
    ox_value *sf = ox_typed(ox_reshape(L, ox_cast(L, src, x->dtype), 1, &flat_shape), x->dtype);
    ox_value *picked = ox_binary(L, "Gather", sf, pos, x->dtype);
    picked = ox_binary(L, "Reshape", picked, shape, x->dtype);
    return ox_bind(L, 0, ox_where(L, m, picked, x, x->dtype));
}

/* as_strided(self, size[], stride[], storage_offset?): self's elements (contiguous, static size)
 * at offset + sum(i_k * stride_k), gathered from its flattening with indices computed here. */
int lower_as_strided(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t size[OX_MAX_RANK], stride[OX_MAX_RANK];
    int ns = ox_arg_ints(L, 1, size, OX_MAX_RANK), nt = ox_arg_ints(L, 2, stride, OX_MAX_RANK);
    int64_t off = ox_nargs(L) > 3 && !ox_arg_is_none(L, 3) ? ox_arg_int(L, 3, 0) : 0;
    if (!x || ns < 0 || nt < 0) return ox_bind(L, 0, NULL);
    if (ns != nt) return ox_lower_fail(L, "%d sizes and %d strides", ns, nt);
    if (!ox_static_shape(x, NULL)) return ox_lower_unsupported(L, "as_strided of a tensor with symbolic sizes");
    int64_t numel = 1, total = 1;
    for (int k = 0; k < x->rank; k++) {
        if (x->dims[k].value > (1 << 24) || numel > (int64_t)(1 << 24)) return ox_lower_unsupported(L, "as_strided of a large tensor");
        numel *= x->dims[k].value;
    }
    if (off < 0 || off > numel) return ox_lower_fail(L, "storage_offset %lld outside the tensor", (long long)off);
    for (int k = 0; k < ns; k++) {
        if (size[k] < 0 || stride[k] < 0 || (size[k] > 1 && stride[k] > numel))
            return ox_lower_fail(L, "size %lld, stride %lld", (long long)size[k], (long long)stride[k]);
        if (size[k] && total > (int64_t)(1 << 24) / size[k]) return ox_lower_unsupported(L, "an as_strided view of over 16M elements");
        total *= size[k];
    }
    int64_t *idx = ox_arena_array(L->g->arena, (size_t)(total ? total : 1), sizeof *idx);
    if (!idx) return ox_bind(L, 0, NULL);
    int64_t at[OX_MAX_RANK] = {0};
    for (int64_t e = 0; e < total; e++) {
        int64_t p = off;
        for (int k = 0; k < ns; k++) p += at[k] * stride[k];
        if (p < 0 || p >= numel) return ox_lower_fail(L, "element %lld of the view is outside the tensor", (long long)e);
        idx[e] = p;
        for (int k = ns - 1; k >= 0; k--) {   /* odometer */
            if (++at[k] < size[k]) break;
            at[k] = 0;
        }
    }
    int64_t flat = -1;
    ox_value *xf = ox_typed(ox_reshape(L, x, 1, &flat), x->dtype);
    ox_value *g = ox_binary(L, "Gather", xf, ox_const_tensor(L, OX_INT64, ns, size, idx), x->dtype);
    return ox_bind(L, 0, g);
}

/* sign / sgn (self): ONNX Sign; a bool is its own sign; bfloat16 through float. */
int lower_sign(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->dtype == OX_BOOL) return ox_bind(L, 0, x);
    ox_dtype ct = x->dtype == OX_BFLOAT16 ? OX_FLOAT : x->dtype;
    ox_value *s = ox_unary(L, "Sign", ox_cast(L, x, ct), ct);
    return ox_bind(L, 0, ox_cast(L, s, x->dtype));
}

/* copy(self, src, non_blocking): src cast to self's dtype, broadcast to self's shape. */
int lower_copy(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *src = ox_arg_value(L, 1);
    if (!x || !src) return ox_bind(L, 0, NULL);
    ox_value *shape = ox_unary(L, "Shape", x, OX_INT64);
    return ox_bind(L, 0, ox_binary(L, "Expand", ox_cast(L, src, x->dtype), shape, x->dtype));
}

/* dist(self, other, p=2): the p-norm of the difference over every element. */
int lower_dist(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *a = ox_arg_scalar(L, 0, t), *b = ox_arg_scalar(L, 1, t);
    double p = ox_arg_float(L, 2, 2);
    if (!a || !b) return ox_bind(L, 0, NULL);
    ox_value *d = ox_unary(L, "Abs", ox_binary(L, "Sub", a, b, t), t);
    ox_node *r;
    if (p == 2 || p == 1) r = ox_op(L, p == 2 ? "ReduceL2" : "ReduceL1", 1, d);
    else if (isinf(p)) r = ox_op(L, p > 0 ? "ReduceMax" : "ReduceMin", 1, d);
    else if (p == 0) r = ox_op(L, "ReduceSum", 1, ox_cast(L, ox_cast(L, d, OX_BOOL), t));
    else {
        ox_node *s = ox_op(L, "ReduceSum", 1, ox_binary(L, "Pow", d, ox_const_scalar(L, t, p), t));
        if (s) ox_node_set_int(L->g, s, "keepdims", 0);
        return ox_bind(L, 0, ox_binary(L, "Pow", ox_typed(ox_out(s), t), ox_const_scalar(L, t, 1 / p), t));
    }
    if (r) ox_node_set_int(L->g, r, "keepdims", 0);
    return ox_bind(L, 0, ox_typed(ox_out(r), t));
}

/* angle(self) of a real tensor: pi where x < 0, else 0 (NaN stays NaN). */
int lower_angle(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (t == OX_UNDEFINED) t = x->dtype;
    ox_value *xc = ox_cast(L, x, t);
    ox_value *neg = ox_binary(L, "Less", xc, ox_const_scalar(L, t, 0), OX_BOOL);
    ox_value *a = ox_op_typed(L, "Where", t, 3, neg, ox_const_scalar(L, t, M_PI), ox_const_scalar(L, t, 0));
    if (ox_dtype_is_float(x->dtype))   /* x * 0 is NaN for NaN: carry it */
        a = ox_binary(L, "Add", a, ox_binary(L, "Mul", xc, ox_const_scalar(L, t, 0), t), t);
    return ox_bind(L, 0, a);
}

/* addbmm(self, batch1, batch2, *, beta=1, alpha=1) = beta * self + alpha * sum_b(batch1[b] @ batch2[b]) */
int lower_addbmm(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *s = ox_arg_value(L, 0), *b1 = ox_arg_value(L, 1), *b2 = ox_arg_value(L, 2);
    if (!s || !b1 || !b2) return ox_bind(L, 0, NULL);
    if (t == OX_UNDEFINED) t = s->dtype;
    ox_value *mm = ox_binary(L, "MatMul", ox_cast(L, b1, t), ox_cast(L, b2, t), t);
    ox_node *sum = ox_op(L, "ReduceSum", 2, mm, ox_const_i64_1d(L, 0));
    if (sum) ox_node_set_int(L->g, sum, "keepdims", 0);
    ox_value *r = ox_typed(ox_out(sum), t);
    double beta = ox_arg_float(L, 3, 1), alpha = ox_arg_float(L, 4, 1);
    if (alpha != 1) r = ox_binary(L, "Mul", r, ox_const_scalar(L, t, alpha), t);
    if (beta == 0) return ox_bind(L, 0, ox_binary(L, "Expand", r, ox_unary(L, "Shape", s, OX_INT64), t));
    ox_value *bs = ox_cast(L, s, t);
    if (beta != 1) bs = ox_binary(L, "Mul", bs, ox_const_scalar(L, t, beta), t);
    return ox_bind(L, 0, ox_binary(L, "Add", bs, r, t));
}

/* bitwise_left_shift / bitwise_right_shift (self, other), signed or unsigned ints: x * 2^y and
 * floor(x / 2^y) (arithmetic shift), 2^y computed exactly by BitShift on uint64. Shifts past the
 * width give 0 (or -1 right-shifting a negative), as torch; int64 shifts are exact up to 62. */
static int shift(ox_lower *L, bool left) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *x = ox_arg_scalar(L, 0, t), *y = ox_arg_scalar(L, 1, t);
    if (!x || !y) return ox_bind(L, 0, NULL);
    if (!ox_dtype_is_int(t)) return ox_lower_unsupported(L, "shifts of %s", ox_dtype_name(t));
    int bits = (int)ox_dtype_size(t) * 8;
    if (bits > 62) bits = 62;   /* 2^y must stay a positive int64 (right shifts of int64 by 63 or more: not exact) */
    ox_value *yc = ox_op_typed(L, "Clip", OX_INT64, 3, ox_cast(L, y, OX_INT64),
                               ox_const_scalar(L, OX_INT64, 0), ox_const_scalar(L, OX_INT64, bits));
    uint64_t one_bits = 1;
    ox_value *one = ox_const_tensor(L, OX_UINT64, 0, NULL, &one_bits);
    ox_node *p = ox_op(L, "BitShift", 2, one, ox_cast(L, yc, OX_UINT64));
    if (p) ox_node_set_string(L->g, p, "direction", "LEFT");
    ox_value *pow2 = ox_typed(ox_out(p), OX_UINT64);
    ox_value *x64 = ox_cast(L, x, OX_INT64);
    ox_value *r;
    if (left) {
        r = ox_binary(L, "Mul", x64, ox_cast(L, pow2, OX_INT64),
                      OX_INT64);   /* wraps modulo 2^64, then narrowed */
    } else {
        /* floor division by 2^y for y < 64: (x - ((x % d) + d) % d) / d, d = 2^y */
        ox_value *d = ox_cast(L, pow2, OX_INT64);
        ox_node *m = ox_op(L, "Mod", 2, x64, d);
        if (m) ox_node_set_int(L->g, m, "fmod", 0);   /* Python-style: sign of the divisor */
        r = ox_binary(L, "Div", ox_binary(L, "Sub", x64, ox_typed(ox_out(m), OX_INT64), OX_INT64), d, OX_INT64);
    }
    return ox_bind(L, 0, ox_cast(L, r, t));
}

int lower_left_shift(ox_lower *L) { return shift(L, true); }
int lower_right_shift(ox_lower *L) { return shift(L, false); }

/* bucketize.Tensor(self, boundaries, *, out_int32, right): the number of boundaries below x (<= x
 * with right), by comparing x against every boundary at once. */
int lower_bucketize(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *b = ox_arg_value(L, 1);
    bool right = ox_arg_bool(L, 3, false);
    if (!x || !b) return ox_bind(L, 0, NULL);
    if (b->rank != 1) return ox_lower_fail(L, "boundaries of rank %d", b->rank);
    ox_dtype ct = ox_promote(x->dtype, b->dtype);
    if (ct == OX_BOOL) ct = OX_INT32;
    if (ct == OX_BFLOAT16) ct = OX_FLOAT;
    ox_value *xu = ox_binary(L, "Unsqueeze", ox_cast(L, x, ct), ox_const_i64_1d(L, -1), ct);
    ox_value *cmp = ox_binary(L, right ? "LessOrEqual" : "Less", ox_cast(L, b, ct), xu, OX_BOOL);
    ox_node *s = ox_op(L, "ReduceSum", 2, ox_cast(L, cmp, OX_INT64), ox_const_i64_1d(L, -1));
    if (s) ox_node_set_int(L->g, s, "keepdims", 0);
    ox_dtype t = ox_out_dtype(L, 0);
    return ox_bind(L, 0, ox_cast(L, ox_typed(ox_out(s), OX_INT64), t == OX_UNDEFINED ? OX_INT64 : t));
}
