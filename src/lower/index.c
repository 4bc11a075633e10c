/*
 * lower_index.c — gathering and scanning along a dim: index.Tensor (advanced indexing with
 * integer tensors), gather, cumsum, diff, and the slice/select scatters.
 *
 * index.Tensor follows NumPy's rule, which torch keeps: the index tensors broadcast together; when
 * the indexed dims are adjacent the broadcast dims replace them in place, otherwise they go first.
 * One index is a Gather on its axis; several become one GatherND over the indexed dims moved to the
 * front, with a Transpose back when the rule puts the broadcast dims later.
 */
#include "lower/lower.h"

#include <stdint.h>
#include <string.h>

static ox_value *transpose(ox_lower *L, ox_value *x, int rank, const int64_t *perm) {
    bool identity = true;
    for (int k = 0; k < rank; k++) identity &= perm[k] == k;
    if (identity) return x;
    ox_node *n = ox_op(L, "Transpose", 1, x);
    if (n) ox_node_set_ints(L->g, n, "perm", perm, rank);
    return ox_typed(ox_out(n), x ? x->dtype : OX_UNDEFINED);
}

/* x[start:end] along axis (end INT64_MAX: to the end). */
static ox_value *slice_axis(ox_lower *L, ox_value *x, int64_t axis, int64_t start, int64_t end) {
    ox_value *v = ox_out(ox_op(L, "Slice", 4, x, ox_const_i64_1d(L, start), ox_const_i64_1d(L, end),
                               ox_const_i64_1d(L, axis)));
    return ox_typed(v, x ? x->dtype : OX_UNDEFINED);
}

/* ---- index.Tensor ---- */

/* idx + size where idx < 0, for GatherND (whose negative indices not every runtime accepts). */
static ox_value *wrap_negative(ox_lower *L, ox_value *x, int64_t axis, ox_value *idx) {
    ox_value *size;
    if (x->dims && !x->dims[axis].param && x->dims[axis].value >= 0) {
        size = ox_const_scalar(L, OX_INT64, (double)x->dims[axis].value);
    } else {
        size = ox_shape_of(L, x, axis, axis + 1);
    }
    ox_value *neg = ox_out(ox_op(L, "Less", 2, idx, ox_const_scalar(L, OX_INT64, 0)));
    ox_value *up = ox_binary(L, "Add", idx, size, OX_INT64);
    return ox_op_typed(L, "Where", OX_INT64, 3, neg, up, idx);
}

