/*
 * shape.c — views and layout: aliases and copies, view/reshape/flatten, permute/transpose,
 * select/slice/narrow, cat/stack/split/unbind, (un)squeeze, expand/repeat, flip/roll, tril/triu,
 * diagonal, as_strided, unfold, pixel (un)shuffle; symbolic sizes (sym_size, sym_numel,
 * _local_scalar_dense) and the assertions torch.export records.
 *
 * Sizes: a torch size list may mix ints with symbolic sizes (0-d int64 values). When torch recorded
 * a static output shape the lowering uses it as a constant; otherwise the list is assembled at run
 * time (ox_arg_sizes: Concat of the ints and the unsqueezed symbols).
 */
#include "lower/lower.h"

#include <stdint.h>

/* The input's rank, else the output's when the op keeps the rank (meta rank otherwise). */
static int rank_or_meta(const ox_lower *L, const ox_value *x) {
    if (x && x->rank >= 0) return x->rank;
    const ox_meta *m = ox_out_meta(L, 0);
    return m ? m->rank : -1;
}

/* The list argument i (ints and symbolic sizes) as a 1-D int64 value. neg_to_one turns -1 into 1
 * (expand's "keep this dim", which Expand's broadcasting gives with 1). *has_zero reports a
 * literal 0, for Reshape's allowzero. */
/* The shape output 0 must have: the meta shape when static, else argument i. */
static ox_value *target_shape(ox_lower *L, int i, bool neg_to_one, bool *has_zero) {
    int64_t dims[OX_MAX_RANK];
    int rank;
    if (ox_out_static_shape(L, 0, dims, &rank)) {
        *has_zero = false;
        for (int k = 0; k < rank; k++) *has_zero |= dims[k] == 0;
        return ox_const_ints(L, rank, dims);
    }
    return ox_arg_sizes(L, i, neg_to_one, has_zero);
}

/* ---- aliases ---- */

/* clone, contiguous, detach, alias, lift_fresh_copy, ...: the value itself. */
int lower_identity(ox_lower *L) { return ox_bind(L, 0, ox_arg_value(L, 0)); }

/* _assert_tensor_metadata and the like: checks torch made while tracing; nothing to emit. */
int lower_assertion(ox_lower *L) { return OX_OK; }

/* copy(self, src, non_blocking): src cast to self's dtype, broadcast to self's shape. */
int lower_copy(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *src = ox_arg_value(L, 1);
    if (!x || !src) return ox_bind(L, 0, NULL);
    ox_value *shape = ox_unary(L, "Shape", x, OX_INT64);
    return ox_bind(L, 0, ox_binary(L, "Expand", ox_cast(L, src, x->dtype), shape, x->dtype));
}

/* ---- symbolic sizes ---- */

/* sym_size.int(self, dim): a 0-d int64, a constant when the dim is static. */
int lower_sym_size(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, 1, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    if (x->rank == 0) return ox_lower_fail(L, "size of a 0-d tensor");
    if (x->dims && !x->dims[dim].param && x->dims[dim].value >= 0)
        return ox_bind(L, 0, ox_const_i64(L, x->dims[dim].value));
    ox_value *d = ox_shape_of(L, x, dim, dim + 1);
    return ox_bind(L, 0, ox_unary(L, "Squeeze", d, OX_INT64));
}

/* sym_numel.default(self) */
int lower_sym_numel(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t n = x ? ox_value_numel(x) : -1;
    if (n >= 0) return ox_bind(L, 0, ox_const_i64(L, n));
    ox_node *r = ox_op(L, "ReduceProd", 1, ox_shape_of(L, x, 0, INT64_MAX));
    if (r) ox_node_set_int(L->g, r, "keepdims", 0);
    return ox_bind(L, 0, ox_typed(ox_out(r), OX_INT64));
}

/* _local_scalar_dense(self): .item(), a 0-d value from a one-element tensor. */
int lower_local_scalar(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    ox_dtype t = ox_out_dtype(L, 0);
    return ox_bind(L, 0, ox_cast(L, ox_typed(ox_reshape(L, x, 0, NULL), x->dtype), t == OX_UNDEFINED ? x->dtype : t));
}

/* ---- view / reshape ---- */

static ox_value *reshape_to(ox_lower *L, ox_value *x, ox_value *shape, bool has_zero) {
    ox_node *n = ox_op(L, "Reshape", 2, x, shape);
    /* torch's 0 is a size; ONNX's 0 copies the input dim unless allowzero is set. */
    if (n && has_zero) ox_node_set_int(L->g, n, "allowzero", 1);
    return ox_out(n);
}

