/*
 * detect.c — what detection models call beside convolutions: torchvision's nms as ONNX
 * NonMaxSuppression and roi_align as RoiAlign.
 */
#include "lower/lower.h"

#include <math.h>
#include <stdint.h>

/* torchvision::nms(boxes [N, 4] as x1 y1 x2 y2, scores [N], iou_threshold) -> the kept indices,
 * by decreasing score. NonMaxSuppression works on [batch, N, 4] boxes and [batch, class, N]
 * scores and returns (batch, class, box) triples; the box column is the answer. It drops a box
 * whose IoU with a kept one is above the threshold, as torchvision does. */
int lower_nms(ox_lower *L) {
    ox_value *boxes = ox_arg_value(L, 0), *scores = ox_arg_value(L, 1);
    double iou = ox_arg_float(L, 2, 0.5);
    if (!boxes || !scores) return ox_bind(L, 0, NULL);
    if (boxes->rank >= 0 && boxes->rank != 2) return ox_lower_fail(L, "boxes of rank %d, expected [N, 4]", boxes->rank);
    if (scores->rank >= 0 && scores->rank != 1)
        return ox_lower_fail(L, "scores of rank %d, expected [N]", scores->rank);
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
    if (ph <= 0 || pw <= 0) return ox_lower_fail(L, "pooled size %lld x %lld", (long long)ph, (long long)pw);
    ox_dtype t = x->dtype, wt = t == OX_DOUBLE ? OX_DOUBLE : OX_FLOAT;
    int64_t one = 1, five = 5, axis1 = 1;
    ox_value *r = ox_typed(ox_cast(L, rois, wt), wt);
    ox_node *col = ox_op(L, "Gather", 2, r, ox_const_scalar(L, OX_INT64, 0));
    if (col) ox_node_set_int(L->g, col, "axis", 1);
    ox_value *batch = ox_typed(ox_cast(L, ox_typed(ox_out(col), wt), OX_INT64), OX_INT64);
    ox_value *box =
        ox_op_typed(L, "Slice", wt, 4, r, ox_const_i64_1d(L, one), ox_const_i64_1d(L, five), ox_const_i64_1d(L, axis1));
    ox_node *n = ox_op(L, "RoiAlign", 3, ox_typed(ox_cast(L, x, wt), wt), box, batch);
    if (!n) return ox_bind(L, 0, NULL);
    ox_node_set_string(L->g, n, "coordinate_transformation_mode", aligned ? "half_pixel" : "output_half_pixel");
    ox_node_set_int(L->g, n, "output_height", ph);
    ox_node_set_int(L->g, n, "output_width", pw);
    ox_node_set_int(L->g, n, "sampling_ratio", ratio > 0 ? ratio : 0);
    ox_node_set_float(L->g, n, "spatial_scale", (float)scale);
    return ox_bind(L, 0, ox_cast(L, ox_typed(ox_out(n), wt), t));
}
