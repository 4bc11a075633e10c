/*
 * pad.c — constant_pad_nd and the reflection/replication pads.
 *
 * torch lists pads from the last dim backwards, (begin, end) per dim; ONNX Pad (opset 18, with an
 * axes input) takes the begins of the listed axes, then their ends. Negative pads crop, in both.
 */
#include "lower/lower.h"

#include <stdint.h>

/* Pad x per torch's pad list at argument 1 with mode; value (constant mode) from argument vi. */
static int pad(ox_lower *L, const char *mode, int vi, int spatial) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t p[2 * OX_MAX_RANK];
    int n = ox_arg_ints(L, 1, p, 2 * OX_MAX_RANK);
    if (!x || n < 0) return ox_bind(L, 0, NULL);
    if (n % 2) return ox_lower_fail(L, "%d pad values: they come in (begin, end) pairs", n);
    int dims = n / 2;
    if (x->rank < 0 || dims > x->rank) return ox_lower_fail(L, "%d dims padded in a rank-%d input", dims, x->rank);
    if (spatial && x->rank != spatial + 1 && x->rank != spatial + 2)
        return ox_lower_fail(L, "input of rank %d, expected %d or %d", x->rank, spatial + 1, spatial + 2);
    if (dims == 0) return ox_bind(L, 0, x);
    int64_t pads[2 * OX_MAX_RANK], axes[OX_MAX_RANK];
    for (int k = 0; k < dims; k++) { /* pair k pads dim rank-1-k */
        axes[k] = x->rank - 1 - k;
        pads[k] = p[2 * k];
        pads[dims + k] = p[2 * k + 1];
    }
    ox_value *value = NULL;
    if (vi >= 0 && ox_nargs(L) > vi && !ox_arg_is_none(L, vi)) value = ox_arg_scalar(L, vi, x->dtype);
    ox_value *xs = x->dtype == OX_BOOL ? ox_cast(L, x, OX_UINT8) : x;
    if (value && xs != x) value = ox_cast(L, value, OX_UINT8);
    ox_node *n2 = ox_op(L, "Pad", 4, xs, ox_const_ints(L, 2 * dims, pads), value, ox_const_ints(L, dims, axes));
    if (n2) ox_node_set_string(L->g, n2, "mode", mode);
    return ox_bind(L, 0, ox_cast(L, ox_typed(ox_out(n2), xs ? xs->dtype : x->dtype), x->dtype));
}

/* constant_pad_nd(self, pad[], value=0) */
int lower_constant_pad_nd(ox_lower *L) { return pad(L, "constant", 2, 0); }
/* reflection_padNd / replication_padNd (self, padding[]) */
int lower_reflection_pad1d(ox_lower *L) { return pad(L, "reflect", -1, 1); }
int lower_reflection_pad2d(ox_lower *L) { return pad(L, "reflect", -1, 2); }
int lower_reflection_pad3d(ox_lower *L) { return pad(L, "reflect", -1, 3); }
int lower_replication_pad1d(ox_lower *L) { return pad(L, "edge", -1, 1); }
int lower_replication_pad2d(ox_lower *L) { return pad(L, "edge", -1, 2); }
int lower_replication_pad3d(ox_lower *L) { return pad(L, "edge", -1, 3); }
