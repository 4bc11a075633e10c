/*
 * factory.c — tensor factories: arange, full/full_like/fill, zeros/ones (and empty, empty_strided,
 * which are zeros here), their _like and new_ forms, and scalar_tensor. A static shape torch
 * recorded is used as a constant, else the shape comes from the size argument or from Shape.
 */
#include "lower/lower.h"
#include "ir/tensor.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The dtypes whose fill value ConstantOfShape holds as they are; others (16-bit floats, unsigned
 * beyond uint8) fill as float and Cast. */
static bool fills_directly(ox_dtype t) {
    switch (t) {
    case OX_FLOAT:
    case OX_DOUBLE:
    case OX_INT64:
    case OX_INT32:
    case OX_INT16:
    case OX_INT8:
    case OX_UINT8:
    case OX_BOOL: return true;
    default: return false;
    }
}

/* A tensor of `shape` filled with argument `fill_arg` (or `fill` when fill_arg < 0), dtype t. */
static ox_value *filled(ox_lower *L, ox_value *shape, int fill_arg, double fill, ox_dtype t) {
    if (t == OX_UNDEFINED) {
        ox_lower_fail(L, "torch recorded no dtype for the output");
        return NULL;
    }
    const ox_arg *a = fill_arg >= 0 ? ox_arg_at(L, fill_arg) : NULL;
    if (a && a->kind == OX_ARG_VALUE) return ox_binary(L, "Expand", ox_arg_scalar(L, fill_arg, t), shape, t);
    if (a) fill = ox_arg_float(L, fill_arg, 0);
    unsigned char bytes[8];
    ox_dtype st = fills_directly(t) ? t : OX_FLOAT;
    ox_elem_store_double(st, bytes, fill);
    ox_node *n = ox_op(L, "ConstantOfShape", 1, shape);
    if (!n) return NULL;
    ox_node_set_tensor(L->g, n, "value", st, 1, (int64_t[]){1}, bytes);
    return ox_cast(L, ox_typed(ox_out(n), st), t);
}

/* The shape of output 0: static meta as a constant, else Shape(like) or the size argument. */
static ox_value *factory_shape(ox_lower *L, int size_arg, int like_arg) {
    int64_t dims[OX_MAX_RANK];
    int rank;
    bool has_zero;
    if (ox_out_static_shape(L, 0, dims, &rank)) return ox_const_ints(L, rank, dims);
    if (like_arg >= 0) return ox_shape_of(L, ox_arg_value(L, like_arg), 0, INT64_MAX);
    return ox_arg_sizes(L, size_arg, false, &has_zero);
}

/* full(size, fill_value, ...) */
int lower_full(ox_lower *L) { return ox_bind(L, 0, filled(L, factory_shape(L, 0, -1), 1, 0, ox_out_dtype(L, 0))); }

/* full_like(self, fill_value, ...), fill.Scalar(self, value) */
int lower_full_like(ox_lower *L) { return ox_bind(L, 0, filled(L, factory_shape(L, -1, 0), 1, 0, ox_out_dtype(L, 0))); }

/* zeros(size, ...), empty.memory_format(size, ...) */
int lower_zeros(ox_lower *L) { return ox_bind(L, 0, filled(L, factory_shape(L, 0, -1), -1, 0, ox_out_dtype(L, 0))); }

int lower_ones(ox_lower *L) { return ox_bind(L, 0, filled(L, factory_shape(L, 0, -1), -1, 1, ox_out_dtype(L, 0))); }

/* zeros_like(self, ...), empty_like(self, ...) */
int lower_zeros_like(ox_lower *L) {
    return ox_bind(L, 0, filled(L, factory_shape(L, -1, 0), -1, 0, ox_out_dtype(L, 0)));
}

int lower_ones_like(ox_lower *L) {
    return ox_bind(L, 0, filled(L, factory_shape(L, -1, 0), -1, 1, ox_out_dtype(L, 0)));
}

/* new_zeros(self, size, ...), new_empty(self, size, ...), new_ones, new_full(self, size, fill) */
int lower_new_zeros(ox_lower *L) {
    return ox_bind(L, 0, filled(L, factory_shape(L, 1, -1), -1, 0, ox_out_dtype(L, 0)));
}

int lower_new_ones(ox_lower *L) { return ox_bind(L, 0, filled(L, factory_shape(L, 1, -1), -1, 1, ox_out_dtype(L, 0))); }

int lower_new_full(ox_lower *L) { return ox_bind(L, 0, filled(L, factory_shape(L, 1, -1), 2, 0, ox_out_dtype(L, 0))); }

