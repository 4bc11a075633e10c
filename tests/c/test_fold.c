/* The folding kernels (fold.c) on cases worked out by hand: rounding, wrap-around, the edges of
 * Slice/Range/Reshape, malformed nodes, size limits and out of memory. ONNX's own backend cases run
 * in tests/python/test_fold_conformance.py. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "opt/fold.h"

static ox_graph *g;

static ox_tensor *tensor(ox_dtype dt, int rank, const int64_t *dims, const void *data) {
    ox_tensor *t = ox_tensor_new(g, dt, rank, dims);
    if (t && t->nbytes && data) memcpy((void *)t->data, data, t->nbytes);
    return t;
}

static ox_tensor *scalar_i64(int64_t v) { return tensor(OX_INT64, 0, NULL, &v); }

static ox_tensor *vec_i64(int n, const int64_t *v) {
    int64_t d = n;
    return tensor(OX_INT64, 1, &d, v);
}

static ox_tensor *vec_f32(int n, const float *v) {
    int64_t d = n;
    return tensor(OX_FLOAT, 1, &d, v);
}

static ox_node *node(const char *op, int nin) {
    ox_value *none[16] = {0};
    ox_node *n = ox_graph_add_node(g, op, NULL, nin, none, 1);
    ox_node_set_name(g, n, "n0");
    return n;
}

/* Runs n; the output, or NULL with *rc saying why. */
static ox_tensor *run(ox_node *n, const ox_tensor **in, ox_code *rc) {
    ox_tensor *out[1] = {NULL};
    ox_code code = ox_fold_eval(g, n, in, out);
    if (rc) *rc = code;
    return code == OX_OK ? out[0] : NULL;
}

/* Expects n to be refused as malformed with a message naming the node (n0, n0_1, ...) and
 * containing `what`, then clears the error. */
static void expect_einval(ox_node *n, const ox_tensor **in, const char *what, int line) {
    ox_code rc;
    ox_tensor *t = run(n, in, &rc);
    if (t || rc != OX_EINVAL || !strstr(g->err.msg, what) || !strstr(g->err.msg, "node 'n0")) {
        fprintf(stderr, "%s:%d: expected EINVAL with \"%s\", got %s \"%s\"\n", __FILE__, line, what, ox_code_name(rc),
                g->err.msg);
        check_failures++;
    }
    ox_error_clear(&g->err);
}
#define EXPECT_EINVAL(n, in, what) expect_einval((n), (in), (what), __LINE__)

/* Declined quietly: OX_EUNSUPPORTED and no error recorded. */
#define EXPECT_DECLINED(n, in) \
    do { \
        ox_code rc_; \
        CHECK(run((n), (in), &rc_) == NULL); \
        CHECK_EQ_INT(rc_, OX_EUNSUPPORTED); \
        CHECK_EQ_INT(g->err.code, OX_OK); \
    } while (0)

static int64_t i64_at(const ox_tensor *t, int64_t k) {
    int64_t v;
    memcpy(&v, (const char *)t->data + k * 8, 8);
    return v;
}

static uint16_t u16_at(const ox_tensor *t, int64_t k) {
    uint16_t v;
    memcpy(&v, (const char *)t->data + k * 2, 2);
    return v;
}

/* Folding makes no output over 64 MiB (ox_tensor_new itself has no such limit: test_tensor.c). */
static void test_output_limit(void) {
    float one = 1;
    int64_t over = (64 << 20) / 4 + 1, exact = (64 << 20) / 4;
    const ox_tensor *in[2] = {tensor(OX_FLOAT, 0, NULL, &one), vec_i64(1, &over)};
    EXPECT_DECLINED(node("Expand", 2), in); /* just over 64 MiB */
    in[1] = vec_i64(1, &exact);
    ox_tensor *t = run(node("Expand", 2), in, NULL); /* exactly 64 MiB */
    CHECK(t && t->nbytes == (size_t)64 << 20);
    CHECK(!ox_graph_failed(g));
}

static void test_dispatch(void) {
    float x[2] = {1, 2};
    const ox_tensor *in[3] = {vec_f32(2, x), vec_f32(2, x), NULL};
    CHECK(ox_fold_has_kernel("Add") && ox_fold_has_kernel("ReduceSum") && ox_fold_has_kernel("Slice"));
    CHECK(!ox_fold_has_kernel("ConstantOfShape") && !ox_fold_has_kernel("RandomNormal"));
    CHECK(!ox_fold_has_kernel("QuantizeLinear") && !ox_fold_has_kernel("DequantizeLinear"));
    CHECK(!ox_fold_has_kernel(NULL));
    EXPECT_DECLINED(node("ConstantOfShape", 1), in);
    ox_value *none[2] = {0};
    ox_node *ms = ox_graph_add_node(g, "Add", "com.microsoft", 2, none, 1);
    EXPECT_DECLINED(ms, in);

    EXPECT_EINVAL(node("Add", 1), in, "has 1 inputs, expected 2 to 2");
    EXPECT_EINVAL(node("Add", 3), in, "has 3 inputs");
    ox_node *two = ox_graph_add_node(g, "Add", NULL, 2, none, 2);
    ox_node_set_name(g, two, "n0");
    EXPECT_EINVAL(two, in, "has 2 outputs, expected 1");
    in[1] = NULL;
    EXPECT_EINVAL(node("Add", 2), in, "input 1 is missing");

    /* bytes that disagree with the shape are never read */
    ox_tensor lying = *vec_f32(2, x);
    int64_t d3 = 3;
    lying.dims = &d3;
    in[1] = &lying;
    EXPECT_EINVAL(node("Add", 2), in, "input 1 holds 8 bytes");

    /* fake weights: not folded, except where only the shape is read */
    int64_t d23[2] = {2, 3};
    ox_tensor fake = {.dtype = OX_FLOAT, .rank = 2, .dims = d23, .nbytes = 24, .storage = OX_DATA_ABSENT};
    in[0] = &fake;
    in[1] = vec_f32(2, x);
    EXPECT_DECLINED(node("Neg", 1), in);
    ox_tensor *s = run(node("Shape", 1), in, NULL);
    CHECK(s && s->rank == 1 && s->dims[0] == 2 && i64_at(s, 0) == 2 && i64_at(s, 1) == 3);
    s = run(node("Size", 1), in, NULL);
    CHECK(s && s->rank == 0 && i64_at(s, 0) == 6);
    ox_tensor perm = fake;
    perm.storage = OX_DATA_PERMUTED;
    perm.base = in[1];
    in[0] = &perm;
    EXPECT_DECLINED(node("Neg", 1), in);

    /* dtypes an op does not take: declined quietly */
    ox_tensor str = {.dtype = OX_STRING, .rank = 0, .storage = OX_DATA_OWNED, .data = "x"};
    in[0] = &str;
    EXPECT_DECLINED(node("Identity", 1), in);
    unsigned char b[2] = {1, 0};
    int64_t d2 = 2;
    in[0] = tensor(OX_BOOL, 1, &d2, b);
    in[1] = in[0];
    EXPECT_DECLINED(node("Add", 2), in);
    EXPECT_DECLINED(node("Sqrt", 1), in);
    in[0] = vec_f32(2, x);
    EXPECT_DECLINED(node("And", 2), in);
}

