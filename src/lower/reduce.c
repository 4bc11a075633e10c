/*
 * reduce.c — reductions: mean, sum, any, all, amax/amin, max/min with and without a dim,
 * argmax/argmin, prod, var/std/var_mean, logsumexp, linalg_vector_norm, dist; and the scans along
 * a dim: cumsum, logcumsumexp, diff.
 *
 * Conventions kept from PyTorch: dims are a list (None or [] meaning every dim); a 0-d input
 * reduces to itself whatever the dim (torch accepts dim 0 and -1 there); max/min over a dim return
 * the first index of the extreme value, which is ONNX ArgMax/ArgMin's default; bool inputs reduce
 * as int32 (ONNX Runtime has no bool ReduceMax) and are cast back.
 */
#include "lower/lower.h"

#include <math.h>
#include <stdint.h>

/* The dims of argument i, normalized; 0 of them means all. -1 after a failure. A 0-d x takes
 * any of 0 and -1 and reduces nothing. */
static int dims_arg(ox_lower *L, int i, const ox_value *x, int64_t *dims) {
    int n = ox_arg_ints(L, i, dims, OX_MAX_RANK);
    if (n < 0 || !x) return -1;
    if (x->rank == 0) {
        for (int k = 0; k < n; k++)
            if (dims[k] != 0 && dims[k] != -1)
                return ox_lower_fail(L, "dim %lld of a 0-d tensor", (long long)dims[k]), -1;
        return 0;
    }
    for (int k = 0; k < n; k++)
        if (!ox_norm_dim(L, &dims[k], x->rank, "dim")) return -1;
    return n;
}

/* op over n dims (0: all) with keepdims; x of rank 0 comes back as it is. */
static ox_value *reduce(ox_lower *L, const char *op, ox_value *x, int n, const int64_t *dims, bool keep) {
    if (!x) return NULL;
    if (x->rank == 0) return x;
    ox_node *r = n ? ox_op(L, op, 2, x, ox_const_ints(L, n, dims)) : ox_op(L, op, 1, x);
    if (r) ox_node_set_int(L->g, r, "keepdims", keep);
    return ox_typed(ox_out(r), x->dtype);
}

/* x as a type ReduceMax/Min take: bool as int32. */
static ox_value *reducible(ox_lower *L, ox_value *x) { return x && x->dtype == OX_BOOL ? ox_cast(L, x, OX_INT32) : x; }

/* ---- mean, sum, any, all ---- */

/* op over the dims of argument 1 (None or [] means all), keepdim at argument 2. */
static ox_value *reduce_args(ox_lower *L, const char *op, ox_value *x) {
    int64_t dims[OX_MAX_RANK];
    int n = dims_arg(L, 1, x, dims);
    if (n < 0) return NULL;
    if (x->rank == 0) return x; /* keepdim is not read: nothing is reduced */
    return reduce(L, op, x, n, dims, ox_arg_bool(L, 2, false));
}

/* mean.dim(self, dim?, keepdim, *, dtype) */
int lower_mean_dim(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    return ox_bind(L, 0, ox_typed(reduce_args(L, "ReduceMean", ox_cast(L, ox_arg_value(L, 0), t)), t));
}

/* op over every dim, keepdims 0: sum.default(self, *, dtype), mean.default(self, *, dtype) */
static int reduce_all(ox_lower *L, const char *op) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_node *r = ox_op(L, op, 1, ox_cast(L, ox_arg_value(L, 0), t));
    if (r) ox_node_set_int(L->g, r, "keepdims", 0);
    return ox_bind(L, 0, ox_typed(ox_out(r), t));
}

int lower_mean(ox_lower *L) { return reduce_all(L, "ReduceMean"); }

int lower_sum(ox_lower *L) { return reduce_all(L, "ReduceSum"); }

/* sum.dim_IntList(self, dim?, keepdim, *, dtype): bools and ints sum in int64, as torch says. */
int lower_sum_dim(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    return ox_bind(L, 0, ox_typed(reduce_args(L, "ReduceSum", ox_cast(L, ox_arg_value(L, 0), t)), t));
}

/* any.dim / any.dims (self, dim, keepdim), any.default(self): max over x != 0, in int32 since
 * reductions over bool are not run by every runtime. */
