/*
 * elementwise.c — elementwise arithmetic, comparisons, logical and bitwise ops (shifts included),
 * where/masked_fill, casts, clamp, maximum/minimum, sign/sgn/signbit; and the _operator and sym_*
 * rows, Python arithmetic on symbolic sizes, which lower to the same ops.
 *
 * Arithmetic follows torch's type promotion by reading the result: the output dtype torch recorded
 * is the dtype every operand is cast to (a no-op when it already is). Comparisons compute their own
 * common dtype, since their result is bool.
 */
#include "lower/lower.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- arithmetic ---- */

/* x * alpha when argument `i` (alpha) is given and not 1. */
static ox_value *scale_by_alpha(ox_lower *L, ox_value *x, int i, ox_dtype t) {
    if (ox_arg_is_none(L, i)) return x;
    const ox_arg *a = ox_arg_at(L, i);
    if (a->kind == OX_ARG_INT && a->u.i == 1) return x;
    if (a->kind == OX_ARG_FLOAT && a->u.f == 1.0) return x;
    return ox_binary(L, "Mul", x, ox_arg_scalar(L, i, t), t);
}

/* out = lhs (op) alpha * rhs, each operand cast to the output dtype. `swap` is rsub. */
static int arith(ox_lower *L, const char *op, int alpha_arg, bool swap) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    ox_value *a = ox_arg_scalar(L, 0, t), *b = ox_arg_scalar(L, 1, t);
    if (swap) {
        ox_value *tmp = a;
        a = b;
        b = tmp;
    }
    if (alpha_arg >= 0) b = scale_by_alpha(L, b, alpha_arg, t);
    if (t == OX_BOOL) {
        /* torch: bool + bool is or, bool * bool is and; ONNX arithmetic takes no bools. */
        if (!strcmp(op, "Add")) op = "Or";
        else if (!strcmp(op, "Mul")) op = "And";
        else return ox_lower_unsupported(L, "%s of bool tensors", op);
    }
    return ox_bind(L, 0, ox_binary(L, op, a, b, t));
}

int lower_add(ox_lower *L) { return arith(L, "Add", 2, false); }

int lower_sub(ox_lower *L) { return arith(L, "Sub", 2, false); }

int lower_rsub(ox_lower *L) { return arith(L, "Sub", 2, true); }

int lower_mul(ox_lower *L) { return arith(L, "Mul", -1, false); }

int lower_div(ox_lower *L) { return arith(L, "Div", -1, false); }

/* Where(q < 0, Ceil(q), Floor(q)): ONNX has no Trunc. */
static ox_value *trunc_float(ox_lower *L, ox_value *q, ox_dtype t) {
    ox_value *neg = ox_binary(L, "Less", q, ox_const_scalar(L, t, 0), OX_BOOL);
    ox_value *c = ox_out(ox_op(L, "Ceil", 1, q)), *f = ox_out(ox_op(L, "Floor", 1, q));
    return ox_op_typed(L, "Where", t, 3, neg, c, f);
}

/* Integer floor division: (a - a mod b) / b is exact, with mod taking the divisor's sign. */
static ox_value *floordiv_int(ox_lower *L, ox_value *a, ox_value *b, ox_dtype t) {
    ox_node *mod = ox_op(L, "Mod", 2, a, b);
    if (mod) ox_node_set_int(L->g, mod, "fmod", 0);
    ox_value *exact = ox_out(ox_op(L, "Sub", 2, a, ox_out(mod)));
    return ox_binary(L, "Div", exact, b, t);
}

