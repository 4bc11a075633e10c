/*
 * resize.c — resampling: F.interpolate's upsample ops as ONNX Resize (opset 18+, with `axes`), and
 * grid_sample as GridSample.
 *
 * torch's coordinate rules map onto Resize attributes:
 *   nearest          src = floor(dst * in / out)         asymmetric, nearest_mode floor
 *   nearest-exact    src = floor((dst + 0.5) * in / out) half_pixel, nearest_mode round_prefer_ceil
 *   (bi/tri)linear   align_corners: align_corners; else pytorch_half_pixel
 *   bicubic          as linear, cubic_coeff_a -0.75 (torch's A)
 * An output size given as a list goes in as `sizes` (symbolic sizes become a Concat of their
 * values); scale factors go in as `scales`, which Resize applies exactly as torch does when it is
 * not asked to recompute them (output = floor(in * scale), coordinates divided by the scale).
 */
#include "lower/lower.h"

#include <math.h>

/* The output size list at argument i as a 1-D int64 value of n entries; NULL when None. */
static ox_value *sizes_arg(ox_lower *L, int i, int n, bool *failed) {
    const ox_arg *a = ox_arg_at(L, i);
    *failed = false;
    if (!a || a->kind == OX_ARG_NONE) return NULL;
    if (a->kind != OX_ARG_LIST || a->u.list.n != n) {
        *failed = true;
        ox_lower_fail(L, "argument %d (output_size) must list %d sizes", i, n);
        return NULL;
    }
    int64_t known[OX_MAX_SPATIAL];
    bool all_known = true;
    for (int k = 0; k < n; k++) {
        const ox_arg *e = &a->u.list.items[k];
        if (e->kind == OX_ARG_INT) known[k] = e->u.i;
        else if (e->kind == OX_ARG_VALUE) all_known = false;
        else {
            *failed = true;
            ox_lower_fail(L, "output_size item %d is not a size", k);
            return NULL;
        }
    }
    if (all_known) return ox_const_ints(L, n, known);
    ox_value *parts[OX_MAX_SPATIAL];
    for (int k = 0; k < n; k++) {
        const ox_arg *e = &a->u.list.items[k];
        if (e->kind == OX_ARG_INT) {
            parts[k] = ox_const_i64_1d(L, e->u.i);
            continue;
        }
        ox_value *v = e->u.ref < L->prog->nvalues ? L->prog->table[e->u.ref] : NULL;
        if (!v) {
            *failed = true;
            ox_lower_fail(L, "output_size item %d is not a value", k);
            return NULL;
        }
        int64_t one = 1;
        parts[k] = ox_typed(ox_reshape(L, ox_cast(L, v, OX_INT64), 1, &one), OX_INT64);
    }
    ox_node *c = ox_op_array(L, "Concat", 1, n, parts);
    if (c) ox_node_set_int(L->g, c, "axis", 0);
    return ox_typed(ox_out(c), OX_INT64);
}

/* upsample_*.vec (input, output_size?, [align_corners,] scale_factors?). */
static int resize(ox_lower *L, int nsp, const char *mode, int align_arg, bool exact) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank != nsp + 2) return ox_lower_fail(L, "input of rank %d, expected %d", x->rank, nsp + 2);
    bool align = align_arg >= 0 && ox_arg_bool(L, align_arg, false);
    int scales_arg = align_arg >= 0 ? 3 : 2;
    bool failed;
    ox_value *sizes = sizes_arg(L, 1, nsp, &failed), *scales = NULL;
    if (failed) return ox_bind(L, 0, NULL);
    if (!sizes) {
        const ox_arg *a = ox_arg_at(L, scales_arg);
        if (!a || a->kind != OX_ARG_LIST || a->u.list.n != nsp)
            return ox_lower_fail(L, "neither output_size nor %d scale factors given", nsp);
        float f[OX_MAX_SPATIAL];
        for (int k = 0; k < nsp; k++) {
            const ox_arg *e = &a->u.list.items[k];
            if (e->kind != OX_ARG_FLOAT && e->kind != OX_ARG_INT)
                return ox_lower_unsupported(L, "scale factor %d is not a number", k);
            f[k] = (float)(e->kind == OX_ARG_FLOAT ? e->u.f : (double)e->u.i);
            if (!(f[k] > 0)) return ox_lower_fail(L, "scale factor %g", (double)f[k]);
        }
        int64_t d = nsp;
        scales = ox_const_tensor(L, OX_FLOAT, 1, &d, f);
    }
    int64_t axes[OX_MAX_SPATIAL];
    for (int k = 0; k < nsp; k++) axes[k] = 2 + k;
    ox_dtype t = x->dtype; /* ONNX Runtime has no bfloat16 Resize: resized in float */
    ox_node *n = ox_op(L, "Resize", 4, t == OX_BFLOAT16 ? ox_cast(L, x, OX_FLOAT) : x, NULL, scales, sizes);
    if (!n) return ox_bind(L, 0, NULL);
    ox_node_set_ints(L->g, n, "axes", axes, nsp);
    ox_node_set_string(L->g, n, "mode", mode);
    if (mode[0] == 'n') {
        ox_node_set_string(L->g, n, "coordinate_transformation_mode", exact ? "half_pixel" : "asymmetric");
        ox_node_set_string(L->g, n, "nearest_mode", exact ? "round_prefer_ceil" : "floor");
    } else {
        ox_node_set_string(L->g, n, "coordinate_transformation_mode", align ? "align_corners" : "pytorch_half_pixel");
        if (mode[0] == 'c') ox_node_set_float(L->g, n, "cubic_coeff_a", -0.75f);
    }
    if (t != OX_BFLOAT16) return ox_bind(L, 0, ox_typed(ox_out(n), t));
    return ox_bind(L, 0, ox_cast(L, ox_typed(ox_out(n), OX_FLOAT), t));
}

