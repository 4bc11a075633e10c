#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ir/ir.h"

static void test_build(void) {
    ox_graph *g = ox_graph_new(20);
    CHECK(g != NULL);
    ox_dim d[2] = {{.param = "batch"}, {.value = 8}};
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 2, d);
    CHECK(x && x->kind == OX_VALUE_INPUT && x->rank == 2);
    CHECK_STR(x->dims[0].param, "batch");
    CHECK_EQ_INT(x->dims[1].value, 8);
    CHECK(!ox_value_is_static(x));

    float w[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t wd[2] = {2, 4};
    ox_value *wv = ox_graph_add_initializer(g, "w", OX_FLOAT, 2, wd, w, sizeof w);
    CHECK(wv && wv->tensor->storage == OX_DATA_BORROWED && wv->tensor->data == w);
    CHECK(ox_value_is_static(wv));
    CHECK_EQ_INT(ox_value_numel(wv), 8);
    /* the size must match the shape */
    CHECK(ox_graph_add_initializer(g, "bad", OX_FLOAT, 2, wd, w, 7) == NULL);
    CHECK(g->err.code == OX_EINVAL);
    CHECK(strstr(g->err.msg, "bad") != NULL);
    ox_graph_free(g);

    g = ox_graph_new(20);
    x = ox_graph_add_input(g, "x", OX_FLOAT, 2, d);
    ox_value *fake = ox_graph_add_initializer(g, "fake", OX_FLOAT, 2, wd, NULL, 0);
    CHECK(fake && fake->tensor->storage == OX_DATA_ABSENT);
    int64_t c = 7;
    ox_value *k = ox_graph_add_constant(g, NULL, OX_INT64, 0, NULL, &c);
    CHECK(k && k->tensor->storage == OX_DATA_OWNED && *(const int64_t *)k->tensor->data == 7);

    ox_value *ins[2] = {x, NULL};
    ox_node *n = ox_graph_add_node(g, "Clip", NULL, 2, ins, 1);
    CHECK(n && n->ninputs == 2 && n->inputs[1] == NULL && n->outputs[0]->producer == n);
    CHECK(ox_node_set_int(g, n, "axis", -1) == OX_OK);
    CHECK(ox_node_set_int(g, n, "axis", 2) == OX_OK); /* replaced, not duplicated */
    CHECK_EQ_INT(n->nattrs, 1);
    CHECK_EQ_INT(ox_node_attr_int(n, "axis", 0), 2);
    int64_t perm[3] = {0, 2, 1};
    float fl[2] = {0.5f, 1.5f};
    CHECK(ox_node_set_ints(g, n, "perm", perm, 3) == OX_OK);
    CHECK(ox_node_set_floats(g, n, "scales", fl, 2) == OX_OK);
    CHECK(ox_node_set_string(g, n, "mode", "linear") == OX_OK);
    CHECK(ox_node_set_tensor(g, n, "value", OX_INT64, 0, NULL, &c) == OX_OK);
    CHECK_EQ_INT(n->nattrs, 5);
    CHECK_EQ_INT(ox_node_attr(n, "perm")->u.ints.v[1], 2);
    CHECK(ox_node_attr(n, "missing") == NULL);

    /* names: anonymous values get fresh names; clashing names get suffixes */
    const char *a1 = ox_value_name(g, n->outputs[0]);
    CHECK(a1 && a1[0] == '_');
    ox_value *v2 = ox_graph_add_value(g, "x", OX_FLOAT, -1, NULL);
    CHECK_STR(v2->name, "x_1");
    ox_value *v3 = ox_graph_add_value(g, "x", OX_FLOAT, -1, NULL);
    CHECK_STR(v3->name, "x_2");
    CHECK(ox_graph_add_output(g, n->outputs[0]) == OX_OK);
    CHECK(n->outputs[0]->is_output);
    CHECK(ox_graph_add_metadata(g, "k", "v") == OX_OK);
    CHECK_EQ_INT(g->nmetadata, 1);
    CHECK(!ox_graph_failed(g));

    /* use counts and replacement */
    ox_value *ins2[1] = {n->outputs[0]};
    ox_node *m = ox_graph_add_node(g, "Relu", NULL, 1, ins2, 1);
    ox_graph_count_uses(g);
    CHECK_EQ_INT(x->uses, 1);
    CHECK_EQ_INT(n->outputs[0]->uses, 1);
    ox_graph_replace_uses(g, n->outputs[0], x);
    CHECK(m->inputs[0] == x);
    CHECK(g->outputs[0] == x);
    n->dead = true;
    ox_graph_compact(g);
    CHECK_EQ_INT(g->nnodes, 1);
    CHECK(g->nodes[0] == m && m->id == 0);
    ox_graph_free(g);
    ox_graph_free(NULL);
}

