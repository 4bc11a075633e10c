/*
 * lower_nn.c — neural-network layers: linear/matmul family, convolution, normalization, pooling,
 * embedding, activations with parameters (gelu, softmax), dropout at inference, and the two
 * reductions the decomposed forms of these layers produce (mean.dim, any).
 *
 * Layers whose ONNX op needs a batch dim (Conv, MaxPool, ...) take torch's unbatched inputs too:
 * they are unsqueezed before and squeezed after.
 */
#include "lower/lower.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

enum { MAX_SPATIAL = 3 };

/* A tensor of `shape` filled with v in dtype t (the missing weight or bias of a norm layer). */
static ox_value *filled(ox_lower *L, ox_dtype t, double v, int rank, const int64_t *shape) {
    return ox_binary(L, "Expand", ox_const_scalar(L, t, v), ox_const_ints(L, rank, shape), t);
}

/* ---- matrix products ---- */

static bool gemm_dtype(ox_dtype t) { return t == OX_FLOAT || t == OX_DOUBLE; }

/* linear(input, weight, bias?): Gemm for 2-D float input, else MatMul with the weight transposed. */
int lower_linear(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *w = ox_arg_value(L, 1), *b = ox_arg_value_opt(L, 2);
    if (!x || !w) return ox_bind(L, 0, NULL);
    ox_dtype t = x->dtype;
    if (x->rank == 2 && w->rank == 2 && (!b || b->rank <= 2) && gemm_dtype(t)) {
        ox_node *n = ox_op(L, "Gemm", b ? 3 : 2, x, w, b);
        if (n) ox_node_set_int(L->g, n, "transB", 1);
        return ox_bind(L, 0, ox_typed(ox_out(n), t));
    }
    /* Transpose without perm reverses the dims: a 2-D weight is transposed, a 1-D one kept. */
    ox_value *wt = w->rank == 1 ? w : ox_unary(L, "Transpose", w, w->dtype);
    ox_value *y = ox_binary(L, "MatMul", x, wt, t);
    if (b) y = ox_binary(L, "Add", y, b, t);
    return ox_bind(L, 0, y);
}

/* beta * self + alpha * (a @ b), the MatMul form (any rank, any dtype). */
static ox_value *scaled_product(ox_lower *L, ox_value *self, ox_value *a, ox_value *b, double beta,
                                double alpha, ox_dtype t) {
    ox_value *y = ox_binary(L, "MatMul", a, b, t);
    if (alpha != 1.0) y = ox_binary(L, "Mul", y, ox_const_scalar(L, t, alpha), t);
    if (beta == 0.0) return y;   /* torch ignores self then, NaNs included */
    if (beta != 1.0) self = ox_binary(L, "Mul", self, ox_const_scalar(L, t, beta), t);
    return ox_binary(L, "Add", y, self, t);
}

/* addmm(self, mat1, mat2, *, beta, alpha) */
int lower_addmm(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *self = ox_arg_value(L, 0), *a = ox_arg_value(L, 1), *b = ox_arg_value(L, 2);
    double beta = ox_arg_float(L, 3, 1.0), alpha = ox_arg_float(L, 4, 1.0);
    if (!self || !a || !b) return ox_bind(L, 0, NULL);
    if (gemm_dtype(t) && a->rank == 2 && b->rank == 2 && self->rank <= 2) {
        ox_node *n = beta == 0.0 ? ox_op(L, "Gemm", 2, a, b) : ox_op(L, "Gemm", 3, a, b, self);
        if (n && alpha != 1.0) ox_node_set_float(L->g, n, "alpha", (float)alpha);
        if (n && beta != 1.0 && beta != 0.0) ox_node_set_float(L->g, n, "beta", (float)beta);
        return ox_bind(L, 0, ox_typed(ox_out(n), t));
    }
    return ox_bind(L, 0, scaled_product(L, self, a, b, beta, alpha, t));
}

/* baddbmm(self, batch1, batch2, *, beta, alpha) */
int lower_baddbmm(ox_lower *L) {
    ox_value *self = ox_arg_value(L, 0), *a = ox_arg_value(L, 1), *b = ox_arg_value(L, 2);
    double beta = ox_arg_float(L, 3, 1.0), alpha = ox_arg_float(L, 4, 1.0);
    return ox_bind(L, 0, scaled_product(L, self, a, b, beta, alpha, ox_out_dtype(L, 0)));
}

/* mm, bmm, matmul (self, other) */
int lower_matmul(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *a = ox_cast(L, ox_arg_value(L, 0), t), *b = ox_cast(L, ox_arg_value(L, 1), t);
    return ox_bind(L, 0, ox_binary(L, "MatMul", a, b, t));
}

/* ---- convolution ---- */

typedef struct conv_args {
    int stride, padding, dilation, output_padding;   /* argument indices; -1 absent */
    bool transposed;
    int64_t groups;
} conv_args;

/* "same" padding: total d*(k-1), the odd one on the end side as torch does. */
static bool same_pads(ox_lower *L, ox_value *w, int nsp, const int64_t *dil, int64_t *pads) {
    for (int k = 0; k < nsp; k++) {
        int64_t ks;
        if (!ox_static_dim(w, k + 2, &ks) || ks > INT32_MAX) {
            ox_lower_unsupported(L, "padding=\"same\" with a symbolic kernel size");
            return false;
        }
        int64_t total = dil[k] * (ks - 1);
        pads[k] = total / 2;
        pads[k + nsp] = total - total / 2;
    }
    return true;
}

