/* tensor.c — the element codec and tensor creation (tensor.h). */
#include "ir/tensor.h"

#include <math.h>
#include <string.h>

ox_domain ox_dtype_domain(ox_dtype t) {
    switch (t) {
    case OX_FLOAT:
    case OX_DOUBLE:
    case OX_FLOAT16:
    case OX_BFLOAT16: return OX_DOMAIN_FLOAT;
    case OX_INT8:
    case OX_INT16:
    case OX_INT32:
    case OX_INT64: return OX_DOMAIN_SIGNED;
    case OX_UINT8:
    case OX_UINT16:
    case OX_UINT32:
    case OX_UINT64: return OX_DOMAIN_UNSIGNED;
    case OX_BOOL: return OX_DOMAIN_BOOL;
    default: return OX_DOMAIN_NONE;
    }
}

double ox_f16_to_double(uint16_t h) {
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m | 0x400, e - 25);
    return h & 0x8000 ? -v : v;
}

double ox_bf16_to_double(uint16_t h) {
    uint32_t b = (uint32_t)h << 16;
    float x;
    memcpy(&x, &b, 4);
    return x;
}

/* x rounded to nearest even into a 16-bit binary format with `mbits` mantissa bits (float16: 10,
 * bfloat16: 7), straight from double: one rounding, where going through float would round twice. */
static uint16_t small_float(double x, int mbits) {
    int ebits = 15 - mbits, bias = (1 << (ebits - 1)) - 1;
    uint32_t sign = signbit(x) ? 0x8000u : 0, inf = ((1u << ebits) - 1) << mbits;
    if (isnan(x)) return (uint16_t)(sign | inf | (1u << (mbits - 1)));
    x = fabs(x);
    if (isinf(x)) return (uint16_t)(sign | inf);
    int e;
    (void)frexp(x, &e); /* x in [2^(e-1), 2^e) */
    int exp = e - 1 < 1 - bias ? 1 - bias : e - 1; /* subnormals share the smallest scale */
    double m = nearbyint(ldexp(x, mbits - exp)); /* significand with its leading bit */
    if (m >= ldexp(1, mbits + 1)) {
        m = ldexp(m, -1);
        exp++;
    } /* rounded up to the next binade */
    if (exp > bias) return (uint16_t)(sign | inf);
    uint32_t mi = (uint32_t)m;
    if (mi < (1u << mbits)) return (uint16_t)(sign | mi); /* subnormal or zero */
    return (uint16_t)(sign | ((uint32_t)(exp + bias) << mbits) | (mi - (1u << mbits)));
}

uint16_t ox_f16_from_double(double x) { return small_float(x, 10); }
uint16_t ox_bf16_from_double(double x) { return small_float(x, 7); }

/* 0x1.ffffffp127 is FLT_MAX plus half an ulp, the first value that rounds to infinity. */
float ox_float_from_double(double x) {
    if (isfinite(x) && fabs(x) >= 0x1.ffffffp127) return x > 0 ? INFINITY : -INFINITY;
    return (float)x;
}

ox_number ox_elem_load(ox_dtype t, const void *src) {
    const unsigned char *p = src;
    ox_number v = {.u = 0};
    switch (t) {
    case OX_FLOAT: {
        float x;
        memcpy(&x, p, 4);
        v.f = x;
        break;
    }
    case OX_DOUBLE: memcpy(&v.f, p, 8); break;
    case OX_FLOAT16: {
        uint16_t h;
        memcpy(&h, p, 2);
        v.f = ox_f16_to_double(h);
        break;
    }
    case OX_BFLOAT16: {
        uint16_t h;
        memcpy(&h, p, 2);
        v.f = ox_bf16_to_double(h);
        break;
    }
    case OX_INT8: {
        int8_t x;
        memcpy(&x, p, 1);
        v.i = x;
        break;
    }
    case OX_INT16: {
        int16_t x;
        memcpy(&x, p, 2);
        v.i = x;
        break;
    }
    case OX_INT32: {
        int32_t x;
        memcpy(&x, p, 4);
        v.i = x;
        break;
    }
    case OX_INT64: memcpy(&v.i, p, 8); break;
    case OX_UINT8: v.u = *p; break;
    case OX_UINT16: {
        uint16_t x;
        memcpy(&x, p, 2);
        v.u = x;
        break;
    }
    case OX_UINT32: {
        uint32_t x;
        memcpy(&x, p, 4);
        v.u = x;
        break;
    }
    case OX_UINT64: memcpy(&v.u, p, 8); break;
    case OX_BOOL: v.u = *p != 0; break;
    default: break;
    }
    return v;
}

