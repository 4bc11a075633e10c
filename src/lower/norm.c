/*
 * norm.c — normalization: batch_norm in its ATen forms (inference with running statistics, and
 * training-mode batch statistics with the running-statistics update), layer_norm
 * (LayerNormalization at every opset) and group_norm.
 *
 * Group norm: from opset 21 the output is one GroupNormalization node (per-channel scale and bias;
 * opset 18's per-group form is a different op and is not used). Below it, and for the mean and rstd
 * outputs that native_group_norm also returns, the statistics are computed over x reshaped to
 * [N, group, -1]: mean, then the mean of squared deviations, then 1 / sqrt(var + eps). Where only
 * output 0 is read, dead code removal drops the statistics again. Half-precision inputs are
 * normalized in float32, as PyTorch's CPU kernel does.
 */
#include "lower/lower.h"

/* ---- batch norm ---- */

/* A tensor of `shape` filled with v in dtype t (the missing weight or bias of a norm layer). */
static ox_value *filled(ox_lower *L, ox_dtype t, double v, int rank, const int64_t *shape) {
    return ox_binary(L, "Expand", ox_const_scalar(L, t, v), ox_const_ints(L, rank, shape), t);
}

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
    return ox_bind(L, i, ox_const_tensor(L, m->dtype, m->rank, dims, NULL)); /* zeroed */
}