static int conv(ox_lower *L, const conv_args *c) {
    ox_value *x = ox_arg_value(L, 0), *w = ox_arg_value(L, 1), *b = ox_arg_value_opt(L, 2);
    if (!x || !w) return ox_bind(L, 0, NULL);
    int nsp = w->rank - 2;
    if (w->rank < 0) return ox_lower_unsupported(L, "the weight's rank is not known");
    if (nsp < 1 || nsp > MAX_SPATIAL)
        return ox_lower_fail(L, "weight of rank %d (expected 3 to 5)", w->rank);
    int64_t stride[MAX_SPATIAL], pad[MAX_SPATIAL], dil[MAX_SPATIAL], outpad[MAX_SPATIAL];
    int64_t pads[2 * MAX_SPATIAL];
    if (!ox_arg_ints_n(L, c->stride, nsp, stride, 1, "stride") || !ox_arg_ints_n(L, c->dilation, nsp, dil, 1, "dilation"))
        return OX_ELOWER;
    const ox_arg *pa = ox_arg_at(L, c->padding);
    if (pa && pa->kind == OX_ARG_STRING) {
        if (!strcmp(pa->u.s, "valid")) memset(pads, 0, sizeof pads);
        else if (!strcmp(pa->u.s, "same")) { if (!same_pads(L, w, nsp, dil, pads)) return OX_EUNSUPPORTED; }
        else return ox_lower_fail(L, "padding \"%s\" (expected \"same\" or \"valid\")", pa->u.s);
    } else {
        if (!ox_arg_ints_n(L, c->padding, nsp, pad, 0, "padding")) return OX_ELOWER;
        for (int k = 0; k < nsp; k++) pads[k] = pads[k + nsp] = pad[k];
    }
    bool unbatched;
    x = ox_batch_in(L, x, nsp, &unbatched);
    ox_node *n = ox_op(L, c->transposed ? "ConvTranspose" : "Conv", b ? 3 : 2, x, w, b);
    if (!n) return ox_bind(L, 0, NULL);
    ox_node_set_ints(L->g, n, "strides", stride, nsp);
    ox_node_set_ints(L->g, n, "pads", pads, 2 * nsp);
    ox_node_set_ints(L->g, n, "dilations", dil, nsp);
    ox_node_set_int(L->g, n, "group", c->groups);
    if (c->transposed) {
        if (!ox_arg_ints_n(L, c->output_padding, nsp, outpad, 0, "output_padding")) return OX_ELOWER;
        ox_node_set_ints(L->g, n, "output_padding", outpad, nsp);
    }
    return ox_bind(L, 0, ox_batch_out(L, ox_typed(ox_out(n), x ? x->dtype : OX_UNDEFINED), unbatched));
}

/* conv1d/2d/3d.default and .padding (input, weight, bias, stride, padding, dilation, groups) */
int lower_conv(ox_lower *L) {
    conv_args c = {3, 4, 5, -1, false, ox_arg_int(L, 6, 1)};
    return conv(L, &c);
}

/* convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups) */
int lower_convolution(ox_lower *L) {
    conv_args c = {3, 4, 5, 7, ox_arg_bool(L, 6, false), ox_arg_int(L, 8, 1)};
    return conv(L, &c);
}

/* conv_transpose1d/2d/3d.input (input, weight, bias, stride, padding, output_padding, groups,
 * dilation) */
int lower_conv_transpose(ox_lower *L) {
    conv_args c = {3, 4, 7, 5, true, ox_arg_int(L, 6, 1)};
    return conv(L, &c);
}

/* ---- normalization ---- */

/* Binds output i to a zero-filled constant of the shape torch recorded (batch norm's saved
 * statistics, which inference does not compute: torch returns empty tensors there). */
static int bind_zeros(ox_lower *L, int i) {
    const ox_meta *m = ox_out_meta(L, i);
    int64_t dims[OX_MAX_RANK];
    if (!m || m->rank < 0 || m->rank > OX_MAX_RANK || (m->rank && !m->dims) || m->dtype == OX_UNDEFINED)
        return ox_lower_unsupported(L, "output %d has no static shape", i);
    for (int k = 0; k < m->rank; k++) {
        if (m->dims[k].param || m->dims[k].value < 0)
            return ox_lower_unsupported(L, "output %d has a symbolic shape", i);
        dims[k] = m->dims[k].value;
    }
    return ox_bind(L, i, ox_const_tensor(L, m->dtype, m->rank, dims, NULL));   /* zeroed */
}