static int divide(ox_lower *L, const char *mode) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    if (!mode) return arith(L, "Div", -1, false);
    ox_value *a = ox_arg_scalar(L, 0, t), *b = ox_arg_scalar(L, 1, t);
    bool is_int = ox_dtype_is_int(t);
    if (!is_int && !ox_dtype_is_float(t))
        return ox_lower_unsupported(L, "division with rounding_mode=%s of %s tensors", mode, ox_dtype_name(t));
    if (!strcmp(mode, "trunc")) {
        ox_value *q = ox_binary(L, "Div", a, b, t);
        return ox_bind(L, 0, is_int ? q : trunc_float(L, q, t)); /* integer Div truncates */
    }
    if (!strcmp(mode, "floor")) {
        if (is_int) return ox_bind(L, 0, floordiv_int(L, a, b, t));
        return ox_bind(L, 0, ox_unary(L, "Floor", ox_out(ox_op(L, "Div", 2, a, b)), t));
    }
    return ox_lower_fail(L, "argument 2 (rounding_mode): unknown mode \"%s\"", mode);
}

int lower_div_mode(ox_lower *L) { return divide(L, ox_arg_string(L, 2, NULL)); }

int lower_floor_divide(ox_lower *L) { return divide(L, "floor"); }

/* Python's remainder: the result takes the divisor's sign. */
int lower_remainder(ox_lower *L) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    ox_value *a = ox_arg_scalar(L, 0, t), *b = ox_arg_scalar(L, 1, t);
    if (ox_dtype_is_int(t)) {
        ox_node *n = ox_op(L, "Mod", 2, a, b);
        if (n) ox_node_set_int(L->g, n, "fmod", 0);
        return ox_bind(L, 0, ox_typed(ox_out(n), t));
    }
    if (!ox_dtype_is_float(t)) return ox_lower_unsupported(L, "remainder of %s tensors", ox_dtype_name(t));
    /* a - floor(a / b) * b: ONNX Mod on floats only has C's fmod. */
    ox_value *q = ox_out(ox_op(L, "Floor", 1, ox_out(ox_op(L, "Div", 2, a, b))));
    return ox_bind(L, 0, ox_binary(L, "Sub", a, ox_out(ox_op(L, "Mul", 2, q, b)), t));
}

int lower_fmod(ox_lower *L) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    ox_node *n = ox_op(L, "Mod", 2, ox_arg_scalar(L, 0, t), ox_arg_scalar(L, 1, t));
    if (n) ox_node_set_int(L->g, n, "fmod", 1);
    return ox_bind(L, 0, ox_typed(ox_out(n), t));
}

/* pow.Tensor_Scalar, pow.Tensor_Tensor, pow.Scalar: base and exponent in the output dtype. */
int lower_pow(ox_lower *L) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    ox_value *x = ox_arg_scalar(L, 0, t);
    const ox_arg *e = ox_arg_at(L, 1);
    if (e && e->kind != OX_ARG_VALUE && ox_arg_float(L, 1, 0) == 2.0)
        return ox_bind(L, 0, ox_binary(L, "Mul", x, x, t));
    return ox_bind(L, 0, ox_binary(L, "Pow", x, ox_arg_scalar(L, 1, t), t));
}

/* Max/Min: of bools they are Or/And; bfloat16 goes through float (exact), which ONNX Runtime's
 * kernels take. */
static int extreme2(ox_lower *L, const char *op, const char *bool_op) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    if (t == OX_BOOL) return ox_bind(L, 0, ox_binary(L, bool_op, ox_arg_scalar(L, 0, t), ox_arg_scalar(L, 1, t), t));
    ox_dtype ct = t == OX_BFLOAT16 ? OX_FLOAT : t;
    return ox_bind(L, 0, ox_cast(L, ox_binary(L, op, ox_arg_scalar(L, 0, ct), ox_arg_scalar(L, 1, ct), ct), t));
}

int lower_maximum(ox_lower *L) { return extreme2(L, "Max", "Or"); }

int lower_minimum(ox_lower *L) { return extreme2(L, "Min", "And"); }

/* ---- clamp ---- */

