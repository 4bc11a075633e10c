/*
 * scatter.c — writes by index: scatter (src, value, reduce), scatter_add, scatter_reduce,
 * index_put, index_add, index_copy, index_fill, slice_scatter and select_scatter (the writes to a
 * view that functionalization makes), masked_scatter.
 *
 * scatter's index may be smaller than src in any dim (torch reads src only where index has
 * elements); ONNX ScatterElements wants updates of index's shape, so src is sliced to it, which
 * needs static shapes. index_put writes through ScatterND with the index tensors broadcast
 * together and stacked on a last axis; the indexed dims must be the leading ones (after dims
 * moved to the front by a Transpose when the indices start later). A boolean mask index goes
 * through NonZero.
 */
#include "lower/lower.h"

#include <stdint.h>
#include <string.h>

/* A 0-d value as a one-element vector, with its static shape [1] recorded. */
static ox_value *as_vector(ox_lower *L, ox_value *v) {
    int64_t n = 1;
    ox_value *r = ox_typed(ox_reshape(L, v, 1, &n), v->dtype);
    ox_dim *d = r ? ox_arena_array(L->g->arena, 1, sizeof *d) : NULL;
    if (!d) return NULL;
    d->value = 1;
    d->param = NULL;
    r->rank = 1;
    r->dims = d;
    return r;
}

/* src cut down to index's shape where it is larger (static shapes only); NULL after a failure. */
static ox_value *fit_src(ox_lower *L, ox_value *src, ox_value *index) {
    if (!src || !index) return NULL;
    bool same = src->rank == index->rank && ox_static_shape(src, NULL) && ox_static_shape(index, NULL);
    for (int k = 0; same && k < src->rank; k++) same = src->dims[k].value == index->dims[k].value;
    if (same) return src;
    if (!ox_static_shape(src, NULL) || !ox_static_shape(index, NULL) || src->rank != index->rank) {
        /* shapes not known: assume they agree, as they do for every model-built scatter seen */
        return src;
    }
    int64_t zeros[OX_MAX_RANK] = {0}, ends[OX_MAX_RANK], axes[OX_MAX_RANK];
    for (int k = 0; k < src->rank; k++) {
        if (index->dims[k].value > src->dims[k].value) {
            ox_lower_fail(L, "index is larger than src in dim %d", k);
            return NULL;
        }
        ends[k] = index->dims[k].value;
        axes[k] = k;
    }
    int r = src->rank;
    return ox_op_typed(L, "Slice", src->dtype, 4, src, ox_const_ints(L, r, zeros), ox_const_ints(L, r, ends),
                       ox_const_ints(L, r, axes));
}

/* ScatterElements(x, index, updates, axis=dim, reduction). */
static ox_value *scatter(ox_lower *L, ox_value *x, int64_t dim, ox_value *index, ox_value *upd, const char *reduction) {
    ox_node *n = ox_op(L, "ScatterElements", 3, x, ox_cast(L, index, OX_INT64), ox_cast(L, upd, x->dtype));
    if (n) {
        ox_node_set_int(L->g, n, "axis", dim);
        if (reduction) ox_node_set_string(L->g, n, "reduction", reduction);
    }
    return ox_typed(ox_out(n), x->dtype);
}

/* Updates for a scatter of the scalar at argument i: Expand to index's shape. */
static ox_value *filled_like(ox_lower *L, int i, ox_value *x, ox_value *index) {
    return ox_binary(L, "Expand", ox_arg_scalar(L, i, x->dtype), ox_shape_of(L, index, 0, INT64_MAX), x->dtype);
}

/* "add" / "multiply" (scatter.reduce) and "sum" / "prod" / "amax" / "amin" (scatter_reduce). */
static const char *onnx_reduction(const char *r) {
    if (!strcmp(r, "add") || !strcmp(r, "sum")) return "add";
    if (!strcmp(r, "multiply") || !strcmp(r, "prod")) return "mul";
    if (!strcmp(r, "amax")) return "max";
    if (!strcmp(r, "amin")) return "min";
    return NULL;
}