static void test_cast(void) {
    ox_node *n = node("Cast", 1);
    float f[8] = {1.0f / 3,
                  65519.0f,
                  65520.0f,
                  5.9604645e-08f /* 2^-24 */,
                  2.9802322e-08f /* 2^-25 */,
                  8.940697e-08f /* 1.5 * 2^-24 */,
                  NAN,
                  -INFINITY};
    const ox_tensor *in[1] = {vec_f32(8, f)};
    ox_node_set_int(g, n, "to", OX_FLOAT16);
    ox_tensor *h = run(n, in, NULL);
    CHECK(h && h->dtype == OX_FLOAT16);
    if (h) {
        CHECK_EQ_INT(u16_at(h, 0), 0x3555); /* 1/3 to nearest */
        CHECK_EQ_INT(u16_at(h, 1), 0x7bff); /* 65519 rounds down to 65504 */
        CHECK_EQ_INT(u16_at(h, 2), 0x7c00); /* 65520 is the first value that rounds to inf */
        CHECK_EQ_INT(u16_at(h, 3), 0x0001); /* the smallest subnormal */
        CHECK_EQ_INT(u16_at(h, 4), 0x0000); /* half of it: a tie, to even (zero) */
        CHECK_EQ_INT(u16_at(h, 5), 0x0002); /* 1.5 of it: a tie, to even (two) */
        CHECK((u16_at(h, 6) & 0x7c00) == 0x7c00 && (u16_at(h, 6) & 0x3ff));
        CHECK_EQ_INT(u16_at(h, 7), 0xfc00);
    }
    float bf[4] = {1.00390625f /* 1 + 2^-8: tie */, 1.01171875f /* 1 + 3 * 2^-8: tie */, 3.0e38f, -0.0f};
    in[0] = vec_f32(4, bf);
    ox_node_set_int(g, n, "to", OX_BFLOAT16);
    h = run(n, in, NULL);
    if (h) {
        CHECK_EQ_INT(u16_at(h, 0), 0x3f80);
        CHECK_EQ_INT(u16_at(h, 1), 0x3f82);
        CHECK_EQ_INT(u16_at(h, 2), 0x7f62);
        CHECK_EQ_INT(u16_at(h, 3), 0x8000);
    }
    CHECK(h != NULL);
    /* and back: float16 and bfloat16 widen exactly */
    in[0] = h;
    ox_node_set_int(g, n, "to", OX_FLOAT);
    ox_tensor *back = run(n, in, NULL);
    if (back) {
        const float *v = back->data;
        CHECK(v[0] == 1.0f && v[1] == 1.015625f && signbit(v[3]));
    }

    /* an int64 past 2^53 rounds once, not twice: 2^60 + 2^36 + 1 is just over half an ulp of float */
    int64_t big[2] = {((int64_t)1 << 60) + ((int64_t)1 << 36) + 1, -(((int64_t)1 << 53) + 1)};
    in[0] = vec_i64(2, big);
    ox_node_set_int(g, n, "to", OX_FLOAT);
    ox_tensor *t = run(n, in, NULL);
    if (t) {
        const float *v = t->data;
        CHECK(v[0] == 0x1.000002p60f);
        CHECK(v[1] == -0x1p53f);
    }
    CHECK(t != NULL);
    ox_node_set_int(g, n, "to", OX_DOUBLE);
    t = run(n, in, NULL);
    if (t) {
        const double *v = t->data;
        CHECK(v[1] == -9007199254740992.0);
    }

    /* float to int truncates toward zero; NaN and out of range are ONNX-undefined: declined */
    float fi[3] = {-2.7f, 2.7f, 127.9f};
    in[0] = vec_f32(3, fi);
    ox_node_set_int(g, n, "to", OX_INT8);
    t = run(n, in, NULL);
    if (t) {
        const int8_t *v = t->data;
        CHECK(v[0] == -2 && v[1] == 2 && v[2] == 127);
    }
    CHECK(t != NULL);
    fi[2] = 128.0f;
    in[0] = vec_f32(3, fi);
    EXPECT_DECLINED(n, in);
    fi[2] = NAN;
    in[0] = vec_f32(3, fi);
    ox_node_set_int(g, n, "to", OX_INT64);
    EXPECT_DECLINED(n, in);
    fi[2] = -0.5f;
    in[0] = vec_f32(3, fi);
    ox_node_set_int(g, n, "to", OX_UINT64);
    EXPECT_DECLINED(n, in); /* -2.7 to uint64 */
    ox_node_set_int(g, n, "to", OX_BOOL);
    t = run(n, in, NULL);
    if (t) {
        const unsigned char *v = t->data;
        CHECK(v[0] == 1 && v[2] == 1);
    }

    /* integers to integers wrap */
    int64_t w[2] = {300, -1};
    in[0] = vec_i64(2, w);
    ox_node_set_int(g, n, "to", OX_UINT8);
    t = run(n, in, NULL);
    if (t) {
        const uint8_t *v = t->data;
        CHECK(v[0] == 44 && v[1] == 255);
    }
    CHECK(t != NULL);
    ox_node_set_int(g, n, "to", OX_STRING);
    EXPECT_DECLINED(n, in);
    ox_node_set_int(g, n, "to", 17); /* float8e4m3fn: not in the IR */
    EXPECT_DECLINED(n, in);
    EXPECT_EINVAL(node("Cast", 1), in, "needs an int attribute 'to'");
}

