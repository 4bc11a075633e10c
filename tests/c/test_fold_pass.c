/* The fold pass (pass.c) around ConstantOfShape: the node is never folded itself, but a node that
 * reads it with constant inputs otherwise folds through a temporary, within the size rule; And with
 * all-true and Or with all-false are no-ops. Kernels' own cases are in test_fold.c. */
#include <string.h>

#include "check.h"
#include "opt/pass.h"

static ox_value *node1(ox_graph *g, const char *op, ox_value *a, ox_value *b) {
    ox_value *in[2] = {a, b};
    ox_node *n = ox_graph_add_node(g, op, NULL, b ? 2 : 1, in, 1);
    return n ? n->outputs[0] : NULL;
}

/* ConstantOfShape(shape) with value `value` of dtype dt (NULL: no attribute, a float 0). */
static ox_value *constant_of_shape(ox_graph *g, int rank, const int64_t *shape, ox_dtype dt, const void *value) {
    int64_t r = rank;
    ox_value *s = ox_graph_add_constant(g, NULL, OX_INT64, 1, &r, shape);
    ox_node *n = ox_graph_add_node(g, "ConstantOfShape", NULL, 1, &s, 1);
    int64_t one = 1;
    if (value) ox_node_set_tensor(g, n, "value", dt, 1, &one, value);
    return n->outputs[0];
}

static int count_op(const ox_graph *g, const char *op) {
    int k = 0;
    for (uint32_t i = 0; i < g->nnodes; i++) k += !g->nodes[i]->dead && !strcmp(g->nodes[i]->op_type, op);
    return k;
}

static void test_look_through(void) {
    ox_graph *g = ox_graph_new(20);
    ox_dim d23[2] = {{.value = 2}, {.value = 3}};
    ox_value *x = ox_graph_add_input(g, "x", OX_INT64, 2, d23);
    int64_t shape[2] = {2, 3}, seven = 7, w[3] = {1, 2, 3}, d3 = 3;
    ox_value *c = constant_of_shape(g, 2, shape, OX_INT64, &seven);
    ox_value *sum = node1(g, "Add", c, ox_graph_add_constant(g, "w", OX_INT64, 1, &d3, w));
    ox_graph_add_output(g, node1(g, "Mul", x, sum));
    ox_pass_stats st = {0};
    CHECK(ox_optimize(g, &st) == OX_OK);
    CHECK_EQ_INT(g->nnodes, 1); /* the Add folded, the ConstantOfShape died */
    CHECK_STR(g->nodes[0]->op_type, "Mul");
    ox_value *k = g->nodes[0]->inputs[1];
    CHECK(k->kind == OX_VALUE_INITIALIZER && k->tensor->rank == 2 && k->tensor->dims[0] == 2);
    if (k->kind == OX_VALUE_INITIALIZER && k->tensor->nbytes == 48) {
        const int64_t *v = k->tensor->data;
        CHECK(v[0] == 8 && v[2] == 10 && v[3] == 8 && v[5] == 10);
    }
    ox_graph_free(g);

    /* no value attribute: float zeros; read by two nodes, one of which cannot fold */
    g = ox_graph_new(20);
    ox_dim d4[1] = {{.value = 4}};
    ox_value *xf = ox_graph_add_input(g, "x", OX_FLOAT, 1, d4);
    int64_t four = 4;
    float half = 0.5f;
    c = constant_of_shape(g, 1, &four, OX_FLOAT, NULL);
    ox_graph_add_output(
        g, node1(g, "Mul", xf, node1(g, "Add", c, ox_graph_add_constant(g, NULL, OX_FLOAT, 0, NULL, &half))));
    ox_graph_add_output(g, node1(g, "Sub", xf, c));
    CHECK(ox_optimize(g, &st) == OX_OK);
    CHECK_EQ_INT(count_op(g, "Add"), 0);
    CHECK_EQ_INT(count_op(g, "ConstantOfShape"), 1); /* still read by the Sub */
    ox_graph_free(g);
}