/* view, reshape, _unsafe_view, view_copy (self, size). */
int lower_view(ox_lower *L) {
    bool has_zero = false;
    ox_value *x = ox_arg_value(L, 0), *shape = target_shape(L, 1, false, &has_zero);
    return ox_bind(L, 0, reshape_to(L, x, shape, has_zero));
}

/* flatten.using_ints(self, start_dim, end_dim). */
int lower_flatten(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t start = ox_arg_int(L, 1, 0), end = ox_arg_int(L, 2, -1), dims[OX_MAX_RANK];
    int rank = x ? x->rank : -1, mrank;
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_norm_dim(L, &start, rank, "start_dim") || !ox_norm_dim(L, &end, rank, "end_dim")) return OX_ELOWER;
    if (rank >= OX_MAX_RANK) return ox_lower_unsupported(L, "flatten of a rank-%d input", rank);
    if (start > end) return ox_lower_fail(L, "start_dim %lld is after end_dim %lld", (long long)start, (long long)end);
    if (ox_out_static_shape(L, 0, dims, &mrank)) {
        bool has_zero = false;
        for (int k = 0; k < mrank; k++) has_zero |= dims[k] == 0;
        return ox_bind(L, 0, reshape_to(L, x, ox_const_ints(L, mrank, dims), has_zero));
    }
    if (rank == 0) return ox_bind(L, 0, ox_reshape(L, x, 1, (int64_t[]){1}));
    if (start == end) return ox_bind(L, 0, x);
    /* Leading dims copy (ONNX's 0 at the same index), the flattened run is -1, the trailing dims
     * come from Shape. */
    int64_t head[OX_MAX_RANK];
    for (int k = 0; k < start; k++) head[k] = 0;
    head[start] = -1;
    ox_value *parts[2] = {ox_const_ints(L, (int)start + 1, head), NULL};
    if (end < rank - 1) parts[1] = ox_shape_of(L, x, end + 1, INT64_MAX);
    return ox_bind(L, 0, reshape_to(L, x, ox_concat_sizes(L, parts[1] ? 2 : 1, parts), false));
}

/* unflatten.int(self, dim, sizes): dim becomes sizes (one may be -1). */
int lower_unflatten(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, 1, 0), dims[OX_MAX_RANK];
    int rank = x ? x->rank : -1, mrank;
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_norm_dim(L, &dim, rank, "dim")) return OX_ELOWER;
    if (ox_out_static_shape(L, 0, dims, &mrank)) {
        bool has_zero = false;
        for (int k = 0; k < mrank; k++) has_zero |= dims[k] == 0;
        return ox_bind(L, 0, reshape_to(L, x, ox_const_ints(L, mrank, dims), has_zero));
    }
    /* Shape(x)[:dim] ++ sizes ++ Shape(x)[dim+1:]. */
    bool has_zero = false;
    ox_value *parts[3];
    int np = 0;
    if (dim > 0) parts[np++] = ox_shape_of(L, x, 0, dim);
    parts[np++] = ox_arg_sizes(L, 2, false, &has_zero);
    if (dim + 1 < rank) parts[np++] = ox_shape_of(L, x, dim + 1, INT64_MAX);
    return ox_bind(L, 0, reshape_to(L, x, ox_concat_sizes(L, np, parts), true));
}

/* ---- permutations ---- */

static ox_value *transpose(ox_lower *L, ox_value *x, int rank, const int64_t *perm) {
    ox_node *n = ox_op(L, "Transpose", 1, x);
    if (n) ox_node_set_ints(L->g, n, "perm", perm, rank);
    return ox_out(n);
}

/* permute(self, dims). */
int lower_permute(ox_lower *L) {
    int64_t perm[OX_MAX_RANK];
    int n = ox_arg_ints(L, 1, perm, OX_MAX_RANK);
    ox_value *x = ox_arg_value(L, 0);
    if (n < 0 || !x) return ox_bind(L, 0, NULL);
    if (x->rank >= 0 && x->rank != n) return ox_lower_fail(L, "dims has %d entries for a rank-%d input", n, x->rank);
    bool seen[OX_MAX_RANK] = {false};
    for (int k = 0; k < n; k++) {
        if (!ox_norm_dim(L, &perm[k], n, "dims entry")) return OX_ELOWER;
        if (seen[perm[k]]) return ox_lower_fail(L, "dims repeats %lld", (long long)perm[k]);
        seen[perm[k]] = true;
    }
    if (n == 0) return ox_bind(L, 0, x);
    return ox_bind(L, 0, transpose(L, x, n, perm));
}

