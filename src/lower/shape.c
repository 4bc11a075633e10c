/*
 * lower_shape.c — views and layout: view/reshape, permute/transpose, select/slice, cat/stack/split,
 * (un)squeeze, expand, flatten, aliases; and tensor factories (arange, full, zeros, ones).
 *
 * Sizes: a torch size list may mix ints with symbolic sizes (0-d int64 values). When torch recorded
 * a static output shape the lowering uses it as a constant; otherwise the list is assembled at run
 * time (Concat of the ints and the unsqueezed symbols).
 */
#include "lower/lower.h"
#include "ir/tensor.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

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
    if (!ox_norm_dim(L, &start, rank, "start_dim") || !ox_norm_dim(L, &end, rank, "end_dim"))
        return OX_ELOWER;
    if (rank >= OX_MAX_RANK) return ox_lower_unsupported(L, "flatten of a rank-%d input", rank);
    if (start > end) return ox_lower_fail(L, "start_dim %lld is after end_dim %lld",
                                          (long long)start, (long long)end);
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
    if (x->rank >= 0 && x->rank != n)
        return ox_lower_fail(L, "dims has %d entries for a rank-%d input", n, x->rank);
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
        return ox_lower_fail(L, "index %lld out of range for dim %lld of size %lld", (long long)idx,
                             (long long)dim, (long long)d->value);
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
    if (n == 0) {   /* every input was an empty 1-D tensor */
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
        if (squeeze) { sizes[k] = 1; continue; }
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
            return ox_lower_unsupported(L, "the sizes of the outputs along dim %lld are symbolic",
                                        (long long)dim);
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
        return ox_lower_fail(L, "dim %lld out of range for unsqueezing a rank-%d input",
                             (long long)dim, x->rank);
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
        if (d->param || d->value < 0) { is_unknown[k] = true; unknown++; }
        else if (d->value == 1) known++;
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
    if (n < x->rank)
        return ox_lower_fail(L, "repeats has %d entries for a rank-%d input", n, x->rank);
    for (int k = 0; k < n - x->rank; k++) lead[k] = k;
    if (n > x->rank) x = ox_out(ox_op(L, "Unsqueeze", 2, x, ox_const_ints(L, n - x->rank, lead)));
    if (n == 0) return ox_bind(L, 0, x);
    ox_value *r = sym ? sym : ox_const_ints(L, n, reps);
    if (x && x->dtype == OX_BFLOAT16) {   /* ONNX Runtime has no bfloat16 Tile: tiled as float, exactly */
        ox_value *f = ox_out(ox_op(L, "Tile", 2, ox_cast(L, x, OX_FLOAT), r));
        if (f) f->dtype = OX_FLOAT;
        return ox_bind(L, 0, ox_cast(L, f, OX_BFLOAT16));
    }
    return ox_bind(L, 0, ox_out(ox_op(L, "Tile", 2, x, r)));
}

/* ---- factories ---- */

/* The dtypes whose fill value ConstantOfShape holds as they are; others (16-bit floats, unsigned
 * beyond uint8) fill as float and Cast. */
static bool fills_directly(ox_dtype t) {
    switch (t) {
    case OX_FLOAT: case OX_DOUBLE: case OX_INT64: case OX_INT32: case OX_INT16: case OX_INT8:
    case OX_UINT8: case OX_BOOL: return true;
    default: return false;
    }
}

/* A tensor of `shape` filled with argument `fill_arg` (or `fill` when fill_arg < 0), dtype t. */
static ox_value *filled(ox_lower *L, ox_value *shape, int fill_arg, double fill, ox_dtype t) {
    if (t == OX_UNDEFINED) {
        ox_lower_fail(L, "torch recorded no dtype for the output");
        return NULL;
    }
    const ox_arg *a = fill_arg >= 0 ? ox_arg_at(L, fill_arg) : NULL;
    if (a && a->kind == OX_ARG_VALUE)
        return ox_binary(L, "Expand", ox_arg_scalar(L, fill_arg, t), shape, t);
    if (a) fill = ox_arg_float(L, fill_arg, 0);
    unsigned char bytes[8];
    ox_dtype st = fills_directly(t) ? t : OX_FLOAT;
    ox_elem_store_double(st, bytes, fill);
    ox_node *n = ox_op(L, "ConstantOfShape", 1, shape);
    if (!n) return NULL;
    ox_node_set_tensor(L->g, n, "value", st, 1, (int64_t[]){1}, bytes);
    return ox_cast(L, ox_typed(ox_out(n), st), t);
}

/* The shape of output 0: static meta as a constant, else Shape(like) or the size argument. */
static ox_value *factory_shape(ox_lower *L, int size_arg, int like_arg) {
    int64_t dims[OX_MAX_RANK];
    int rank;
    bool has_zero;
    if (ox_out_static_shape(L, 0, dims, &rank)) return ox_const_ints(L, rank, dims);
    if (like_arg >= 0) return ox_shape_of(L, ox_arg_value(L, like_arg), 0, INT64_MAX);
    return ox_arg_sizes(L, size_arg, false, &has_zero);
}