static void test_arithmetic(void) {
    int64_t d1 = 1, d2 = 2, d3 = 3;
    int8_t a8[2] = {127, -128}, b8[1] = {1};
    const ox_tensor *in[4] = {tensor(OX_INT8, 1, &d2, a8), tensor(OX_INT8, 1, &d1, b8)};
    ox_tensor *t = run(node("Add", 2), in, NULL);
    if (t) {
        const int8_t *v = t->data;
        CHECK(v[0] == -128 && v[1] == -127);
    }
    CHECK(t != NULL);
    uint8_t u[1] = {0};
    in[0] = tensor(OX_UINT8, 1, &d1, u);
    in[1] = tensor(OX_UINT8, 1, &d1, b8);
    t = run(node("Sub", 2), in, NULL);
    CHECK(t && ((const uint8_t *)t->data)[0] == 255);

    /* int64 stays exact past 2^53 and wraps like numpy */
    int64_t x[3] = {((int64_t)1 << 62) + 1, INT64_MIN, -7}, y[3] = {2, -1, 2};
    in[0] = vec_i64(3, x);
    in[1] = vec_i64(3, y);
    t = run(node("Add", 2), in, NULL);
    CHECK(t && i64_at(t, 0) == ((int64_t)1 << 62) + 3 && i64_at(t, 1) == INT64_MAX && i64_at(t, 2) == -5);
    t = run(node("Mul", 2), in, NULL);
    CHECK(t && i64_at(t, 0) == INT64_MIN + 2 && i64_at(t, 1) == INT64_MIN && i64_at(t, 2) == -14);
    t = run(node("Div", 2), in, NULL); /* truncation toward zero; INT64_MIN / -1 wraps */
    CHECK(t && i64_at(t, 0) == ((int64_t)1 << 61) && i64_at(t, 1) == INT64_MIN && i64_at(t, 2) == -3);
    ox_node *mod = node("Mod", 2);
    t = run(mod, in, NULL); /* fmod=0: the divisor's sign */
    CHECK(t && i64_at(t, 0) == 1 && i64_at(t, 1) == 0 && i64_at(t, 2) == 1);
    ox_node_set_int(g, mod, "fmod", 1);
    t = run(mod, in, NULL); /* fmod=1: the dividend's sign */
    CHECK(t && i64_at(t, 2) == -1);
    y[0] = 0;
    in[1] = vec_i64(3, y);
    EXPECT_DECLINED(node("Div", 2), in); /* integer division by zero is undefined */
    EXPECT_DECLINED(mod, in);
    float f[2] = {5.5f, -5.5f}, g2[2] = {2, 2};
    in[0] = vec_f32(2, f);
    in[1] = vec_f32(2, g2);
    t = run(mod, in, NULL);
    CHECK(t && ((const float *)t->data)[1] == -1.5f);
    EXPECT_EINVAL(node("Mod", 2), in, "fmod must be 1 for float32 inputs");
    in[1] = vec_i64(2, x);
    EXPECT_EINVAL(node("Add", 2), in, "input 1 is int64, input 0 is float32");

    /* broadcasting, and its failure */
    float m23[6] = {0, 1, 2, 3, 4, 5}, c3[3] = {10, 20, 30}, c2[2] = {1, 2};
    int64_t d23[2] = {2, 3}, d21[2] = {2, 1};
    in[0] = tensor(OX_FLOAT, 2, d23, m23);
    in[1] = vec_f32(3, c3);
    t = run(node("Sub", 2), in, NULL);
    CHECK(t && t->rank == 2 && t->dims[0] == 2 && t->dims[1] == 3);
    if (t) {
        const float *v = t->data;
        CHECK(v[0] == -10 && v[4] == -16 && v[5] == -25);
    }
    in[1] = tensor(OX_FLOAT, 2, d21, c2);
    t = run(node("Mul", 2), in, NULL);
    if (t) {
        const float *v = t->data;
        CHECK(v[2] == 2 && v[3] == 6 && v[5] == 10);
    }
    in[1] = vec_f32(2, c2);
    EXPECT_EINVAL(node("Add", 2), in, "do not broadcast ([2, 3] with [2])");

    /* variadic Max, broadcast over three inputs, NaN propagates as numpy's maximum */
    float nanv[1] = {NAN};
    in[0] = tensor(OX_FLOAT, 2, d21, c2);
    in[1] = vec_f32(3, c3);
    in[2] = tensor(OX_FLOAT, 0, NULL, nanv);
    t = run(node("Max", 3), in, NULL);
    CHECK(t && t->dims[0] == 2 && t->dims[1] == 3 && isnan(((const float *)t->data)[4]));
    float fifteen = 15;
    in[2] = tensor(OX_FLOAT, 0, NULL, &fifteen);
    t = run(node("Max", 3), in, NULL);
    if (t) {
        const float *v = t->data;
        CHECK(v[0] == 15 && v[1] == 20 && v[5] == 30);
    }
    t = run(node("Min", 1), in, NULL);
    CHECK(t && t->dims[0] == 2 && t->dims[1] == 1);
    in[1] = NULL;
    EXPECT_EINVAL(node("Max", 3), in, "input 1 is missing");

    /* Pow: exponents of another dtype, integers by squaring, negative integer powers */
    int64_t base[3] = {2, -1, 3}, e10[3] = {10, -3, -1};
    in[0] = vec_i64(3, base);
    in[1] = tensor(OX_INT64, 1, &d3, e10);
    EXPECT_DECLINED(node("Pow", 2), in); /* 3^-1 */
    base[2] = 1;
    in[0] = vec_i64(3, base);
    t = run(node("Pow", 2), in, NULL);
    CHECK(t && i64_at(t, 0) == 1024 && i64_at(t, 1) == -1 && i64_at(t, 2) == 1);
    float half = 0.5f;
    in[0] = vec_f32(3, c3);
    in[1] = tensor(OX_FLOAT, 0, NULL, &half);
    t = run(node("Pow", 2), in, NULL);
    CHECK(t && fabsf(((const float *)t->data)[0] - 3.1622777f) < 1e-6f);

    /* unary ops: Neg and Abs wrap on the most negative integer */
    int8_t m[3] = {-128, -5, 7};
    in[0] = tensor(OX_INT8, 1, &d3, m);
    t = run(node("Neg", 1), in, NULL);
    if (t) {
        const int8_t *v = t->data;
        CHECK(v[0] == -128 && v[1] == 5 && v[2] == -7);
    }
    t = run(node("Abs", 1), in, NULL);
    if (t) {
        const int8_t *v = t->data;
        CHECK(v[0] == -128 && v[1] == 5 && v[2] == 7);
    }
    CHECK(t != NULL);
    EXPECT_DECLINED(node("Exp", 1), in);
    float fl[3] = {-1.5f, 0.25f, 4};
    in[0] = vec_f32(3, fl);
    t = run(node("Floor", 1), in, NULL);
    CHECK(t && ((const float *)t->data)[0] == -2 && ((const float *)t->data)[1] == 0);
    t = run(node("Sqrt", 1), in, NULL);
    CHECK(t && isnan(((const float *)t->data)[0]) && ((const float *)t->data)[2] == 2);
}

