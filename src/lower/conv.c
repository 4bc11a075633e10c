/*
 * conv.c — convolution: conv1d/2d/3d (with numeric or "same"/"valid" padding), convolution, and
 * conv_transpose1d/2d/3d, as ONNX Conv and ConvTranspose. Unbatched inputs get a batch dim
 * (ox_batch_in) and lose it again after.
 */
#include "lower/lower.h"

#include <stdint.h>
#include <string.h>

typedef struct conv_args {
    int stride, padding, dilation, output_padding; /* argument indices; -1 absent */
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
    if (nsp < 1 || nsp > OX_MAX_SPATIAL) return ox_lower_fail(L, "weight of rank %d (expected 3 to 5)", w->rank);
    int64_t stride[OX_MAX_SPATIAL], pad[OX_MAX_SPATIAL], dil[OX_MAX_SPATIAL], outpad[OX_MAX_SPATIAL];
    int64_t pads[2 * OX_MAX_SPATIAL];
    if (!ox_arg_ints_n(L, c->stride, nsp, stride, 1, "stride") ||
        !ox_arg_ints_n(L, c->dilation, nsp, dil, 1, "dilation"))
        return OX_ELOWER;
    const ox_arg *pa = ox_arg_at(L, c->padding);
    if (pa && pa->kind == OX_ARG_STRING) {
        if (!strcmp(pa->u.s, "valid")) memset(pads, 0, sizeof pads);
        else if (!strcmp(pa->u.s, "same")) {
            if (!same_pads(L, w, nsp, dil, pads)) return OX_EUNSUPPORTED;
        } else return ox_lower_fail(L, "padding \"%s\" (expected \"same\" or \"valid\")", pa->u.s);
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
