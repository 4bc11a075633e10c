/*
 * sort.c — ordering: topk, sort and argsort (TopK over the whole dim), _unique2 (ONNX Unique,
 * always sorted, as torch's CPU kernel is) and bucketize.
 */
#include "lower/lower.h"

/* TopK of x (k as a 1-D int64 value) along dim; binds values to output vi and indices to ii
 * (either -1 for none). */
static int topk(ox_lower *L, ox_value *x, ox_value *k, int64_t dim, bool largest, int vi, int ii) {
    ox_dtype t = x->dtype, st = t == OX_BOOL ? OX_UINT8 : t;
    if (x->rank == 0) { /* one element: itself, at index 0 */
        int rc = vi >= 0 ? ox_bind(L, vi, x) : OX_OK;
        return rc == OX_OK && ii >= 0 ? ox_bind(L, ii, ox_const_scalar(L, OX_INT64, 0)) : rc;
    }
    ox_node *n = ox_opn(L, "TopK", 2, 2, ox_cast(L, x, st), k);
    if (!n) return ox_bind(L, vi >= 0 ? vi : ii, NULL);
    ox_node_set_int(L->g, n, "axis", dim);
    ox_node_set_int(L->g, n, "largest", largest);
    ox_node_set_int(L->g, n, "sorted", 1);
    int rc = vi >= 0 ? ox_bind(L, vi, ox_cast(L, ox_typed(n->outputs[0], st), t)) : OX_OK;
    if (rc == OX_OK && ii >= 0 && ii < L->node->noutputs) rc = ox_bind(L, ii, ox_typed(n->outputs[1], OX_INT64));
    return rc;
}

/* topk(self, k, dim=-1, largest=True, sorted=True) -> (values, indices) */
int lower_topk(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, 2, -1);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank > 0 && !ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    ox_value *k;
    const ox_arg *a = ox_arg_at(L, 1);
    if (a && a->kind == OX_ARG_VALUE) { /* a symbolic k */
        int64_t one = 1;
        k = ox_typed(ox_reshape(L, ox_cast(L, ox_arg_value(L, 1), OX_INT64), 1, &one), OX_INT64);
    } else {
        int64_t kv = ox_arg_int(L, 1, 1);
        if (kv < 0) return ox_lower_fail(L, "k = %lld", (long long)kv);
        k = ox_const_i64_1d(L, kv);
    }
    return topk(L, x, k, dim, ox_arg_bool(L, 3, true), 0, 1);
}

/* The size of x's dim d as a 1-D int64 value. */
static ox_value *dim_len(ox_lower *L, ox_value *x, int64_t d) {
    if (x->dims && !x->dims[d].param && x->dims[d].value >= 0) return ox_const_i64_1d(L, x->dims[d].value);
    return ox_shape_of(L, x, d, d + 1);
}

/* The whole dim through TopK: values to vi, indices to ii. */
static int sort_all(ox_lower *L, int dim_arg, int desc_arg, int vi, int ii) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, dim_arg, -1);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank > 0 && !ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    ox_value *k = x->rank > 0 ? dim_len(L, x, dim) : NULL;
    return topk(L, x, k, dim, ox_arg_bool(L, desc_arg, false), vi, ii);
}

/* sort.default(self, dim=-1, descending=False) -> (values, indices) */
int lower_sort(ox_lower *L) { return sort_all(L, 1, 2, 0, 1); }

/* sort.stable(self, *, stable, dim=-1, descending=False) */
int lower_sort_stable(ox_lower *L) { return sort_all(L, 2, 3, 0, 1); }

/* argsort.default(self, dim=-1, descending=False) */
int lower_argsort(ox_lower *L) { return sort_all(L, 1, 2, -1, 0); }

/* argsort.stable(self, *, stable, dim=-1, descending=False) */
int lower_argsort_stable(ox_lower *L) { return sort_all(L, 2, 3, -1, 0); }

/* ---- unique, bucketize ---- */

/* An empty int64 tensor: the outputs _unique2 was not asked for. */
static ox_value *empty(ox_lower *L) {
    int64_t n = 0, none = 0;
    return ox_const_tensor(L, OX_INT64, 1, &n, &none);
}

/* _unique2(self, sorted, return_inverse, return_counts) -> (values, inverse, counts): the
 * distinct values of the flattened input, in increasing order (torch's CPU kernel sorts whatever
 * `sorted` says), the index of each input element among them (shaped like the input) and how
 * often each occurs. ONNX Runtime's Unique takes float and int64: other dtypes go through one of
 * them, which holds their values exactly. */
int lower_unique2(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    bool inverse = ox_arg_bool(L, 2, false), counts = ox_arg_bool(L, 3, false);
    if (!x) return ox_bind(L, 0, NULL);
    ox_dtype t = x->dtype;
    ox_dtype wt = t == OX_FLOAT || t == OX_INT64 ? t : ox_dtype_is_float(t) ? OX_FLOAT : OX_INT64;
    if (t == OX_DOUBLE) wt = OX_DOUBLE;
    int64_t flat = -1;
    ox_value *xf = ox_typed(ox_reshape(L, ox_cast(L, x, wt), 1, &flat), wt);
    ox_node *u = ox_opn(L, "Unique", 4, 1, xf);
    if (!u) return ox_bind(L, 0, NULL);
    ox_node_set_int(L->g, u, "sorted", 1);
    int rc = ox_bind(L, 0, ox_cast(L, ox_typed(u->outputs[0], wt), t));
    if (rc != OX_OK || L->node->noutputs < 2) return rc;
    ox_value *inv = empty(L);
    if (inverse) {
        ox_value *shape = ox_unary(L, "Shape", x, OX_INT64);
        inv = ox_binary(L, "Reshape", ox_typed(u->outputs[2], OX_INT64), shape, OX_INT64);
    }
    rc = ox_bind(L, 1, inv);
    if (rc != OX_OK || L->node->noutputs < 3) return rc;
    return ox_bind(L, 2, counts ? ox_typed(u->outputs[3], OX_INT64) : empty(L));
}

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