/* BatchNormalization in inference mode; arguments: weight, bias, mean, var at w_i..w_i+3. */
static int batch_norm(ox_lower *L, int w_i, double eps) {
    ox_value *x = ox_arg_value(L, 0);
    ox_value *mean = ox_arg_value_opt(L, w_i + 2), *var = ox_arg_value_opt(L, w_i + 3);
    if (!x) return ox_bind(L, 0, NULL);
    if (!mean || !var)
        return ox_lower_unsupported(L, "batch_norm without running statistics (running_mean "
                                    "and running_var are None): it normalizes with batch statistics");
    if (x->rank >= 0 && x->rank < 2) return ox_lower_fail(L, "input of rank %d (at least 2)", x->rank);
    int64_t c;
    if (!ox_static_dim(mean, 0, &c) && !ox_static_dim(x, 1, &c))
        return ox_lower_unsupported(L, "the channel count is symbolic");
    ox_dtype t = x->dtype;
    ox_value *w = ox_arg_value_opt(L, w_i), *b = ox_arg_value_opt(L, w_i + 1);
    w = w ? ox_cast(L, w, t) : filled(L, t, 1, 1, &c);
    b = b ? ox_cast(L, b, t) : filled(L, t, 0, 1, &c);
    ox_node *n = ox_op(L, "BatchNormalization", 5, x, w, b, ox_cast(L, mean, t), ox_cast(L, var, t));
    if (n) ox_node_set_float(L->g, n, "epsilon", (float)eps);
    int rc = ox_bind(L, 0, ox_typed(ox_out(n), t));
    for (int i = 1; rc == OX_OK && i < L->node->noutputs && i < 3; i++) rc = bind_zeros(L, i);
    return rc;
}

static int batch_norm_training(ox_lower *L, int rm_i, int run_out, double momentum, double eps);

/* batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn) */
int lower_batch_norm(ox_lower *L) {
    if (ox_arg_bool(L, 5, false))   /* the in-place running-statistics update is not an output */
        return batch_norm_training(L, -1, 0, ox_arg_float(L, 6, 0.1), ox_arg_float(L, 7, 1e-5));
    return batch_norm(L, 1, ox_arg_float(L, 7, 1e-5));
}

/* native_batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps) */
int lower_native_batch_norm(ox_lower *L) {
    if (ox_arg_bool(L, 5, false))   /* the in-place running-statistics update is not an output */
        return batch_norm_training(L, -1, 0, ox_arg_float(L, 6, 0.1), ox_arg_float(L, 7, 1e-5));
    return batch_norm(L, 1, ox_arg_float(L, 7, 1e-5));
}

/* Batch norm with batch statistics: mean and biased variance over every dim but 1, computed in
 * float for float16/bfloat16 (ORT CPU lacks their reductions). Binds out, save_mean, save_rstd;
 * with running statistics (rm_i >= 0, not None) also binds outputs run_out and run_out + 1 to
 * (1 - momentum) * running + momentum * batch, the variance there unbiased as torch does. */
static int batch_norm_training(ox_lower *L, int rm_i, int run_out, double momentum, double eps) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank < 2 || x->rank > OX_MAX_RANK)
        return ox_lower_unsupported(L, "batch norm with batch statistics on an input of rank %d "
                                    "(a known rank of at least 2 is needed)", x->rank);
    int r = x->rank;
    ox_dtype t = x->dtype;
    ox_dtype ct = (t == OX_FLOAT16 || t == OX_BFLOAT16) ? OX_FLOAT : t;
    if (ct != OX_FLOAT && ct != OX_DOUBLE)
        return ox_lower_unsupported(L, "batch norm of a non-floating input");
    int64_t axes[OX_MAX_RANK], cshape[OX_MAX_RANK];
    int na = 0;
    axes[na++] = 0;
    for (int k = 2; k < r; k++) axes[na++] = k;
    cshape[0] = -1;
    for (int k = 1; k < r - 1; k++) cshape[k] = 1;   /* [C, 1, ...]: broadcasts against dims 1.. */
    ox_value *xf = ox_cast(L, x, ct);
    ox_value *ax = ox_const_ints(L, na, axes);
    ox_value *mean = ox_binary(L, "ReduceMean", xf, ax, ct);
    ox_value *d = ox_binary(L, "Sub", xf, mean, ct);
    ox_value *var = ox_binary(L, "ReduceMean", ox_binary(L, "Mul", d, d, ct), ax, ct);
    ox_value *rstd = ox_unary(L, "Reciprocal", ox_unary(L, "Sqrt", ox_binary(L, "Add", var,
                                                                             ox_const_scalar(L, ct, eps), ct), ct), ct);
    ox_value *y = ox_binary(L, "Mul", d, rstd, ct);
    ox_value *w = ox_arg_value_opt(L, 1), *b = ox_arg_value_opt(L, 2);
    if (w) y = ox_binary(L, "Mul", y, ox_typed(ox_reshape(L, ox_cast(L, w, ct), r - 1, cshape), ct), ct);
    if (b) y = ox_binary(L, "Add", y, ox_typed(ox_reshape(L, ox_cast(L, b, ct), r - 1, cshape), ct), ct);
    int rc = ox_bind(L, 0, ox_cast(L, y, t));
    int64_t flat = -1;
    ox_value *mean_c = ox_typed(ox_reshape(L, mean, 1, &flat), ct);
    if (rc == OX_OK && L->node->noutputs > 1)
        rc = ox_bind(L, 1, ox_cast(L, mean_c, ox_out_dtype(L, 1)));
    if (rc == OX_OK && L->node->noutputs > 2)
        rc = ox_bind(L, 2, ox_cast(L, ox_typed(ox_reshape(L, rstd, 1, &flat), ct), ox_out_dtype(L, 2)));
    if (rc != OX_OK || rm_i < 0 || L->node->noutputs < run_out + 2) return rc;
    ox_value *rm = ox_arg_value_opt(L, rm_i), *rv = ox_arg_value_opt(L, rm_i + 1);
    if (!rm || !rv) return ox_lower_unsupported(L, "running statistics updated without running_mean");
    /* n / (n - 1) with n = numel / C, from the runtime shape so symbolic batches work too. */
    ox_value *c = ox_shape_of(L, x, 1, 2);
    ox_value *n = ox_binary(L, "Div", ox_cast(L, ox_unary(L, "Size", x, OX_INT64), ct), ox_cast(L, c, ct), ct);
    ox_value *bessel = ox_binary(L, "Div", n, ox_binary(L, "Sub", n, ox_const_scalar(L, ct, 1), ct), ct);
    ox_value *var_c = ox_binary(L, "Mul", ox_typed(ox_reshape(L, var, 1, &flat), ct), bessel, ct);
    ox_value *keep = ox_const_scalar(L, ct, 1.0 - momentum), *mom = ox_const_scalar(L, ct, momentum);
    ox_value *stats[2] = {mean_c, var_c}, *run[2] = {rm, rv};
    for (int i = 0; rc == OX_OK && i < 2; i++) {
        ox_dtype rt = run[i]->dtype;
        ox_value *u = ox_binary(L, "Add", ox_binary(L, "Mul", ox_cast(L, run[i], ct), keep, ct),
                                ox_binary(L, "Mul", stats[i], mom, ct), ct);
        rc = ox_bind(L, run_out + i, ox_cast(L, u, rt));
    }
    return rc;
}

