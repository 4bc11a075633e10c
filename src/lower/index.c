/*
 * index.c — gathering by index: index.Tensor (advanced indexing with integer tensors), gather,
 * index_select, embedding, and nonzero (the indices of the set elements).
 *
 * index.Tensor follows NumPy's rule, which torch keeps: the index tensors broadcast together; when
 * the indexed dims are adjacent the broadcast dims replace them in place, otherwise they go first.
 * One index is a Gather on its axis; several become one GatherND over the indexed dims moved to the
 * front, with a Transpose back when the rule puts the broadcast dims later.
 */
#include "lower/lower.h"

static ox_value *transpose(ox_lower *L, ox_value *x, int rank, const int64_t *perm) {
    bool identity = true;
    for (int k = 0; k < rank; k++) identity &= perm[k] == k;
    if (identity) return x;
    ox_node *n = ox_op(L, "Transpose", 1, x);
    if (n) ox_node_set_ints(L->g, n, "perm", perm, rank);
    return ox_typed(ox_out(n), x ? x->dtype : OX_UNDEFINED);
}

/* index.Tensor(self, indices: Tensor?[]). */
int lower_index(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    const ox_arg *list = ox_arg_at(L, 1);
    if (!x) return ox_bind(L, 0, NULL);
    if (!list || list->kind != OX_ARG_LIST) return ox_lower_fail(L, "argument 1: a list of index tensors is required");
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
        if (!ox_dtype_is_int(v->dtype))
            return ox_lower_unsupported(L, "index %d of dtype %s", k, ox_dtype_name(v->dtype));
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
    for (int k = 0; k < rank; k++)
        if (!indexed[k]) perm[np++] = k;
    ox_value *xt = transpose(L, x, rank, perm);
    /* Broadcast the indices to one shape (Add of all gives it), stack them on a new last axis. */
    ox_value *sum = NULL, *parts[OX_MAX_RANK];
    for (int k = 0; k < nidx; k++) {
        idx[k] = ox_wrap_index(L, x, axes[k], idx[k]);
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

/* index_select(self, dim, index): Gather. */
int lower_index_select(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *index = ox_arg_value(L, 2);
    int64_t dim = ox_arg_int(L, 1, 0);
    if (!x || !index) return ox_bind(L, 0, NULL);
    if (x->rank == 0) { /* torch allows dim 0 of a 0-d tensor with a one-element index */
        ox_value *flat = ox_binary(L, "Reshape", x, ox_const_i64_1d(L, 1), x->dtype);
        ox_node *g = ox_op(L, "Gather", 2, flat, ox_cast(L, index, OX_INT64));
        return ox_bind(L, 0, ox_typed(ox_reshape(L, ox_typed(ox_out(g), x->dtype), 0, NULL), x->dtype));
    }
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    ox_node *n = ox_op(L, "Gather", 2, x, ox_cast(L, index, OX_INT64));
    if (n) ox_node_set_int(L->g, n, "axis", dim);
    return ox_bind(L, 0, ox_typed(ox_out(n), x->dtype));
}

/* embedding(weight, indices, padding_idx, scale_grad_by_freq, sparse): padding_idx only matters
 * to gradients. */
int lower_embedding(ox_lower *L) {
    ox_value *w = ox_arg_value(L, 0), *idx = ox_arg_value(L, 1);
    if (idx && idx->dtype != OX_INT32) idx = ox_cast(L, idx, OX_INT64);
    return ox_bind(L, 0, ox_binary(L, "Gather", w, idx, w ? w->dtype : OX_UNDEFINED));
}

/* nonzero(self): ONNX NonZero gives [rank, n], torch [n, rank]. */
int lower_nonzero(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank == 0) return ox_lower_unsupported(L, "nonzero of a 0-d tensor");
    ox_value *nz = ox_unary(L, "NonZero", x, OX_INT64);
    ox_node *t = ox_op(L, "Transpose", 1, nz);
    if (t) ox_node_set_ints(L->g, t, "perm", (const int64_t[]){1, 0}, 2);
    return ox_bind(L, 0, ox_typed(ox_out(t), OX_INT64));
}