/* transpose.int(self, dim0, dim1). */
int lower_transpose(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int rank = rank_or_meta(L, x);
    int64_t d0 = ox_arg_int(L, 1, 0), d1 = ox_arg_int(L, 2, 1), perm[OX_MAX_RANK];
    if (!x) return ox_bind(L, 0, NULL);
    if (rank > OX_MAX_RANK) return ox_lower_unsupported(L, "rank %d input", rank);
    if (!ox_norm_dim(L, &d0, rank, "dim0") || !ox_norm_dim(L, &d1, rank, "dim1")) return OX_ELOWER;
    if (d0 == d1 || rank < 2) return ox_bind(L, 0, x);
    for (int k = 0; k < rank; k++) perm[k] = k;
    perm[d0] = d1;
    perm[d1] = d0;
    return ox_bind(L, 0, transpose(L, x, rank, perm));
}

/* t(self): a 2-D transpose; 0-d and 1-D tensors are returned as they are. */
int lower_t(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int rank = rank_or_meta(L, x);
    if (!x) return ox_bind(L, 0, NULL);
    if (rank < 0) return ox_lower_unsupported(L, "the input's rank is not known");
    if (rank > 2) return ox_lower_fail(L, "t() of a rank-%d input (at most 2)", rank);
    if (rank < 2) return ox_bind(L, 0, x);
    return ox_bind(L, 0, transpose(L, x, 2, (int64_t[]){1, 0}));
}

/* ---- select / slice ---- */

/* A 0-d or 1-D int64 index from argument i (an int or a symbolic size). */
static ox_value *index_arg(ox_lower *L, int i, int64_t dflt, bool one_d, int64_t *known) {
    const ox_arg *a = ox_arg_at(L, i);
    if (a && a->kind == OX_ARG_VALUE) {
        ox_value *v = ox_cast(L, ox_arg_value(L, i), OX_INT64);
        return one_d ? ox_size_1d(L, v) : v;
    }
    int64_t v = ox_arg_int(L, i, dflt);
    if (known) *known = v;
    return one_d ? ox_const_i64_1d(L, v) : ox_const_i64(L, v);
}

/* select.int(self, dim, index): Gather with a 0-d index drops the dim. */
int lower_select(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, 1, 0), idx = INT64_MIN;
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    if (x->rank == 0) return ox_lower_fail(L, "select on a 0-d tensor");
    ox_value *index = index_arg(L, 2, 0, false, &idx);
    const ox_dim *d = x->dims ? &x->dims[dim] : NULL;
    if (d && idx != INT64_MIN && !d->param && d->value >= 0 && (idx < -d->value || idx >= d->value))
        return ox_lower_fail(L, "index %lld out of range for dim %lld of size %lld", (long long)idx, (long long)dim,
                             (long long)d->value);
    /* Gather takes negative indices as torch does. */
    ox_node *n = ox_op(L, "Gather", 2, x, index);
    if (n) ox_node_set_int(L->g, n, "axis", dim);
    return ox_bind(L, 0, ox_out(n));
}

/* slice.Tensor(self, dim, start?, end?, step). */
int lower_slice(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, 1, 0), step = ox_arg_int(L, 4, 1);
    int64_t start = INT64_MIN, end = INT64_MIN;
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    if (step <= 0) return ox_lower_fail(L, "step %lld: slices need a positive step", (long long)step);
    ox_value *starts = index_arg(L, 2, 0, true, &start);
    ox_value *ends = index_arg(L, 3, INT64_MAX, true, &end);
    if (start == 0 && end == INT64_MAX && step == 1) return ox_bind(L, 0, x);
    ox_value *axes = ox_const_i64_1d(L, dim), *steps = ox_const_i64_1d(L, step);
    return ox_bind(L, 0, ox_out(ox_op(L, "Slice", 5, x, starts, ends, axes, steps)));
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
    return ox_bind(L, 0,
                   ox_op_typed(L, "Slice", x->dtype, 4, x, ox_const_i64_1d(L, start), ox_const_i64_1d(L, start + len),
                               ox_const_i64_1d(L, dim)));
}

/* ---- cat / stack / split ---- */

/* The tensors of list argument 0, cast to the output dtype; with drop_empty, the legacy empty 1-D
   inputs that torch.cat skips are left out (torch.stack skips none). */
static int tensor_list(ox_lower *L, ox_value ***out, bool drop_empty) {
    const ox_arg *a = ox_arg_at(L, 0);
    if (!a || a->kind != OX_ARG_LIST || a->u.list.n == 0) {
        ox_lower_fail(L, "argument 0 (tensors) must be a non-empty list of tensors");
        return -1;
    }
    ox_value **vals = ox_arena_array(L->g->arena, (size_t)a->u.list.n, sizeof *vals);
    if (!vals) return -1;
    ox_dtype t = ox_out_dtype(L, 0);
    int n = 0;
    for (int k = 0; k < a->u.list.n; k++) {
        const ox_arg *e = &a->u.list.items[k];
        if (e->kind != OX_ARG_VALUE || e->u.ref >= L->prog->nvalues || !L->prog->table[e->u.ref]) {
            ox_lower_fail(L, "argument 0 item %d is not a tensor", k);
            return -1;
        }
        ox_value *v = L->prog->table[e->u.ref];
        /* torch.cat skips 1-D tensors of size 0 whatever the other ranks */
        if (drop_empty && v->rank == 1 && v->dims && !v->dims[0].param && v->dims[0].value == 0) continue;
        vals[n++] = t == OX_UNDEFINED ? v : ox_cast(L, v, t);
    }
    *out = vals;
    return n;
}