/* _native_batch_norm_legit.no_stats(input, weight, bias, training, momentum, eps): no running
 * statistics, so batch statistics whatever `training` says. */
int lower_batch_norm_no_stats(ox_lower *L) {
    return batch_norm_training(L, -1, 0, ox_arg_float(L, 4, 0.1), ox_arg_float(L, 5, 1e-5));
}

/* _native_batch_norm_legit.default / _native_batch_norm_legit_functional(input, weight, bias,
 * running_mean, running_var, training, momentum, eps): the functional form also returns the running
 * statistics, unchanged at inference and updated with the batch's in training. */
int lower_batch_norm_legit(ox_lower *L) {
    if (ox_arg_bool(L, 5, false))
        return batch_norm_training(L, 3, 3, ox_arg_float(L, 6, 0.1), ox_arg_float(L, 7, 1e-5));
    int rc = batch_norm(L, 1, ox_arg_float(L, 7, 1e-5));
    for (int i = 3; rc == OX_OK && i < L->node->noutputs && i < 5; i++)
        rc = ox_bind(L, i, ox_arg_value(L, i));
    return rc;
}

/* _batch_norm_with_update(_functional)(input, weight, bias, running_mean, running_var, momentum,
 * eps) -> (out, save_mean, save_rstd, reserve[, running_mean_out, running_var_out]): always batch
 * statistics; reserve is cuDNN's workspace, an empty tensor elsewhere. */
int lower_batch_norm_with_update(ox_lower *L) {
    int rc = batch_norm_training(L, 3, 4, ox_arg_float(L, 5, 0.1), ox_arg_float(L, 6, 1e-5));
    if (rc == OX_OK && L->node->noutputs > 3) rc = bind_zeros(L, 3);
    return rc;
}

/* _batch_norm_no_update(input, weight, bias, running_mean, running_var, momentum, eps) -> (out,
 * save_mean, save_rstd, reserve): running statistics when given, else the batch's. */
int lower_batch_norm_no_update(ox_lower *L) {
    int rc = ox_arg_is_none(L, 3) || ox_arg_is_none(L, 4)
                 ? batch_norm_training(L, -1, 0, ox_arg_float(L, 5, 0.1), ox_arg_float(L, 6, 1e-5))
                 : batch_norm(L, 1, ox_arg_float(L, 6, 1e-5));
    if (rc == OX_OK && L->node->noutputs > 3) rc = bind_zeros(L, 3);
    return rc;
}

/* _native_batch_norm_legit_no_training(input, weight, bias, running_mean, running_var, momentum,
 * eps) -> (out, save_mean, save_invstd) */
int lower_batch_norm_no_training(ox_lower *L) {
    return batch_norm(L, 1, ox_arg_float(L, 6, 1e-5));
}

/* LayerNormalization over the last len(normalized_shape) dims; outputs mean and rstd too when the
 * ATen op has them (native_layer_norm). */
static int layer_norm(ox_lower *L, double eps) {
    int64_t shape[OX_MAX_RANK];
    int n = ox_arg_ints(L, 1, shape, OX_MAX_RANK);
    ox_value *x = ox_arg_value(L, 0), *w = ox_arg_value_opt(L, 2), *b = ox_arg_value_opt(L, 3);
    if (n < 0 || !x) return ox_bind(L, 0, NULL);
    if (n == 0) return ox_lower_fail(L, "normalized_shape is empty");
    if (x->rank >= 0 && n > x->rank)
        return ox_lower_fail(L, "normalized_shape has %d dims, the input only %d", n, x->rank);
    ox_dtype t = x->dtype;
    w = w ? ox_cast(L, w, t) : filled(L, t, 1, n, shape);
    if (b) b = ox_cast(L, b, t);
    int nout = L->node->noutputs > 1 ? 3 : 1;
    ox_node *ln = ox_opn(L, "LayerNormalization", nout, b ? 3 : 2, x, w, b);
    if (!ln) return ox_bind(L, 0, NULL);
    ox_node_set_int(L->g, ln, "axis", -n);
    ox_node_set_float(L->g, ln, "epsilon", (float)eps);
    int rc = ox_bind(L, 0, ox_typed(ln->outputs[0], t));
    /* Mean and InvStdDev come in the stash type, float (ONNX allows no other but bfloat16). */
    for (int i = 1; rc == OX_OK && i < nout && i < L->node->noutputs; i++)
        rc = ox_bind(L, i, ox_cast(L, ox_typed(ln->outputs[i], OX_FLOAT), ox_out_dtype(L, i)));
    return rc;
}

