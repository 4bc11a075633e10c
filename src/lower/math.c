/*
 * lower_math.c — elementwise math that ONNX spells differently: classification (isnan, isinf,
 * isfinite), logarithms and exponentials in other bases or near 1, trunc/frac, softplus and the
 * activations built on it, atan2, hypot, xlogy, lerp, logit, nan_to_num; and tril/triu, flip and
 * roll.
 *
 * Inputs are cast to the output dtype torch recorded first (sin of an int tensor is float), as the
 * 1:1 unary rows do.
 */
#include "lower/lower.h"

#include <math.h>
#include <stdint.h>

/* ---- classification: bool out ---- */

int lower_isnan(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_dtype_is_float(x->dtype))   /* never: x == x for every int */
        return ox_bind(L, 0, ox_unary(L, "Not", ox_binary(L, "Equal", x, x, OX_BOOL), OX_BOOL));
    return ox_bind(L, 0, ox_unary(L, "IsNaN", x, OX_BOOL));
}

int lower_isinf(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_dtype_is_float(x->dtype))   /* never */
        return ox_bind(L, 0, ox_unary(L, "Not", ox_binary(L, "Equal", x, x, OX_BOOL), OX_BOOL));
    ox_value *xf = x->dtype == OX_BFLOAT16 ? ox_cast(L, x, OX_FLOAT) : x;
    return ox_bind(L, 0, ox_unary(L, "IsInf", xf, OX_BOOL));
}

int lower_isfinite(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_dtype_is_float(x->dtype)) return ox_bind(L, 0, ox_binary(L, "Equal", x, x, OX_BOOL));
    ox_value *xf = x->dtype == OX_BFLOAT16 ? ox_cast(L, x, OX_FLOAT) : x;
    if (!xf) return ox_bind(L, 0, NULL);
    /* x - x is 0 for finite x, NaN for inf and NaN */
    ox_value *d = ox_binary(L, "Sub", xf, xf, xf->dtype);
    return ox_bind(L, 0, ox_binary(L, "Equal", d, ox_const_scalar(L, xf->dtype, 0), OX_BOOL));
}

/* ---- logarithms and exponentials ---- */

static int log_base(ox_lower *L, double base) {
    ox_dtype t;
    ox_value *x = ox_arg_value_as_out(L, 0, &t);
    if (!x) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_binary(L, "Div", ox_unary(L, "Log", x, t), ox_const_scalar(L, t, log(base)), t));
}

int lower_log2(ox_lower *L) { return log_base(L, 2); }
int lower_log10(ox_lower *L) { return log_base(L, 10); }

/* log1p(x) = log(1 + x) and expm1(x) = exp(x) - 1: no ONNX op; rounding near 0 is float's. */
int lower_log1p(ox_lower *L) {
    ox_dtype t;
    ox_value *x = ox_arg_value_as_out(L, 0, &t);
    if (!x) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_unary(L, "Log", ox_binary(L, "Add", x, ox_const_scalar(L, t, 1), t), t));
}

int lower_expm1(ox_lower *L) {
    ox_dtype t;
    ox_value *x = ox_arg_value_as_out(L, 0, &t);
    if (!x) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_binary(L, "Sub", ox_unary(L, "Exp", x, t), ox_const_scalar(L, t, 1), t));
}

int lower_exp2(ox_lower *L) {
    ox_dtype t;
    ox_value *x = ox_arg_value_as_out(L, 0, &t);
    if (!x) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_binary(L, "Pow", ox_const_scalar(L, t, 2), x, t));
}

/* ---- rounding ---- */

/* trunc(x) = sign(x) * floor(|x|); ints are their own trunc. */
static ox_value *trunc_of(ox_lower *L, ox_value *x, ox_dtype t) {
    if (!ox_dtype_is_float(t)) return x;
    return ox_binary(L, "Mul", ox_unary(L, "Sign", x, t), ox_unary(L, "Floor", ox_unary(L, "Abs", x, t), t), t);
}

int lower_trunc(ox_lower *L) {
    ox_dtype t;
    ox_value *x = ox_arg_value_as_out(L, 0, &t);
    if (!x) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, trunc_of(L, x, t));
}

int lower_frac(ox_lower *L) {
    ox_dtype t;
    ox_value *x = ox_arg_value_as_out(L, 0, &t);
    if (!x) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_binary(L, "Sub", x, trunc_of(L, x, t), t));
}

/* ---- softplus and friends ---- */

/* softplus(x, beta=1, threshold=20) = x where beta * x > threshold, else log(1 + exp(beta x)) / beta. */
static ox_value *softplus(ox_lower *L, ox_value *x, ox_dtype t, double beta, double threshold) {
    ox_value *bx = beta == 1 ? x : ox_binary(L, "Mul", x, ox_const_scalar(L, t, beta), t);
    ox_value *sp = ox_unary(L, "Softplus", bx, t);
    if (beta != 1) sp = ox_binary(L, "Div", sp, ox_const_scalar(L, t, beta), t);
    ox_value *big = ox_binary(L, "Greater", bx, ox_const_scalar(L, t, threshold), OX_BOOL);
    return ox_op_typed(L, "Where", t, 3, big, x, sp);
}

