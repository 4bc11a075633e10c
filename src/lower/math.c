/*
 * math.c — math functions: rsqrt, classification (isnan, isinf, isfinite), logarithms and
 * exponentials in other bases or near 1, trunc/frac, atan2, hypot, xlogy, lerp, logit,
 * nan_to_num, erfc, angle, ldexp, round with decimals. The 1:1 rows (OX_UNARY in lower.def: relu,
 * exp, sin, ...) are this family too; lower.c lowers them all with one function.
 *
 * Inputs are cast to the output dtype torch recorded first (sin of an int tensor is float), as the
 * 1:1 unary rows do.
 */
#include "lower/lower.h"

#include <math.h>

/* ---- classification: bool out ---- */

int lower_isnan(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_dtype_is_float(x->dtype)) /* never: x == x for every int */
        return ox_bind(L, 0, ox_unary(L, "Not", ox_binary(L, "Equal", x, x, OX_BOOL), OX_BOOL));
    return ox_bind(L, 0, ox_unary(L, "IsNaN", x, OX_BOOL));
}

int lower_isinf(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_dtype_is_float(x->dtype)) /* never */
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

/* ---- roots, logarithms and exponentials ---- */

int lower_rsqrt(ox_lower *L) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    ox_value *x = ox_cast(L, ox_arg_value(L, 0), t);
    if (!x) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_unary(L, "Reciprocal", ox_out(ox_op(L, "Sqrt", 1, x)), t));
}

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
    ox_value *shift = ox_op_typed(L, "Where", t, 3, yneg, ox_const_scalar(L, t, -M_PI), ox_const_scalar(L, t, M_PI));
    ox_value *r = ox_op_typed(L, "Where", t, 3, xneg, ox_binary(L, "Add", a, shift, t), a);
    /* x == 0: atan(y/0) is already +-pi/2 for y != 0; y == x == 0 gives 0 (NaN otherwise) */
    ox_value *both0 =
        ox_binary(L, "And", ox_binary(L, "Equal", x, zero, OX_BOOL), ox_binary(L, "Equal", y, zero, OX_BOOL), OX_BOOL);
    /* torch: atan2(+-0, -0) = +-pi, atan2(+-0, +0) = +-0; sign of zero is lost in ONNX comparisons,
     * so +0 is taken */
    return ox_bind(L, 0, ox_op_typed(L, "Where", t, 3, both0, zero, r));
}

int lower_hypot(ox_lower *L) {
    ox_dtype t;
    ox_value *a = ox_arg_value_as_out(L, 0, &t), *b = ox_arg_value_as_out(L, 1, &t);
    if (!a || !b) return ox_bind(L, 0, NULL);
    return ox_bind(
        L, 0,
        ox_unary(L, "Sqrt", ox_binary(L, "Add", ox_binary(L, "Mul", a, a, t), ox_binary(L, "Mul", b, b, t), t), t));
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
    ox_value *one_minus = ox_binary(L, "Sub", ox_const_scalar(L, t, 1), x, t);
    return ox_bind(L, 0, ox_unary(L, "Log", ox_binary(L, "Div", x, one_minus, t), t));
}

/* ldexp.Tensor(self, other) = self * 2 ** other */
int lower_ldexp(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *x = ox_arg_scalar(L, 0, t), *e = ox_arg_scalar(L, 1, t);
    if (!x || !e) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_binary(L, "Mul", x, ox_binary(L, "Pow", ox_const_scalar(L, t, 2), e, t), t));
}

/* ---- special values ---- */

/* nan_to_num(self, nan=0, posinf=None, neginf=None): None means the dtype's largest finite. */
int lower_nan_to_num(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    ox_dtype t = x->dtype;
    if (!ox_dtype_is_float(t)) return ox_bind(L, 0, x);
    double big = t == OX_FLOAT16 ? 65504.0 :
        t == OX_BFLOAT16         ? 3.3895313892515355e38 :
        t == OX_DOUBLE           ? 1.7976931348623157e308 :
                                   3.4028234663852886e38;
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

/* erfc(x) = 1 - erf(x); for large x this rounds to 0 where torch keeps a tiny positive value, an
 * absolute error below float's epsilon. */
int lower_erfc(ox_lower *L) {
    ox_dtype t;
    ox_value *x = ox_arg_value_as_out(L, 0, &t);
    if (!x) return ox_bind(L, 0, NULL);
    if (!ox_dtype_is_float(t)) return ox_lower_unsupported(L, "erfc to %s", ox_dtype_name(t));
    ox_dtype w = ox_work_dtype(t);
    ox_value *xw = ox_cast(L, x, w);
    ox_value *r = ox_binary(L, "Sub", ox_const_scalar(L, w, 1), ox_unary(L, "Erf", xw, w), w);
    return ox_bind(L, 0, ox_cast(L, r, t));
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
    if (ox_dtype_is_float(x->dtype)) /* x * 0 is NaN for NaN: carry it */
        a = ox_binary(L, "Add", a, ox_binary(L, "Mul", xc, ox_const_scalar(L, t, 0), t), t);
    return ox_bind(L, 0, a);
}
