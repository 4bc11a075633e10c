#include <string.h>

#include "check.h"
#include "pass.h"

static ox_dim d4[1] = {{.value = 4}};

static void test_dce(void) {
    ox_graph *g = ox_graph_new(20);
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 1, d4);
    ox_value *unused_in = ox_graph_add_input(g, "unused", OX_FLOAT, 1, d4);
    float w[4] = {1, 2, 3, 4};
    int64_t wd[1] = {4};
    ox_value *used_w = ox_graph_add_initializer(g, "w", OX_FLOAT, 1, wd, w, sizeof w);
    ox_graph_add_initializer(g, "dead_w", OX_FLOAT, 1, wd, w, sizeof w);
    ox_value *ab[2] = {x, used_w};
    ox_node *add = ox_graph_add_node(g, "Add", NULL, 2, ab, 1);
    ox_node *dead1 = ox_graph_add_node(g, "Relu", NULL, 1, &x, 1);            /* read by dead2 only */
    ox_node *dead2 = ox_graph_add_node(g, "Neg", NULL, 1, dead1->outputs, 1);
    ox_graph_add_output(g, add->outputs[0]);
    ox_pass_stats st = {0};
    CHECK(ox_optimize(g, &st) == OX_OK);
    CHECK_EQ_INT(st.nodes_before, 3);
    CHECK_EQ_INT(st.nodes_after, 1);
    CHECK_EQ_INT(st.nodes_removed, 2);
    CHECK_EQ_INT(st.initializers_removed, 1);
    CHECK_EQ_INT(g->nnodes, 1);
    CHECK(g->nodes[0] == add);
    CHECK(dead2->dead && dead1->dead);
    CHECK_EQ_INT(g->ninitializers, 1);
    CHECK(g->initializers[0] == used_w);
    CHECK_EQ_INT(g->ninputs, 2);               /* inputs are the signature: kept */
    CHECK(g->inputs[1] == unused_in);
    /* idempotent */
    memset(&st, 0, sizeof st);
    CHECK(ox_optimize(g, &st) == OX_OK);
    CHECK_EQ_INT(st.nodes_removed, 0);
    ox_graph_free(g);
}

static void test_lift_constants(void) {
    ox_graph *g = ox_graph_new(20);
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 1, d4);
    ox_node *c = ox_graph_add_node(g, "Constant", NULL, 0, NULL, 1);
    float v[4] = {0.5f, 1, 2, 3};
    int64_t vd[1] = {4};
    ox_node_set_tensor(g, c, "value", OX_FLOAT, 1, vd, v);
    ox_value_set_name(g, c->outputs[0], "scale");
    ox_value *ab[2] = {x, c->outputs[0]};
    ox_node *mul = ox_graph_add_node(g, "Mul", NULL, 2, ab, 1);
    ox_graph_add_output(g, mul->outputs[0]);
    /* a Constant that is itself a graph output */
    ox_node *c2 = ox_graph_add_node(g, "Constant", NULL, 0, NULL, 1);
    ox_node_set_tensor(g, c2, "value", OX_FLOAT, 1, vd, v);
    ox_graph_add_output(g, c2->outputs[0]);
    ox_pass_stats st = {0};
    CHECK(ox_optimize(g, &st) == OX_OK);
    CHECK_EQ_INT(st.constants_lifted, 2);
    CHECK_EQ_INT(g->nnodes, 1);
    CHECK_STR(g->nodes[0]->op_type, "Mul");
    ox_value *init = g->nodes[0]->inputs[1];
    CHECK(init->kind == OX_VALUE_INITIALIZER);
    CHECK_STR(init->name, "scale");
    CHECK(memcmp(init->tensor->data, v, sizeof v) == 0);
    CHECK_EQ_INT(g->ninitializers, 2);
    CHECK(g->outputs[1]->kind == OX_VALUE_INITIALIZER && g->outputs[1]->is_output);
    ox_graph_free(g);
}

int main(void) {
    test_dce();
    test_lift_constants();
    return CHECK_DONE();
}
