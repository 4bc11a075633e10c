/*
 * tensor.h — tensor elements by dtype, and new tensors. The one place the core converts between an
 * element's bytes and a number, so float16/bfloat16 rounding has one definition and one test
 * (tests/c/test_tensor.c; tests/python/test_tensor_codec.py checks every float16 against numpy).
 *
 *     ox_number v = ox_elem_load(OX_FLOAT16, p);      // v.f: the exact value, widened to double
 *     ox_elem_store(OX_BFLOAT16, q, v);               // rounded once, to nearest even
 *     double d = ox_elem_double(t->dtype, p);         // any numeric dtype as a double
 *     ox_tensor *t = ox_tensor_new(g, OX_INT64, 1, &n);   // OWNED, zeroed, in g's arena
 *
 * Domains: floating dtypes load into .f (double holds float16, bfloat16, float and double exactly);
 * signed integers into .i; unsigned integers and bool into .u. Stores round a double once (no
 * detour through float), overflow to infinity as IEEE does, and keep an integer's low bits (numpy's
 * wrap-around).
 */
#ifndef OX_TENSOR_H
#define OX_TENSOR_H

#include "ir/ir.h"

typedef union ox_number {
    double f;
    int64_t i;
    uint64_t u;
} ox_number;

/* Which member of ox_number a dtype loads into. */
typedef enum ox_domain {
    OX_DOMAIN_NONE = 0, /* undefined, string, complex: no scalar elements */
    OX_DOMAIN_FLOAT,
    OX_DOMAIN_SIGNED,
    OX_DOMAIN_UNSIGNED,
    OX_DOMAIN_BOOL,
} ox_domain;
ox_domain ox_dtype_domain(ox_dtype t);

/* The 16-bit float formats. from_double rounds to nearest even, once; NaN keeps its sign and
 * becomes the quiet NaN. */
double ox_f16_to_double(uint16_t h);
uint16_t ox_f16_from_double(double x);
double ox_bf16_to_double(uint16_t h);
uint16_t ox_bf16_from_double(double x);
/* double to float, rounding once, with IEEE overflow to infinity (C leaves it undefined). */
float ox_float_from_double(double x);

/* One element at p (unaligned is fine). Non-numeric dtypes load as zero and store nothing. */
ox_number ox_elem_load(ox_dtype t, const void *p);
void ox_elem_store(ox_dtype t, void *p, ox_number v);

/* An element as a double (NaN for non-numeric dtypes; 64-bit integers beyond 2^53 round). */
double ox_elem_double(ox_dtype t, const void *p);
/* Stores the number x as dtype t: floats rounded once; integers truncated toward zero and wrapped
 * to the type's width, as torch stores a Python number into an integer tensor (-1 as uint8 is
 * 255), saturating only beyond the 64-bit range (NaN stores 0); bool is x != 0. False for
 * non-numeric dtypes. */
bool ox_elem_store_double(ox_dtype t, void *p, double x);

/* A new OWNED tensor of this dtype and shape in g's arena, bytes zeroed. NULL when the shape is
 * invalid (negative dim, rank over OX_MAX_RANK, element count overflowing size_t, a dtype without
 * fixed-size elements) or on out of memory (then recorded in g->err). No size policy: callers that
 * limit what they make (folding) check before asking. */
ox_tensor *ox_tensor_new(ox_graph *g, ox_dtype dtype, int rank, const int64_t *dims);

#endif