/* scatter.src / scatter.value (self, dim, index, src|value) and .reduce / .value_reduce with a
 * trailing reduce string; scatter_add(self, dim, index, src). */
static int scatter_op(ox_lower *L, bool value, const char *fixed_reduction) {
    ox_value *x = ox_arg_value(L, 0), *index = ox_arg_value(L, 2);
    int64_t dim = ox_arg_int(L, 1, 0);
    if (!x || !index) return ox_bind(L, 0, NULL);
    if (x->rank == 0) return ox_lower_unsupported(L, "scatter into a 0-d tensor");
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    const char *reduction = fixed_reduction;
    if (!reduction && ox_nargs(L) > 4 && !ox_arg_is_none(L, 4)) {
        const char *r = ox_arg_string(L, 4, "");
        if (!(reduction = onnx_reduction(r))) return ox_lower_unsupported(L, "reduce=\"%s\"", r);
    }
    ox_value *upd = value ? filled_like(L, 3, x, index) : fit_src(L, ox_arg_value(L, 3), index);
    if (!upd) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, scatter(L, x, dim, index, upd, reduction));
}

int lower_scatter_src(ox_lower *L) { return scatter_op(L, false, NULL); }

int lower_scatter_value(ox_lower *L) { return scatter_op(L, true, NULL); }

int lower_scatter_add(ox_lower *L) { return scatter_op(L, false, "add"); }

/* scatter_reduce.two(self, dim, index, src, reduce, *, include_self=True): without self, the
 * written positions are first set to the reduction's identity. "mean" is not lowered. */
int lower_scatter_reduce(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *index = ox_arg_value(L, 2), *src = ox_arg_value(L, 3);
    int64_t dim = ox_arg_int(L, 1, 0);
    const char *r = ox_arg_string(L, 4, "");
    if (!x || !index || !src) return ox_bind(L, 0, NULL);
    if (x->rank == 0) return ox_lower_unsupported(L, "scatter into a 0-d tensor");
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    const char *reduction = onnx_reduction(r);
    if (!reduction) return ox_lower_unsupported(L, "reduce=\"%s\"", r);
    ox_value *upd = fit_src(L, src, index);
    if (!upd) return ox_bind(L, 0, NULL);
    if (!ox_arg_bool(L, 5, true)) {
        double identity = !strcmp(reduction, "add") ? 0 :
            !strcmp(reduction, "mul")               ? 1 :
            !strcmp(reduction, "max")               ? -1.0 / 0.0 :
                                                      1.0 / 0.0;
        if (!ox_dtype_is_float(x->dtype) && (identity != 0 && identity != 1))
            return ox_lower_unsupported(L, "include_self=False with %s on %s", r, ox_dtype_name(x->dtype));
        ox_value *id = ox_binary(L, "Expand", ox_const_scalar(L, x->dtype, identity),
                                 ox_shape_of(L, index, 0, INT64_MAX), x->dtype);
        x = scatter(L, x, dim, index, id, NULL);
    }
    return ox_bind(L, 0, scatter(L, x, dim, index, upd, reduction));
}

/* The positions along dim that index (1-D) selects, as ScatterElements indices of `like`'s shape:
 * index reshaped to [1, .., n, .., 1] and expanded. */
static ox_value *along(ox_lower *L, ox_value *index, ox_value *like, int64_t dim, int rank) {
    int64_t shape[OX_MAX_RANK];
    for (int k = 0; k < rank; k++) shape[k] = k == dim ? -1 : 1;
    ox_value *r = ox_typed(ox_reshape(L, ox_cast(L, index, OX_INT64), rank, shape), OX_INT64);
    return ox_binary(L, "Expand", r, ox_shape_of(L, like, 0, INT64_MAX), OX_INT64);
}

