/*
 * activation.c — activation functions that are not 1:1 rows (relu, sigmoid and tanh are, in
 * lower.def): silu, leaky_relu, elu/selu, hardsigmoid, hardswish, hardtanh, gelu, softplus, mish,
 * log_sigmoid, softmax and log_softmax.
 */
#include "lower/lower.h"

#include <math.h>
#include <string.h>

int lower_silu(ox_lower *L) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    ox_value *x = ox_cast(L, ox_arg_value(L, 0), t);
    if (!x) return ox_bind(L, 0, NULL);
    return ox_bind(L, 0, ox_binary(L, "Mul", x, ox_out(ox_op(L, "Sigmoid", 1, x)), t));
}

int lower_leaky_relu(ox_lower *L) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    ox_value *x = ox_cast(L, ox_arg_value(L, 0), t);
    ox_node *n = ox_op(L, "LeakyRelu", 1, x);
    if (n) ox_node_set_float(L->g, n, "alpha", (float)ox_arg_float(L, 1, 0.01));
    return ox_bind(L, 0, ox_typed(ox_out(n), t));
}

/* elu(self, alpha, scale, input_scale): Elu when both scales are 1, Selu (gamma = scale) when only
 * input_scale is 1, which is what selu decomposes to. */
int lower_elu(ox_lower *L) {
    double alpha = ox_arg_float(L, 1, 1.0);
    double scale = ox_arg_float(L, 2, 1.0), input_scale = ox_arg_float(L, 3, 1.0);
    if (input_scale != 1.0) return ox_lower_unsupported(L, "elu with input_scale=%g (only 1 is lowered)", input_scale);
    ox_dtype t = ox_out_dtype_required(L, 0);
    ox_value *x = ox_cast(L, ox_arg_value(L, 0), t);
    ox_node *n = ox_op(L, scale == 1.0 ? "Elu" : "Selu", 1, x);
    if (n) ox_node_set_float(L->g, n, "alpha", (float)alpha);
    if (n && scale != 1.0) ox_node_set_float(L->g, n, "gamma", (float)scale);
    return ox_bind(L, 0, ox_typed(ox_out(n), t));
}

int lower_hardsigmoid(ox_lower *L) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    ox_value *x = ox_cast(L, ox_arg_value(L, 0), t);
    ox_node *n = ox_op(L, "HardSigmoid", 1, x);
    if (n) {
        ox_node_set_float(L->g, n, "alpha", 1.0f / 6.0f);
        ox_node_set_float(L->g, n, "beta", 0.5f);
    }
    return ox_bind(L, 0, ox_typed(ox_out(n), t));
}

int lower_hardswish(ox_lower *L) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    ox_value *x = ox_cast(L, ox_arg_value(L, 0), t);
    return ox_bind(L, 0, ox_unary(L, "HardSwish", x, t));
}

/* hardtanh(self, min_val, max_val): clamp's Clip, the bounds at the same arguments. */
int lower_hardtanh(ox_lower *L) { return lower_clamp(L); }

/* ---- gelu ---- */

/* gelu(x) in dtype t: the Gelu op from opset 20, the formula below (and for double, which
 * ONNX Runtime's Gelu computes in float). */
static ox_value *gelu(ox_lower *L, ox_value *x, bool tanh_mode, ox_dtype t) {
    if (L->opset >= 20 && t != OX_DOUBLE) {
        ox_node *n = ox_op(L, "Gelu", 1, x);
        if (n && tanh_mode) ox_node_set_string(L->g, n, "approximate", "tanh");
        return ox_typed(ox_out(n), t);
    }
    ox_value *inner;
    if (tanh_mode) { /* tanh(sqrt(2/pi) * (x + 0.044715 x^3)) */
        ox_value *x3 = ox_binary(L, "Mul", ox_binary(L, "Mul", x, x, t), x, t);
        ox_value *poly = ox_binary(L, "Add", x, ox_binary(L, "Mul", x3, ox_const_scalar(L, t, 0.044715), t), t);
        ox_value *arg = ox_binary(L, "Mul", poly, ox_const_scalar(L, t, sqrt(2.0 / M_PI)), t);
        inner = ox_unary(L, "Tanh", arg, t);
    } else { /* erf(x / sqrt(2)) */
        inner = ox_unary(L, "Erf", ox_binary(L, "Mul", x, ox_const_scalar(L, t, M_SQRT1_2), t), t);
    }
    ox_value *one_plus = ox_binary(L, "Add", inner, ox_const_scalar(L, t, 1.0), t);
    return ox_binary(L, "Mul", ox_binary(L, "Mul", x, ox_const_scalar(L, t, 0.5), t), one_plus, t);
}

/* gelu(self, *, approximate) */
int lower_gelu(ox_lower *L) {
    const char *mode = ox_arg_string(L, 1, "none");
    ox_value *x = ox_arg_value(L, 0);
    bool tanh_mode = !strcmp(mode, "tanh");
    if (!tanh_mode && strcmp(mode, "none"))
        return ox_lower_fail(L, "approximate=\"%s\" (expected \"none\" or \"tanh\")", mode);
    if (!x) return ox_bind(L, 0, NULL);
    /* ONNX Runtime has no double Erf: the exact form computes in float. */
    if (x->dtype == OX_DOUBLE && !tanh_mode)
        return ox_bind(L, 0, ox_cast(L, gelu(L, ox_cast(L, x, OX_FLOAT), false, OX_FLOAT), OX_DOUBLE));
    return ox_bind(L, 0, gelu(L, x, tanh_mode, x->dtype));
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

/* ---- softmax ---- */

/* softmax / log_softmax over argument 1, in the output dtype (the dtype argument, or float for
 * _softmax's half_to_float). */
static int softmax(ox_lower *L, const char *op) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *x = ox_cast(L, ox_arg_value(L, 0), t);
    int64_t dim = ox_arg_int(L, 1, -1);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank == 0) return ox_lower_unsupported(L, "%s of a 0-d tensor", op);
    if (x->rank > 0 && !ox_norm_dim(L, &dim, x->rank, "dim")) return OX_ELOWER;
    ox_node *n = ox_op(L, op, 1, x);
    if (n) ox_node_set_int(L->g, n, "axis", dim);
    return ox_bind(L, 0, ox_typed(ox_out(n), t));
}

int lower_softmax(ox_lower *L) { return softmax(L, "Softmax"); }

int lower_log_softmax(ox_lower *L) { return softmax(L, "LogSoftmax"); }
