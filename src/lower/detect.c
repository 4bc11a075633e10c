/*
 * lower_detect.c — what detection models call beside convolutions: torchvision's nms as ONNX
 * NonMaxSuppression, roi_align as RoiAlign, torch.unique (_unique2) as ONNX Unique, and
 * Tensor.unfold (sliding windows).
 */
#include <stdint.h>

#include "lower/lower.h"

/* torchvision::nms(boxes [N, 4] as x1 y1 x2 y2, scores [N], iou_threshold) -> the kept indices,
 * by decreasing score. NonMaxSuppression works on [batch, N, 4] boxes and [batch, class, N]
 * scores and returns (batch, class, box) triples; the box column is the answer. It drops a box
 * whose IoU with a kept one is above the threshold, as torchvision does. */
int lower_nms(ox_lower *L) {
    ox_value *boxes = ox_arg_value(L, 0), *scores = ox_arg_value(L, 1);
    double iou = ox_arg_float(L, 2, 0.5);
    if (!boxes || !scores) return ox_bind(L, 0, NULL);
    if (boxes->rank >= 0 && boxes->rank != 2) return ox_lower_fail(L, "boxes of rank %d, expected [N, 4]", boxes->rank);
    if (scores->rank >= 0 && scores->rank != 1) return ox_lower_fail(L, "scores of rank %d, expected [N]", scores->rank);
    int64_t zero = 0, zero_one[2] = {0, 1}, all = INT32_MAX, two = 2;
    ox_value *b = ox_out(ox_op(L, "Unsqueeze", 2, ox_cast(L, boxes, OX_FLOAT), ox_const_i64_1d(L, zero)));
    ox_value *s = ox_out(ox_op(L, "Unsqueeze", 2, ox_cast(L, scores, OX_FLOAT), ox_const_ints(L, 2, zero_one)));
    float thr = (float)iou;
    int64_t one = 1;
    ox_value *sel = ox_out(ox_op(L, "NonMaxSuppression", 4, ox_typed(b, OX_FLOAT), ox_typed(s, OX_FLOAT),
                                 ox_const_i64_1d(L, all), ox_const_tensor(L, OX_FLOAT, 1, &one, &thr)));
    ox_node *col = ox_op(L, "Gather", 2, ox_typed(sel, OX_INT64), ox_const_scalar(L, OX_INT64, (double)two));
    if (col) ox_node_set_int(L->g, col, "axis", 1);
    return ox_bind(L, 0, ox_typed(ox_out(col), OX_INT64));
}

/* torchvision::roi_align(input [N, C, H, W], rois [K, 5] as batch x1 y1 x2 y2, spatial_scale,
 * pooled_height, pooled_width, sampling_ratio, aligned) -> [K, C, ph, pw], each bin the average
 * of bilinear samples. RoiAlign takes the batch column apart, as int64. Its modes are
 * torchvision's: aligned shifts by half a pixel ("half_pixel"); unaligned keeps the legacy pixel
 * model ("output_half_pixel"), with ROIs at least 1 x 1; a sampling ratio of 0 or less means
 * ceil(roi size / bins) samples per bin in both. ONNX Runtime computes in float or double. */
int lower_roi_align(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *rois = ox_arg_value(L, 1);
    double scale = ox_arg_float(L, 2, 1.0);
    int64_t ph = ox_arg_int(L, 3, 1), pw = ox_arg_int(L, 4, 1), ratio = ox_arg_int(L, 5, -1);
    bool aligned = ox_arg_bool(L, 6, false);
    if (!x || !rois) return ox_bind(L, 0, NULL);
    if (x->rank >= 0 && x->rank != 4) return ox_lower_fail(L, "input of rank %d, expected [N, C, H, W]", x->rank);
    if (rois->rank >= 0 && rois->rank != 2) return ox_lower_fail(L, "rois of rank %d, expected [K, 5]", rois->rank);
    if (ph <= 0 || pw <= 0)
        return ox_lower_fail(L, "pooled size %lld x %lld", (long long)ph, (long long)pw);
    ox_dtype t = x->dtype, wt = t == OX_DOUBLE ? OX_DOUBLE : OX_FLOAT;
    int64_t one = 1, five = 5, axis1 = 1;
    ox_value *r = ox_typed(ox_cast(L, rois, wt), wt);
    ox_node *col = ox_op(L, "Gather", 2, r, ox_const_scalar(L, OX_INT64, 0));
    if (col) ox_node_set_int(L->g, col, "axis", 1);
    ox_value *batch = ox_typed(ox_cast(L, ox_typed(ox_out(col), wt), OX_INT64), OX_INT64);
    ox_value *box = ox_op_typed(L, "Slice", wt, 4, r, ox_const_i64_1d(L, one), ox_const_i64_1d(L, five),
                                ox_const_i64_1d(L, axis1));
    ox_node *n = ox_op(L, "RoiAlign", 3, ox_typed(ox_cast(L, x, wt), wt), box, batch);
    if (!n) return ox_bind(L, 0, NULL);
    ox_node_set_string(L->g, n, "coordinate_transformation_mode", aligned ? "half_pixel" : "output_half_pixel");
    ox_node_set_int(L->g, n, "output_height", ph);
    ox_node_set_int(L->g, n, "output_width", pw);
    ox_node_set_int(L->g, n, "sampling_ratio", ratio > 0 ? ratio : 0);
    ox_node_set_float(L->g, n, "spatial_scale", (float)scale);
    return ox_bind(L, 0, ox_cast(L, ox_typed(ox_out(n), wt), t));
}