/* clamp(self, min?, max?) and hardtanh(self, min_val, max_val): Clip with scalar bounds. */
static int clip(ox_lower *L, int lo, int hi) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    ox_value *x = ox_cast(L, ox_arg_value(L, 0), t);
    ox_value *mn = ox_arg_is_none(L, lo) ? NULL : ox_arg_scalar(L, lo, t);
    ox_value *mx = ox_arg_is_none(L, hi) ? NULL : ox_arg_scalar(L, hi, t);
    if (t == OX_BOOL) return ox_lower_unsupported(L, "clamp of a bool tensor");
    return ox_bind(L, 0, ox_op_typed(L, "Clip", t, 3, x, mn, mx));
}

int lower_clamp(ox_lower *L) { return clip(L, 1, 2); }

int lower_clamp_min(ox_lower *L) { return clip(L, 1, -1); }

int lower_clamp_max(ox_lower *L) { return clip(L, -1, 1); }

/* clamp.Tensor: bounds are tensors that broadcast, so Max/Min instead of Clip. */
int lower_clamp_tensor(ox_lower *L) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    ox_value *x = ox_cast(L, ox_arg_value(L, 0), t);
    if (!ox_arg_is_none(L, 1)) x = ox_binary(L, "Max", x, ox_arg_scalar(L, 1, t), t);
    if (!ox_arg_is_none(L, 2)) x = ox_binary(L, "Min", x, ox_arg_scalar(L, 2, t), t);
    return ox_bind(L, 0, x);
}

/* ---- comparisons ---- */

/* The dtype torch compares in: tensors promote with tensors; a Python number (or a 0-d tensor
 * beside a dimensioned one) only lifts the category, as in torch.result_type. */
static ox_dtype compare_dtype(ox_lower *L) {
    ox_value *a = ox_arg_value(L, 0);
    if (!a) return OX_UNDEFINED;
    const ox_arg *b = ox_arg_at(L, 1);
    ox_dtype ta = a->dtype;
    if (!b || b->kind == OX_ARG_NONE) return OX_UNDEFINED;
    if (b->kind == OX_ARG_FLOAT) return ox_dtype_category(ta) >= 2 ? ta : OX_FLOAT;
    if (b->kind == OX_ARG_INT) return ox_dtype_category(ta) >= 1 ? ta : OX_INT64;
    if (b->kind == OX_ARG_BOOL) return ta;
    ox_value *bv = ox_arg_value(L, 1);
    if (!bv) return OX_UNDEFINED;
    ox_dtype tb = bv->dtype;
    bool a0 = a->rank == 0, b0 = bv->rank == 0;
    if (a0 != b0) {
        ox_dtype dim_t = a0 ? tb : ta, zero_t = a0 ? ta : tb;
        if (ox_dtype_category(zero_t) <= ox_dtype_category(dim_t)) return dim_t;
    }
    return ox_promote(ta, tb);
}

static int compare(ox_lower *L, const char *op, bool negate) {
    ox_dtype t = compare_dtype(L);
    if (t == OX_UNDEFINED) {
        if (ox_arg_is_none(L, 1)) return ox_lower_fail(L, "argument 1 (other) is None");
        return ox_lower_unsupported(L, "the dtype of an operand is not known");
    }
    /* Ordering comparisons take no bools in ONNX; ONNX Runtime compares no bfloat16 (float is
     * exact for it). */
    if (t == OX_BOOL && strcmp(op, "Equal")) t = OX_INT32;
    if (t == OX_BFLOAT16) t = OX_FLOAT;
    ox_value *r = ox_binary(L, op, ox_arg_scalar(L, 0, t), ox_arg_scalar(L, 1, t), OX_BOOL);
    if (negate) r = ox_unary(L, "Not", r, OX_BOOL);
    return ox_bind(L, 0, ox_cast(L, r, ox_out_dtype(L, 0) ? ox_out_dtype(L, 0) : OX_BOOL));
}

int lower_eq(ox_lower *L) { return compare(L, "Equal", false); }

int lower_ne(ox_lower *L) { return compare(L, "Equal", true); }

int lower_lt(ox_lower *L) { return compare(L, "Less", false); }

int lower_le(ox_lower *L) { return compare(L, "LessOrEqual", false); }

int lower_gt(ox_lower *L) { return compare(L, "Greater", false); }