/* layer_norm(input, normalized_shape, weight, bias, eps, cudnn_enable) */
int lower_layer_norm(ox_lower *L) { return layer_norm(L, ox_arg_float(L, 4, 1e-5)); }

/* native_layer_norm(input, normalized_shape, weight, bias, eps) -> (out, mean, rstd) */
int lower_native_layer_norm(ox_lower *L) { return layer_norm(L, ox_arg_float(L, 4, 1e-5)); }

/* ---- pooling ---- */

/* Pool attributes from (kernel_size, stride, padding[, dilation]) at arguments 1.. */
typedef struct pool_attrs {
    int64_t kernel[MAX_SPATIAL], stride[MAX_SPATIAL], pads[2 * MAX_SPATIAL], dil[MAX_SPATIAL];
} pool_attrs;

static bool pool_args(ox_lower *L, int nsp, bool has_dilation, pool_attrs *p) {
    int64_t pad[MAX_SPATIAL];
    if (!ox_arg_ints_n(L, 1, nsp, p->kernel, 0, "kernel_size")) return false;
    for (int k = 0; k < nsp; k++)
        if (p->kernel[k] <= 0) {
            ox_lower_fail(L, "kernel_size %lld (must be positive)", (long long)p->kernel[k]);
            return false;
        }
    /* An empty stride means the kernel size. */
    if (!ox_arg_ints_n(L, 2, nsp, p->stride, 0, "stride") || !ox_arg_ints_n(L, 3, nsp, pad, 0,
                                                                            "padding")) return false;
    for (int k = 0; k < nsp; k++) {
        if (p->stride[k] == 0) p->stride[k] = p->kernel[k];
        p->pads[k] = p->pads[k + nsp] = pad[k];
    }
    if (!has_dilation) {
        for (int k = 0; k < nsp; k++) p->dil[k] = 1;
        return true;
    }
    return ox_arg_ints_n(L, 4, nsp, p->dil, 1, "dilation");
}

static void set_pool_attrs(ox_lower *L, ox_node *n, int nsp, const pool_attrs *p) {
    ox_node_set_ints(L->g, n, "kernel_shape", p->kernel, nsp);
    ox_node_set_ints(L->g, n, "strides", p->stride, nsp);
    ox_node_set_ints(L->g, n, "pads", p->pads, 2 * nsp);
}

/* Output sizes of a ceil_mode pool over x's static sizes: torch's in want[] (a last window that
 * would start in the end padding is dropped, as ONNX does from opset 22), ONNX's before opset 22 in
 * old[] (kept). False when a size is not static. */
static bool ceil_sizes(const ox_value *x, int nsp, const pool_attrs *p, int64_t *want, int64_t *old) {
    for (int k = 0; k < nsp; k++) {
        int64_t in, s = p->stride[k], pb = p->pads[k], pe = p->pads[k + nsp];
        if (x->rank < nsp || !ox_static_dim(x, x->rank - nsp + k, &in) || in > INT32_MAX || s <= 0)
            return false;
        int64_t room = in + pb + pe - (p->dil[k] * (p->kernel[k] - 1) + 1);
        if (room < 0) return false;
        old[k] = want[k] = (room + s - 1) / s + 1;
        if ((want[k] - 1) * s >= in + pb) want[k]--;
    }
    return true;
}

/* Before opset 22 ONNX's shape inference keeps the window torch drops. ceil_mode then becomes
 * floor mode with the end padding that gives torch's sizes; when that padding would be counted
 * (count_include_pad) or reach the kernel size (ONNX Runtime refuses it), ceil_mode stays and
 * *trim says to slice the output to want[]. Returns whether ceil_mode stays. */
static bool ceil_mode_for(const ox_lower *L, const ox_value *x, int nsp, pool_attrs *p,
                          bool pads_counted, int64_t *want, bool *trim) {
    int64_t old[MAX_SPATIAL], end[MAX_SPATIAL];
    *trim = false;
    if (L->opset >= 22 || !ceil_sizes(x, nsp, p, want, old)) return true;
    bool differ = false, floor_ok = true;
    for (int k = 0; k < nsp; k++) {
        int64_t span = p->dil[k] * (p->kernel[k] - 1) + 1;
        int64_t need = (want[k] - 1) * p->stride[k] + span - x->dims[x->rank - nsp + k].value - p->pads[k];
        end[k] = need > 0 ? need : 0;
        differ |= want[k] != old[k];
        if ((pads_counted && end[k] > p->pads[k + nsp]) || end[k] >= p->kernel[k]) floor_ok = false;
    }
    if (!differ) return true;
    if (!floor_ok) {
        *trim = true;
        return true;
    }
    for (int k = 0; k < nsp; k++) p->pads[k + nsp] = end[k];
    return false;
}