/* An empty int64 tensor: the outputs _unique2 was not asked for. */
static ox_value *empty(ox_lower *L) {
    int64_t n = 0, none = 0;
    return ox_const_tensor(L, OX_INT64, 1, &n, &none);
}

/* _unique2(self, sorted, return_inverse, return_counts) -> (values, inverse, counts): the
 * distinct values of the flattened input, in increasing order (torch's CPU kernel sorts whatever
 * `sorted` says), the index of each input element among them (shaped like the input) and how
 * often each occurs. ONNX Runtime's Unique takes float and int64: other dtypes go through one of
 * them, which holds their values exactly. */
int lower_unique2(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    bool inverse = ox_arg_bool(L, 2, false), counts = ox_arg_bool(L, 3, false);
    if (!x) return ox_bind(L, 0, NULL);
    ox_dtype t = x->dtype;
    ox_dtype wt = t == OX_FLOAT || t == OX_INT64 ? t : ox_dtype_is_float(t) ? OX_FLOAT : OX_INT64;
    if (t == OX_DOUBLE) wt = OX_DOUBLE;
    int64_t flat = -1;
    ox_value *xf = ox_typed(ox_reshape(L, ox_cast(L, x, wt), 1, &flat), wt);
    ox_node *u = ox_opn(L, "Unique", 4, 1, xf);
    if (!u) return ox_bind(L, 0, NULL);
    ox_node_set_int(L->g, u, "sorted", 1);
    int rc = ox_bind(L, 0, ox_cast(L, ox_typed(u->outputs[0], wt), t));
    if (rc != OX_OK || L->node->noutputs < 2) return rc;
    ox_value *inv = empty(L);
    if (inverse) {
        ox_value *shape = ox_unary(L, "Shape", x, OX_INT64);
        inv = ox_binary(L, "Reshape", ox_typed(u->outputs[2], OX_INT64), shape, OX_INT64);
    }
    rc = ox_bind(L, 1, inv);
    if (rc != OX_OK || L->node->noutputs < 3) return rc;
    return ox_bind(L, 2, counts ? ox_typed(u->outputs[3], OX_INT64) : empty(L));
}

/* unfold(self, dimension, size, step): every window of `size` elements along the dim, `step`
 * apart, in a new last dim. One Gather with the windows' [count, size] index matrix (static
 * sizes), then the window axis moved last. */
int lower_unfold(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t dim = ox_arg_int(L, 1, 0), size = ox_arg_int(L, 2, 1), step = ox_arg_int(L, 3, 1);
    if (!x) return ox_bind(L, 0, NULL);
    if (size < 0 || step <= 0) return ox_lower_fail(L, "size %lld, step %lld", (long long)size, (long long)step);
    if (x->rank == 0) {   /* a 0-d tensor has one window of one element */
        if (size > 1) return ox_lower_fail(L, "size %lld for a 0-d tensor", (long long)size);
        int64_t one = size;
        return ox_bind(L, 0, ox_typed(ox_reshape(L, x, 1, &one), x->dtype));
    }
    if (!ox_norm_dim(L, &dim, x->rank, "dimension")) return OX_ELOWER;
    if (x->rank > 16) return ox_lower_unsupported(L, "unfold of a rank-%d tensor", x->rank);
    if (!x->dims || x->dims[dim].param || x->dims[dim].value < 0)
        return ox_lower_unsupported(L, "unfold over a symbolic size");
    int64_t len = x->dims[dim].value;
    if (size > len) return ox_lower_fail(L, "size %lld is larger than the dim (%lld)", (long long)size, (long long)len);
    int64_t count = (len - size) / step + 1;
    if (count * size > (1 << 24)) return ox_lower_unsupported(L, "unfold into over 16M indices");
    int64_t n = count * size;
    int64_t *idx = ox_arena_array(L->g->arena, (size_t)(n > 0 ? n : 1), sizeof *idx);
    if (!idx) return ox_bind(L, 0, NULL);
    for (int64_t i = 0; i < count; i++)
        for (int64_t j = 0; j < size; j++) idx[i * size + j] = i * step + j;
    int64_t dims[2] = {count, size};
    ox_node *gt = ox_op(L, "Gather", 2, x, ox_const_tensor(L, OX_INT64, 2, dims, idx));
    if (!gt) return ox_bind(L, 0, NULL);
    ox_node_set_int(L->g, gt, "axis", dim);
    ox_value *r = ox_typed(ox_out(gt), x->dtype);
    if (dim + 1 == x->rank) return ox_bind(L, 0, r);   /* the window axis is last already */
    int64_t perm[17];
    int p = 0;
    for (int k = 0; k <= x->rank; k++)
        if (k != dim + 1) perm[p++] = k;
    perm[p++] = dim + 1;
    ox_node *t = ox_op(L, "Transpose", 1, r);
    if (t) ox_node_set_ints(L->g, t, "perm", perm, p);
    return ox_bind(L, 0, ox_typed(ox_out(t), x->dtype));
}