int lower_softplus(ox_lower *L) {
    ox_dtype t;
    ox_value *x = ox_arg_value_as_out(L, 0, &t);
    if (!x) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, softplus(L, x, t, ox_arg_float(L, 1, 1.0), ox_arg_float(L, 2, 20.0)));
}

/* mish(x) = x * tanh(softplus(x)) */
int lower_mish(ox_lower *L) {
    ox_dtype t;
    ox_value *x = ox_arg_value_as_out(L, 0, &t);
    if (!x) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_binary(L, "Mul", x, ox_unary(L, "Tanh", softplus(L, x, t, 1, 20), t), t));
}

/* log_sigmoid_forward(x) -> (out, buffer): -softplus(-x). */
int lower_log_sigmoid(ox_lower *L) {
    ox_dtype t;
    ox_value *x = ox_arg_value_as_out(L, 0, &t);
    if (!x) return ox_bind(L, 0, NULL);
    ox_value *y = ox_unary(L, "Neg", softplus(L, ox_unary(L, "Neg", x, t), t, 1, 20), t);
    int rc = ox_bind(L, 0, y);
    /* the buffer is for the backward pass: anything of its shape will do (torch gives zeros) */
    for (int i = 1; rc == OX_OK && i < L->node->noutputs; i++) rc = ox_bind(L, i, ox_binary(L, "Sub", x, x, t));
    return rc;
}

/* ---- two-input math ---- */

/* atan2(y, x): atan(y / x), corrected by pi in the left half plane; x = 0 gives +-pi/2. */
int lower_atan2(ox_lower *L) {
    ox_dtype t;
    ox_value *y = ox_arg_value_as_out(L, 0, &t), *x = ox_arg_value_as_out(L, 1, &t);
    if (!x || !y) return ox_bind(L, 0, NULL);
    ox_value *zero = ox_const_scalar(L, t, 0);
    ox_value *a = ox_unary(L, "Atan", ox_binary(L, "Div", y, x, t), t);
    ox_value *xneg = ox_binary(L, "Less", x, zero, OX_BOOL);
    ox_value *yneg = ox_binary(L, "Less", y, zero, OX_BOOL);
    /* left half plane: + pi when y >= 0, - pi when y < 0 */
    ox_value *shift = ox_op_typed(L, "Where", t, 3, yneg, ox_const_scalar(L, t, -M_PI),
                                  ox_const_scalar(L, t, M_PI));
    ox_value *r = ox_op_typed(L, "Where", t, 3, xneg, ox_binary(L, "Add", a, shift, t), a);
    /* x == 0: atan(y/0) is already +-pi/2 for y != 0; y == x == 0 gives 0 (NaN otherwise) */
    ox_value *both0 = ox_binary(L, "And", ox_binary(L, "Equal", x, zero, OX_BOOL),
                                ox_binary(L, "Equal", y, zero, OX_BOOL), OX_BOOL);
    /* torch: atan2(+-0, -0) = +-pi, atan2(+-0, +0) = +-0; sign of zero is lost in ONNX comparisons,
     * so +0 is taken */
    return ox_bind(L, 0, ox_op_typed(L, "Where", t, 3, both0, zero, r));
}

int lower_hypot(ox_lower *L) {
    ox_dtype t;
    ox_value *a = ox_arg_value_as_out(L, 0, &t), *b = ox_arg_value_as_out(L, 1, &t);
    if (!a || !b) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_unary(L, "Sqrt", ox_binary(L, "Add", ox_binary(L, "Mul", a, a, t),
                                                       ox_binary(L, "Mul", b, b, t), t), t));
}

/* xlogy(x, y) = 0 where x == 0 (and y not NaN), else x * log(y). */
int lower_xlogy(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *x = ox_arg_scalar(L, 0, t), *y = ox_arg_scalar(L, 1, t);
    if (!x || !y) return ox_bind(L, 0, NULL);
    ox_value *xl = ox_binary(L, "Mul", x, ox_unary(L, "Log", y, t), t);
    ox_value *zero = ox_binary(L, "And", ox_binary(L, "Equal", x, ox_const_scalar(L, t, 0), OX_BOOL),
                               ox_unary(L, "Not", ox_unary(L, "IsNaN", y, OX_BOOL), OX_BOOL), OX_BOOL);
    return ox_bind(L, 0, ox_op_typed(L, "Where", t, 3, zero, ox_const_scalar(L, t, 0), xl));
}