/* y[..., :want[0], :want[1], ...] over its last nsp dims (y is batched: rank nsp + 2). */
static ox_value *trim_spatial(ox_lower *L, ox_value *y, int nsp, const int64_t *want) {
    int64_t zeros[MAX_SPATIAL] = {0}, axes[MAX_SPATIAL];
    for (int k = 0; k < nsp; k++) axes[k] = 2 + k;
    return ox_op_typed(L, "Slice", y ? y->dtype : OX_UNDEFINED, 4, y, ox_const_ints(L, nsp, zeros),
                       ox_const_ints(L, nsp, want), ox_const_ints(L, nsp, axes));
}

/* Product of x's last nsp dims as an int64 scalar: the size of one pooling plane. */
static ox_value *plane_size(ox_lower *L, ox_value *x, int nsp) {
    int64_t prod = 1, d;
    bool known = x->rank >= nsp;
    for (int k = 0; known && k < nsp; k++) {
        known = ox_static_dim(x, x->rank - nsp + k, &d);
        if (known) prod *= d;
    }
    if (known) return ox_const_i64(L, prod);
    ox_node *n = ox_op(L, "ReduceProd", 1, ox_shape_of(L, x, -nsp, INT64_MAX));
    if (n) ox_node_set_int(L->g, n, "keepdims", 0);
    return ox_typed(ox_out(n), OX_INT64);
}

/* max_pool{1,2,3}d[_with_indices](self, kernel_size, stride, padding, dilation, ceil_mode).
 * torch's indices count within each (n, c) plane; ONNX's over the whole tensor: mod plane size. */
static int max_pool(ox_lower *L, int nsp) {
    pool_attrs p;
    ox_value *x0 = ox_arg_value(L, 0);
    if (!x0 || !pool_args(L, nsp, true, &p)) return ox_bind(L, 0, NULL);
    bool unbatched, indices = L->node->noutputs > 1, ceil = ox_arg_bool(L, 5, false), trim = false;
    int64_t want[MAX_SPATIAL];
    if (ceil) ceil = ceil_mode_for(L, x0, nsp, &p, false, want, &trim);
    ox_value *x = ox_batch_in(L, x0, nsp, &unbatched);
    ox_node *n = ox_opn(L, "MaxPool", indices ? 2 : 1, 1, x);
    if (!n) return ox_bind(L, 0, NULL);
    set_pool_attrs(L, n, nsp, &p);
    ox_node_set_ints(L->g, n, "dilations", p.dil, nsp);
    if (ceil) ox_node_set_int(L->g, n, "ceil_mode", 1);
    ox_value *y = ox_typed(n->outputs[0], x0->dtype), *idx = indices ? ox_typed(n->outputs[1], OX_INT64) : NULL;
    if (trim) y = trim_spatial(L, y, nsp, want);
    int rc = ox_bind(L, 0, ox_batch_out(L, y, unbatched));
    if (rc != OX_OK || !indices) return rc;
    if (trim) idx = trim_spatial(L, idx, nsp, want);
    ox_node *mod = ox_op(L, "Mod", 2, idx, plane_size(L, x0, nsp));
    return ox_bind(L, 1, ox_batch_out(L, ox_typed(ox_out(mod), OX_INT64), unbatched));
}

int lower_max_pool1d(ox_lower *L) { return max_pool(L, 1); }
int lower_max_pool2d(ox_lower *L) { return max_pool(L, 2); }
int lower_max_pool3d(ox_lower *L) { return max_pool(L, 3); }

/* avg_pool{1,2,3}d(self, kernel_size, stride, padding, ceil_mode, count_include_pad
 * [, divisor_override]) */
static int avg_pool(ox_lower *L, int nsp) {
    pool_attrs p;
    ox_value *x0 = ox_arg_value(L, 0);
    if (!ox_arg_is_none(L, 6))
        return ox_lower_unsupported(L, "avg_pool with divisor_override");
    if (!x0 || !pool_args(L, nsp, false, &p)) return ox_bind(L, 0, NULL);
    /* ceil_mode windows that overhang the padding: ONNX Runtime 1.32 clips them before counting,
     * as torch does. */
    bool ceil = ox_arg_bool(L, 4, false), include_pad = ox_arg_bool(L, 5, true), trim = false;
    int64_t want[MAX_SPATIAL];
    if (ceil) ceil = ceil_mode_for(L, x0, nsp, &p, include_pad, want, &trim);
    bool unbatched;
    ox_value *x = ox_batch_in(L, x0, nsp, &unbatched);
    ox_node *n = ox_op(L, "AveragePool", 1, x);
    if (!n) return ox_bind(L, 0, NULL);
    set_pool_attrs(L, n, nsp, &p);
    if (ceil) ox_node_set_int(L->g, n, "ceil_mode", 1);
    if (include_pad) ox_node_set_int(L->g, n, "count_include_pad", 1);
    ox_value *y = ox_typed(ox_out(n), x0->dtype);
    return ox_bind(L, 0, ox_batch_out(L, trim ? trim_spatial(L, y, nsp, want) : y, unbatched));
}