int lower_any(ox_lower *L) {
    ox_value *i = ox_cast(L, ox_cast(L, ox_arg_value(L, 0), OX_BOOL), OX_INT32);
    ox_value *r = ox_nargs(L) > 1 ? reduce_args(L, "ReduceMax", i) : ox_out(ox_op(L, "ReduceMax", 1, i));
    if (ox_nargs(L) <= 1 && r) ox_node_set_int(L->g, r->producer, "keepdims", 0);
    return ox_bind(L, 0, ox_cast(L, ox_typed(r, OX_INT32), ox_out_dtype(L, 0)));
}

/* all.default(self), all.dim(self, dim, keepdim), all.dims(self, dim?, keepdim): min over x != 0. */
int lower_all(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    ox_value *i = ox_cast(L, ox_cast(L, x, OX_BOOL), OX_INT32);
    int64_t dims[OX_MAX_RANK];
    int n = ox_nargs(L) > 1 ? dims_arg(L, 1, x, dims) : 0;
    if (n < 0) return ox_bind(L, 0, NULL);
    ox_value *r = reduce(L, "ReduceMin", i, n, dims, ox_nargs(L) > 1 && ox_arg_bool(L, 2, false));
    return ox_bind(L, 0, ox_cast(L, r, OX_BOOL));
}

/* ---- extremes ---- */

/* amax/amin(self, dim[], keepdim) */
static int extreme(ox_lower *L, const char *op) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dims[OX_MAX_RANK];
    int n = dims_arg(L, 1, x, dims);
    if (n < 0) return ox_bind(L, 0, NULL);
    ox_value *r = reduce(L, op, reducible(L, x), n, dims, ox_arg_bool(L, 2, false));
    return ox_bind(L, 0, ox_cast(L, r, x->dtype));
}

int lower_amax(ox_lower *L) { return extreme(L, "ReduceMax"); }

int lower_amin(ox_lower *L) { return extreme(L, "ReduceMin"); }

/* max.default / min.default (self): over everything. */
static int extreme_all(ox_lower *L, const char *op) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_cast(L, reduce(L, op, reducible(L, x), 0, NULL, false), x->dtype));
}

int lower_max(ox_lower *L) { return extreme_all(L, "ReduceMax"); }

int lower_min(ox_lower *L) { return extreme_all(L, "ReduceMin"); }

/* ArgMax/ArgMin of x along dim, keepdims as asked: int64. */
static ox_value *arg_extreme(ox_lower *L, const char *op, ox_value *x, int64_t dim, bool keep) {
    ox_node *a = ox_op(L, op, 1, reducible(L, x));
    if (a) {
        ox_node_set_int(L->g, a, "axis", dim);
        ox_node_set_int(L->g, a, "keepdims", keep);
    }
    return ox_typed(ox_out(a), OX_INT64);
}

/* max.dim / min.dim (self, dim, keepdim) -> (values, indices) */
static int extreme_dim(ox_lower *L, const char *op, const char *arg) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, 1, 0);
    bool keep = ox_arg_bool(L, 2, false);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank == 0) {
        int rc = ox_bind(L, 0, x);
        return rc == OX_OK ? ox_bind(L, 1, ox_const_scalar(L, OX_INT64, 0)) : rc;
    }
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    int rc = ox_bind(L, 0, ox_cast(L, reduce(L, op, reducible(L, x), 1, &dim, keep), x->dtype));
    if (rc == OX_OK && L->node->noutputs > 1) rc = ox_bind(L, 1, arg_extreme(L, arg, x, dim, keep));
    return rc;
}

int lower_max_dim(ox_lower *L) { return extreme_dim(L, "ReduceMax", "ArgMax"); }

int lower_min_dim(ox_lower *L) { return extreme_dim(L, "ReduceMin", "ArgMin"); }