/* cat(tensors, dim). */
int lower_cat(ox_lower *L) {
    const ox_meta *m = ox_out_meta(L, 0);
    int rank = m ? m->rank : -1;
    int64_t dim = ox_arg_int(L, 1, 0);
    ox_value **vals;
    if (!ox_norm_dim(L, &dim, rank, "dim")) return OX_ELOWER;
    int n = tensor_list(L, &vals, rank != 1);
    if (n < 0) return ox_bind(L, 0, NULL);
    if (n == 0) { /* every input was an empty 1-D tensor */
        const ox_arg *a = ox_arg_at(L, 0);
        return ox_bind(L, 0, L->prog->table[a->u.list.items[0].u.ref]);
    }
    if (n == 1) return ox_bind(L, 0, vals[0]);
    ox_node *c = ox_op_array(L, "Concat", 1, n, vals);
    if (c) ox_node_set_int(L->g, c, "axis", dim);
    return ox_bind(L, 0, ox_out(c));
}

/* stack(tensors, dim): each unsqueezed at dim, then Concat. */
int lower_stack(ox_lower *L) {
    const ox_meta *m = ox_out_meta(L, 0);
    int rank = m ? m->rank : -1;
    int64_t dim = ox_arg_int(L, 1, 0);
    ox_value **vals;
    if (!ox_norm_dim(L, &dim, rank, "dim")) return OX_ELOWER;
    int n = tensor_list(L, &vals, false);
    if (n <= 0) return ox_bind(L, 0, NULL);
    ox_value *axes = ox_const_i64_1d(L, dim);
    for (int k = 0; k < n; k++) vals[k] = ox_out(ox_op(L, "Unsqueeze", 2, vals[k], axes));
    if (n == 1) return ox_bind(L, 0, vals[0]);
    ox_node *c = ox_op_array(L, "Concat", 1, n, vals);
    if (c) ox_node_set_int(L->g, c, "axis", dim);
    return ox_bind(L, 0, ox_out(c));
}

/* Splits x along dim into the sizes torch recorded for each output; squeeze drops dim (unbind). */
static int split_outputs(ox_lower *L, ox_value *x, int64_t dim, bool squeeze) {
    int nout = L->node->noutputs;
    if (nout < 1 || nout > 4096) return ox_lower_fail(L, "%d outputs", nout);
    int64_t *sizes = ox_arena_array(L->g->arena, (size_t)nout, sizeof *sizes);
    if (!sizes) return ox_graph_status(L->g);
    bool symbolic = false;
    for (int k = 0; k < nout && !symbolic; k++) {
        const ox_meta *m = ox_out_meta(L, k);
        if (squeeze) {
            sizes[k] = 1;
            continue;
        }
        symbolic = !m || m->rank <= dim || !m->dims || m->dims[dim].param || m->dims[dim].value < 0;
        if (!symbolic) sizes[k] = m->dims[dim].value;
    }
    ox_value *split;
    if (!symbolic) {
        split = ox_const_ints(L, nout, sizes);
    } else {
        /* split_with_sizes names the sizes, symbolic ones as values: they become Split's input */
        const ox_arg *a = ox_arg_at(L, 1);
        bool has_zero;
        if (!a || a->kind != OX_ARG_LIST || a->u.list.n != nout)
            return ox_lower_unsupported(L, "the sizes of the outputs along dim %lld are symbolic", (long long)dim);
        split = ox_arg_sizes(L, 1, false, &has_zero);
        if (!split) return ox_bind(L, 0, NULL);
    }
    ox_node *n = ox_opn(L, "Split", nout, 2, x, split);
    if (!n) return ox_bind(L, 0, NULL);
    ox_node_set_int(L->g, n, "axis", dim);
    ox_value *axes = squeeze ? ox_const_i64_1d(L, dim) : NULL;
    for (int k = 0; k < nout; k++) {
        ox_value *v = n->outputs[k];
        if (squeeze) v = ox_out(ox_op(L, "Squeeze", 2, v, axes));
        int rc = ox_bind(L, k, v);
        if (rc != OX_OK) return rc;
    }
    return OX_OK;
}