/* lerp.Scalar / lerp.Tensor (self, end, weight) = self + weight * (end - self) */
int lower_lerp(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *a = ox_arg_scalar(L, 0, t), *b = ox_arg_scalar(L, 1, t), *w = ox_arg_scalar(L, 2, t);
    if (!a || !b || !w) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_binary(L, "Add", a, ox_binary(L, "Mul", w, ox_binary(L, "Sub", b, a, t), t), t));
}

/* logit(x, eps=None) = log(x / (1 - x)), x clamped to [eps, 1 - eps] when eps is given. */
int lower_logit(ox_lower *L) {
    ox_dtype t;
    ox_value *x = ox_arg_value_as_out(L, 0, &t);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_arg_is_none(L, 1) && ox_nargs(L) > 1) {
        double eps = ox_arg_float(L, 1, 0);
        x = ox_op_typed(L, "Clip", t, 3, x, ox_const_scalar(L, t, eps), ox_const_scalar(L, t, 1 - eps));
    }
    return ox_bind(L, 0, ox_unary(L, "Log", ox_binary(L, "Div", x, ox_binary(L, "Sub", ox_const_scalar(L, t, 1), x, t), t), t));
}

/* nan_to_num(self, nan=0, posinf=None, neginf=None): None means the dtype's largest finite. */
int lower_nan_to_num(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    ox_dtype t = x->dtype;
    if (!ox_dtype_is_float(t)) return ox_bind(L, 0, x);
    double big = t == OX_FLOAT16 ? 65504.0 : t == OX_BFLOAT16 ? 3.3895313892515355e38 : t == OX_DOUBLE ? 1.7976931348623157e308 : 3.4028234663852886e38;
    double nan = ox_arg_float(L, 1, 0);
    double pos = ox_arg_is_none(L, 2) ? big : ox_arg_float(L, 2, big);
    double neg = ox_arg_is_none(L, 3) ? -big : ox_arg_float(L, 3, -big);
    ox_value *xf = t == OX_BFLOAT16 ? ox_cast(L, x, OX_FLOAT) : x;
    if (!xf) return ox_bind(L, 0, NULL);
    ox_dtype ft = xf->dtype;
    ox_value *y = ox_op_typed(L, "Where", ft, 3, ox_unary(L, "IsNaN", xf, OX_BOOL), ox_const_scalar(L, ft, nan), xf);
    ox_node *pi = ox_op(L, "IsInf", 1, xf);
    if (pi) ox_node_set_int(L->g, pi, "detect_negative", 0);
    y = ox_op_typed(L, "Where", ft, 3, ox_typed(ox_out(pi), OX_BOOL), ox_const_scalar(L, ft, pos), y);
    ox_node *ni = ox_op(L, "IsInf", 1, xf);
    if (ni) ox_node_set_int(L->g, ni, "detect_positive", 0);
    y = ox_op_typed(L, "Where", ft, 3, ox_typed(ox_out(ni), OX_BOOL), ox_const_scalar(L, ft, neg), y);
    return ox_bind(L, 0, ox_cast(L, y, t));
}

/* ---- structure ---- */

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
        ox_value *tail = ox_op_typed(L, "Slice", x->dtype, 4, y, ox_const_i64_1d(L, a0),
                                     ox_const_i64_1d(L, big), ox_const_i64_1d(L, dims[i]));
        ox_value *head = ox_op_typed(L, "Slice", x->dtype, 4, y, ox_const_i64_1d(L, zero),
                                     ox_const_i64_1d(L, a0), ox_const_i64_1d(L, dims[i]));
        ox_node *c = ox_op(L, "Concat", 2, tail, head);
        if (c) ox_node_set_int(L->g, c, "axis", dims[i]);
        y = ox_typed(ox_out(c), x->dtype);
    }
    if (flat) y = ox_binary(L, "Reshape", y, ox_unary(L, "Shape", x, OX_INT64), x->dtype);
    return ox_bind(L, 0, y);
}

/* ---- error function complement, log-cumulative-sum-exp ---- */

/* The working dtype for t: float16 and bfloat16 are computed in float (ONNX Runtime's CPU kernels
 * for Erf, CumSum and ReduceMax lack them) and cast back. */
static ox_dtype work_dtype(ox_dtype t) { return t == OX_FLOAT16 || t == OX_BFLOAT16 ? OX_FLOAT : t; }

/* erfc(x) = 1 - erf(x); for large x this rounds to 0 where torch keeps a tiny positive value, an
 * absolute error below float's epsilon. */
int lower_erfc(ox_lower *L) {
    ox_dtype t;
    ox_value *x = ox_arg_value_as_out(L, 0, &t);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_dtype_is_float(t)) return ox_lower_unsupported(L, "erfc to %s", ox_dtype_name(t));
    ox_dtype w = work_dtype(t);
    ox_value *xw = ox_cast(L, x, w);
    ox_value *r = ox_binary(L, "Sub", ox_const_scalar(L, w, 1), ox_unary(L, "Erf", xw, w), w);
    return ox_bind(L, 0, ox_cast(L, r, t));
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
    ox_dtype w = work_dtype(t);
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