int lower_ge(ox_lower *L) { return compare(L, "GreaterOrEqual", false); }

/* ---- logical and bitwise ---- */

static int logical(ox_lower *L, const char *op) {
    ox_value *a = ox_cast(L, ox_arg_value(L, 0), OX_BOOL), *b = ox_cast(L, ox_arg_value(L, 1), OX_BOOL);
    ox_value *r = ox_binary(L, op, a, b, OX_BOOL);
    return ox_bind(L, 0, ox_cast(L, r, ox_out_dtype(L, 0) ? ox_out_dtype(L, 0) : OX_BOOL));
}

int lower_logical_and(ox_lower *L) { return logical(L, "And"); }

int lower_logical_or(ox_lower *L) { return logical(L, "Or"); }

int lower_logical_xor(ox_lower *L) { return logical(L, "Xor"); }

int lower_logical_not(ox_lower *L) {
    ox_value *r = ox_unary(L, "Not", ox_cast(L, ox_arg_value(L, 0), OX_BOOL), OX_BOOL);
    return ox_bind(L, 0, ox_cast(L, r, ox_out_dtype(L, 0) ? ox_out_dtype(L, 0) : OX_BOOL));
}

/* bitwise_* on bools are the logical ops; on integers the Bitwise* ops (opset 18). */
static int bitwise(ox_lower *L, const char *bool_op, const char *int_op) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    if (t != OX_BOOL && !ox_dtype_is_int(t))
        return ox_lower_unsupported(L, "bitwise op on %s tensors", ox_dtype_name(t));
    const char *op = t == OX_BOOL ? bool_op : int_op;
    if (ox_nargs(L) < 2) return ox_bind(L, 0, ox_unary(L, op, ox_arg_scalar(L, 0, t), t));
    return ox_bind(L, 0, ox_binary(L, op, ox_arg_scalar(L, 0, t), ox_arg_scalar(L, 1, t), t));
}

int lower_bitwise_not(ox_lower *L) { return bitwise(L, "Not", "BitwiseNot"); }

int lower_bitwise_and(ox_lower *L) { return bitwise(L, "And", "BitwiseAnd"); }

int lower_bitwise_or(ox_lower *L) { return bitwise(L, "Or", "BitwiseOr"); }

int lower_bitwise_xor(ox_lower *L) { return bitwise(L, "Xor", "BitwiseXor"); }

/* bitwise_left_shift / bitwise_right_shift (self, other), signed or unsigned ints: x * 2^y and
 * floor(x / 2^y) (arithmetic shift), 2^y computed exactly by BitShift on uint64. Shifts past the
 * width give 0 (or -1 right-shifting a negative), as torch; int64 shifts are exact up to 62. */
static int shift(ox_lower *L, bool left) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *x = ox_arg_scalar(L, 0, t), *y = ox_arg_scalar(L, 1, t);
    if (!x || !y) return ox_bind(L, 0, NULL);
    if (!ox_dtype_is_int(t)) return ox_lower_unsupported(L, "shifts of %s", ox_dtype_name(t));
    int bits = (int)ox_dtype_size(t) * 8;
    if (bits > 62) bits = 62; /* 2^y must stay a positive int64 (right shifts of int64 by 63 or more: not exact) */
    ox_value *yc = ox_op_typed(L, "Clip", OX_INT64, 3, ox_cast(L, y, OX_INT64), ox_const_scalar(L, OX_INT64, 0),
                               ox_const_scalar(L, OX_INT64, bits));
    uint64_t one_bits = 1;
    ox_value *one = ox_const_tensor(L, OX_UINT64, 0, NULL, &one_bits);
    ox_node *p = ox_op(L, "BitShift", 2, one, ox_cast(L, yc, OX_UINT64));
    if (p) ox_node_set_string(L->g, p, "direction", "LEFT");
    ox_value *pow2 = ox_typed(ox_out(p), OX_UINT64);
    ox_value *x64 = ox_cast(L, x, OX_INT64);
    ox_value *r;
    if (left) {
        r = ox_binary(L, "Mul", x64, ox_cast(L, pow2, OX_INT64), OX_INT64); /* wraps modulo 2^64, then narrowed */
    } else {
        /* floor division by 2^y for y < 64: (x - ((x % d) + d) % d) / d, d = 2^y */
        ox_value *d = ox_cast(L, pow2, OX_INT64);
        ox_node *m = ox_op(L, "Mod", 2, x64, d);
        if (m) ox_node_set_int(L->g, m, "fmod", 0); /* Python-style: sign of the divisor */
        r = ox_binary(L, "Div", ox_binary(L, "Sub", x64, ox_typed(ox_out(m), OX_INT64), OX_INT64), d, OX_INT64);
    }
    return ox_bind(L, 0, ox_cast(L, r, t));
}