int lower_avg_pool1d(ox_lower *L) { return avg_pool(L, 1); }
int lower_avg_pool2d(ox_lower *L) { return avg_pool(L, 2); }
int lower_avg_pool3d(ox_lower *L) { return avg_pool(L, 3); }

/* Adaptive average pooling with windows of unequal size (static sizes): bin i of an axis averages
 * inputs [floor(i in / out), ceil((i + 1) in / out)), which is a constant [out, in] matrix. Each
 * spatial axis is moved last, multiplied by that matrix transposed, and moved back. */
static int adaptive_avg_matmul(ox_lower *L, ox_value *x, int nsp, const int64_t *out) {
    ox_dtype t = x->dtype;
    if (!ox_dtype_is_float(t)) return ox_lower_unsupported(L, "adaptive pooling of %s", ox_dtype_name(t));
    int r = x->rank;
    if (r > OX_MAX_RANK) return ox_lower_fail(L, "input of rank %d", r);
    ox_dtype ct = t == OX_FLOAT16 || t == OX_BFLOAT16 ? OX_FLOAT : t;
    ox_value *y = ox_cast(L, x, ct);
    for (int k = 0; k < nsp; k++) {
        int axis = r - nsp + k;
        int64_t in = x->dims[axis].value, o = out[k];
        if (in < 1 || in > (1 << 16) || o > (1 << 16) || in * o > (1 << 24)) return ox_lower_unsupported(L, "adaptive pooling of %lld to %lld", (long long)in, (long long)o);
        /* A^T: [in, o] */
        size_t n = (size_t)(in * o);
        void *m = ox_arena_alloc(L->g->arena, n * (ct == OX_DOUBLE ? 8 : 4));
        if (!m) return ox_bind(L, 0, NULL);
        for (int64_t i = 0; i < o; i++) {
            int64_t a = i * in / o, b = ((i + 1) * in + o - 1) / o;
            for (int64_t j = 0; j < in; j++) {
                double v = j >= a && j < b ? 1.0 / (double)(b - a) : 0.0;
                if (ct == OX_DOUBLE) ((double *)m)[j * o + i] = v;
                else ((float *)m)[j * o + i] = (float)v;
            }
        }
        int64_t dims[2] = {in, o};
        ox_value *at = ox_const_tensor(L, ct, 2, dims, m);
        int64_t perm[OX_MAX_RANK];
        for (int d = 0; d < r; d++) perm[d] = d;
        perm[axis] = r - 1;
        perm[r - 1] = axis;
        bool swap = axis != r - 1;
        if (swap) {
            ox_node *tr = ox_op(L, "Transpose", 1, y);
            if (tr) ox_node_set_ints(L->g, tr, "perm", perm, r);
            y = ox_typed(ox_out(tr), ct);
        }
        y = ox_binary(L, "MatMul", y, at, ct);
        if (swap) {
            ox_node *tr = ox_op(L, "Transpose", 1, y);
            if (tr) ox_node_set_ints(L->g, tr, "perm", perm, r);
            y = ox_typed(ox_out(tr), ct);
        }
    }
    return ox_bind(L, 0, ox_cast(L, y, t));
}

/* adaptive_avg_pool{1,2,3}d(self, output_size): GlobalAveragePool for 1x1, AveragePool when every
 * input size is a static multiple of the output size, else averaging matrices. */
static int adaptive_avg_pool(ox_lower *L, int nsp) {
    int64_t out[MAX_SPATIAL];
    ox_value *x0 = ox_arg_value(L, 0);
    if (!x0 || !ox_arg_ints_n(L, 1, nsp, out, 1, "output_size")) return ox_bind(L, 0, NULL);
    bool global = true;
    for (int k = 0; k < nsp; k++) global &= out[k] == 1;
    pool_attrs p = {0};
    bool unequal = false;
    for (int k = 0; !global && k < nsp; k++) {
        int64_t in;
        if (x0->rank < nsp || !ox_static_dim(x0, x0->rank - nsp + k, &in))
            return ox_lower_unsupported(L, "adaptive pooling to %lld of a symbolic size", (long long)out[k]);
        if (out[k] <= 0) return ox_lower_fail(L, "output size %lld", (long long)out[k]);
        if (in % out[k]) unequal = true;
        else p.kernel[k] = p.stride[k] = in / out[k];
    }
    if (unequal) return adaptive_avg_matmul(L, x0, nsp, out);
    bool unbatched;
    ox_value *x = ox_batch_in(L, x0, nsp, &unbatched);
    ox_node *n = ox_op(L, global ? "GlobalAveragePool" : "AveragePool", 1, x);
    if (n && !global) set_pool_attrs(L, n, nsp, &p);
    return ox_bind(L, 0, ox_batch_out(L, ox_typed(ox_out(n), x0->dtype), unbatched));
}

int lower_adaptive_avg_pool1d(ox_lower *L) { return adaptive_avg_pool(L, 1); }
int lower_adaptive_avg_pool2d(ox_lower *L) { return adaptive_avg_pool(L, 2); }
int lower_adaptive_avg_pool3d(ox_lower *L) { return adaptive_avg_pool(L, 3); }

/* ---- reductions ---- */

