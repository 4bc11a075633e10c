/*
 * lower_sort.c — ordering: topk, sort, argsort, nonzero.
 *
 * All but nonzero are ONNX TopK, whose ties keep the lower index first in either direction: what
 * a stable sort gives (torch's default sort is not promised stable, but on CPU it is). sort takes
 * the whole dim as k: a constant when the dim is static, else read from the shape. Bool inputs
 * are sorted as uint8, which TopK accepts, and cast back.
 */
#include "lower/lower.h"

#include <stdint.h>

/* TopK of x (k as a 1-D int64 value) along dim; binds values to output vi and indices to ii
 * (either -1 for none). */
static int topk(ox_lower *L, ox_value *x, ox_value *k, int64_t dim, bool largest, int vi, int ii) {
    ox_dtype t = x->dtype, st = t == OX_BOOL ? OX_UINT8 : t;
    if (x->rank == 0) {   /* one element: itself, at index 0 */
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
    if (a && a->kind == OX_ARG_VALUE) {   /* a symbolic k */
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