int lower_left_shift(ox_lower *L) { return shift(L, true); }

int lower_right_shift(ox_lower *L) { return shift(L, false); }

/* ---- sign ---- */

/* sign / sgn (self): ONNX Sign; a bool is its own sign; bfloat16 through float. */
int lower_sign(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->dtype == OX_BOOL) return ox_bind(L, 0, x);
    ox_dtype ct = x->dtype == OX_BFLOAT16 ? OX_FLOAT : x->dtype;
    ox_value *s = ox_unary(L, "Sign", ox_cast(L, x, ct), ct);
    return ox_bind(L, 0, ox_cast(L, s, x->dtype));
}

/* signbit(self): x < 0, and -0.0 too (1 / -0.0 is -inf). */
int lower_signbit(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    /* ONNX Runtime compares neither bools nor bfloat16: int32 and float hold them exactly */
    if (x->dtype == OX_BOOL || x->dtype == OX_UINT8) x = ox_cast(L, x, OX_INT32);
    else if (x->dtype == OX_BFLOAT16) x = ox_cast(L, x, OX_FLOAT);
    ox_value *neg = ox_binary(L, "Less", x, ox_const_scalar(L, x->dtype, 0), OX_BOOL);
    if (!ox_dtype_is_float(x->dtype)) return ox_bind(L, 0, neg);
    ox_value *zero = ox_binary(L, "Equal", x, ox_const_scalar(L, x->dtype, 0), OX_BOOL);
    ox_value *inv = ox_binary(L, "Div", ox_const_scalar(L, x->dtype, 1), x, x->dtype);
    ox_value *negzero =
        ox_binary(L, "And", zero, ox_binary(L, "Less", inv, ox_const_scalar(L, x->dtype, 0), OX_BOOL), OX_BOOL);
    return ox_bind(L, 0, ox_binary(L, "Or", neg, negzero, OX_BOOL));
}

/* ---- where and masked_fill ---- */

/* where.self / .ScalarSelf / .ScalarOther / .Scalar (condition, self, other), and torch.sym_ite
 * (b, t, f): `t if b else f` on symbolic values. */
int lower_where(ox_lower *L) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    ox_value *c = ox_cast(L, ox_arg_value(L, 0), OX_BOOL);
    return ox_bind(L, 0, ox_where(L, c, ox_arg_scalar(L, 1, t), ox_arg_scalar(L, 2, t), t));
}

/* masked_fill.Scalar / .Tensor (self, mask, value). */
int lower_masked_fill(ox_lower *L) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    ox_value *x = ox_arg_scalar(L, 0, t), *m = ox_cast(L, ox_arg_value(L, 1), OX_BOOL);
    return ox_bind(L, 0, ox_where(L, m, ox_arg_scalar(L, 2, t), x, t));
}

/* ---- casts ---- */

/* _to_copy, to.dtype, type_as, ...: Cast to the dtype torch recorded; same dtype is the input. */
int lower_to_dtype(ox_lower *L) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    ox_value *x = ox_arg_value(L, 0);
    if (x && x->dtype == t) return ox_bind(L, 0, x);
    return ox_bind(L, 0, ox_cast(L, x, t));
}