static void test_many_nodes(void) {
    /* growth of every array, and of the name table */
    ox_graph *g = ox_graph_new(20);
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 0, NULL);
    for (int i = 0; i < 20000; i++) {
        ox_node *n = ox_graph_add_node(g, "Relu", NULL, 1, &x, 1);
        CHECK(n != NULL);
        if (!n) break;
        x = n->outputs[0];
        CHECK(ox_value_set_name(g, x, "relu") == OX_OK);
    }
    CHECK_EQ_INT(g->nnodes, 20000);
    CHECK_STR(g->nodes[19999]->outputs[0]->name, "relu_19999");
    ox_graph_free(g);
}

static void test_oom_is_reported(void) {
    for (long budget = 0; budget < 40; budget++) {
        ox_graph *g = ox_graph_new(20);
        if (!g) continue;
        ox_arena_fail_after(g->arena, budget);
        ox_dim d[1] = {{.value = 4}};
        ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 1, d);
        ox_node *n = ox_graph_add_node(g, "Relu", NULL, 1, &x, 1);
        ox_node_set_ints(g, n, "perm", (const int64_t[]){1, 2}, 2);
        if (n) ox_graph_add_output(g, n->outputs[0]);
        if (ox_graph_failed(g)) CHECK(ox_graph_status(g) == OX_ENOMEM);
        ox_graph_free(g);
    }
}

static void test_dtypes(void) {
    CHECK_EQ_INT(ox_dtype_size(OX_FLOAT), 4);
    CHECK_EQ_INT(ox_dtype_size(OX_BFLOAT16), 2);
    CHECK_EQ_INT(ox_dtype_size(OX_STRING), 0);
    CHECK_EQ_INT(ox_dtype_size((ox_dtype)99), 0);
    CHECK_STR(ox_dtype_name(OX_INT64), "int64");
    CHECK(ox_dtype_is_float(OX_FLOAT16) && !ox_dtype_is_float(OX_INT32));
    CHECK(ox_dtype_is_int(OX_UINT8) && !ox_dtype_is_int(OX_BOOL));
    int64_t dims[2] = {INT64_MAX, 4};
    ox_tensor t = {.dtype = OX_FLOAT, .rank = 2, .dims = dims};
    CHECK_EQ_INT(ox_tensor_numel(&t), -1); /* overflow */
}

/* Reads of transposed views, whole and in pieces at odd offsets, against a naive index walk: the
 * tiled matrix path (perm [1,0], batched [0,2,1], with unit and merged dims) and the general one. */