/* argmax/argmin(self, dim?, keepdim): without a dim, over the flattened input. */
static int arg_only(ox_lower *L, const char *op) {
    ox_value *x = ox_arg_value(L, 0);
    bool keep = ox_arg_bool(L, 2, false);
    if (!x) return ox_bind(L, 0, NULL);
    if (ox_arg_is_none(L, 1) || x->rank == 0) {
        int64_t flat = -1;
        ox_value *r = arg_extreme(L, op, ox_reshape(L, x, 1, &flat), 0, false);
        const ox_meta *m = ox_out_meta(L, 0);
        if (m && m->rank > 0) { /* keepdim: every dim of size 1 */
            int64_t ones[OX_MAX_RANK];
            for (int k = 0; k < m->rank && k < OX_MAX_RANK; k++) ones[k] = 1;
            r = ox_typed(ox_reshape(L, r, m->rank, ones), OX_INT64);
        }
        return ox_bind(L, 0, r);
    }
    int64_t dim = ox_arg_int(L, 1, 0);
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    return ox_bind(L, 0, arg_extreme(L, op, x, dim, keep));
}

int lower_argmax(ox_lower *L) { return arg_only(L, "ArgMax"); }

int lower_argmin(ox_lower *L) { return arg_only(L, "ArgMin"); }

/* prod.default(self, *, dtype) and prod.dim_int(self, dim, keepdim, *, dtype): in the output
 * dtype (int64 for ints and bools, as torch says). */