/* full(size, fill_value, ...) */
int lower_full(ox_lower *L) {
    return ox_bind(L, 0, filled(L, factory_shape(L, 0, -1), 1, 0, ox_out_dtype(L, 0)));
}
/* full_like(self, fill_value, ...), fill.Scalar(self, value) */
int lower_full_like(ox_lower *L) {
    return ox_bind(L, 0, filled(L, factory_shape(L, -1, 0), 1, 0, ox_out_dtype(L, 0)));
}
/* zeros(size, ...), empty.memory_format(size, ...) */
int lower_zeros(ox_lower *L) {
    return ox_bind(L, 0, filled(L, factory_shape(L, 0, -1), -1, 0, ox_out_dtype(L, 0)));
}
int lower_ones(ox_lower *L) {
    return ox_bind(L, 0, filled(L, factory_shape(L, 0, -1), -1, 1, ox_out_dtype(L, 0)));
}
/* zeros_like(self, ...), empty_like(self, ...) */
int lower_zeros_like(ox_lower *L) {
    return ox_bind(L, 0, filled(L, factory_shape(L, -1, 0), -1, 0, ox_out_dtype(L, 0)));
}
int lower_ones_like(ox_lower *L) {
    return ox_bind(L, 0, filled(L, factory_shape(L, -1, 0), -1, 1, ox_out_dtype(L, 0)));
}
/* new_zeros(self, size, ...), new_empty(self, size, ...), new_ones, new_full(self, size, fill) */
int lower_new_zeros(ox_lower *L) {
    return ox_bind(L, 0, filled(L, factory_shape(L, 1, -1), -1, 0, ox_out_dtype(L, 0)));
}
int lower_new_ones(ox_lower *L) {
    return ox_bind(L, 0, filled(L, factory_shape(L, 1, -1), -1, 1, ox_out_dtype(L, 0)));
}
int lower_new_full(ox_lower *L) {
    return ox_bind(L, 0, filled(L, factory_shape(L, 1, -1), 2, 0, ox_out_dtype(L, 0)));
}

/* ---- arange ---- */

/* A constant arange of n elements: exact int64 when every bound is an int, else computed in
 * double (as torch does for float32) and stored as double or float. */
static ox_value *arange_const(ox_lower *L, const ox_arg *b[3], int64_t n, ox_dtype t) {
    bool ints = ox_dtype_is_int(t) || t == OX_BOOL;
    for (int k = 0; k < 3; k++) ints &= b[k]->kind == OX_ARG_INT;
    ox_dtype st = ints ? OX_INT64 : t == OX_DOUBLE ? OX_DOUBLE : OX_FLOAT;
    double v[3];
    for (int k = 0; k < 3; k++) v[k] = b[k]->kind == OX_ARG_FLOAT ? b[k]->u.f : (double)b[k]->u.i;
    /* The bounds must give the size torch recorded; then no element overflows. */
    double count = v[2] != 0 ? ceil((v[1] - v[0]) / v[2]) : -1;
    if (!(count == (double)n || (n == 0 && count <= 0))) {
        ox_lower_fail(L, "arange(%g, %g, %g) does not have the %lld elements torch recorded", v[0], v[1],
                      v[2], (long long)n);
        return NULL;
    }
    void *data = ox_arena_array(L->g->arena, (size_t)(n ? n : 1), ox_dtype_size(st));
    if (!data) return NULL;
    for (int64_t i = 0; i < n; i++) {
        if (ints) {
            ((int64_t *)data)[i] = (int64_t)((uint64_t)b[0]->u.i + (uint64_t)i * (uint64_t)b[2]->u.i);
            continue;
        }
        double x = v[0] + (double)i * v[2];
        if (st == OX_DOUBLE) ((double *)data)[i] = x;
        else ((float *)data)[i] = (float)x;
    }
    return ox_cast(L, ox_const_tensor(L, st, 1, &n, data), t);
}

/* arange.default(end), arange.start(start, end), arange.start_step(start, end, step). */
int lower_arange(ox_lower *L) {
    const char *target = L->node->target;
    int nb = strstr(target, ".start_step") ? 3 : strstr(target, ".start") ? 2 : 1;
    ox_arg zero = {.kind = OX_ARG_INT, .u.i = 0}, one = {.kind = OX_ARG_INT, .u.i = 1};
    const ox_arg *b[3] = {&zero, NULL, &one};   /* start, end, step */
    for (int k = 0; k < nb; k++) {
        const ox_arg *a = ox_arg_at(L, k);
        if (!a || a->kind == OX_ARG_NONE)
            return ox_lower_fail(L, "argument %d of arange is None", k);
        if (a->kind != OX_ARG_INT && a->kind != OX_ARG_FLOAT && a->kind != OX_ARG_VALUE)
            return ox_lower_unsupported(L, "argument %d of arange is not a number", k);
        b[nb == 1 ? 1 : k] = a;
    }
    ox_dtype t = ox_out_dtype(L, 0);
    int64_t dims[OX_MAX_RANK];
    int rank;
    bool numbers = b[0]->kind != OX_ARG_VALUE && b[1]->kind != OX_ARG_VALUE && b[2]->kind != OX_ARG_VALUE;
    if (t == OX_UNDEFINED) return ox_lower_fail(L, "torch recorded no dtype for the output");
    if (numbers && ox_out_static_shape(L, 0, dims, &rank) && rank == 1 && dims[0] <= (1 << 24))
        return ox_bind(L, 0, arange_const(L, b, dims[0], t));
    /* Range runs on int16/32/64, float and double; others compute in float and cast. */
    ox_dtype rt = t;
    if (t != OX_INT16 && t != OX_INT32 && t != OX_INT64 && t != OX_FLOAT && t != OX_DOUBLE)
        rt = ox_dtype_is_int(t) ? OX_INT64 : OX_FLOAT;
    ox_value *v[3];
    for (int k = 0; k < 3; k++) {
        const ox_arg *a = b[k];
        if (a->kind == OX_ARG_VALUE) v[k] = ox_cast(L, ox_arg_value(L, nb == 1 ? 0 : k), rt);
        else v[k] = ox_const_scalar(L, rt, a->kind == OX_ARG_FLOAT ? a->u.f : (double)a->u.i);
    }
    return ox_bind(L, 0, ox_cast(L, ox_op_typed(L, "Range", rt, 3, v[0], v[1], v[2]), t));
}