/* index.Tensor(self, indices: Tensor?[]). */
int lower_index(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    const ox_arg *list = ox_arg_at(L, 1);
    if (!x) return ox_bind(L, 0, NULL);
    if (!list || list->kind != OX_ARG_LIST)
        return ox_lower_fail(L, "argument 1: a list of index tensors is required");
    int n = list->u.list.n, rank = x->rank;
    if (rank < 0) return ox_lower_unsupported(L, "the input's rank is not known");
    if (n > rank) return ox_lower_fail(L, "%d indices for a rank-%d tensor", n, rank);
    ox_value *idx[OX_MAX_RANK];
    int64_t axes[OX_MAX_RANK];
    int nidx = 0, bcast_rank = 0;
    for (int k = 0; k < n; k++) {
        const ox_arg *e = &list->u.list.items[k];
        if (e->kind == OX_ARG_NONE) continue;
        if (e->kind != OX_ARG_VALUE) return ox_lower_unsupported(L, "index %d is not a tensor", k);
        ox_value *v = e->u.ref < L->prog->nvalues ? L->prog->table[e->u.ref] : NULL;
        if (!v) return ox_lower_fail(L, "index %d refers to a value that was never produced", k);
        if (v->dtype == OX_BOOL || v->dtype == OX_UINT8) {
            if (n != 1) return ox_lower_unsupported(L, "boolean mask index %d among other indices", k);
            /* x[mask]: the set positions in order (NonZero, [k, m] -> [m, k]) gathered */
            if (v->rank < 1 || v->rank > x->rank)
                return ox_lower_fail(L, "a mask of rank %d for a rank-%d tensor", v->rank, x->rank);
            ox_value *nz = ox_unary(L, "NonZero", ox_cast(L, v, OX_BOOL), OX_INT64);
            ox_node *tr = ox_op(L, "Transpose", 1, nz);
            if (tr) ox_node_set_ints(L->g, tr, "perm", (const int64_t[]){1, 0}, 2);
            ox_node *g = ox_op(L, "GatherND", 2, x, ox_typed(ox_out(tr), OX_INT64));
            return ox_bind(L, 0, ox_typed(ox_out(g), x->dtype));
        }
        if (!ox_dtype_is_int(v->dtype)) return ox_lower_unsupported(L, "index %d of dtype %s", k, ox_dtype_name(v->dtype));
        if (v->rank < 0) return ox_lower_unsupported(L, "index %d has an unknown rank", k);
        if (v->rank > bcast_rank) bcast_rank = v->rank;
        axes[nidx] = k;
        idx[nidx++] = ox_cast(L, v, OX_INT64);
    }
    if (nidx == 0) return ox_bind(L, 0, x);
    if (nidx == 1) {
        /* Gather puts idx's dims in place of the axis: exactly the one-index rule. */
        ox_node *g = ox_op(L, "Gather", 2, x, idx[0]);
        if (g) ox_node_set_int(L->g, g, "axis", axes[0]);
        return ox_bind(L, 0, ox_typed(ox_out(g), x->dtype));
    }
    if (rank + bcast_rank > OX_MAX_RANK) return ox_lower_fail(L, "too many dims");
    bool adjacent = axes[nidx - 1] - axes[0] == nidx - 1;
    /* Indexed dims first, the others after in order. */
    int64_t perm[OX_MAX_RANK];
    int np = 0;
    bool indexed[OX_MAX_RANK] = {false};
    for (int k = 0; k < nidx; k++) perm[np++] = axes[k], indexed[axes[k]] = true;
    for (int k = 0; k < rank; k++) if (!indexed[k]) perm[np++] = k;
    ox_value *xt = transpose(L, x, rank, perm);
    /* Broadcast the indices to one shape (Add of all gives it), stack them on a new last axis. */
    ox_value *sum = NULL, *parts[OX_MAX_RANK];
    for (int k = 0; k < nidx; k++) {
        idx[k] = wrap_negative(L, x, axes[k], idx[k]);
        sum = k == 0 ? idx[k] : ox_binary(L, "Add", sum, idx[k], OX_INT64);
    }
    ox_value *shape = ox_unary(L, "Shape", sum, OX_INT64);
    for (int k = 0; k < nidx; k++) {
        ox_value *e = ox_binary(L, "Expand", idx[k], shape, OX_INT64);
        parts[k] = ox_binary(L, "Unsqueeze", e, ox_const_i64_1d(L, -1), OX_INT64);
    }
    ox_node *c = ox_op_array(L, "Concat", 1, nidx, parts);
    if (c) ox_node_set_int(L->g, c, "axis", -1);
    ox_value *y = ox_binary(L, "GatherND", xt, ox_typed(ox_out(c), OX_INT64), x->dtype);
    /* y: broadcast dims, then the rest. Adjacent indexed dims not at the front go back in place. */
    int before = adjacent ? (int)axes[0] : 0, out_rank = bcast_rank + rank - nidx;
    if (before) {
        np = 0;
        for (int k = 0; k < before; k++) perm[np++] = bcast_rank + k;
        for (int k = 0; k < bcast_rank; k++) perm[np++] = k;
        for (int k = bcast_rank + before; k < out_rank; k++) perm[np++] = k;
        y = transpose(L, y, out_rank, perm);
    }
    return ox_bind(L, 0, y);
}

/* gather(self, dim, index, sparse_grad). */
int lower_gather(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *idx = ox_cast(L, ox_arg_value(L, 2), OX_INT64);
    int64_t dim = ox_arg_int(L, 1, 0);
    if (!x || !idx) return ox_bind(L, 0, NULL);
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    if (x->rank == 0) {
        /* A 0-d gather reads the one element (index 0). */
        return ox_bind(L, 0, x);
    }
    ox_node *g = ox_op(L, "GatherElements", 2, x, idx);
    if (g) ox_node_set_int(L->g, g, "axis", dim);
    return ox_bind(L, 0, ox_typed(ox_out(g), x->dtype));
}

/* ---- scans ---- */

/* cumsum(self, dim, *, dtype): bool and integer inputs sum in int64, as torch does. */
int lower_cumsum(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, 1, 0);
    ox_dtype t = ox_out_dtype(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (t == OX_UNDEFINED) return ox_lower_fail(L, "the output dtype is not known");
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    if (t != OX_FLOAT && t != OX_DOUBLE && t != OX_FLOAT16 && t != OX_BFLOAT16 && t != OX_INT32 &&
        t != OX_INT64)
        return ox_lower_unsupported(L, "cumsum to %s", ox_dtype_name(t));
    ox_value *xc = ox_cast(L, x, t);
    if (x->rank == 0) return ox_bind(L, 0, xc);
    ox_value *axis = ox_const_i64(L, dim);
    return ox_bind(L, 0, ox_binary(L, "CumSum", xc, axis, t));
}

/* diff(self, n, dim, prepend, append): n first differences; bool tensors differ by xor. */
int lower_diff(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *pre = ox_arg_value_opt(L, 3), *app = ox_arg_value_opt(L, 4);
    int64_t n = ox_arg_int(L, 1, 1), dim = ox_arg_int(L, 2, -1);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    if (x->rank == 0) return ox_lower_fail(L, "diff of a 0-d tensor");
    if (n < 0) return ox_lower_fail(L, "order n=%lld must be non-negative", (long long)n);
    if (n > 16) return ox_lower_unsupported(L, "order n=%lld (at most 16 is lowered)", (long long)n);
    ox_dtype t = x->dtype;
    if (pre || app) {
        ox_value *parts[3];
        int np = 0;
        if (pre) parts[np++] = ox_cast(L, pre, t);
        parts[np++] = x;
        if (app) parts[np++] = ox_cast(L, app, t);
        ox_node *c = ox_op_array(L, "Concat", 1, np, parts);
        if (c) ox_node_set_int(L->g, c, "axis", dim);
        x = ox_typed(ox_out(c), t);
    }
    for (int64_t k = 0; k < n; k++) {
        ox_value *hi = slice_axis(L, x, dim, 1, INT64_MAX), *lo = slice_axis(L, x, dim, 0, -1);
        x = ox_binary(L, t == OX_BOOL ? "Xor" : "Sub", hi, lo, t);
    }
    return ox_bind(L, 0, x);
}

