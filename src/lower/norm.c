/*
 * lower_norm.c — group normalization.
 *
 * From opset 21 the output is one GroupNormalization node (per-channel scale and bias; opset 18's
 * per-group form is a different op and is not used). Below it, and for the mean and rstd outputs
 * that native_group_norm also returns, the statistics are computed over x reshaped to
 * [N, group, -1]: mean, then the mean of squared deviations, then 1 / sqrt(var + eps). Where only
 * output 0 is read, dead code removal drops the statistics again. Half-precision inputs are
 * normalized in float32, as PyTorch's CPU kernel does.
 */
#include "lower/lower.h"

#include <stdint.h>

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
    if (x->rank < 2 || x->rank > OX_MAX_RANK) return ox_lower_fail(L, "input of rank %d (needs N, C, ...)",
                                                                   x->rank);
    if (group < 1 || c < 1 || c % group)
        return ox_lower_fail(L, "%lld channels do not split into %lld groups", (long long)c, (long long)group);
    ox_dtype t = x->dtype, ct = t == OX_FLOAT16 || t == OX_BFLOAT16 ? OX_FLOAT : t;
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