/* scalar_tensor(s, *, dtype, ...): a 0-d constant. */
int lower_scalar_tensor(ox_lower *L) {
    ox_dtype t = ox_out_dtype_required(L, 0);
    if (t == OX_UNDEFINED) return OX_ELOWER;
    return ox_bind(L, 0, ox_arg_scalar(L, 0, t));
}

/* ---- arange ---- */

/* A constant arange of n elements: exact int64 when every bound is an int, else computed in
 * double (as torch does for float32) and stored as double or float. */
static ox_value *arange_const(ox_lower *L, const ox_arg *b[3], int64_t n, ox_dtype t) {
    bool ints = ox_dtype_is_int(t) || t == OX_BOOL;
    for (int k = 0; k < 3; k++) ints &= b[k]->kind == OX_ARG_INT;
    ox_dtype st = ints ? OX_INT64 : t == OX_DOUBLE ? OX_DOUBLE : OX_FLOAT;
    double v[3];
    for (int k = 0; k < 3; k++) v[k] = b[k]->kind == OX_ARG_FLOAT ? b[k]->u.f : (double)b[k]->u.i;
    /* The bounds must give the size torch recorded; then no element overflows. */
    double count = v[2] != 0 ? ceil((v[1] - v[0]) / v[2]) : -1;
    if (!(count == (double)n || (n == 0 && count <= 0))) {
        ox_lower_fail(L, "arange(%g, %g, %g) does not have the %lld elements torch recorded", v[0], v[1], v[2],
                      (long long)n);
        return NULL;
    }
    void *data = ox_arena_array(L->g->arena, (size_t)(n ? n : 1), ox_dtype_size(st));
    if (!data) return NULL;
    for (int64_t i = 0; i < n; i++) {
        if (ints) {
            ((int64_t *)data)[i] = (int64_t)((uint64_t)b[0]->u.i + (uint64_t)i * (uint64_t)b[2]->u.i);
            continue;
        }
        double x = v[0] + (double)i * v[2];
        if (st == OX_DOUBLE) ((double *)data)[i] = x;
        else ((float *)data)[i] = (float)x;
    }
    return ox_cast(L, ox_const_tensor(L, st, 1, &n, data), t);
}

/* arange.default(end), arange.start(start, end), arange.start_step(start, end, step). */
int lower_arange(ox_lower *L) {
    const char *target = L->node->target;
    int nb = strstr(target, ".start_step") ? 3 : strstr(target, ".start") ? 2 : 1;
    ox_arg zero = {.kind = OX_ARG_INT, .u.i = 0}, one = {.kind = OX_ARG_INT, .u.i = 1};
    const ox_arg *b[3] = {&zero, NULL, &one}; /* start, end, step */
    for (int k = 0; k < nb; k++) {
        const ox_arg *a = ox_arg_at(L, k);
        if (!a || a->kind == OX_ARG_NONE) return ox_lower_fail(L, "argument %d of arange is None", k);
        if (a->kind != OX_ARG_INT && a->kind != OX_ARG_FLOAT && a->kind != OX_ARG_VALUE)
            return ox_lower_unsupported(L, "argument %d of arange is not a number", k);
        b[nb == 1 ? 1 : k] = a;
    }
    ox_dtype t = ox_out_dtype(L, 0);
    int64_t dims[OX_MAX_RANK];
    int rank;
    bool numbers = b[0]->kind != OX_ARG_VALUE && b[1]->kind != OX_ARG_VALUE && b[2]->kind != OX_ARG_VALUE;
    if (t == OX_UNDEFINED) return ox_lower_fail(L, "torch recorded no dtype for the output");
    if (numbers && ox_out_static_shape(L, 0, dims, &rank) && rank == 1 && dims[0] <= (1 << 24))
        return ox_bind(L, 0, arange_const(L, b, dims[0], t));
    /* Range runs on int16/32/64, float and double; others compute in float and cast. */
    ox_dtype rt = t;
    if (t != OX_INT16 && t != OX_INT32 && t != OX_INT64 && t != OX_FLOAT && t != OX_DOUBLE)
        rt = ox_dtype_is_int(t) ? OX_INT64 : OX_FLOAT;
    ox_value *v[3];
    for (int k = 0; k < 3; k++) {
        const ox_arg *a = b[k];
        if (a->kind == OX_ARG_VALUE) v[k] = ox_cast(L, ox_arg_value(L, nb == 1 ? 0 : k), rt);
        else v[k] = ox_const_scalar(L, rt, a->kind == OX_ARG_FLOAT ? a->u.f : (double)a->u.i);
    }
    return ox_bind(L, 0, ox_cast(L, ox_op_typed(L, "Range", rt, 3, v[0], v[1], v[2]), t));
}
