/*
 * pool.c — pooling: max_pool{1,2,3}d (with indices), avg_pool{1,2,3}d and adaptive_avg_pool{1,2,3}d,
 * as MaxPool, AveragePool and GlobalAveragePool; adaptive pooling to sizes that do not divide the
 * input becomes averaging matrices. Unbatched inputs get a batch dim (ox_batch_in).
 */
#include "lower/lower.h"

#include <math.h>
#include <stdint.h>

/* Pool attributes from (kernel_size, stride, padding[, dilation]) at arguments 1.. */
typedef struct pool_attrs {
    int64_t kernel[OX_MAX_SPATIAL], stride[OX_MAX_SPATIAL], pads[2 * OX_MAX_SPATIAL], dil[OX_MAX_SPATIAL];
} pool_attrs;

static bool pool_args(ox_lower *L, int nsp, bool has_dilation, pool_attrs *p) {
    int64_t pad[OX_MAX_SPATIAL];
    if (!ox_arg_ints_n(L, 1, nsp, p->kernel, 0, "kernel_size")) return false;
    for (int k = 0; k < nsp; k++)
        if (p->kernel[k] <= 0) {
            ox_lower_fail(L, "kernel_size %lld (must be positive)", (long long)p->kernel[k]);
            return false;
        }
    /* An empty stride means the kernel size. */
    if (!ox_arg_ints_n(L, 2, nsp, p->stride, 0, "stride") || !ox_arg_ints_n(L, 3, nsp, pad, 0, "padding")) return false;
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
        if (x->rank < nsp || !ox_static_dim(x, x->rank - nsp + k, &in) || in > INT32_MAX || s <= 0) return false;
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
static bool ceil_mode_for(const ox_lower *L, const ox_value *x, int nsp, pool_attrs *p, bool pads_counted,
                          int64_t *want, bool *trim) {
    int64_t old[OX_MAX_SPATIAL], end[OX_MAX_SPATIAL];
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
    int64_t zeros[OX_MAX_SPATIAL] = {0}, axes[OX_MAX_SPATIAL];
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

/* ---- max and average pooling ---- */

/* max_pool{1,2,3}d[_with_indices](self, kernel_size, stride, padding, dilation, ceil_mode).
 * torch's indices count within each (n, c) plane; ONNX's over the whole tensor: mod plane size. */
static int max_pool(ox_lower *L, int nsp) {
    pool_attrs p;
    ox_value *x0 = ox_arg_value(L, 0);
    if (!x0 || !pool_args(L, nsp, true, &p)) return ox_bind(L, 0, NULL);
    bool unbatched, indices = L->node->noutputs > 1, ceil = ox_arg_bool(L, 5, false), trim = false;
    int64_t want[OX_MAX_SPATIAL];
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
    if (!ox_arg_is_none(L, 6)) return ox_lower_unsupported(L, "avg_pool with divisor_override");
    if (!x0 || !pool_args(L, nsp, false, &p)) return ox_bind(L, 0, NULL);
    /* ceil_mode windows that overhang the padding: ONNX Runtime 1.32 clips them before counting,
     * as torch does. */
    bool ceil = ox_arg_bool(L, 4, false), include_pad = ox_arg_bool(L, 5, true), trim = false;
    int64_t want[OX_MAX_SPATIAL];
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

/* ---- adaptive average pooling ---- */

/* Adaptive average pooling with windows of unequal size (static sizes): bin i of an axis averages
 * inputs [floor(i in / out), ceil((i + 1) in / out)), which is a constant [out, in] matrix. Each
 * spatial axis is moved last, multiplied by that matrix transposed, and moved back. */
static int adaptive_avg_matmul(ox_lower *L, ox_value *x, int nsp, const int64_t *out) {
    ox_dtype t = x->dtype;
    if (!ox_dtype_is_float(t)) return ox_lower_unsupported(L, "adaptive pooling of %s", ox_dtype_name(t));
    int r = x->rank;
    if (r > OX_MAX_RANK) return ox_lower_fail(L, "input of rank %d", r);
    ox_dtype ct = ox_work_dtype(t);
    ox_value *y = ox_cast(L, x, ct);
    for (int k = 0; k < nsp; k++) {
        int axis = r - nsp + k;
        int64_t in = x->dims[axis].value, o = out[k];
        if (in < 1 || in > (1 << 16) || o > (1 << 16) || in * o > (1 << 24))
            return ox_lower_unsupported(L, "adaptive pooling of %lld to %lld", (long long)in, (long long)o);
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
    int64_t out[OX_MAX_SPATIAL];
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