static void test_logic(void) {
    int64_t d3 = 3, d1 = 1;
    int64_t a[3] = {1, 5, -3}, b[1] = {1};
    const ox_tensor *in[3] = {vec_i64(3, a), vec_i64(1, b)};
    ox_tensor *t = run(node("LessOrEqual", 2), in, NULL);
    CHECK(t && t->dtype == OX_BOOL);
    if (t) {
        const unsigned char *v = t->data;
        CHECK(v[0] == 1 && v[1] == 0 && v[2] == 1);
    }
    uint64_t ua[1] = {UINT64_MAX}, ub[1] = {1};
    in[0] = tensor(OX_UINT64, 1, &d1, ua);
    in[1] = tensor(OX_UINT64, 1, &d1, ub);
    t = run(node("Greater", 2), in, NULL); /* unsigned: not -1 */
    CHECK(t && ((const unsigned char *)t->data)[0] == 1);
    float nan2[2] = {NAN, 1};
    in[0] = vec_f32(2, nan2);
    in[1] = vec_f32(2, nan2);
    t = run(node("Equal", 2), in, NULL);
    CHECK(t && ((const unsigned char *)t->data)[0] == 0 && ((const unsigned char *)t->data)[1] == 1);

    unsigned char p[3] = {1, 0, 1}, q[3] = {1, 1, 0};
    in[0] = tensor(OX_BOOL, 1, &d3, p);
    in[1] = tensor(OX_BOOL, 1, &d3, q);
    t = run(node("Xor", 2), in, NULL);
    if (t) {
        const unsigned char *v = t->data;
        CHECK(v[0] == 0 && v[1] == 1 && v[2] == 1);
    }
    t = run(node("Not", 1), in, NULL);
    if (t) {
        const unsigned char *v = t->data;
        CHECK(v[0] == 0 && v[1] == 1);
    }

    /* Where: any dtype, broadcast over three shapes */
    int64_t d31[2] = {3, 1}, d2 = 2;
    int64_t xv[2] = {10, 20}, yv = -1;
    in[0] = tensor(OX_BOOL, 2, d31, p);
    in[1] = tensor(OX_INT64, 1, &d2, xv);
    in[2] = scalar_i64(yv);
    t = run(node("Where", 3), in, NULL);
    CHECK(t && t->rank == 2 && t->dims[0] == 3 && t->dims[1] == 2);
    if (t) CHECK(i64_at(t, 0) == 10 && i64_at(t, 1) == 20 && i64_at(t, 2) == -1 && i64_at(t, 5) == 20);
    in[0] = in[1];
    EXPECT_EINVAL(node("Where", 3), in, "condition must be bool, not int64");
}