/* index_add(self, dim, index, source, *, alpha=1), index_copy(self, dim, index, source). */
static int index_write(ox_lower *L, bool add) {
    ox_value *x = ox_arg_value(L, 0), *index = ox_arg_value(L, 2), *src = ox_arg_value(L, 3);
    int64_t dim = ox_arg_int(L, 1, 0);
    if (!x || !index || !src) return ox_bind(L, 0, NULL);
    bool scalar = x->rank == 0 && src->rank == 0; /* dim 0 of a 0-d tensor: written as [1] */
    if (scalar) {
        if (!ox_norm_dim(L, &dim, 0, "dim")) return OX_ELOWER;
        x = as_vector(L, x);
        src = as_vector(L, src);
        if (!x || !src) return ox_bind(L, 0, NULL);
    }
    if (x->rank == 0 || src->rank != x->rank || x->rank > OX_MAX_RANK)
        return ox_lower_unsupported(L, "index_%s of a %d-d tensor from a %d-d source", add ? "add" : "copy", x->rank,
                                    src->rank);
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    ox_dtype t = x->dtype;
    ox_value *xw = x;
    if (add && t == OX_BOOL) { /* bools add as ints, then any nonzero sum is true, as in torch */
        xw = ox_cast(L, x, OX_INT32);
        if (xw) {
            xw->rank = x->rank;
            xw->dims = x->dims;
        }
    }
    ox_value *upd = ox_cast(L, src, xw ? xw->dtype : t);
    const ox_arg *alpha = add && ox_nargs(L) > 4 && !ox_arg_is_none(L, 4) ? ox_arg_at(L, 4) : NULL;
    if (alpha && !(alpha->kind != OX_ARG_VALUE && ox_arg_float(L, 4, 1) == 1))
        upd = ox_binary(L, "Mul", upd, ox_arg_scalar(L, 4, upd ? upd->dtype : t), upd ? upd->dtype : t);
    if (!xw || !upd) return ox_bind(L, 0, NULL);
    ox_value *r = ox_cast(L, scatter(L, xw, dim, along(L, index, src, dim, x->rank), upd, add ? "add" : NULL), t);
    return ox_bind(L, 0, scalar ? ox_typed(ox_reshape(L, r, 0, NULL), t) : r);
}

int lower_index_add(ox_lower *L) { return index_write(L, true); }

int lower_index_copy(ox_lower *L) { return index_write(L, false); }

/* index_fill.int_Scalar(self, dim, index, value): the selected slices set to value. */
int lower_index_fill(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *index = ox_arg_value(L, 2);
    int64_t dim = ox_arg_int(L, 1, 0);
    if (!x || !index) return ox_bind(L, 0, NULL);
    bool scalar = x->rank == 0; /* dim 0 of a 0-d tensor: filled as [1] */
    if (scalar) {
        if (!ox_norm_dim(L, &dim, 0, "dim")) return OX_ELOWER;
        if (!(x = as_vector(L, x))) return ox_bind(L, 0, NULL);
    }
    if (x->rank > OX_MAX_RANK) return ox_lower_unsupported(L, "index_fill of a rank-%d tensor", x->rank);
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    /* the shape of the selected slices: x's with dim replaced by len(index) */
    ox_node *g = ox_op(L, "Gather", 2, x, ox_cast(L, index, OX_INT64));
    if (g) ox_node_set_int(L->g, g, "axis", dim);
    ox_value *slices = ox_typed(ox_out(g), x->dtype);
    ox_value *val =
        ox_binary(L, "Expand", ox_arg_scalar(L, 3, x->dtype), ox_shape_of(L, slices, 0, INT64_MAX), x->dtype);
    ox_value *r = scatter(L, x, dim, along(L, index, slices, dim, x->rank), val, NULL);
    return ox_bind(L, 0, scalar ? ox_typed(ox_reshape(L, r, 0, NULL), x->dtype) : r);
}

/* x[mask] = values (or +=) with one boolean mask over x's leading dims: the set positions, in
 * order, from NonZero ([k, n], transposed to ScatterND's [n, k]); values broadcast to
 * [n, x's remaining dims]. */
