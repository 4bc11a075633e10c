#include <string.h>

#include "check.h"
#include "ir.h"

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
    CHECK(ox_node_set_int(g, n, "axis", 2) == OX_OK);      /* replaced, not duplicated */
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
    CHECK_EQ_INT(ox_tensor_numel(&t), -1);   /* overflow */
}

int main(void) {
    test_build();
    test_many_nodes();
    test_oom_is_reported();
    test_dtypes();
    return CHECK_DONE();
}