/* split.Tensor(self, split_size, dim), split_with_sizes(self, sizes, dim), chunk(self, n, dim). */
int lower_split(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, 2, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    return split_outputs(L, x, dim, false);
}

/* unbind.int(self, dim). */
int lower_unbind(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, 1, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    return split_outputs(L, x, dim, true);
}

/* ---- (un)squeeze, expand, repeat ---- */

/* unsqueeze(self, dim): ONNX counts negative axes from the output rank, as torch does. */
int lower_unsqueeze(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, 1, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank >= 0 && (dim < -(x->rank + 1) || dim > x->rank))
        return ox_lower_fail(L, "dim %lld out of range for unsqueezing a rank-%d input", (long long)dim, x->rank);
    return ox_bind(L, 0, ox_out(ox_op(L, "Unsqueeze", 2, x, ox_const_i64_1d(L, dim))));
}

/* squeeze.dim / squeeze.dims: torch drops only the listed dims whose size is 1; ONNX Squeeze fails
 * on others, so each dim is decided from the static size, or from the output rank torch recorded. */
static int squeeze_dims(ox_lower *L, ox_value *x, int64_t *dims, int n) {
    int rank = x->rank, known = 0, unknown = 0;
    int64_t axes[OX_MAX_RANK];
    int naxes = 0;
    bool is_unknown[OX_MAX_RANK] = {false};
    if (rank == 0) return ox_bind(L, 0, x);
    if (!x->dims) return ox_lower_unsupported(L, "the input's shape is not known");
    for (int k = 0; k < n; k++) {
        if (!ox_norm_dim(L, &dims[k], rank, "dim")) return OX_ELOWER;
        const ox_dim *d = &x->dims[dims[k]];
        if (d->param || d->value < 0) {
            is_unknown[k] = true;
            unknown++;
        } else if (d->value == 1) known++;
    }
    const ox_meta *m = ox_out_meta(L, 0);
    bool squeeze_unknown = m && m->rank == rank - known - unknown;
    if (unknown && !squeeze_unknown && !(m && m->rank == rank - known))
        return ox_lower_unsupported(L, "cannot tell which symbolic dims have size 1");
    for (int k = 0; k < n; k++) {
        const ox_dim *d = &x->dims[dims[k]];
        bool one = is_unknown[k] ? squeeze_unknown : d->value == 1;
        bool dup = false;
        for (int j = 0; j < naxes; j++) dup |= axes[j] == dims[k];
        if (one && !dup) axes[naxes++] = dims[k];
    }
    if (!naxes) return ox_bind(L, 0, x);
    return ox_bind(L, 0, ox_out(ox_op(L, "Squeeze", 2, x, ox_const_ints(L, naxes, axes))));
}

int lower_squeeze_dims(ox_lower *L) {
    int64_t dims[OX_MAX_RANK];
    ox_value *x = ox_arg_value(L, 0);
    int n = ox_arg_ints(L, 1, dims, OX_MAX_RANK);
    if (!x || n < 0) return ox_bind(L, 0, NULL);
    if (x->rank < 0) return ox_lower_unsupported(L, "squeeze of an input of unknown rank");
    return squeeze_dims(L, x, dims, n);
}

/* squeeze.default: ONNX Squeeze without axes drops every size-1 dim, as torch does. */
int lower_squeeze(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (x && x->rank == 0) return ox_bind(L, 0, x);
    return ox_bind(L, 0, ox_out(ox_op(L, "Squeeze", 1, x)));
}

/* expand(self, size, implicit) */
int lower_expand(ox_lower *L) {
    bool has_zero;
    ox_value *x = ox_arg_value(L, 0);
    return ox_bind(L, 0, ox_out(ox_op(L, "Expand", 2, x, target_shape(L, 1, true, &has_zero))));
}

/* expand_as(self, other) */
int lower_expand_as(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *other = ox_arg_value(L, 1);
    return ox_bind(L, 0, ox_out(ox_op(L, "Expand", 2, x, ox_shape_of(L, other, 0, INT64_MAX))));
}

/* repeat(self, repeats): Tile, after unsqueezing leading dims when repeats is longer. Repeats may
 * hold symbolic sizes (Whisper's decoder repeats its positions by the dynamic batch). */