static void test_size_rules(void) {
    ox_graph *g = ox_graph_new(20);
    ox_dim d1[1] = {{.value = 1}};
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 1, d1);
    float one = 1.0f;
    /* 4 MB of ones summed to one number: a small result from a temporary under the cap */
    int64_t mid[2] = {1000, 1000};
    ox_graph_add_output(g,
                        node1(g, "Add", x, node1(g, "ReduceSum", constant_of_shape(g, 2, mid, OX_FLOAT, &one), NULL)));
    /* 36 MB: over the temporary's cap, left alone */
    int64_t big[2] = {3000, 3000};
    ox_graph_add_output(g,
                        node1(g, "Add", x, node1(g, "ReduceSum", constant_of_shape(g, 2, big, OX_FLOAT, &one), NULL)));
    /* a result of 4 MB would grow the file: left alone */
    ox_graph_add_output(g, node1(g, "Add", x, node1(g, "Neg", constant_of_shape(g, 2, mid, OX_FLOAT, &one), NULL)));
    /* shapes that are not shapes: left alone, nothing read */
    int64_t neg[2] = {2, -1}, huge[3] = {0, INT64_MAX, INT64_MAX};
    ox_graph_add_output(g, node1(g, "Add", x, node1(g, "Neg", constant_of_shape(g, 2, neg, OX_FLOAT, &one), NULL)));
    ox_graph_add_output(g, node1(g, "Add", x, node1(g, "Neg", constant_of_shape(g, 3, huge, OX_FLOAT, &one), NULL)));
    ox_pass_stats st = {0};
    CHECK(ox_optimize(g, &st) == OX_OK);
    CHECK_EQ_INT(count_op(g, "ReduceSum"), 1);
    CHECK_EQ_INT(count_op(g, "Neg"), 3);
    CHECK_EQ_INT(count_op(g, "ConstantOfShape"), 4);
    const ox_value *sum = NULL; /* the folded ReduceSum */
    for (uint32_t i = 0; i < g->nnodes; i++)
        if (!strcmp(g->nodes[i]->op_type, "Add") && g->nodes[i]->inputs[1]->kind == OX_VALUE_INITIALIZER)
            sum = g->nodes[i]->inputs[1];
    CHECK(sum && sum->tensor->dtype == OX_FLOAT && sum->tensor->nbytes == 4);
    if (sum) CHECK(*(const float *)sum->tensor->data == 1e6f);
    ox_graph_free(g);
}

static void test_logic_noops(void) {
    ox_graph *g = ox_graph_new(20);
    ox_dim d[2] = {{.value = 2}, {.value = 3}};
    ox_value *x = ox_graph_add_input(g, "x", OX_BOOL, 2, d);
    unsigned char t = 1, f = 0;
    int64_t ones[2] = {1, 1}, three = 3;
    ox_value *all_true = ox_graph_add_constant(g, NULL, OX_BOOL, 0, NULL, &t);
    ox_value *a1 = node1(g, "And", x, all_true); /* -> x */
    ox_value *a2 = node1(g, "And", constant_of_shape(g, 0, ones, OX_BOOL, &t), a1); /* -> x */
    ox_value *o1 = node1(g, "Or", constant_of_shape(g, 2, ones, OX_BOOL, &f), a2); /* -> x */
    ox_graph_add_output(g, node1(g, "Not", o1, NULL));
    /* not no-ops: a false, a true that broadcasts x to [2, 2, 3], a constant of two elements */
    ox_graph_add_output(
        g, node1(g, "Not", node1(g, "And", x, ox_graph_add_constant(g, NULL, OX_BOOL, 0, NULL, &f)), NULL));
    int64_t s3[3] = {2, 1, 1};
    ox_graph_add_output(g, node1(g, "Not", node1(g, "And", x, constant_of_shape(g, 3, s3, OX_BOOL, &t)), NULL));
    ox_graph_add_output(g, node1(g, "Not", node1(g, "Or", x, constant_of_shape(g, 1, &three, OX_BOOL, &f)), NULL));
    ox_pass_stats st = {0};
    CHECK(ox_optimize(g, &st) == OX_OK);
    CHECK(!strcmp(g->nodes[0]->op_type, "Not") && g->nodes[0]->inputs[0] == x);
    CHECK_EQ_INT(count_op(g, "And"), 2);
    CHECK_EQ_INT(count_op(g, "Or"), 1);
    CHECK_EQ_INT(count_op(g, "ConstantOfShape"), 2);
    ox_graph_free(g);
}

int main(void) {
    test_look_through();
    test_size_rules();
    test_logic_noops();
    return CHECK_DONE();
}