/* op over the dims of argument 1 (None or [] means all), keepdim at argument 2. */
static ox_value *reduce(ox_lower *L, const char *op, ox_value *x) {
    int64_t dims[OX_MAX_RANK];
    int n = ox_arg_ints(L, 1, dims, OX_MAX_RANK);
    if (n < 0 || !x) return NULL;
    if (x->rank == 0) {   /* torch takes dim 0 or -1 of a 0-d tensor and reduces nothing */
        for (int k = 0; k < n; k++)
            if (dims[k] != 0 && dims[k] != -1) { ox_lower_fail(L, "dim %lld of a 0-d tensor", (long long)dims[k]); return NULL; }
        return x;
    }
    for (int k = 0; k < n; k++)
        if (!ox_norm_dim(L, &dims[k], x->rank, "dim")) return NULL;
    ox_node *r = n ? ox_op(L, op, 2, x, ox_const_ints(L, n, dims)) : ox_op(L, op, 1, x);
    if (r) ox_node_set_int(L->g, r, "keepdims", ox_arg_bool(L, 2, false));
    return ox_out(r);
}

/* mean.dim(self, dim?, keepdim, *, dtype) */
int lower_mean_dim(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    return ox_bind(L, 0, ox_typed(reduce(L, "ReduceMean", ox_cast(L, ox_arg_value(L, 0), t)), t));
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
    return ox_bind(L, 0, ox_typed(reduce(L, "ReduceSum", ox_cast(L, ox_arg_value(L, 0), t)), t));
}

/* any.dim / any.dims (self, dim, keepdim), any.default(self): max over x != 0, in int32 since
 * reductions over bool are not run by every runtime. */
int lower_any(ox_lower *L) {
    ox_value *i = ox_cast(L, ox_cast(L, ox_arg_value(L, 0), OX_BOOL), OX_INT32);
    ox_value *r = ox_nargs(L) > 1 ? reduce(L, "ReduceMax", i) : ox_out(ox_op(L, "ReduceMax", 1, i));
    if (ox_nargs(L) <= 1 && r) ox_node_set_int(L->g, r->producer, "keepdims", 0);
    return ox_bind(L, 0, ox_cast(L, ox_typed(r, OX_INT32), ox_out_dtype(L, 0)));
}

/* ---- lookups and activations ---- */

/* embedding(weight, indices, padding_idx, scale_grad_by_freq, sparse): padding_idx only matters
 * to gradients. */
int lower_embedding(ox_lower *L) {
    ox_value *w = ox_arg_value(L, 0), *idx = ox_arg_value(L, 1);
    if (idx && idx->dtype != OX_INT32) idx = ox_cast(L, idx, OX_INT64);
    return ox_bind(L, 0, ox_binary(L, "Gather", w, idx, w ? w->dtype : OX_UNDEFINED));
}

/* gelu(x) in dtype t: the Gelu op from opset 20, the formula below (and for double, which
 * ONNX Runtime's Gelu computes in float). */
static ox_value *gelu(ox_lower *L, ox_value *x, bool tanh_mode, ox_dtype t) {
    if (L->opset >= 20 && t != OX_DOUBLE) {
        ox_node *n = ox_op(L, "Gelu", 1, x);
        if (n && tanh_mode) ox_node_set_string(L->g, n, "approximate", "tanh");
        return ox_typed(ox_out(n), t);
    }
    ox_value *inner;
    if (tanh_mode) {   /* tanh(sqrt(2/pi) * (x + 0.044715 x^3)) */
        ox_value *x3 = ox_binary(L, "Mul", ox_binary(L, "Mul", x, x, t), x, t);
        ox_value *poly = ox_binary(L, "Add", x, ox_binary(L, "Mul", x3, ox_const_scalar(L, t, 0.044715), t), t);
        ox_value *arg = ox_binary(L, "Mul", poly, ox_const_scalar(L, t, sqrt(2.0 / M_PI)), t);
        inner = ox_unary(L, "Tanh", arg, t);
    } else {           /* erf(x / sqrt(2)) */
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

/* dropout(input, p, train): the identity at inference. */
int lower_dropout(ox_lower *L) {
    double p = ox_arg_float(L, 1, 0.5);
    if (ox_arg_bool(L, 2, false) && p > 0)
        return ox_lower_unsupported(L, "dropout with train=True and p=%g is random; export the model "
                                    "in eval() mode", p);
    return ox_bind(L, 0, ox_arg_value(L, 0));
}

/* native_dropout(input, p, train?) -> (out, mask): train None means training, as in torch. */
int lower_native_dropout(ox_lower *L) {
    double p = ox_arg_float(L, 1, 0.5);
    bool train = ox_arg_is_none(L, 2) || ox_arg_bool(L, 2, true);
    if (train && p > 0)
        return ox_lower_unsupported(L, "native_dropout in training mode with p=%g is random; export "
                                    "the model in eval() mode", p);
    ox_value *x = ox_arg_value(L, 0);
    int rc = ox_bind(L, 0, x);
    if (rc != OX_OK || L->node->noutputs < 2) return rc;
    ox_value *shape = ox_unary(L, "Shape", x, OX_INT64);
    ox_value *mask = ox_out(ox_op(L, "Expand", 2, ox_const_scalar(L, OX_BOOL, 1), shape));
    return ox_bind(L, 1, ox_cast(L, ox_typed(mask, OX_BOOL), ox_out_dtype(L, 1)));
}