int lower_repeat(ox_lower *L) {
    int64_t reps[OX_MAX_RANK], lead[OX_MAX_RANK];
    ox_value *x = ox_arg_value(L, 0), *sym = NULL;
    const ox_arg *a = ox_arg_at(L, 1);
    int n = -1;
    if (a && a->kind == OX_ARG_LIST && a->u.list.n <= OX_MAX_RANK) {
        for (int k = 0; k < a->u.list.n; k++) {
            if (a->u.list.items[k].kind != OX_ARG_VALUE) continue;
            bool has_zero;
            n = a->u.list.n;
            sym = ox_arg_sizes(L, 1, false, &has_zero);
            if (!sym) return ox_bind(L, 0, NULL);
            break;
        }
    }
    if (!sym) n = ox_arg_ints(L, 1, reps, OX_MAX_RANK);
    if (!x || n < 0) return ox_bind(L, 0, NULL);
    if (x->rank < 0) return ox_lower_unsupported(L, "repeat of an input of unknown rank");
    if (n < x->rank) return ox_lower_fail(L, "repeats has %d entries for a rank-%d input", n, x->rank);
    for (int k = 0; k < n - x->rank; k++) lead[k] = k;
    if (n > x->rank) x = ox_out(ox_op(L, "Unsqueeze", 2, x, ox_const_ints(L, n - x->rank, lead)));
    if (n == 0) return ox_bind(L, 0, x);
    ox_value *r = sym ? sym : ox_const_ints(L, n, reps);
    if (x && x->dtype == OX_BFLOAT16) { /* ONNX Runtime has no bfloat16 Tile: tiled as float, exactly */
        ox_value *f = ox_out(ox_op(L, "Tile", 2, ox_cast(L, x, OX_FLOAT), r));
        if (f) f->dtype = OX_FLOAT;
        return ox_bind(L, 0, ox_cast(L, f, OX_BFLOAT16));
    }
    return ox_bind(L, 0, ox_out(ox_op(L, "Tile", 2, x, r)));
}

/* ---- rearrangements ---- */

/* tril/triu(self, diagonal=0): ONNX Trilu on the last two dims. */
static int trilu(ox_lower *L, bool upper) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t diag = ox_arg_int(L, 1, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank >= 0 && x->rank < 2) return ox_lower_fail(L, "tril/triu of a %d-d tensor", x->rank);
    /* ONNX Runtime's Trilu: float, double, float16, int32, int64, bool */
    ox_dtype t = x->dtype, st = t;
    if (t == OX_BFLOAT16) st = OX_FLOAT;
    else if (ox_dtype_is_int(t) && t != OX_INT32 && t != OX_INT64) st = OX_INT32;
    ox_value *xs = ox_cast(L, x, st);
    if (!xs) return ox_bind(L, 0, NULL);
    ox_node *n = ox_op(L, "Trilu", 2, xs, ox_const_scalar(L, OX_INT64, (double)diag));
    if (n) ox_node_set_int(L->g, n, "upper", upper);
    return ox_bind(L, 0, ox_cast(L, ox_typed(ox_out(n), xs->dtype), x->dtype));
}

int lower_tril(ox_lower *L) { return trilu(L, false); }

int lower_triu(ox_lower *L) { return trilu(L, true); }

/* flip(self, dims[]): a Slice with step -1 on each dim. */
int lower_flip(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dims[OX_MAX_RANK];
    int n = ox_arg_ints(L, 1, dims, OX_MAX_RANK);
    if (!x || n < 0) return ox_bind(L, 0, NULL);
    if (n == 0 || x->rank == 0) return ox_bind(L, 0, x);
    int64_t starts[OX_MAX_RANK], ends[OX_MAX_RANK], steps[OX_MAX_RANK];
    for (int i = 0; i < n; i++) {
        if (!ox_norm_dim(L, &dims[i], x->rank, "dim")) return OX_ELOWER;
        starts[i] = -1;
        ends[i] = INT64_MIN;
        steps[i] = -1;
    }
    ox_node *s = ox_op(L, "Slice", 5, x, ox_const_ints(L, n, starts), ox_const_ints(L, n, ends),
                       ox_const_ints(L, n, dims), ox_const_ints(L, n, steps));
    return ox_bind(L, 0, ox_typed(ox_out(s), x->dtype));
}

/* roll(self, shifts[], dims[]): per dim, the last `shift` elements moved to the front (static
 * sizes); no dims means the flattened tensor. */