static void test_shapes(void) {
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = (float)i;
    int64_t d234[3] = {2, 3, 4};
    const ox_tensor *in[5] = {tensor(OX_FLOAT, 3, d234, x)};

    /* Reshape: 0 copies a dim, -1 is inferred, allowzero keeps a literal 0 */
    int64_t s1[2] = {0, -1};
    in[1] = vec_i64(2, s1);
    ox_tensor *t = run(node("Reshape", 2), in, NULL);
    CHECK(t && t->rank == 2 && t->dims[0] == 2 && t->dims[1] == 12);
    int64_t s2[2] = {-1, -1};
    in[1] = vec_i64(2, s2);
    EXPECT_EINVAL(node("Reshape", 2), in, "shape has -1 at both 0 and 1");
    int64_t s3[2] = {5, -1};
    in[1] = vec_i64(2, s3);
    EXPECT_EINVAL(node("Reshape", 2), in, "cannot infer the -1");
    int64_t s4[4] = {1, 1, 1, 0};
    in[1] = vec_i64(4, s4);
    EXPECT_EINVAL(node("Reshape", 2), in, "shape[3] is 0 (copy the input's dim) but the input has rank 3");
    int64_t s5[2] = {INT64_MAX, 4};
    in[1] = vec_i64(2, s5);
    EXPECT_EINVAL(node("Reshape", 2), in, "overflows");
    int64_t zd[2] = {0, 3}, s6[2] = {3, 0};
    in[0] = tensor(OX_FLOAT, 2, zd, NULL);
    in[1] = vec_i64(2, s6);
    ox_node *az = node("Reshape", 2);
    ox_node_set_int(g, az, "allowzero", 1);
    t = run(az, in, NULL);
    CHECK(t && t->dims[0] == 3 && t->dims[1] == 0 && t->nbytes == 0);

    /* Transpose */
    in[0] = tensor(OX_FLOAT, 3, d234, x);
    ox_node *tr = node("Transpose", 1);
    int64_t perm[3] = {2, 0, 1};
    ox_node_set_ints(g, tr, "perm", perm, 3);
    t = run(tr, in, NULL);
    CHECK(t && t->dims[0] == 4 && t->dims[1] == 2 && t->dims[2] == 3);
    if (t) {
        const float *v = t->data;
        CHECK(v[1] == 4 && v[3] == 12 && v[6] == 1 && v[23] == 23);
    }
    perm[2] = 0;
    ox_node_set_ints(g, tr, "perm", perm, 3);
    EXPECT_EINVAL(tr, in, "perm is not a permutation");
    t = run(node("Transpose", 1), in, NULL); /* default: reversed */
    CHECK(t && t->dims[0] == 4 && t->dims[2] == 2 && ((const float *)t->data)[1] == 12);

    /* Slice: negative steps, clamping, extreme values */
    int64_t st[2] = {-1, INT64_MAX}, en[2] = {INT64_MIN, -100}, ax[2] = {2, 0}, sp[2] = {-2, INT64_MIN};
    in[1] = vec_i64(2, st);
    in[2] = vec_i64(2, en);
    in[3] = vec_i64(2, ax);
    in[4] = vec_i64(2, sp);
    t = run(node("Slice", 5), in, NULL);
    CHECK(t && t->dims[0] == 1 && t->dims[1] == 3 && t->dims[2] == 2);
    if (t) {
        const float *v = t->data;
        CHECK(v[0] == 15 && v[1] == 13 && v[2] == 19 && v[5] == 21);
    }
    in[4] = NULL; /* steps omitted: 1; starts past ends: empty */
    t = run(node("Slice", 5), in, NULL);
    CHECK(t && t->dims[0] == 0 && t->dims[2] == 0 && t->nbytes == 0);
    int64_t st1[1] = {1}, en1[1] = {1000};
    in[1] = vec_i64(1, st1);
    in[2] = vec_i64(1, en1);
    t = run(node("Slice", 3), in, NULL); /* axes default to 0.. */
    CHECK(t && t->dims[0] == 1 && t->dims[1] == 3 && ((const float *)t->data)[0] == 12);
    int64_t bad_ax[2] = {1, -2};
    in[1] = vec_i64(2, st);
    in[2] = vec_i64(2, en);
    in[3] = vec_i64(2, bad_ax);
    EXPECT_EINVAL(node("Slice", 4), in, "axis 1 is repeated");
    int64_t back_st[1] = {3}, back_en[1] = {INT64_MAX}, back_ax[1] = {2}, back_sp[1] = {-1};
    in[1] = vec_i64(1, back_st);
    in[2] = vec_i64(1, back_en);
    in[3] = vec_i64(1, back_ax);
    in[4] = vec_i64(1, back_sp);
    EXPECT_DECLINED(node("Slice", 5), in); /* ONNX Runtime and the spec disagree: not folded */
    in[1] = vec_i64(2, st);
    in[2] = vec_i64(2, en);
    int64_t zero_step[2] = {1, 0};
    in[3] = vec_i64(2, ax);
    in[4] = vec_i64(2, zero_step);
    EXPECT_EINVAL(node("Slice", 5), in, "step on axis 0 is 0");
    in[2] = vec_i64(1, en);
    EXPECT_EINVAL(node("Slice", 3), in, "differ in length");
    int64_t d1 = 1;
    float fs = 0;
    in[2] = tensor(OX_FLOAT, 1, &d1, &fs);
    EXPECT_EINVAL(node("Slice", 3), in, "ends must be int32 or int64, not float32");

    /* Gather: negative and int32 indices, out of range */
    in[0] = tensor(OX_FLOAT, 3, d234, x);
    int32_t ix[2] = {-1, 0};
    int64_t d2 = 2;
    in[1] = tensor(OX_INT32, 1, &d2, ix);
    ox_node *ga = node("Gather", 2);
    ox_node_set_int(g, ga, "axis", -2);
    t = run(ga, in, NULL);
    CHECK(t && t->rank == 3 && t->dims[1] == 2);
    if (t) {
        const float *v = t->data;
        CHECK(v[0] == 8 && v[4] == 0 && v[8] == 20);
    }
    ix[1] = 3;
    in[1] = tensor(OX_INT32, 1, &d2, ix);
    EXPECT_EINVAL(ga, in, "index out of range: 3 (at position 1) for axis 1 of size 3");
    ox_node_set_int(g, ga, "axis", 3);
    EXPECT_EINVAL(ga, in, "axis 3 out of range for rank 3");
    in[0] = scalar_i64(1);
    EXPECT_EINVAL(node("Gather", 2), in, "rank 1 or more");

    /* Concat */
    int64_t d14[2] = {1, 4}, d24[2] = {2, 4};
    in[0] = tensor(OX_FLOAT, 2, d14, x);
    in[1] = tensor(OX_FLOAT, 2, d24, x + 4);
    in[2] = tensor(OX_FLOAT, 2, zd, NULL);
    ox_node *cc = node("Concat", 2);
    ox_node_set_int(g, cc, "axis", 0);
    t = run(cc, in, NULL);
    CHECK(t && t->dims[0] == 3 && ((const float *)t->data)[11] == 11);
    ox_node_set_int(g, cc, "axis", 1);
    EXPECT_EINVAL(cc, in, "input 1 has size 2 on axis 0, input 0 has 1");
    EXPECT_EINVAL(node("Concat", 2), in, "needs an int attribute 'axis'");

    /* Squeeze / Unsqueeze */
    int64_t d131[3] = {1, 3, 1};
    in[0] = tensor(OX_FLOAT, 3, d131, x);
    t = run(node("Squeeze", 1), in, NULL);
    CHECK(t && t->rank == 1 && t->dims[0] == 3);
    in[1] = vec_i64(0, NULL); /* an empty axes list squeezes every 1, as ONNX Runtime reads it */
    t = run(node("Squeeze", 2), in, NULL);
    CHECK(t && t->rank == 1 && t->dims[0] == 3);
    int64_t a1[1] = {1};
    in[1] = vec_i64(1, a1);
    EXPECT_EINVAL(node("Squeeze", 2), in, "axis 1 has size 3, not 1");
    int64_t ua[2] = {-1, 0};
    in[1] = vec_i64(2, ua);
    t = run(node("Unsqueeze", 2), in, NULL);
    CHECK(t && t->rank == 5 && t->dims[0] == 1 && t->dims[2] == 3 && t->dims[4] == 1);
    int64_t ud[2] = {1, -4};
    in[1] = vec_i64(2, ud);
    EXPECT_EINVAL(node("Unsqueeze", 2), in, "is repeated");
    ox_node *uq = node("Unsqueeze", 1); /* opset < 13: axes as an attribute */
    ox_node_set_ints(g, uq, "axes", a1, 1);
    t = run(uq, in, NULL);
    CHECK(t && t->rank == 4 && t->dims[1] == 1);

    /* Shape with start and end */
    in[0] = tensor(OX_FLOAT, 3, d234, x);
    ox_node *sh = node("Shape", 1);
    ox_node_set_int(g, sh, "start", -2);
    ox_node_set_int(g, sh, "end", 100);
    t = run(sh, in, NULL);
    CHECK(t && t->dims[0] == 2 && i64_at(t, 0) == 3 && i64_at(t, 1) == 4);

    /* Expand: bidirectional broadcast; a too-large result is declined, not an error */
    int64_t e[3] = {2, 1, 6}, d31[2] = {3, 1};
    in[0] = tensor(OX_FLOAT, 2, d31, x);
    in[1] = vec_i64(3, e);
    t = run(node("Expand", 2), in, NULL);
    CHECK(t && t->rank == 3 && t->dims[0] == 2 && t->dims[1] == 3 && t->dims[2] == 6);
    if (t) {
        const float *v = t->data;
        CHECK(v[5] == 0 && v[6] == 1 && v[35] == 2);
    }
    int64_t huge[3] = {(int64_t)1 << 40, 3, (int64_t)1 << 40};
    in[1] = vec_i64(3, huge);
    EXPECT_DECLINED(node("Expand", 2), in);
    int64_t e2[2] = {4, 1};
    in[1] = vec_i64(2, e2);
    EXPECT_EINVAL(node("Expand", 2), in, "input of shape [3, 1] does not broadcast to [4, 1]");
}