int lower_prod(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    ox_dtype t = ox_out_dtype(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    ox_value *xc = ox_cast(L, x, t);
    if (ox_nargs(L) < 2 || ox_arg_at(L, 1)->kind != OX_ARG_INT)
        return ox_bind(L, 0, reduce(L, "ReduceProd", xc, 0, NULL, false));
    int64_t dim = ox_arg_int(L, 1, 0);
    if (x->rank > 0 && !ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    return ox_bind(L, 0, reduce(L, "ReduceProd", xc, 1, &dim, ox_arg_bool(L, 2, false)));
}

/* ---- variance and norms ---- */

/* The number of elements the reduction over dims (0: all) combines, as a 0-d value of dtype t:
 * a constant when those dims are static. */
static ox_value *count(ox_lower *L, ox_value *x, int n, const int64_t *dims, ox_dtype t) {
    double c = 1;
    bool known = x->dims != NULL;
    for (int k = 0; known && k < (n ? n : x->rank); k++) {
        const ox_dim *d = &x->dims[n ? dims[k] : k];
        if (d->param || d->value < 0) known = false;
        else c *= (double)d->value;
    }
    if (known) return ox_const_scalar(L, t, c);
    ox_value *shape = ox_unary(L, "Shape", x, OX_INT64);
    if (n) {
        ox_node *gt = ox_op(L, "Gather", 2, shape, ox_const_ints(L, n, dims));
        if (gt) ox_node_set_int(L->g, gt, "axis", 0);
        shape = ox_typed(ox_out(gt), OX_INT64);
    }
    ox_node *p = ox_op(L, "ReduceProd", 1, shape);
    if (p) ox_node_set_int(L->g, p, "keepdims", 0);
    return ox_cast(L, ox_typed(ox_out(p), OX_INT64), t);
}

/* The sum of squared deviations over dims (argument 1) divided by (count - corr); std its square
 * root. keepdim is argument 3 in every overload. */
static int variance(ox_lower *L, bool root, double corr) {
    ox_value *x = ox_arg_value(L, 0);
    ox_dtype t = ox_out_dtype(L, 0);
    int64_t dims[OX_MAX_RANK];
    int n = dims_arg(L, 1, x, dims);
    if (n < 0) return ox_bind(L, 0, NULL);
    bool keep = ox_arg_bool(L, 3, false);
    if (t == OX_UNDEFINED) t = x->dtype;
    ox_dtype ct = ox_work_dtype(t);
    ox_value *xc = ox_cast(L, x, ct);
    if (xc && xc != x && xc->rank < 0) {
        xc->rank = x->rank;
        xc->dims = x->dims;
    }
    if (x->rank == 0) { /* one element: 0 / (1 - correction) */
        ox_value *z = ox_binary(L, "Sub", xc, xc, ct);
        ox_value *v = ox_binary(L, "Div", z, ox_const_scalar(L, ct, 1.0 - corr), ct);
        return ox_bind(L, 0, ox_cast(L, v, t));
    }
    ox_value *mean = reduce(L, "ReduceMean", xc, n, dims, true);
    ox_value *d = ox_binary(L, "Sub", xc, mean, ct);
    ox_value *ss = reduce(L, "ReduceSum", ox_binary(L, "Mul", d, d, ct), n, dims, keep);
    ox_value *denom = ox_binary(L, "Sub", count(L, x, n, dims, ct), ox_const_scalar(L, ct, corr), ct);
    ox_value *v = ox_binary(L, "Div", ss, denom, ct);
    if (root) v = ox_unary(L, "Sqrt", v, ct);
    return ox_bind(L, 0, ox_cast(L, v, t));
}

/* var.correction / std.correction (self, dim?, *, correction?, keepdim): correction 1 when not given. */
static double correction(ox_lower *L) { return ox_arg_is_none(L, 2) ? 1.0 : ox_arg_float(L, 2, 1.0); }

int lower_var(ox_lower *L) { return variance(L, false, correction(L)); }

int lower_std(ox_lower *L) { return variance(L, true, correction(L)); }

/* var.dim / std.dim (self, dim?, unbiased=True, keepdim): unbiased is correction 1, else 0. */
int lower_var_dim(ox_lower *L) { return variance(L, false, ox_arg_bool(L, 2, true) ? 1.0 : 0.0); }

int lower_std_dim(ox_lower *L) { return variance(L, true, ox_arg_bool(L, 2, true) ? 1.0 : 0.0); }

/* var_mean.correction(self, dim?, *, correction?, keepdim) -> (var, mean) */
int lower_var_mean(ox_lower *L) {
    int rc = lower_var(L); /* output 0; then the mean over the same dims */
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
    ox_dtype ct = ox_work_dtype(t);
    ox_value *xc = ox_cast(L, x, ct);
    ox_node *r = n ? ox_op(L, "ReduceMean", 2, xc, ox_const_ints(L, n, dims)) : ox_op(L, "ReduceMean", 1, xc);
    if (r) ox_node_set_int(L->g, r, "keepdims", ox_arg_bool(L, 3, false));
    return ox_bind(L, 1, ox_cast(L, ox_typed(ox_out(r), ct), t));
}

/* logsumexp(self, dim[], keepdim): max-shifted, so that large inputs do not overflow; ints are
 * summed as float, as torch does. */
int lower_logsumexp(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    ox_dtype t = ox_out_dtype(L, 0);
    int64_t dims[OX_MAX_RANK];
    int n = dims_arg(L, 1, x, dims);
    if (n < 0) return ox_bind(L, 0, NULL);
    bool keep = ox_arg_bool(L, 2, false);
    if (t == OX_UNDEFINED) t = x->dtype;
    ox_value *xc = ox_cast(L, x, t);
    if (x->rank == 0) return ox_bind(L, 0, xc);
    ox_value *m = reduce(L, "ReduceMax", xc, n, dims, true);
    /* an all -inf slice would give -inf - -inf = nan: shift by 0 there */
    ox_value *finite = ox_unary(L, "IsInf", m, OX_BOOL);
    m = ox_op_typed(L, "Where", t, 3, finite, ox_const_scalar(L, t, 0), m);
    ox_value *e = ox_unary(L, "Exp", ox_binary(L, "Sub", xc, m, t), t);
    ox_value *s = ox_unary(L, "Log", reduce(L, "ReduceSum", e, n, dims, true), t);
    ox_value *r = ox_binary(L, "Add", s, m, t);
    if (!keep) {
        ox_node *sq = n ? ox_op(L, "Squeeze", 2, r, ox_const_ints(L, n, dims)) : NULL;
        if (!n) { /* every dim */
            int64_t none = 0;
            return ox_bind(L, 0, ox_typed(ox_reshape(L, r, 0, &none), t));
        }
        r = ox_typed(ox_out(sq), t);
    }
    return ox_bind(L, 0, r);
}

/* linalg_vector_norm(self, ord, dim?, keepdim, *, dtype): ord 2, 1, inf, -inf, 0 and other
 * powers. */
int lower_vector_norm(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    ox_dtype t = ox_out_dtype(L, 0);
    double ord = ox_arg_float(L, 1, 2.0);
    int64_t dims[OX_MAX_RANK];
    int n = dims_arg(L, 2, x, dims);
    if (n < 0) return ox_bind(L, 0, NULL);
    bool keep = ox_arg_bool(L, 3, false);
    if (t == OX_UNDEFINED) t = x->dtype;
    ox_value *xc = ox_cast(L, x, t);
    ox_value *a = ox_unary(L, "Abs", xc, t);
    if (x->rank == 0) return ox_bind(L, 0, ord == 0 ? ox_cast(L, ox_cast(L, a, OX_BOOL), t) : a);
    ox_value *r;
    if (ord == 2) r = reduce(L, "ReduceL2", xc, n, dims, keep);
    else if (ord == 1) r = reduce(L, "ReduceL1", xc, n, dims, keep);
    else if (isinf(ord)) r = reduce(L, ord > 0 ? "ReduceMax" : "ReduceMin", a, n, dims, keep);
    else if (ord == 0) r = reduce(L, "ReduceSum", ox_cast(L, ox_cast(L, a, OX_BOOL), t), n, dims, keep);
    else {
        ox_value *p = ox_binary(L, "Pow", a, ox_const_scalar(L, t, ord), t);
        ox_value *s = reduce(L, "ReduceSum", p, n, dims, keep);
        r = ox_binary(L, "Pow", s, ox_const_scalar(L, t, 1.0 / ord), t);
    }
    return ox_bind(L, 0, ox_typed(r, t));
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

/* ---- scans ---- */

/* cumsum(self, dim, *, dtype): bool and integer inputs sum in int64, as torch does. */
int lower_cumsum(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, 1, 0);
    ox_dtype t = ox_out_dtype(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (t == OX_UNDEFINED) return ox_lower_fail(L, "the output dtype is not known");
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    if (t != OX_FLOAT && t != OX_DOUBLE && t != OX_FLOAT16 && t != OX_BFLOAT16 && t != OX_INT32 && t != OX_INT64)
        return ox_lower_unsupported(L, "cumsum to %s", ox_dtype_name(t));
    ox_value *xc = ox_cast(L, x, t);
    if (x->rank == 0) return ox_bind(L, 0, xc);
    ox_value *axis = ox_const_i64(L, dim);
    return ox_bind(L, 0, ox_binary(L, "CumSum", xc, axis, t));
}

/* logcumsumexp(self, dim) = m + log(cumsum(exp(x - m))) with m the maximum along dim (0 where
 * that maximum is infinite, so that -inf and inf entries give -inf and inf, not NaN). */
int lower_logcumsumexp(ox_lower *L) {
    ox_dtype t;
    ox_value *x = ox_arg_value_as_out(L, 0, &t);
    int64_t dim = ox_arg_int(L, 1, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_dtype_is_float(t)) return ox_lower_unsupported(L, "logcumsumexp to %s", ox_dtype_name(t));
    if (x->rank == 0) {
        if (dim != 0 && dim != -1) return ox_lower_fail(L, "dim %lld of a 0-d tensor", (long long)dim);
        return ox_bind(L, 0, x);
    }
    if (!ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    ox_dtype w = ox_work_dtype(t);
    ox_value *xw = ox_cast(L, x, w);
    ox_value *axis = ox_const_i64(L, dim);
    ox_value *axes = ox_const_i64_1d(L, dim);
    ox_node *mx = ox_op(L, "ReduceMax", 2, xw, axes);
    if (mx) ox_node_set_int(L->g, mx, "keepdims", 1);
    ox_value *m = ox_typed(ox_out(mx), w);
    m = ox_op_typed(L, "Where", w, 3, ox_unary(L, "IsInf", m, OX_BOOL), ox_const_scalar(L, w, 0), m);
    ox_value *e = ox_unary(L, "Exp", ox_binary(L, "Sub", xw, m, w), w);
    ox_value *c = ox_binary(L, "CumSum", e, axis, w);
    ox_value *r = ox_binary(L, "Add", ox_unary(L, "Log", c, w), m, w);
    return ox_bind(L, 0, ox_cast(L, r, t));
}

/* x[start:end] along axis (end INT64_MAX: to the end). */
static ox_value *slice_axis(ox_lower *L, ox_value *x, int64_t axis, int64_t start, int64_t end) {
    ox_value *v =
        ox_out(ox_op(L, "Slice", 4, x, ox_const_i64_1d(L, start), ox_const_i64_1d(L, end), ox_const_i64_1d(L, axis)));
    return ox_typed(v, x ? x->dtype : OX_UNDEFINED);
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