static uint32_t rng_state = 12345;
static uint32_t rng(void) {
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

static void naive_permuted(const ox_tensor *t, unsigned char *out) {
    size_t es = ox_dtype_size(t->dtype);
    int r = t->rank;
    int64_t bstride[16], idx[16] = {0};
    int64_t s = 1;
    for (int i = r - 1; i >= 0; i--) {
        bstride[i] = s;
        s *= t->base->dims[i];
    }
    int64_t n = ox_tensor_numel(t);
    for (int64_t e = 0; e < n; e++) {
        int64_t rem = e, src = 0;
        for (int i = r - 1; i >= 0; i--) {
            idx[i] = rem % t->dims[i];
            rem /= t->dims[i];
        }
        for (int i = 0; i < r; i++) src += idx[i] * bstride[t->perm[i]];
        memcpy(out + (size_t)e * es, (const unsigned char *)t->base->data + (size_t)src * es, es);
    }
}

static void check_view(ox_dtype dt, int r, const int64_t *bdims, const int64_t *perm) {
    size_t es = ox_dtype_size(dt);
    int64_t dims[16];
    size_t n = 1;
    for (int i = 0; i < r; i++) {
        dims[i] = bdims[perm[i]];
        n *= (size_t)bdims[i];
    }
    unsigned char *data = malloc(n * es), *want = malloc(n * es), *got = malloc(n * es);
    for (size_t i = 0; i < n * es; i++) data[i] = (unsigned char)rng();
    ox_tensor b = {.dtype = dt, .rank = r, .dims = bdims, .data = data, .nbytes = n * es, .storage = OX_DATA_BORROWED};
    ox_tensor t = {
        .dtype = dt, .rank = r, .dims = dims, .nbytes = n * es, .storage = OX_DATA_PERMUTED, .base = &b, .perm = perm};
    naive_permuted(&t, want);
    CHECK(ox_tensor_read(&t, 0, n * es, got));
    CHECK(memcmp(want, got, n * es) == 0);
    size_t chunk = ox_tensor_read_chunk(&t);
    CHECK(chunk >= 1 && chunk <= n * es);
    for (int k = 0; k < 20; k++) { /* pieces that start and end anywhere, mid-element included */
        size_t off = rng() % (n * es), len = rng() % (n * es - off + 1);
        memset(got, 0, n * es);
        CHECK(ox_tensor_read(&t, off, len, got));
        CHECK(memcmp(want + off, got, len) == 0);
    }
    free(data);
    free(want);
    free(got);
}

/* A SCALED view: run-wise factors, read whole and in odd pieces, and materialized. */
static void test_scaled_reads(void) {
    float base[12];
    for (int i = 0; i < 12; i++) base[i] = (float)i + 0.25f;
    double k[4] = {2, -1, 0.5, 3};
    int64_t dims[3] = {4, 3, 1};
    ox_tensor b = {
        .dtype = OX_FLOAT, .rank = 3, .dims = dims, .data = base, .nbytes = sizeof base, .storage = OX_DATA_BORROWED};
    ox_tensor t = {.dtype = OX_FLOAT,
                   .rank = 3,
                   .dims = dims,
                   .nbytes = sizeof base,
                   .storage = OX_DATA_SCALED,
                   .base = &b,
                   .scale = k,
                   .run = 3};
    float want[12], got[12];
    for (int i = 0; i < 12; i++) want[i] = (float)(base[i] * k[i / 3]);
    CHECK(ox_tensor_read(&t, 0, sizeof got, got) && memcmp(got, want, sizeof got) == 0);
    for (size_t off = 0; off < sizeof want; off += 5) {
        memset(got, 0, sizeof got);
        CHECK(ox_tensor_read(&t, off, sizeof want - off, got));
        CHECK(memcmp(got, (unsigned char *)want + off, sizeof want - off) == 0);
    }
    ox_tensor absent = b;
    absent.storage = OX_DATA_ABSENT;
    absent.data = NULL;
    t.base = &absent;
    CHECK(!ox_tensor_has_data(&t) && !ox_tensor_read(&t, 0, 4, got));
    t.base = &b;
    ox_graph *g = ox_graph_new(20);
    const float *m = ox_tensor_bytes(g, &t);
    CHECK(m && memcmp(m, want, sizeof want) == 0 && t.storage == OX_DATA_OWNED && b.consumed);
    ox_graph_free(g);
}

static void test_permuted_reads(void) {
    const ox_dtype dts[5] = {OX_FLOAT, OX_FLOAT16, OX_INT64, OX_UINT8, OX_BOOL};
    int64_t d2[2] = {37, 70}, p2[2] = {1, 0};
    int64_t d3[3] = {3, 33, 65}, p3[3] = {0, 2, 1};
    int64_t d4[4] = {5, 1, 40, 9}, p4[4] = {2, 3, 1, 0}; /* [40*9] x [5] with a unit dim */
    int64_t d4b[4] = {6, 7, 8, 3}, p4b[4] = {2, 3, 0, 1}; /* [8*3] x [6*7]: merged groups */
    int64_t d4c[4] = {4, 5, 6, 7}, p4c[4] = {1, 3, 0, 2}; /* the general walk */
    int64_t d1[2] = {1, 50}, p1[2] = {1, 0}; /* a vector: no transpose at all */
    for (int i = 0; i < 5; i++) {
        check_view(dts[i], 2, d2, p2);
        check_view(dts[i], 3, d3, p3);
        check_view(dts[i], 4, d4, p4);
        check_view(dts[i], 4, d4b, p4b);
        check_view(dts[i], 4, d4c, p4c);
        check_view(dts[i], 2, d1, p1);
    }
    /* big enough that a chunk is a band of rows, not the whole tensor */
    int64_t big[2] = {300, 500};
    check_view(OX_FLOAT, 2, big, p2);
}

int main(void) {
    test_build();
    test_many_nodes();
    test_oom_is_reported();
    test_dtypes();
    test_permuted_reads();
    test_scaled_reads();
    return CHECK_DONE();
}