int lower_upsample_nearest1d(ox_lower *L) { return resize(L, 1, "nearest", -1, false); }

int lower_upsample_nearest2d(ox_lower *L) { return resize(L, 2, "nearest", -1, false); }

int lower_upsample_nearest3d(ox_lower *L) { return resize(L, 3, "nearest", -1, false); }

int lower_upsample_nearest_exact1d(ox_lower *L) { return resize(L, 1, "nearest", -1, true); }

int lower_upsample_nearest_exact2d(ox_lower *L) { return resize(L, 2, "nearest", -1, true); }

int lower_upsample_nearest_exact3d(ox_lower *L) { return resize(L, 3, "nearest", -1, true); }

int lower_upsample_linear1d(ox_lower *L) { return resize(L, 1, "linear", 2, false); }

int lower_upsample_bilinear2d(ox_lower *L) { return resize(L, 2, "linear", 2, false); }

int lower_upsample_trilinear3d(ox_lower *L) { return resize(L, 3, "linear", 2, false); }

int lower_upsample_bicubic2d(ox_lower *L) { return resize(L, 2, "cubic", 2, false); }

/* ---- grid sampling ---- */

/* grid_sampler / grid_sampler_2d / grid_sampler_3d (input, grid, interpolation_mode,
 * padding_mode, align_corners): ONNX GridSample. Modes are ints in ATen: 0 bilinear, 1 nearest,
 * 2 bicubic; padding 0 zeros, 1 border, 2 reflection. Opset 20 renamed the modes (linear, cubic)
 * and added the volumetric case. */
int lower_grid_sampler(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *grid = ox_arg_value(L, 1);
    int64_t mode = ox_arg_int(L, 2, 0), padding = ox_arg_int(L, 3, 0);
    bool align = ox_arg_bool(L, 4, false);
    if (!x || !grid) return ox_bind(L, 0, NULL);
    bool v20 = L->g->opset >= 20;
    if (x->rank != 4 && !(x->rank == 5 && v20))
        return ox_lower_unsupported(L, "grid_sample of a rank-%d input at opset %d", x->rank, L->g->opset);
    static const char *const modes16[] = {"bilinear", "nearest", "bicubic"};
    static const char *const modes20[] = {"linear", "nearest", "cubic"};
    static const char *const pads[] = {"zeros", "border", "reflection"};
    if (mode < 0 || mode > 2 || padding < 0 || padding > 2)
        return ox_lower_fail(L, "interpolation_mode %lld, padding_mode %lld", (long long)mode, (long long)padding);
    if (x->rank == 5 && mode == 2) return ox_lower_unsupported(L, "bicubic sampling of a volume");
    ox_node *n = ox_op(L, "GridSample", 2, x, ox_cast(L, grid, x->dtype));
    if (n) {
        ox_node_set_string(L->g, n, "mode", v20 ? modes20[mode] : modes16[mode]);
        ox_node_set_string(L->g, n, "padding_mode", pads[padding]);
        ox_node_set_int(L->g, n, "align_corners", align);
    }
    return ox_bind(L, 0, ox_typed(ox_out(n), x->dtype));
}
