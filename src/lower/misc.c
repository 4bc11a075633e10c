/*
 * lower_misc.c — ops with a direct ONNX form that fit no family: einsum (Einsum), pixel_shuffle
 * (DepthToSpace in CRD order, which is torch's), pixel_unshuffle (its inverse, spelled with
 * Reshape and Transpose since SpaceToDepth inverts the other order), grid_sample (GridSample).
 */
#include "lower/lower.h"

#include <stdint.h>
#include <string.h>

enum { MAX_INPUTS = 64 };

/* einsum(equation, tensors[], *, path=None): the equation as torch takes it; spaces dropped. */
int lower_einsum(ox_lower *L) {
    const char *eq = ox_arg_string(L, 0, NULL);
    const ox_arg *list = ox_arg_at(L, 1);
    if (!eq) return ox_lower_fail(L, "argument 0 (equation) must be a string");
    if (!list || list->kind != OX_ARG_LIST || list->u.list.n < 1 || list->u.list.n > MAX_INPUTS)
        return ox_lower_fail(L, "argument 1 (operands) must be a list of 1 to %d tensors", MAX_INPUTS);
    size_t len = strlen(eq);
    char *clean = ox_arena_alloc(L->g->arena, len + 1);
    if (!clean) return ox_bind(L, 0, NULL);
    size_t w = 0;
    for (size_t i = 0; i < len; i++)
        if (eq[i] != ' ') clean[w++] = eq[i];
    clean[w] = 0;
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *in[MAX_INPUTS];
    int n = list->u.list.n;
    for (int k = 0; k < n; k++) {
        const ox_arg *e = &list->u.list.items[k];
        if (e->kind != OX_ARG_VALUE || e->u.ref >= L->prog->nvalues || !L->prog->table[e->u.ref])
            return ox_lower_fail(L, "operand %d is not a tensor", k);
        in[k] = L->prog->table[e->u.ref];
        if (t != OX_UNDEFINED) in[k] = ox_cast(L, in[k], t);
    }
    if (t == OX_BOOL) return ox_lower_unsupported(L, "einsum over bool");
    ox_node *e = ox_op_array(L, "Einsum", 1, n, in);
    if (e) ox_node_set_string(L->g, e, "equation", clean);
    return ox_bind(L, 0, ox_typed(ox_out(e), t != OX_UNDEFINED ? t : in[0]->dtype));
}

/* pixel_shuffle(self, upscale_factor): [.., C r^2, H, W] -> [.., C, H r, W r]. */
int lower_pixel_shuffle(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t r = ox_arg_int(L, 1, 1);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank != 4) return ox_lower_unsupported(L, "pixel_shuffle of a rank-%d input (4 is lowered)", x->rank);
    if (r < 1) return ox_lower_fail(L, "upscale_factor %lld", (long long)r);
    ox_node *d = ox_op(L, "DepthToSpace", 1, x);
    if (d) ox_node_set_int(L->g, d, "blocksize", r), ox_node_set_string(L->g, d, "mode", "CRD");
    return ox_bind(L, 0, ox_typed(ox_out(d), x->dtype));
}

/* pixel_unshuffle(self, downscale_factor): [N, C, H r, W r] -> [N, C r^2, H, W] (static C, H, W). */
int lower_pixel_unshuffle(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    int64_t r = ox_arg_int(L, 1, 1);
    if (!x) return ox_bind(L, 0, NULL);
    if (x->rank != 4 || !x->dims) return ox_lower_unsupported(L, "pixel_unshuffle of a rank-%d input (4 is lowered)", x->rank);
    if (r < 1) return ox_lower_fail(L, "downscale_factor %lld", (long long)r);
    for (int k = 1; k < 4; k++)
        if (x->dims[k].param || x->dims[k].value < 0) return ox_lower_unsupported(L, "pixel_unshuffle over symbolic sizes");
    int64_t c = x->dims[1].value, h = x->dims[2].value / r, w = x->dims[3].value / r;
    if (h * r != x->dims[2].value || w * r != x->dims[3].value)
        return ox_lower_fail(L, "sizes %lld x %lld do not divide by %lld", (long long)x->dims[2].value,
                             (long long)x->dims[3].value, (long long)r);
    int64_t six[6] = {0, c, h, r, w, r}, four[4] = {0, c * r * r, h, w};
    ox_value *v = ox_typed(ox_reshape(L, x, 6, six), x->dtype);
    ox_node *t = ox_op(L, "Transpose", 1, v);
    if (t) ox_node_set_ints(L->g, t, "perm", (const int64_t[]){0, 1, 3, 5, 2, 4}, 6);
    return ox_bind(L, 0, ox_typed(ox_reshape(L, ox_typed(ox_out(t), x->dtype), 4, four), x->dtype));
}

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
