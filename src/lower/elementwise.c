/*
 * lower_elementwise.c — arithmetic, comparisons, logical ops, where, casts and the activations that
 * are not 1:1 rows.
 *
 * Arithmetic follows torch's type promotion by reading the result: the output dtype torch recorded
 * is the dtype every operand is cast to (a no-op when it already is). Comparisons compute their own
 * common dtype, since their result is bool.
 */
#include "lower/lower.h"

#include <string.h>

/* The output dtype, or a failure naming it when torch recorded none. */
static ox_dtype out_dtype(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    if (t == OX_UNDEFINED) ox_lower_fail(L, "torch recorded no dtype for the output");
    return t;
}

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
    ox_dtype t = out_dtype(L);
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
    ox_dtype t = out_dtype(L);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    if (!mode) return arith(L, "Div", -1, false);
    ox_value *a = ox_arg_scalar(L, 0, t), *b = ox_arg_scalar(L, 1, t);
    bool is_int = ox_dtype_is_int(t);
    if (!is_int && !ox_dtype_is_float(t))
        return ox_lower_unsupported(L, "division with rounding_mode=%s of %s tensors", mode,
                                    ox_dtype_name(t));
    if (!strcmp(mode, "trunc")) {
        ox_value *q = ox_binary(L, "Div", a, b, t);
        return ox_bind(L, 0, is_int ? q : trunc_float(L, q, t));   /* integer Div truncates */
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
    ox_dtype t = out_dtype(L);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    ox_value *a = ox_arg_scalar(L, 0, t), *b = ox_arg_scalar(L, 1, t);
    if (ox_dtype_is_int(t)) {
        ox_node *n = ox_op(L, "Mod", 2, a, b);
        if (n) ox_node_set_int(L->g, n, "fmod", 0);
        return ox_bind(L, 0, ox_typed(ox_out(n), t));
    }
    if (!ox_dtype_is_float(t))
        return ox_lower_unsupported(L, "remainder of %s tensors", ox_dtype_name(t));
    /* a - floor(a / b) * b: ONNX Mod on floats only has C's fmod. */
    ox_value *q = ox_out(ox_op(L, "Floor", 1, ox_out(ox_op(L, "Div", 2, a, b))));
    return ox_bind(L, 0, ox_binary(L, "Sub", a, ox_out(ox_op(L, "Mul", 2, q, b)), t));
}

int lower_fmod(ox_lower *L) {
    ox_dtype t = out_dtype(L);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    ox_node *n = ox_op(L, "Mod", 2, ox_arg_scalar(L, 0, t), ox_arg_scalar(L, 1, t));
    if (n) ox_node_set_int(L->g, n, "fmod", 1);
    return ox_bind(L, 0, ox_typed(ox_out(n), t));
}

/* pow.Tensor_Scalar, pow.Tensor_Tensor, pow.Scalar: base and exponent in the output dtype. */
int lower_pow(ox_lower *L) {
    ox_dtype t = out_dtype(L);
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
    ox_dtype t = out_dtype(L);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    if (t == OX_BOOL) return ox_bind(L, 0, ox_binary(L, bool_op, ox_arg_scalar(L, 0, t), ox_arg_scalar(L, 1, t), t));
    ox_dtype ct = t == OX_BFLOAT16 ? OX_FLOAT : t;
    return ox_bind(L, 0, ox_cast(L, ox_binary(L, op, ox_arg_scalar(L, 0, ct), ox_arg_scalar(L, 1, ct), ct), t));
}

int lower_maximum(ox_lower *L) { return extreme2(L, "Max", "Or"); }

int lower_minimum(ox_lower *L) { return extreme2(L, "Min", "And");
}

/* ---- unary functions that are not 1:1 ---- */

/* x cast to the output dtype (sqrt of an int tensor is float, as in torch). */
static ox_value *unary_input(ox_lower *L, ox_dtype *t) {
    *t = out_dtype(L);
    return *t == OX_UNDEFINED ? NULL : ox_cast(L, ox_arg_value(L, 0), *t);
}

int lower_rsqrt(ox_lower *L) {
    ox_dtype t;
    ox_value *x = unary_input(L, &t);
    if (!x) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_unary(L, "Reciprocal", ox_out(ox_op(L, "Sqrt", 1, x)), t));
}

int lower_silu(ox_lower *L) {
    ox_dtype t;
    ox_value *x = unary_input(L, &t);
    if (!x) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_binary(L, "Mul", x, ox_out(ox_op(L, "Sigmoid", 1, x)), t));
}

int lower_leaky_relu(ox_lower *L) {
    ox_dtype t;
    ox_value *x = unary_input(L, &t);
    ox_node *n = ox_op(L, "LeakyRelu", 1, x);
    if (n) ox_node_set_float(L->g, n, "alpha", (float)ox_arg_float(L, 1, 0.01));
    return ox_bind(L, 0, ox_typed(ox_out(n), t));
}

/* elu(self, alpha, scale, input_scale): ONNX Elu has alpha only. */
/* elu(self, alpha, scale, input_scale): Elu when both scales are 1, Selu (gamma = scale) when only
 * input_scale is 1, which is what selu decomposes to. */