static int mask_put(ox_lower *L, ox_value *x, ox_value *mask, ox_value *values, bool acc) {
    int k = mask->rank;
    if (k < 1 || k > x->rank) return ox_lower_fail(L, "a mask of rank %d for a rank-%d tensor", k, x->rank);
    ox_value *nz = ox_unary(L, "NonZero", ox_cast(L, mask, OX_BOOL), OX_INT64);
    ox_node *tr = ox_op(L, "Transpose", 1, nz);
    if (tr) ox_node_set_ints(L->g, tr, "perm", (const int64_t[]){1, 0}, 2);
    ox_value *where = ox_typed(ox_out(tr), OX_INT64);
    ox_value *lead = ox_shape_of(L, where, 0, 1), *rest = ox_shape_of(L, x, k, INT64_MAX);
    ox_node *us = ox_op(L, "Concat", 2, lead, rest);
    if (us) ox_node_set_int(L->g, us, "axis", 0);
    ox_value *v = ox_binary(L, "Expand", ox_cast(L, values, x->dtype), ox_typed(ox_out(us), OX_INT64), x->dtype);
    ox_node *sn = ox_op(L, "ScatterND", 3, x, where, v);
    if (sn && acc) ox_node_set_string(L->g, sn, "reduction", "add");
    return ox_bind(L, 0, ox_typed(ox_out(sn), x->dtype));
}