/* ---- slice_scatter, select_scatter: what functionalization makes of an in-place write to a view ---- */

/* The size of x's dim d as a 0-d int64: a constant when static. */
static ox_value *dim_size(ox_lower *L, ox_value *x, int64_t d) {
    if (x->dims && !x->dims[d].param && x->dims[d].value >= 0)
        return ox_const_scalar(L, OX_INT64, (double)x->dims[d].value);
    return ox_binary(L, "Squeeze", ox_shape_of(L, x, d, d + 1), ox_const_i64_1d(L, 0), OX_INT64);
}

/* ScatterElements(x, idx, src) along dim, where idx (1-D, one index per position of src along dim)
 * is broadcast over src's other dims. */
static int scatter_along(ox_lower *L, ox_value *x, ox_value *src, int64_t dim, ox_value *idx) {
    int64_t shape[OX_MAX_RANK];
    for (int k = 0; k < x->rank; k++) shape[k] = k == dim ? -1 : 1;
    ox_value *shaped = ox_typed(ox_reshape(L, idx, x->rank, shape), OX_INT64);
    ox_value *full = ox_binary(L, "Expand", shaped, ox_unary(L, "Shape", src, OX_INT64), OX_INT64);
    ox_node *n = ox_op(L, "ScatterElements", 3, x, full, ox_cast(L, src, x->dtype));
    if (n) ox_node_set_int(L->g, n, "axis", dim);
    return ox_bind(L, 0, ox_typed(ox_out(n), x->dtype));
}

/* slice_scatter(self, src, dim, start?, end?, step): src written over self[start:end:step]. The
 * indices are Range(start, start + step * len, step) with len src's size along dim, so a start
 * that is a symbolic size (a KV cache's write position) works as well as a constant. */
int lower_slice_scatter(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *src = ox_arg_value(L, 1);
    int64_t dim = ox_arg_int(L, 2, 0), step = ox_arg_int(L, 5, 1);
    if (!x || !src) return ox_bind(L, 0, NULL);
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    if (x->rank > OX_MAX_RANK || src->rank != x->rank)
        return ox_lower_fail(L, "src has rank %d, self rank %d", src->rank, x->rank);
    if (step <= 0) return ox_lower_fail(L, "step %lld: slices need a positive step", (long long)step);
    ox_value *start;
    const ox_arg *a = ox_arg_at(L, 3);
    if (a && a->kind == OX_ARG_VALUE) {
        start = ox_cast(L, ox_arg_value(L, 3), OX_INT64);
    } else {
        int64_t s = ox_arg_int(L, 3, 0);
        if (s < 0) {   /* from the end: needs the size */
            if (!x->dims || x->dims[dim].param || x->dims[dim].value < 0)
                return ox_lower_unsupported(L, "a negative start on a dynamic dim");
            s += x->dims[dim].value;
            if (s < 0) s = 0;
        }
        start = ox_const_scalar(L, OX_INT64, (double)s);
    }
    ox_value *stepv = ox_const_scalar(L, OX_INT64, (double)step);
    ox_value *span = ox_binary(L, "Mul", dim_size(L, src, dim), stepv, OX_INT64);
    ox_value *limit = ox_binary(L, "Add", start, span, OX_INT64);
    ox_value *idx = ox_op_typed(L, "Range", OX_INT64, 3, start, limit, stepv);
    return scatter_along(L, x, src, dim, idx);
}

/* select_scatter(self, src, dim, index): src (self without dim) written at self[..., index, ...]. */
int lower_select_scatter(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *src = ox_arg_value(L, 1);
    int64_t dim = ox_arg_int(L, 2, 0);
    if (!x || !src) return ox_bind(L, 0, NULL);
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    if (x->rank > OX_MAX_RANK || src->rank != x->rank - 1)
        return ox_lower_fail(L, "src has rank %d, self rank %d", src->rank, x->rank);
    const ox_arg *a = ox_arg_at(L, 3);
    ox_value *idx = a && a->kind == OX_ARG_VALUE ? ox_cast(L, ox_arg_value(L, 3), OX_INT64)
                                                 : ox_const_scalar(L, OX_INT64, (double)ox_arg_int(L, 3, 0));
    idx = wrap_negative(L, x, dim, idx);
    ox_value *wide = ox_binary(L, "Unsqueeze", src, ox_const_i64_1d(L, dim), src->dtype);
    return scatter_along(L, x, wide, dim, ox_typed(ox_reshape(L, idx, 1, (int64_t[]){1}), OX_INT64));
}