int lower_elu(ox_lower *L) {
    double alpha = ox_arg_float(L, 1, 1.0);
    double scale = ox_arg_float(L, 2, 1.0), input_scale = ox_arg_float(L, 3, 1.0);
    if (input_scale != 1.0)
        return ox_lower_unsupported(L, "elu with input_scale=%g (only 1 is lowered)", input_scale);
    ox_dtype t;
    ox_value *x = unary_input(L, &t);
    ox_node *n = ox_op(L, scale == 1.0 ? "Elu" : "Selu", 1, x);
    if (n) ox_node_set_float(L->g, n, "alpha", (float)alpha);
    if (n && scale != 1.0) ox_node_set_float(L->g, n, "gamma", (float)scale);
    return ox_bind(L, 0, ox_typed(ox_out(n), t));
}

int lower_hardsigmoid(ox_lower *L) {
    ox_dtype t;
    ox_value *x = unary_input(L, &t);
    ox_node *n = ox_op(L, "HardSigmoid", 1, x);
    if (n) {
        ox_node_set_float(L->g, n, "alpha", 1.0f / 6.0f);
        ox_node_set_float(L->g, n, "beta", 0.5f);
    }
    return ox_bind(L, 0, ox_typed(ox_out(n), t));
}

int lower_hardswish(ox_lower *L) {
    ox_dtype t;
    ox_value *x = unary_input(L, &t);
    return ox_bind(L, 0, ox_unary(L, "HardSwish", x, t));
}

/* clamp(self, min?, max?) and hardtanh(self, min_val, max_val): Clip with scalar bounds. */
static int clip(ox_lower *L, int lo, int hi) {
    ox_dtype t;
    ox_value *x = unary_input(L, &t);
    ox_value *mn = ox_arg_is_none(L, lo) ? NULL : ox_arg_scalar(L, lo, t);
    ox_value *mx = ox_arg_is_none(L, hi) ? NULL : ox_arg_scalar(L, hi, t);
    if (t == OX_BOOL) return ox_lower_unsupported(L, "clamp of a bool tensor");
    return ox_bind(L, 0, ox_op_typed(L, "Clip", t, 3, x, mn, mx));
}

int lower_clamp(ox_lower *L) { return clip(L, 1, 2); }
int lower_clamp_min(ox_lower *L) { return clip(L, 1, -1); }
int lower_clamp_max(ox_lower *L) { return clip(L, -1, 1); }
int lower_hardtanh(ox_lower *L) { return clip(L, 1, 2); }

/* clamp.Tensor: bounds are tensors that broadcast, so Max/Min instead of Clip. */
int lower_clamp_tensor(ox_lower *L) {
    ox_dtype t;
    ox_value *x = unary_input(L, &t);
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
    ox_dtype t = out_dtype(L);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    if (t != OX_BOOL && !ox_dtype_is_int(t))
        return ox_lower_unsupported(L, "bitwise op on %s tensors", ox_dtype_name(t));
    const char *op = t == OX_BOOL ? bool_op : int_op;
    if (ox_nargs(L) < 2)
        return ox_bind(L, 0, ox_unary(L, op, ox_arg_scalar(L, 0, t), t));
    return ox_bind(L, 0, ox_binary(L, op, ox_arg_scalar(L, 0, t), ox_arg_scalar(L, 1, t), t));
}

int lower_bitwise_not(ox_lower *L) { return bitwise(L, "Not", "BitwiseNot"); }
int lower_bitwise_and(ox_lower *L) { return bitwise(L, "And", "BitwiseAnd"); }
int lower_bitwise_or(ox_lower *L) { return bitwise(L, "Or", "BitwiseOr"); }
int lower_bitwise_xor(ox_lower *L) { return bitwise(L, "Xor", "BitwiseXor"); }

/* ---- where and masked_fill ---- */

/* where.self / .ScalarSelf / .ScalarOther / .Scalar (condition, self, other), and torch.sym_ite
 * (b, t, f): `t if b else f` on symbolic values. */
int lower_where(ox_lower *L) {
    ox_dtype t = out_dtype(L);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    ox_value *c = ox_cast(L, ox_arg_value(L, 0), OX_BOOL);
    return ox_bind(L, 0, ox_where(L, c, ox_arg_scalar(L, 1, t), ox_arg_scalar(L, 2, t), t));
}

/* masked_fill.Scalar / .Tensor (self, mask, value). */
int lower_masked_fill(ox_lower *L) {
    ox_dtype t = out_dtype(L);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    ox_value *x = ox_arg_scalar(L, 0, t), *m = ox_cast(L, ox_arg_value(L, 1), OX_BOOL);
    return ox_bind(L, 0, ox_where(L, m, ox_arg_scalar(L, 2, t), x, t));
}

/* ---- casts ---- */

/* _to_copy, to.dtype, type_as, ...: Cast to the dtype torch recorded; same dtype is the input. */
int lower_to_dtype(ox_lower *L) {
    ox_dtype t = out_dtype(L);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    ox_value *x = ox_arg_value(L, 0);
    if (x && x->dtype == t) return ox_bind(L, 0, x);
    return ox_bind(L, 0, ox_cast(L, x, t));
}

/* scalar_tensor(s, *, dtype, ...): a 0-d constant. */
int lower_scalar_tensor(ox_lower *L) {
    ox_dtype t = out_dtype(L);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    return ox_bind(L, 0, ox_arg_scalar(L, 0, t));
}