/* index_put(self, indices: Tensor?[], values, accumulate=False). */
int lower_index_put(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *values = ox_arg_value(L, 2);
    const ox_arg *list = ox_arg_at(L, 1);
    bool acc = ox_arg_bool(L, 3, false);
    if (!x || !values) return ox_bind(L, 0, NULL);
    if (!list || list->kind != OX_ARG_LIST || list->u.list.n < 1 || list->u.list.n > x->rank || x->rank > OX_MAX_RANK)
        return ox_lower_fail(L, "argument 1 (indices) must be a list of 1 to %d index tensors", x->rank);
    int n = list->u.list.n, first = -1, last = -1;
    ox_value *idx[OX_MAX_RANK];
    for (int k = 0; k < n; k++) {
        const ox_arg *e = &list->u.list.items[k];
        idx[k] = NULL;
        if (e->kind == OX_ARG_NONE) continue;
        if (e->kind != OX_ARG_VALUE || e->u.ref >= L->prog->nvalues || !L->prog->table[e->u.ref])
            return ox_lower_fail(L, "indices item %d is not a tensor", k);
        idx[k] = L->prog->table[e->u.ref];
        if (idx[k]->dtype == OX_BOOL || idx[k]->dtype == OX_UINT8) {
            if (n == 1) return mask_put(L, x, idx[k], values, acc);
            return ox_lower_unsupported(L, "a boolean mask index among other indices");
        }
        if (first < 0) first = k;
        if (last >= 0 && last != k - 1) return ox_lower_unsupported(L, "index tensors separated by a slice");
        last = k;
    }
    if (first < 0)
        return ox_bind(L, 0,
                       ox_binary(L, "Expand", ox_cast(L, values, x->dtype), ox_shape_of(L, x, 0, INT64_MAX), x->dtype));
    int m = last - first + 1, r = x->rank;
    /* move the indexed dims to the front */
    int64_t perm[OX_MAX_RANK], inv[OX_MAX_RANK];
    int p = 0;
    for (int k = first; k <= last; k++) perm[p++] = k;
    for (int k = 0; k < r; k++)
        if (k < first || k > last) perm[p++] = k;
    bool moved = first != 0;
    for (int k = 0; k < r; k++) inv[perm[k]] = k;
    ox_value *xt = x;
    if (moved) {
        ox_node *t = ox_op(L, "Transpose", 1, x);
        if (t) ox_node_set_ints(L->g, t, "perm", perm, r);
        xt = ox_typed(ox_out(t), x->dtype);
    }
    /* the indices broadcast together, each wrapped if negative, stacked on a last axis */
    ox_value *shape = NULL;
    for (int k = first; k <= last; k++) {
        ox_value *s = ox_shape_of(L, idx[k], 0, INT64_MAX);
        shape = shape ? ox_binary(L, "Max", shape, s, OX_INT64) : s;
    }
    if (m > 1) { /* Max of shapes is broadcasting only when ranks agree: insist on it */
        for (int k = first + 1; k <= last; k++)
            if (idx[k]->rank != idx[first]->rank) return ox_lower_unsupported(L, "index tensors of different ranks");
    }
    ox_value *parts[OX_MAX_RANK];
    for (int k = first; k <= last; k++) {
        ox_value *i = ox_cast(L, idx[k], OX_INT64);
        ox_value *size = ox_shape_of(L, x, k, k + 1);
        ox_value *neg = ox_binary(L, "Less", i, ox_const_scalar(L, OX_INT64, 0), OX_BOOL);
        ox_value *up = ox_binary(L, "Add", i, size, OX_INT64);
        i = ox_op_typed(L, "Where", OX_INT64, 3, neg, up, i);
        i = ox_binary(L, "Expand", i, shape, OX_INT64);
        parts[k - first] = ox_binary(L, "Unsqueeze", i, ox_const_i64_1d(L, -1), OX_INT64);
    }
    ox_value *nd = parts[0];
    if (m > 1) {
        ox_node *c = ox_op_array(L, "Concat", 1, m, parts);
        if (c) ox_node_set_int(L->g, c, "axis", -1);
        nd = ox_typed(ox_out(c), OX_INT64);
    }
    /* updates: values broadcast to index shape + the remaining dims of xt */
    ox_node *us = ox_op(L, "Concat", 2, shape, ox_shape_of(L, xt, m, INT64_MAX));
    if (us) ox_node_set_int(L->g, us, "axis", 0);
    ox_value *v = ox_cast(L, values, x->dtype);
    if (moved && values->rank > r - last - 1) {
        /* values that reach into the indexed or leading dims are laid out as x[idx] is: with
         * 1-D indices, that is x's order, which the same Transpose brings to the front */
        if (values->rank != r || idx[first]->rank != 1)
            return ox_lower_unsupported(L, "values of rank %d written through indices that start at dim %d",
                                        values->rank, first);
        ox_node *t = ox_op(L, "Transpose", 1, v);
        if (t) ox_node_set_ints(L->g, t, "perm", perm, r);
        v = ox_typed(ox_out(t), x->dtype);
    }
    v = ox_binary(L, "Expand", v, ox_typed(ox_out(us), OX_INT64), x->dtype);
    ox_node *sn = ox_op(L, "ScatterND", 3, xt, nd, v);
    if (sn && acc) ox_node_set_string(L->g, sn, "reduction", "add");
    ox_value *y = ox_typed(ox_out(sn), x->dtype);
    if (moved) {
        ox_node *t = ox_op(L, "Transpose", 1, y);
        if (t) ox_node_set_ints(L->g, t, "perm", inv, r);
        y = ox_typed(ox_out(t), x->dtype);
    }
    return ox_bind(L, 0, y);
}

/* ---- slice_scatter, select_scatter: functionalized in-place writes to a view ---- */

/* The size of x's dim d as a 0-d int64: a constant when static. */
static ox_value *dim_size(ox_lower *L, ox_value *x, int64_t d) {
    if (x->dims && !x->dims[d].param && x->dims[d].value >= 0)
        return ox_const_scalar(L, OX_INT64, (double)x->dims[d].value);
    ox_value *one = ox_shape_of(L, x, d, d + 1);
    return ox_binary(L, "Squeeze", one, ox_const_i64_1d(L, 0), OX_INT64);
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
        if (s < 0) { /* from the end: needs the size */
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
    ox_value *idx = a && a->kind == OX_ARG_VALUE ? ox_cast(L, ox_arg_value(L, 3), OX_INT64) :
                                                   ox_const_scalar(L, OX_INT64, (double)ox_arg_int(L, 3, 0));
    idx = ox_wrap_index(L, x, dim, idx);
    ox_value *wide = ox_binary(L, "Unsqueeze", src, ox_const_i64_1d(L, dim), src->dtype);
    return scatter_along(L, x, wide, dim, ox_typed(ox_reshape(L, idx, 1, (int64_t[]){1}), OX_INT64));
}

/* ---- masked_scatter ---- */

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