static void test_range_and_reduce(void) {
    const ox_tensor *in[3] = {scalar_i64(INT64_MIN), scalar_i64(INT64_MAX), scalar_i64(INT64_MAX)};
    ox_tensor *t = run(node("Range", 3), in, NULL); /* the span overflows int64, not the count */
    CHECK(t && t->dims[0] == 3 && i64_at(t, 0) == INT64_MIN && i64_at(t, 1) == -1 && i64_at(t, 2) == INT64_MAX - 1);
    in[2] = scalar_i64(1);
    EXPECT_DECLINED(node("Range", 3), in); /* 2^64 elements */
    in[0] = scalar_i64(10);
    in[1] = scalar_i64(4);
    in[2] = scalar_i64(-3);
    t = run(node("Range", 3), in, NULL);
    CHECK(t && t->dims[0] == 2 && i64_at(t, 0) == 10 && i64_at(t, 1) == 7);
    in[2] = scalar_i64(0);
    EXPECT_EINVAL(node("Range", 3), in, "delta is 0");
    float fs = 0, fl = 1, fd = 0.25f;
    in[0] = tensor(OX_FLOAT, 0, NULL, &fs);
    in[1] = tensor(OX_FLOAT, 0, NULL, &fl);
    in[2] = tensor(OX_FLOAT, 0, NULL, &fd);
    t = run(node("Range", 3), in, NULL);
    CHECK(t && t->dims[0] == 4 && ((const float *)t->data)[3] == 0.75f);
    fd = 1e-30f;
    in[2] = tensor(OX_FLOAT, 0, NULL, &fd);
    EXPECT_DECLINED(node("Range", 3), in);
    in[2] = scalar_i64(1);
    EXPECT_EINVAL(node("Range", 3), in, "delta is int64, start is float32");

    int32_t x[6] = {1, 2, 3, 4, 5, 6};
    int64_t d23[2] = {2, 3}, ax[1] = {-1};
    in[0] = tensor(OX_INT32, 2, d23, x);
    in[1] = vec_i64(1, ax);
    ox_node *rs = node("ReduceSum", 2);
    ox_node_set_int(g, rs, "keepdims", 0);
    t = run(rs, in, NULL);
    CHECK(t && t->rank == 1 && t->dims[0] == 2);
    if (t) {
        const int32_t *v = t->data;
        CHECK(v[0] == 6 && v[1] == 15);
    }
    t = run(node("ReduceProd", 1), in, NULL); /* no axes: everything, dims kept */
    CHECK(t && t->rank == 2 && t->dims[0] == 1 && t->dims[1] == 1 && ((const int32_t *)t->data)[0] == 720);
    ox_node *noop = node("ReduceMax", 1);
    ox_node_set_int(g, noop, "noop_with_empty_axes", 1);
    t = run(noop, in, NULL);
    CHECK(t && t->rank == 2 && t->dims[1] == 3 && ((const int32_t *)t->data)[5] == 6);
    int64_t d20[2] = {2, 0}, a1[1] = {1};
    int8_t none = 0;
    in[0] = tensor(OX_INT8, 2, d20, &none);
    in[1] = vec_i64(1, a1);
    t = run(node("ReduceMax", 2), in, NULL); /* over nothing: the lowest int8 */
    CHECK(t && t->dims[0] == 2 && t->dims[1] == 1 && ((const int8_t *)t->data)[1] == -128);
    t = run(node("ReduceMin", 2), in, NULL);
    CHECK(t && ((const int8_t *)t->data)[0] == 127);
    unsigned char nob = 0;
    in[0] = tensor(OX_BOOL, 2, d20, &nob);
    EXPECT_DECLINED(node("ReduceMax", 2), in); /* ONNX Runtime refuses bool over nothing */

    /* integer sums and products that leave the dtype: numpy wraps, ONNX Runtime saturates */
    int32_t big[4] = {1 << 30, 1 << 30, 1 << 30, -(1 << 30)};
    int64_t d4 = 4;
    in[0] = tensor(OX_INT32, 1, &d4, big);
    in[1] = NULL;
    EXPECT_DECLINED(node("ReduceSum", 1), in); /* 2^31 does not fit int32 */
    big[0] = -(1 << 30);
    in[0] = tensor(OX_INT32, 1, &d4, big);
    t = run(node("ReduceSum", 1), in, NULL);
    CHECK(t && ((const int32_t *)t->data)[0] == 0);
    EXPECT_DECLINED(node("ReduceProd", 1), in);
    int64_t p2[2] = {(int64_t)1 << 62, 2}, pe[2] = {2, 2};
    in[0] = vec_i64(2, p2);
    in[1] = vec_i64(2, pe);
    EXPECT_DECLINED(node("Pow", 2), in); /* (2^62)^2 */
    p2[0] = -((int64_t)1 << 31);
    pe[0] = 2;
    pe[1] = 62;
    in[0] = vec_i64(2, p2);
    in[1] = vec_i64(2, pe);
    t = run(node("Pow", 2), in, NULL); /* (-2^31)^2 = 2^62 and 2^62 fit */
    CHECK(t && i64_at(t, 0) == (int64_t)1 << 62 && i64_at(t, 1) == (int64_t)1 << 62);
    int64_t a5[1] = {5};
    in[1] = vec_i64(1, a5);
    in[0] = tensor(OX_INT32, 2, d23, x);
    EXPECT_EINVAL(node("ReduceSum", 2), in, "axis 5 out of range for rank 2");
}