/* BatchNormalization in inference mode; arguments: weight, bias, mean, var at w_i..w_i+3. */
static int batch_norm(ox_lower *L, int w_i, double eps) {
    ox_value *x = ox_arg_value(L, 0);
    ox_value *mean = ox_arg_value_opt(L, w_i + 2), *var = ox_arg_value_opt(L, w_i + 3);
    if (!x) return ox_bind(L, 0, NULL);
    if (!mean || !var)
        return ox_lower_unsupported(L,
                                    "batch_norm without running statistics (running_mean "
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
    if (ox_arg_bool(L, 5, false)) /* the in-place running-statistics update is not an output */
        return batch_norm_training(L, -1, 0, ox_arg_float(L, 6, 0.1), ox_arg_float(L, 7, 1e-5));
    return batch_norm(L, 1, ox_arg_float(L, 7, 1e-5));
}

/* native_batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps) */
int lower_native_batch_norm(ox_lower *L) {
    if (ox_arg_bool(L, 5, false)) /* the in-place running-statistics update is not an output */
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
        return ox_lower_unsupported(L,
                                    "batch norm with batch statistics on an input of rank %d "
                                    "(a known rank of at least 2 is needed)",
                                    x->rank);
    int r = x->rank;
    ox_dtype t = x->dtype;
    ox_dtype ct = ox_work_dtype(t);
    if (ct != OX_FLOAT && ct != OX_DOUBLE) return ox_lower_unsupported(L, "batch norm of a non-floating input");
    int64_t axes[OX_MAX_RANK], cshape[OX_MAX_RANK];
    int na = 0;
    axes[na++] = 0;
    for (int k = 2; k < r; k++) axes[na++] = k;
    cshape[0] = -1;
    for (int k = 1; k < r - 1; k++) cshape[k] = 1; /* [C, 1, ...]: broadcasts against dims 1.. */
    ox_value *xf = ox_cast(L, x, ct);
    ox_value *ax = ox_const_ints(L, na, axes);
    ox_value *mean = ox_binary(L, "ReduceMean", xf, ax, ct);
    ox_value *d = ox_binary(L, "Sub", xf, mean, ct);
    ox_value *var = ox_binary(L, "ReduceMean", ox_binary(L, "Mul", d, d, ct), ax, ct);
    ox_value *sd = ox_unary(L, "Sqrt", ox_binary(L, "Add", var, ox_const_scalar(L, ct, eps), ct), ct);
    ox_value *rstd = ox_unary(L, "Reciprocal", sd, ct);
    ox_value *y = ox_binary(L, "Mul", d, rstd, ct);
    ox_value *w = ox_arg_value_opt(L, 1), *b = ox_arg_value_opt(L, 2);
    if (w) y = ox_binary(L, "Mul", y, ox_typed(ox_reshape(L, ox_cast(L, w, ct), r - 1, cshape), ct), ct);
    if (b) y = ox_binary(L, "Add", y, ox_typed(ox_reshape(L, ox_cast(L, b, ct), r - 1, cshape), ct), ct);
    int rc = ox_bind(L, 0, ox_cast(L, y, t));
    int64_t flat = -1;
    ox_value *mean_c = ox_typed(ox_reshape(L, mean, 1, &flat), ct);
    if (rc == OX_OK && L->node->noutputs > 1) rc = ox_bind(L, 1, ox_cast(L, mean_c, ox_out_dtype(L, 1)));
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
    for (int i = 3; rc == OX_OK && i < L->node->noutputs && i < 5; i++) rc = ox_bind(L, i, ox_arg_value(L, i));
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
    int rc = ox_arg_is_none(L, 3) || ox_arg_is_none(L, 4) ?
        batch_norm_training(L, -1, 0, ox_arg_float(L, 5, 0.1), ox_arg_float(L, 6, 1e-5)) :
        batch_norm(L, 1, ox_arg_float(L, 6, 1e-5));
    if (rc == OX_OK && L->node->noutputs > 3) rc = bind_zeros(L, 3);
    return rc;
}

/* _native_batch_norm_legit_no_training(input, weight, bias, running_mean, running_var, momentum,
 * eps) -> (out, save_mean, save_invstd) */
int lower_batch_norm_no_training(ox_lower *L) { return batch_norm(L, 1, ox_arg_float(L, 6, 1e-5)); }

/* ---- layer norm ---- */

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

/* ---- group norm ---- */

/* v (a [C] weight or bias) reshaped to [C, 1, ...] so that it broadcasts over x's spatial dims. */
static ox_value *per_channel(ox_lower *L, ox_value *v, int rank) {
    int64_t shape[OX_MAX_RANK] = {-1};
    for (int k = 1; k < rank - 1; k++) shape[k] = 1;
    return ox_typed(ox_reshape(L, v, rank - 1, shape), v->dtype);
}

/* x, weight?, bias? at args 0..2, then group and eps; C known from the arguments. */
static int group_norm(ox_lower *L, int wi, int64_t c, int64_t group, double eps) {
    ox_value *x = ox_arg_value(L, 0);
    ox_value *w = ox_arg_value_opt(L, wi), *b = ox_arg_value_opt(L, wi + 1);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank < 2 || x->rank > OX_MAX_RANK) return ox_lower_fail(L, "input of rank %d (needs N, C, ...)", x->rank);
    if (group < 1 || c < 1 || c % group)
        return ox_lower_fail(L, "%lld channels do not split into %lld groups", (long long)c, (long long)group);
    ox_dtype t = x->dtype, ct = ox_work_dtype(t);
    if (w) w = ox_cast(L, w, ct);
    if (b) b = ox_cast(L, b, ct);
    ox_value *xc = ox_cast(L, x, ct);
    int rc;

    if (L->g->opset >= 21) {
        ox_value *scale = w, *shift = b;
        if (!scale || !shift) {
            ox_value *ones = ox_out(ox_op(L, "Expand", 2, ox_const_scalar(L, ct, 1), ox_const_i64_1d(L, c)));
            ox_value *zeros = ox_out(ox_op(L, "Expand", 2, ox_const_scalar(L, ct, 0), ox_const_i64_1d(L, c)));
            if (!scale) scale = ox_typed(ones, ct);
            if (!shift) shift = ox_typed(zeros, ct);
        }
        ox_node *gn = ox_op(L, "GroupNormalization", 3, xc, scale, shift);
        if (gn) {
            ox_node_set_int(L->g, gn, "num_groups", group);
            ox_node_set_float(L->g, gn, "epsilon", (float)eps);
        }
        rc = ox_bind(L, 0, ox_cast(L, ox_typed(ox_out(gn), ct), t));
        if (rc != OX_OK || L->node->noutputs == 1) return rc;
    }

    /* the statistics: over x as [N, group, -1] */
    int64_t grouped[3] = {0, group, -1}, axes = 2;
    ox_value *xr = ox_typed(ox_reshape(L, xc, 3, grouped), ct);
    ox_node *mn = ox_op(L, "ReduceMean", 2, xr, ox_const_i64_1d(L, axes));
    ox_value *mean = ox_typed(ox_out(mn), ct);
    ox_value *d = ox_binary(L, "Sub", xr, mean, ct);
    ox_value *var = ox_binary(L, "ReduceMean", ox_binary(L, "Mul", d, d, ct), ox_const_i64_1d(L, axes), ct);
    ox_value *sd = ox_unary(L, "Sqrt", ox_binary(L, "Add", var, ox_const_scalar(L, ct, eps), ct), ct);
    ox_value *rstd = ox_unary(L, "Reciprocal", sd, ct);
    if (L->g->opset < 21) {
        ox_value *y = ox_binary(L, "Reshape", ox_binary(L, "Mul", d, rstd, ct), ox_unary(L, "Shape", xc, OX_INT64), ct);
        if (w) y = ox_binary(L, "Mul", y, per_channel(L, w, x->rank), ct);
        if (b) y = ox_binary(L, "Add", y, per_channel(L, b, x->rank), ct);
        if ((rc = ox_bind(L, 0, ox_cast(L, y, t))) != OX_OK || L->node->noutputs == 1) return rc;
    }
    int64_t ng[2] = {0, group};
    rc = ox_bind(L, 1, ox_cast(L, ox_typed(ox_reshape(L, mean, 2, ng), ct), ox_out_dtype(L, 1)));
    if (rc == OX_OK && L->node->noutputs > 2)
        rc = ox_bind(L, 2, ox_cast(L, ox_typed(ox_reshape(L, rstd, 2, ng), ct), ox_out_dtype(L, 2)));
    return rc;
}

/* native_group_norm(input, weight?, bias?, N, C, HxW, group, eps) -> (out, mean, rstd) */
int lower_native_group_norm(ox_lower *L) {
    return group_norm(L, 1, ox_arg_int(L, 4, -1), ox_arg_int(L, 6, -1), ox_arg_float(L, 7, 1e-5));
}

/* group_norm(input, num_groups, weight?, bias?, eps, cudnn_enabled) */
int lower_group_norm(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t c = x && x->rank >= 2 && x->dims && !x->dims[1].param ? x->dims[1].value : -1;
    if (c < 0) return ox_lower_unsupported(L, "a dynamic channel count");
    return group_norm(L, 2, c, ox_arg_int(L, 1, -1), ox_arg_float(L, 4, 1e-5));
}
