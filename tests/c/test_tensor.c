/* The element codec and tensor creation (ir/tensor.h). float16 both ways over every bit pattern
 * against an exact oracle (the value rebuilt from its fields; the nearest float16 found by search);
 * tests/python/test_tensor_codec.py compares the same conversions with numpy's and ml_dtypes'. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "ir/tensor.h"

/* float16 bits → value, from the definition: (-1)^s * 2^(e-15) * 1.m, subnormals 2^-14 * 0.m. */
static double f16_oracle(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? m / 1024.0 * pow(2, -14) : e == 31 ? (m ? NAN : INFINITY) : (1 + m / 1024.0) * pow(2, e - 15);
    return s ? -v : v;
}

static void test_f16_every_value(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        double v = ox_f16_to_double((uint16_t)h), o = f16_oracle((uint16_t)h);
        if (!(v == o || (isnan(v) && isnan(o))) || signbit(v) != signbit(o)) bad++;
        /* every finite value and infinity comes back as itself; NaN as a NaN */
        uint16_t back = ox_f16_from_double(v);
        if (isnan(v) ? (back & 0x7c00) != 0x7c00 || !(back & 0x3ff) : back != h) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

/* Halfway between two neighbouring float16 values a and b rounds to the one with an even
 * mantissa; a hair either side rounds to the nearer. Over every finite positive pair. */
static void test_f16_rounding(void) {
    int bad = 0;
    for (uint16_t a = 0; a < 0x7bff; a++) {
        uint16_t b = (uint16_t)(a + 1);
        double va = ox_f16_to_double(a), vb = ox_f16_to_double(b), mid = (va + vb) / 2;
        uint16_t even = (a & 1) ? b : a;
        if (ox_f16_from_double(mid) != even) bad++;
        if (ox_f16_from_double(nextafter(mid, 0)) != a) bad++;
        if (ox_f16_from_double(nextafter(mid, INFINITY)) != b) bad++;
        if (ox_f16_from_double(-mid) != (uint16_t)(even | 0x8000)) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* overflow: from 65520 (max + half an ulp) on, infinity; below it, 65504 */
    CHECK_EQ_INT(ox_f16_from_double(65520.0), 0x7c00);
    CHECK_EQ_INT(ox_f16_from_double(nextafter(65520.0, 0)), 0x7bff);
    CHECK_EQ_INT(ox_f16_from_double(-1e300), 0xfc00);
    /* below half the smallest subnormal, zero keeping the sign; at it, ties to even (zero) */
    CHECK_EQ_INT(ox_f16_from_double(ldexp(1, -25)), 0);
    CHECK_EQ_INT(ox_f16_from_double(nextafter(ldexp(1, -25), 1)), 1);
    CHECK_EQ_INT(ox_f16_from_double(-0.0), 0x8000);
    /* one rounding: 1 + 2^-11 + 2^-40 is just above the halfway point between 1 and 1 + 2^-10;
     * through float (24 bits) it would be exactly halfway and round down to 1 */
    CHECK_EQ_INT(ox_f16_from_double(1 + ldexp(1, -11) + ldexp(1, -40)), 0x3c01);
}

static void test_bf16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        double v = ox_bf16_to_double((uint16_t)h);
        uint32_t bits = h << 16;
        float f;
        memcpy(&f, &bits, 4);
        if (!(v == f || (isnan(v) && isnan(f)))) bad++;
        uint16_t back = ox_bf16_from_double(v);
        if (isnan(v) ? (back & 0x7f80) != 0x7f80 || !(back & 0x7f) : back != h) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(ox_bf16_from_double(1 + ldexp(1, -8)), 0x3f80); /* tie to even: 1 */
    CHECK_EQ_INT(ox_bf16_from_double(1 + 3 * ldexp(1, -8)), 0x3f82); /* tie to even: up */
    CHECK_EQ_INT(ox_bf16_from_double(1 + ldexp(1, -8) + ldexp(1, -30)), 0x3f81); /* one rounding */
    CHECK_EQ_INT(ox_bf16_from_double(-INFINITY), 0xff80);
}

static void test_elements(void) {
    unsigned char b[8];
    CHECK(ox_elem_store_double(OX_UINT8, b, -1) && b[0] == 255); /* wraps, as torch */
    CHECK(ox_elem_store_double(OX_INT8, b, 300.7) && (int8_t)b[0] == 44);
    CHECK(ox_elem_store_double(OX_INT32, b, -2.9) && ox_elem_double(OX_INT32, b) == -2);
    CHECK(ox_elem_store_double(OX_INT64, b, 1e300) && ox_elem_load(OX_INT64, b).i == INT64_MAX);
    CHECK(ox_elem_store_double(OX_INT64, b, -1e300) && ox_elem_load(OX_INT64, b).i == INT64_MIN);
    CHECK(ox_elem_store_double(OX_UINT64, b, 0x1p63) && ox_elem_load(OX_UINT64, b).u == (uint64_t)1 << 63);
    CHECK(ox_elem_store_double(OX_INT16, b, NAN) && ox_elem_double(OX_INT16, b) == 0);
    CHECK(ox_elem_store_double(OX_BOOL, b, 0.5) && b[0] == 1);
    CHECK(ox_elem_store_double(OX_FLOAT, b, 1e39) && isinf(ox_elem_double(OX_FLOAT, b)));
    uint16_t h;
    CHECK(ox_elem_store_double(OX_FLOAT16, b, 0.1) && (memcpy(&h, b, 2), h == 0x2e66));
    CHECK(ox_elem_store_double(OX_DOUBLE, b, 0.1) && ox_elem_double(OX_DOUBLE, b) == 0.1);
    CHECK(!ox_elem_store_double(OX_STRING, b, 1) && !ox_elem_store_double(OX_COMPLEX64, b, 1));
    CHECK(isnan(ox_elem_double(OX_STRING, b)));
    b[0] = 7;
    CHECK(ox_elem_double(OX_BOOL, b) == 1);
    CHECK_EQ_INT(ox_dtype_domain(OX_UINT16), OX_DOMAIN_UNSIGNED);
    CHECK_EQ_INT(ox_dtype_domain(OX_BFLOAT16), OX_DOMAIN_FLOAT);
    CHECK_EQ_INT(ox_dtype_domain(OX_COMPLEX128), OX_DOMAIN_NONE);
    /* wrap-around stores keep the low bits */
    ox_elem_store(OX_UINT16, b, (ox_number){.i = -1});
    CHECK(ox_elem_load(OX_UINT16, b).u == 0xffff);
    CHECK(ox_float_from_double(0x1.ffffffp127) == INFINITY && ox_float_from_double(0x1.fffffefp127) < INFINITY);
}

static void test_tensor_new(ox_graph *g) {
    int64_t d[2] = {3, 4};
    ox_tensor *t = ox_tensor_new(g, OX_FLOAT, 2, d);
    CHECK(t && t->nbytes == 48 && t->storage == OX_DATA_OWNED && t->dims != d);
    if (t) {
        const float *f = t->data;
        CHECK(f[0] == 0 && f[11] == 0);
    }
    int64_t big[2] = {INT64_MAX / 2, 4}, neg[1] = {-1};
    CHECK(ox_tensor_new(g, OX_FLOAT, 2, big) == NULL); /* byte count overflows */
    CHECK(ox_tensor_new(g, OX_FLOAT, 1, neg) == NULL);
    CHECK(ox_tensor_new(g, OX_STRING, 1, d) == NULL);
    CHECK(ox_tensor_new(g, OX_FLOAT, OX_MAX_RANK + 1, NULL) == NULL);
    int64_t ones[OX_MAX_RANK];
    for (int i = 0; i < OX_MAX_RANK; i++) ones[i] = 1;
    CHECK(ox_tensor_new(g, OX_INT8, OX_MAX_RANK, ones) != NULL);
    CHECK(ox_tensor_new(g, OX_INT8, OX_MAX_RANK + 1, ones) == NULL);
    int64_t z[2] = {0, INT64_MAX};
    t = ox_tensor_new(g, OX_DOUBLE, 2, z); /* empty, whatever the other dim */
    CHECK(t && t->nbytes == 0 && t->data != NULL);
    int64_t over[1] = {(64 << 20) / 4 + 1}; /* no size policy here: folding has one */
    CHECK(ox_tensor_new(g, OX_FLOAT, 1, over) != NULL);
    CHECK(!ox_graph_failed(g));
}

int main(void) {
    test_f16_every_value();
    test_f16_rounding();
    test_bf16();
    test_elements();
    ox_graph *g = ox_graph_new(20);
    test_tensor_new(g);
    ox_graph_free(g);
    return CHECK_DONE();
}