static void test_cumsum(void) {
    /* [[1, 2, 3], [4, 5, 6]] along each axis, forward and back, inclusive and exclusive */
    int64_t x[6] = {1, 2, 3, 4, 5, 6}, d23[2] = {2, 3};
    const ox_tensor *in[2] = {tensor(OX_INT64, 2, d23, x), scalar_i64(1)};
    ox_tensor *t = run(node("CumSum", 2), in, NULL);
    CHECK(t && t->rank == 2 && t->dims[0] == 2 && t->dims[1] == 3);
    if (t) CHECK(i64_at(t, 0) == 1 && i64_at(t, 2) == 6 && i64_at(t, 3) == 4 && i64_at(t, 5) == 15);
    ox_node *n = node("CumSum", 2);
    ox_node_set_int(g, n, "exclusive", 1);
    ox_node_set_int(g, n, "reverse", 1);
    t = run(n, in, NULL); /* y[i] = sum of x[j > i] */
    if (t) CHECK(i64_at(t, 0) == 5 && i64_at(t, 1) == 3 && i64_at(t, 2) == 0 && i64_at(t, 3) == 11);
    CHECK(t != NULL);
    int32_t minus2 = -2; /* axis -2, given as a 1-element int32 vector */
    int64_t d1 = 1;
    in[1] = tensor(OX_INT32, 1, &d1, &minus2);
    n = node("CumSum", 2);
    ox_node_set_int(g, n, "reverse", 1);
    t = run(n, in, NULL);
    if (t) CHECK(i64_at(t, 0) == 5 && i64_at(t, 2) == 9 && i64_at(t, 3) == 4 && i64_at(t, 5) == 6);
    CHECK(t != NULL);
    float f[3] = {0.5f, 0.25f, -1};
    in[0] = vec_f32(3, f);
    in[1] = scalar_i64(0);
    n = node("CumSum", 2);
    ox_node_set_int(g, n, "exclusive", 1);
    t = run(n, in, NULL);
    if (t) {
        const float *v = t->data;
        CHECK(v[0] == 0 && v[1] == 0.5f && v[2] == 0.75f);
    }
    CHECK(t != NULL);

    in[1] = scalar_i64(1);
    EXPECT_EINVAL(node("CumSum", 2), in, "axis 1 out of range for rank 1");
    int64_t two[2] = {0, 0};
    in[1] = vec_i64(2, two);
    EXPECT_EINVAL(node("CumSum", 2), in, "axis must be a scalar");
    in[1] = vec_f32(1, f);
    EXPECT_EINVAL(node("CumSum", 2), in, "axis must be int32 or int64");
    int64_t big[2] = {INT64_MAX, 1}; /* an integer sum that overflows: left to the runtime */
    in[0] = vec_i64(2, big);
    in[1] = scalar_i64(0);
    EXPECT_DECLINED(node("CumSum", 2), in);
    unsigned char b[2] = {1, 1};
    int64_t d2 = 2;
    in[0] = tensor(OX_BOOL, 1, &d2, b);
    EXPECT_DECLINED(node("CumSum", 2), in);
}