int lower_roll(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t shifts[OX_MAX_RANK], dims[OX_MAX_RANK];
    int ns = ox_arg_ints(L, 1, shifts, OX_MAX_RANK), nd = ox_arg_ints(L, 2, dims, OX_MAX_RANK);
    if (!x || ns < 0 || nd < 0) return ox_bind(L, 0, NULL);
    if (ns == 0) return ox_lower_fail(L, "roll without shifts");
    ox_value *y = x;
    bool flat = nd == 0;
    if (flat) {
        if (ns != 1) return ox_lower_fail(L, "%d shifts for a flattened roll", ns);
        int64_t m1 = -1;
        y = ox_typed(ox_reshape(L, x, 1, &m1), x->dtype);
        nd = 1;
        dims[0] = 0;
    } else if (ns != nd) {
        return ox_lower_fail(L, "%d shifts for %d dims", ns, nd);
    }
    for (int i = 0; i < nd; i++) {
        int rank = flat ? 1 : x->rank;
        if (!ox_norm_dim(L, &dims[i], rank, "dim")) return OX_ELOWER;
        int64_t size = -1;
        if (flat) {
            int64_t numel = 1;
            for (int j = 0; x->dims && j < x->rank && numel >= 0; j++)
                numel = x->dims[j].param || x->dims[j].value < 0 ? -1 : numel * x->dims[j].value;
            size = x->dims || x->rank == 0 ? numel : -1;
        } else if (x->dims && !x->dims[dims[i]].param) {
            size = x->dims[dims[i]].value;
        }
        if (size < 0) return ox_lower_unsupported(L, "roll along a symbolic size");
        if (size == 0) continue;
        int64_t s = ((shifts[i] % size) + size) % size;
        if (s == 0) continue;
        int64_t a0 = size - s, big = INT64_MAX, zero = 0;
        ox_value *tail = ox_op_typed(L, "Slice", x->dtype, 4, y, ox_const_i64_1d(L, a0), ox_const_i64_1d(L, big),
                                     ox_const_i64_1d(L, dims[i]));
        ox_value *head = ox_op_typed(L, "Slice", x->dtype, 4, y, ox_const_i64_1d(L, zero), ox_const_i64_1d(L, a0),
                                     ox_const_i64_1d(L, dims[i]));
        ox_node *c = ox_op(L, "Concat", 2, tail, head);
        if (c) ox_node_set_int(L->g, c, "axis", dims[i]);
        y = ox_typed(ox_out(c), x->dtype);
    }
    if (flat) y = ox_binary(L, "Reshape", y, ox_unary(L, "Shape", x, OX_INT64), x->dtype);
    return ox_bind(L, 0, y);
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
    if (!x->dims || x->dims[d1].param || x->dims[d2].param)
        return ox_lower_unsupported(L, "diagonal over symbolic sizes");
    int64_t n1 = x->dims[d1].value, n2 = x->dims[d2].value;
    if (n1 > (1 << 30) || n2 > (1 << 30))
        return ox_lower_unsupported(L, "diagonal of a %lld x %lld matrix", (long long)n1, (long long)n2);
    int64_t start1 = 0, start2 = 0, len = 0;
    if (off > -n1 && off < n2) { /* else the diagonal is empty */
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
        if (x->dims[k].value > (1 << 24) || numel > (int64_t)(1 << 24))
            return ox_lower_unsupported(L, "as_strided of a large tensor");
        numel *= x->dims[k].value;
    }
    if (off < 0 || off > numel) return ox_lower_fail(L, "storage_offset %lld outside the tensor", (long long)off);
    for (int k = 0; k < ns; k++) {
        if (size[k] < 0 || stride[k] < 0 || (size[k] > 1 && stride[k] > numel))
            return ox_lower_fail(L, "size %lld, stride %lld", (long long)size[k], (long long)stride[k]);
        if (size[k] && total > (int64_t)(1 << 24) / size[k])
            return ox_lower_unsupported(L, "an as_strided view of over 16M elements");
        total *= size[k];
    }
    int64_t *idx = ox_arena_array(L->g->arena, (size_t)(total ? total : 1), sizeof *idx);
    if (!idx) return ox_bind(L, 0, NULL);
    int64_t at[OX_MAX_RANK] = {0};
    for (int64_t e = 0; e < total; e++) {
        int64_t p = off;
        for (int k = 0; k < ns; k++) p += at[k] * stride[k];
        if (p < 0 || p >= numel)
            return ox_lower_fail(L, "element %lld of the view is outside the tensor", (long long)e);
        idx[e] = p;
        for (int k = ns - 1; k >= 0; k--) { /* odometer */
            if (++at[k] < size[k]) break;
            at[k] = 0;
        }
    }
    int64_t flat = -1;
    ox_value *xf = ox_typed(ox_reshape(L, x, 1, &flat), x->dtype);
    ox_value *g = ox_binary(L, "Gather", xf, ox_const_tensor(L, OX_INT64, ns, size, idx), x->dtype);
    return ox_bind(L, 0, g);
}

/* unfold(self, dimension, size, step): every window of `size` elements along the dim, `step`
 * apart, in a new last dim. One Gather with the windows' [count, size] index matrix (static
 * sizes), then the window axis moved last. */