void ox_elem_store(ox_dtype t, void *dst, ox_number v) {
    unsigned char *p = dst;
    switch (t) {
    case OX_FLOAT: {
        float x = ox_float_from_double(v.f);
        memcpy(p, &x, 4);
        break;
    }
    case OX_DOUBLE: memcpy(p, &v.f, 8); break;
    case OX_FLOAT16: {
        uint16_t h = ox_f16_from_double(v.f);
        memcpy(p, &h, 2);
        break;
    }
    case OX_BFLOAT16: {
        uint16_t h = ox_bf16_from_double(v.f);
        memcpy(p, &h, 2);
        break;
    }
    case OX_INT8:
    case OX_UINT8: *p = (uint8_t)v.u; break;
    case OX_INT16:
    case OX_UINT16: {
        uint16_t x = (uint16_t)v.u;
        memcpy(p, &x, 2);
        break;
    }
    case OX_INT32:
    case OX_UINT32: {
        uint32_t x = (uint32_t)v.u;
        memcpy(p, &x, 4);
        break;
    }
    case OX_INT64:
    case OX_UINT64: memcpy(p, &v.u, 8); break;
    case OX_BOOL: *p = v.u != 0; break;
    default: break;
    }
}

double ox_elem_double(ox_dtype t, const void *p) {
    ox_number v = ox_elem_load(t, p);
    switch (ox_dtype_domain(t)) {
    case OX_DOMAIN_FLOAT: return v.f;
    case OX_DOMAIN_SIGNED: return (double)v.i;
    case OX_DOMAIN_UNSIGNED:
    case OX_DOMAIN_BOOL: return (double)v.u;
    default: return NAN;
    }
}

bool ox_elem_store_double(ox_dtype t, void *p, double x) {
    ox_number v = {.u = 0};
    switch (ox_dtype_domain(t)) {
    case OX_DOMAIN_FLOAT: v.f = x; break;
    case OX_DOMAIN_BOOL: v.u = x != 0; break;
    case OX_DOMAIN_SIGNED:
    case OX_DOMAIN_UNSIGNED:
        /* through int64, as torch turns a Python number into an integer tensor's element: truncated,
         * then wrapped to the type's width (ox_elem_store keeps the low bits); unsigned values from
         * 2^63 on keep their own bits; beyond that the int64/uint64 range saturates, NaN is 0 */
        x = trunc(x);
        if (isnan(x)) v.u = 0;
        else if (x >= 0x1p63 && ox_dtype_domain(t) == OX_DOMAIN_SIGNED) v.i = INT64_MAX;
        else if (x >= 0x1p64) v.u = UINT64_MAX;
        else if (x >= 0x1p63) v.u = (uint64_t)x;
        else if (x < -0x1p63) v.i = INT64_MIN;
        else v.i = (int64_t)x;
        break;
    default: return false;
    }
    ox_elem_store(t, p, v);
    return true;
}

ox_tensor *ox_tensor_new(ox_graph *g, ox_dtype dtype, int rank, const int64_t *dims) {
    size_t es = ox_dtype_size(dtype);
    if (!g || rank < 0 || rank > OX_MAX_RANK || (rank && !dims) || !es) return NULL;
    size_t numel = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return NULL;
        if (dims[i] && numel > SIZE_MAX / es / (uint64_t)dims[i]) return NULL;
        numel *= (size_t)dims[i];
    }
    ox_tensor *t = ox_arena_alloc(g->arena, sizeof *t);
    int64_t *d = rank ? ox_arena_array(g->arena, (size_t)rank, sizeof *d) : NULL;
    size_t nbytes = numel * es;
    void *data = t && (d || !rank) ? ox_arena_alloc(g->arena, nbytes ? nbytes : 1) : NULL;
    if (!data) {
        ox_graph_status(g);
        return NULL;
    }
    if (rank) memcpy(d, dims, (size_t)rank * sizeof *d);
    *t = (ox_tensor){.dtype = dtype, .rank = rank, .dims = d, .data = data, .nbytes = nbytes, .storage = OX_DATA_OWNED};
    return t;
}