static void test_gather_nd(void) {
    /* data [2, 2, 3]: element (i, j, k) = 100 i + 10 j + k */
    int64_t x[12], d[3] = {2, 2, 3};
    for (int i = 0; i < 12; i++) x[i] = 100 * (i / 6) + 10 * (i / 3 % 2) + i % 3;
    const ox_tensor *in[2] = {tensor(OX_INT64, 3, d, x), NULL};
    int64_t ix1[4] = {1, 0, -1, -2}, di1[2] = {2, 2}; /* two (i, j) pairs: rows of 3 */
    in[1] = tensor(OX_INT64, 2, di1, ix1);
    ox_tensor *t = run(node("GatherND", 2), in, NULL);
    CHECK(t && t->rank == 2 && t->dims[0] == 2 && t->dims[1] == 3);
    if (t) CHECK(i64_at(t, 0) == 100 && i64_at(t, 2) == 102 && i64_at(t, 3) == 100 && i64_at(t, 5) == 102);
    int64_t ix3[3] = {0, 1, 2}, di3[2] = {1, 3}; /* one full index: a [1] result */
    in[1] = tensor(OX_INT64, 2, di3, ix3);
    t = run(node("GatherND", 2), in, NULL);
    CHECK(t && t->rank == 1 && t->dims[0] == 1 && i64_at(t, 0) == 12);
    /* batch_dims 1: batch i picks (j, k) of data[i] */
    int64_t ixb[4] = {1, 2, 0, -3}, dib[3] = {2, 1, 2};
    in[1] = tensor(OX_INT64, 3, dib, ixb);
    ox_node *n = node("GatherND", 2);
    ox_node_set_int(g, n, "batch_dims", 1);
    t = run(n, in, NULL);
    CHECK(t && t->rank == 2 && t->dims[0] == 2 && t->dims[1] == 1);
    if (t) CHECK(i64_at(t, 0) == 12 && i64_at(t, 1) == 100);
    int32_t ix32[2] = {1, 1}; /* int32 indices, float data */
    int64_t di32[1] = {2};
    float f[4] = {1, 2, 3, 4};
    int64_t d22[2] = {2, 2};
    in[0] = tensor(OX_FLOAT, 2, d22, f);
    in[1] = tensor(OX_INT32, 1, di32, ix32);
    t = run(node("GatherND", 2), in, NULL);
    CHECK(t && t->rank == 0 && ((const float *)t->data)[0] == 4);

    /* out of range, in any position and either sign: refused, nothing read */
    in[0] = tensor(OX_INT64, 3, d, x);
    int64_t oob[4] = {0, 0, 1, 2};
    in[1] = tensor(OX_INT64, 2, di1, oob);
    EXPECT_EINVAL(node("GatherND", 2), in, "index out of range: 2 (at position 3)");
    int64_t oob2[4] = {-3, 0, 0, 0};
    in[1] = tensor(OX_INT64, 2, di1, oob2);
    EXPECT_EINVAL(node("GatherND", 2), in, "index out of range: -3 (at position 0)");
    int64_t ix4[4] = {0, 0, 0, 0}, di4[2] = {1, 4};
    in[1] = tensor(OX_INT64, 2, di4, ix4);
    EXPECT_EINVAL(node("GatherND", 2), in, "indices' last dim is 4");
    int64_t di0[2] = {1, 0};
    in[1] = tensor(OX_INT64, 2, di0, ix4);
    EXPECT_EINVAL(node("GatherND", 2), in, "indices' last dim is 0");
    in[1] = tensor(OX_INT64, 3, dib, ixb);
    n = node("GatherND", 2);
    ox_node_set_int(g, n, "batch_dims", 3);
    EXPECT_EINVAL(n, in, "batch_dims 3");
    int64_t dbm[3] = {1, 2, 2}; /* batch dims disagree: 2 in data, 1 in indices */
    in[1] = tensor(OX_INT64, 3, dbm, ixb);
    n = node("GatherND", 2);
    ox_node_set_int(g, n, "batch_dims", 1);
    EXPECT_EINVAL(n, in, "batch dim 0 is 2 in data and 1 in indices");
    in[1] = vec_f32(2, f);
    EXPECT_EINVAL(node("GatherND", 2), in, "indices must be int64");
    /* empty indices: an empty result, data never read */
    int64_t de[2] = {0, 2};
    in[1] = tensor(OX_INT64, 2, de, NULL);
    t = run(node("GatherND", 2), in, NULL);
    CHECK(t && t->rank == 2 && t->dims[0] == 0 && t->dims[1] == 3 && t->nbytes == 0);
}

static void test_out_of_memory(void) {
    ox_graph_free(g);
    g = ox_graph_new(20);
    float x[2] = {1, 2};
    const ox_tensor *in[2] = {vec_f32(2, x), vec_f32(2, x)};
    ox_node *n = node("Add", 2);
    ox_arena_fail_after(g->arena, 0);
    ox_code rc;
    CHECK(run(n, in, &rc) == NULL);
    CHECK_EQ_INT(rc, OX_ENOMEM);
    CHECK_EQ_INT(g->err.code, OX_ENOMEM);
}

int main(void) {
    g = ox_graph_new(20);
    test_output_limit();
    test_dispatch();
    test_cast();
    test_arithmetic();
    test_logic();
    test_shapes();
    test_range_and_reduce();
    test_cumsum();
    test_gather_nd();
    CHECK(!ox_graph_failed(g));
    test_out_of_memory();
    ox_graph_free(g);
    return CHECK_DONE();
}