int lower_unfold(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, 1, 0), size = ox_arg_int(L, 2, 1), step = ox_arg_int(L, 3, 1);
    if (!x) return ox_bind(L, 0, NULL);
    if (size < 0 || step <= 0) return ox_lower_fail(L, "size %lld, step %lld", (long long)size, (long long)step);
    if (x->rank == 0) { /* a 0-d tensor has one window of one element */
        if (size > 1) return ox_lower_fail(L, "size %lld for a 0-d tensor", (long long)size);
        int64_t one = size;
        return ox_bind(L, 0, ox_typed(ox_reshape(L, x, 1, &one), x->dtype));
    }
    if (!ox_norm_dim(L, &dim, x->rank, "dimension")) return OX_ELOWER;
    if (x->rank >= OX_MAX_RANK) return ox_lower_unsupported(L, "unfold of a rank-%d tensor", x->rank);
    if (!x->dims || x->dims[dim].param || x->dims[dim].value < 0)
        return ox_lower_unsupported(L, "unfold over a symbolic size");
    int64_t len = x->dims[dim].value;
    if (size > len) return ox_lower_fail(L, "size %lld is larger than the dim (%lld)", (long long)size, (long long)len);
    int64_t count = (len - size) / step + 1;
    if (count * size > (1 << 24)) return ox_lower_unsupported(L, "unfold into over 16M indices");
    int64_t n = count * size;
    int64_t *idx = ox_arena_array(L->g->arena, (size_t)(n > 0 ? n : 1), sizeof *idx);
    if (!idx) return ox_bind(L, 0, NULL);
    for (int64_t i = 0; i < count; i++)
        for (int64_t j = 0; j < size; j++) idx[i * size + j] = i * step + j;
    int64_t dims[2] = {count, size};
    ox_node *gt = ox_op(L, "Gather", 2, x, ox_const_tensor(L, OX_INT64, 2, dims, idx));
    if (!gt) return ox_bind(L, 0, NULL);
    ox_node_set_int(L->g, gt, "axis", dim);
    ox_value *r = ox_typed(ox_out(gt), x->dtype);
    if (dim + 1 == x->rank) return ox_bind(L, 0, r); /* the window axis is last already */
    int64_t perm[OX_MAX_RANK]; /* rank + 1 dims */
    int p = 0;
    for (int k = 0; k <= x->rank; k++)
        if (k != dim + 1) perm[p++] = k;
    perm[p++] = dim + 1;
    ox_node *t = ox_op(L, "Transpose", 1, r);
    if (t) ox_node_set_ints(L->g, t, "perm", perm, p);
    return ox_bind(L, 0, ox_typed(ox_out(t), x->dtype));
}

/* pixel_shuffle(self, upscale_factor): [.., C r^2, H, W] -> [.., C, H r, W r]. */
int lower_pixel_shuffle(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t r = ox_arg_int(L, 1, 1);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank != 4) return ox_lower_unsupported(L, "pixel_shuffle of a rank-%d input (4 is lowered)", x->rank);
    if (r < 1) return ox_lower_fail(L, "upscale_factor %lld", (long long)r);
    ox_node *d = ox_op(L, "DepthToSpace", 1, x);
    if (d) ox_node_set_int(L->g, d, "blocksize", r), ox_node_set_string(L->g, d, "mode", "CRD");
    return ox_bind(L, 0, ox_typed(ox_out(d), x->dtype));
}

/* pixel_unshuffle(self, downscale_factor): [N, C, H r, W r] -> [N, C r^2, H, W] (static C, H, W). */
int lower_pixel_unshuffle(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t r = ox_arg_int(L, 1, 1);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank != 4 || !x->dims)
        return ox_lower_unsupported(L, "pixel_unshuffle of a rank-%d input (4 is lowered)", x->rank);
    if (r < 1) return ox_lower_fail(L, "downscale_factor %lld", (long long)r);
    for (int k = 1; k < 4; k++)
        if (x->dims[k].param || x->dims[k].value < 0)
            return ox_lower_unsupported(L, "pixel_unshuffle over symbolic sizes");
    int64_t c = x->dims[1].value, h = x->dims[2].value / r, w = x->dims[3].value / r;
    if (h * r != x->dims[2].value || w * r != x->dims[3].value)
        return ox_lower_fail(L, "sizes %lld x %lld do not divide by %lld", (long long)x->dims[2].value,
                             (long long)x->dims[3].value, (long long)r);
    int64_t six[6] = {0, c, h, r, w, r}, four[4] = {0, c * r * r, h, w};
    ox_value *v = ox_typed(ox_reshape(L, x, 6, six), x->dtype);
    ox_node *t = ox_op(L, "Transpose", 1, v);
    if (t) ox_node_set_ints(L->g, t, "perm", (const int64_t[]){0, 1, 3, 5, 2, 4}, 6);
    return ox_bind(L, 0, ox_typed(ox_reshape(L, ox_typed(ox_out(t), x->dtype), 4, four), x->dtype));
}
