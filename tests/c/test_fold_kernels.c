/* The folding kernels on small cases worked out by hand (ONNX's own backend cases come from the
 * conformance test in pytest). */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "opt/fold.h"

static ox_graph *g;

static ox_tensor *tensor(ox_dtype dt, int rank, const int64_t *dims, const void *data) {
    ox_tensor *t = ox_tensor_new(g, dt, rank, dims);
    if (t && t->nbytes) memcpy((void *)t->data, data, t->nbytes);
    return t;
}

static ox_tensor *eval(const char *op, int nin, const ox_tensor **in, const char *attr, int64_t v) {
    ox_value *dummy[8];
    for (int i = 0; i < nin; i++) dummy[i] = NULL;
    ox_node *n = ox_graph_add_node(g, op, NULL, nin, dummy, 1);
    if (attr) ox_node_set_int(g, n, attr, v);
    ox_tensor *out[1] = {NULL};
    ox_code rc = ox_fold_eval(g, n, in, out);
    if (rc != OX_OK) return NULL;
    return out[0];
}

int main(void) {
    g = ox_graph_new(20);
    int64_t d23[2] = {2, 3}, d1[1] = {1}, d2[1] = {2}, d3[1] = {3};
    float x[6] = {0, 1, 2, 3, 4, 5};
    const ox_tensor *in[3];

    int64_t shape[2] = {0, -1}; /* keep dim 0, infer the rest */
    in[0] = tensor(OX_FLOAT, 2, d23, x);
    in[1] = tensor(OX_INT64, 1, d2, shape);
    ox_tensor *r = eval("Reshape", 2, in, NULL, 0);
    CHECK(r && r->rank == 2 && r->dims[0] == 2 && r->dims[1] == 3);

    int64_t idx[2] = {-1, 0};
    in[1] = tensor(OX_INT64, 1, d2, idx);
    r = eval("Gather", 2, in, "axis", 1);
    CHECK(r && r->rank == 2 && r->dims[1] == 2);
    if (r) {
        const float *f = r->data;
        CHECK(f[0] == 2 && f[1] == 0 && f[2] == 5 && f[3] == 3);
    }
    int64_t oob[1] = {3};
    in[1] = tensor(OX_INT64, 1, d1, oob);
    CHECK(eval("Gather", 2, in, "axis", 1) == NULL);
    CHECK(g->err.code == OX_EINVAL && strstr(g->err.msg, "index out of range"));
    ox_error_clear(&g->err);

    in[1] = tensor(OX_FLOAT, 2, d23, x);
    r = eval("Concat", 2, in, "axis", 1);
    CHECK(r && r->dims[0] == 2 && r->dims[1] == 6);
    if (r) {
        const float *f = r->data;
        CHECK(f[3] == 0 && f[5] == 2 && f[6] == 3 && f[11] == 5);
    }

    float y[3] = {-2.7f, 2.7f, 5.0f};
    in[0] = tensor(OX_FLOAT, 1, d3, y);
    r = eval("Cast", 1, in, "to", OX_INT64);
    CHECK(r && r->dtype == OX_INT64);
    if (r) {
        const int64_t *v = r->data;
        CHECK(v[0] == -2 && v[1] == 2 && v[2] == 5);
    }

    int64_t a[3] = {7, -7, 6}, b[1] = {2};
    in[0] = tensor(OX_INT64, 1, d3, a);
    in[1] = tensor(OX_INT64, 1, d1, b);
    r = eval("Div", 2, in, NULL, 0);
    if (r) {
        const int64_t *v = r->data;
        CHECK(v[0] == 3 && v[1] == -3 && v[2] == 3);
    }
    CHECK(r != NULL);
    int64_t zero[1] = {0};
    in[1] = tensor(OX_INT64, 1, d1, zero);
    CHECK(eval("Div", 2, in, NULL, 0) == NULL); /* integer division by zero: not folded */
    CHECK(g->err.code == OX_OK);

    unsigned char cond[3] = {1, 0, 1};
    float one = 1.0f;
    in[0] = tensor(OX_BOOL, 1, d3, cond);
    in[1] = tensor(OX_FLOAT, 1, d3, y);
    in[2] = tensor(OX_FLOAT, 0, NULL, &one);
    r = eval("Where", 3, in, NULL, 0);
    if (r) {
        const float *f = r->data;
        CHECK(f[0] == -2.7f && f[1] == 1.0f && f[2] == 5.0f);
    }
    CHECK(r != NULL);

    int64_t s = 2, l = 9, dl = 3;
    in[0] = tensor(OX_INT64, 0, NULL, &s);
    in[1] = tensor(OX_INT64, 0, NULL, &l);
    in[2] = tensor(OX_INT64, 0, NULL, &dl);
    r = eval("Range", 3, in, NULL, 0);
    CHECK(r && r->dims[0] == 3);
    if (r) {
        const int64_t *v = r->data;
        CHECK(v[0] == 2 && v[1] == 5 && v[2] == 8);
    }

    int64_t ax[1] = {0};
    in[0] = tensor(OX_FLOAT, 2, d23, x);
    in[1] = tensor(OX_INT64, 1, d1, ax);
    r = eval("Unsqueeze", 2, in, NULL, 0);
    CHECK(r && r->rank == 3 && r->dims[0] == 1);
    in[0] = r;
    r = eval("Squeeze", 2, in, NULL, 0);
    CHECK(r && r->rank == 2 && r->dims[0] == 2);

    /* Cast below int32/int64 range saturates to the minimum; above it or NaN it is not folded */
    float wild[2] = {-1.0f / 0.0f, -1e30f}, big[1] = {1e30f};
    in[0] = tensor(OX_FLOAT, 1, d2, wild);
    r = eval("Cast", 1, in, "to", OX_INT64);
    if (r) {
        const int64_t *v = r->data;
        CHECK(v[0] == INT64_MIN && v[1] == INT64_MIN);
    }
    CHECK(r != NULL);
    r = eval("Cast", 1, in, "to", OX_INT32);
    if (r) {
        const int32_t *v = r->data;
        CHECK(v[0] == INT32_MIN && v[1] == INT32_MIN);
    }
    CHECK(r != NULL);
    in[0] = tensor(OX_FLOAT, 1, d1, big);
    CHECK(eval("Cast", 1, in, "to", OX_INT64) == NULL);
    ox_error_clear(&g->err);

    /* Tile: [2, 3] by (2, 1) repeats the rows */
    int64_t reps[2] = {2, 1};
    in[0] = tensor(OX_FLOAT, 2, d23, x);
    in[1] = tensor(OX_INT64, 1, d2, reps);
    r = eval("Tile", 2, in, NULL, 0);
    CHECK(r && r->rank == 2 && r->dims[0] == 4 && r->dims[1] == 3);
    if (r) {
        const float *f = r->data;
        CHECK(f[0] == 0 && f[5] == 5 && f[6] == 0 && f[11] == 5);
    }
    in[1] = tensor(OX_INT64, 1, d1, reps);
    CHECK(eval("Tile", 2, in, NULL, 0) == NULL); /* one repeat for a rank-2 input */
    ox_error_clear(&g->err);

    /* Clip with both bounds, and with max only (min omitted) */
    float lo = 1.0f, hi = 3.5f;
    in[0] = tensor(OX_FLOAT, 2, d23, x);
    in[1] = tensor(OX_FLOAT, 0, NULL, &lo);
    in[2] = tensor(OX_FLOAT, 0, NULL, &hi);
    r = eval("Clip", 3, in, NULL, 0);
    if (r) {
        const float *f = r->data;
        CHECK(f[0] == 1 && f[2] == 2 && f[4] == 3.5f && f[5] == 3.5f);
    }
    CHECK(r != NULL);
    in[1] = NULL;
    r = eval("Clip", 3, in, NULL, 0);
    if (r) {
        const float *f = r->data;
        CHECK(f[0] == 0 && f[5] == 3.5f);
    }
    CHECK(r != NULL);

    CHECK(!ox_fold_has_kernel("ConstantOfShape") && !ox_fold_has_kernel("RandomNormal"));
    CHECK(!ox_fold_has_kernel("QuantizeLinear") && ox_fold_has_kernel("Gather"));
    ox_graph_free(g);
    return CHECK_DONE();
}
