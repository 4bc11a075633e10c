/* test_edit.c — the edits ONNXProgram makes through the binding (src/ir/edit.c): dim_param renaming
 * and weight replacement. */
#include <string.h>

#include "check.h"
#include "ir/ir.h"
#include "opt/pass.h"

static bool found_is(const char **found, uint32_t nfound, const char *const *want, uint32_t nwant) {
    if (nfound != nwant) return false;
    for (uint32_t i = 0; i < nwant; i++)
        if (strcmp(found[i], want[i]) != 0) return false;
    return true;
}

static void test_rename_dim_params(void) {
    ox_graph *g = ox_graph_new(20);
    ox_dim xd[2] = {{.param = "batch"}, {.param = "seq"}}, yd[2] = {{.param = "batch"}, {.param = "2*seq"}};
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 2, xd);
    ox_node *n = ox_graph_add_node(g, "Concat", NULL, 2, (ox_value *[]){x, x}, 1);
    ox_value *y = n->outputs[0];
    ox_value_set_shape(g, y, 2, yd);
    ox_value *z = ox_graph_add_node(g, "Relu", NULL, 1, &x, 1)->outputs[0];
    z->rank = x->rank;
    z->dims = x->dims; /* one dims array for two values, as passes leave them */
    ox_graph_add_output(g, y);
    ox_graph_add_output(g, z);
    ox_error err = {0};
    const char **found;
    uint32_t nfound;

    /* no mapping: the names, once each, in order of first appearance */
    CHECK(ox_graph_rename_dim_params(g, 0, NULL, NULL, &found, &nfound, &err) == OX_OK);
    const char *const all[3] = {"batch", "seq", "2*seq"};
    CHECK(found_is(found, nfound, all, 3));

    /* a swap is one renaming, also where two values share the dims; what is not named stays */
    const char *from[2] = {"batch", "seq"}, *to[2] = {"seq", "batch"};
    CHECK(ox_graph_rename_dim_params(g, 2, from, to, &found, &nfound, &err) == OX_OK);
    CHECK(found_is(found, nfound, all, 3)); /* the names before renaming */
    CHECK_STR(x->dims[0].param, "seq");
    CHECK_STR(x->dims[1].param, "batch");
    CHECK(z->dims == x->dims);
    CHECK_STR(y->dims[0].param, "seq");
    CHECK_STR(y->dims[1].param, "2*seq"); /* exact names only: expressions are the caller's */
    const char *const swapped[3] = {"seq", "batch", "2*seq"};
    CHECK(ox_graph_rename_dim_params(g, 0, NULL, NULL, &found, &nfound, &err) == OX_OK);
    CHECK(found_is(found, nfound, swapped, 3));

    /* an empty new name is refused before anything changes, and the graph stays usable */
    const char *from2[2] = {"seq", "2*seq"}, *to2[2] = {"s", ""};
    CHECK(ox_graph_rename_dim_params(g, 2, from2, to2, &found, &nfound, &err) == OX_EINVAL);
    CHECK_STR(err.msg, "rename_dim_params: empty new name for '2*seq'");
    CHECK(nfound == 0 && !found);
    CHECK_STR(x->dims[0].param, "seq");
    CHECK(!ox_graph_failed(g));

    /* out of memory is reported, not a crash */
    ox_error_clear(&err);
    ox_arena_fail_after(g->arena, 0);
    CHECK(ox_graph_rename_dim_params(g, 1, from2, to2, &found, &nfound, &err) == OX_ENOMEM);
    CHECK(err.code == OX_ENOMEM && ox_graph_failed(g));
    ox_graph_free(g);
}

/* Many values and names: every distinct name listed once (the list grows past its first size). */
static void test_rename_many(void) {
    ox_graph *g = ox_graph_new(20);
    char names[40][16];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "s%d", i);
        ox_dim d[2] = {{.param = names[i]}, {.param = names[i / 2]}};
        ox_graph_add_input(g, names[i], OX_FLOAT, 2, d);
    }
    ox_error err = {0};
    const char **found;
    uint32_t nfound;
    CHECK(ox_graph_rename_dim_params(g, 0, NULL, NULL, &found, &nfound, &err) == OX_OK);
    CHECK_EQ_INT(nfound, 40);
    for (uint32_t i = 0; i < nfound && i < 40; i++) CHECK_STR(found[i], names[i]);
    ox_graph_free(g);
}

static void test_set_weight(void) {
    ox_graph *g = ox_graph_new(20);
    ox_dim d[1] = {{.value = 2}};
    int64_t wd[1] = {2};
    float a[2] = {1, 2}, b[2] = {1, 2}, fresh[2] = {5, 6};
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 1, d);
    ox_value *fake = ox_graph_add_initializer(g, "fake", OX_FLOAT, 1, wd, NULL, sizeof a);
    ox_value *wa = ox_graph_add_initializer(g, "a", OX_FLOAT, 1, wd, a, sizeof a);
    ox_value *wb = ox_graph_add_initializer(g, "b", OX_FLOAT, 1, wd, b, sizeof b);
    ox_value *s1 = ox_graph_add_node(g, "Add", NULL, 2, (ox_value *[]){x, wa}, 1)->outputs[0];
    ox_value *s2 = ox_graph_add_node(g, "Sub", NULL, 2, (ox_value *[]){x, wb}, 1)->outputs[0];
    ox_value *s3 = ox_graph_add_node(g, "Mul", NULL, 2, (ox_value *[]){x, fake}, 1)->outputs[0];
    ox_graph_add_output(g, s1);
    ox_graph_add_output(g, s2);
    ox_graph_add_output(g, s3);
    ox_error err = {0};

    /* a fake weight gets bytes */
    CHECK(fake->tensor->storage == OX_DATA_ABSENT);
    CHECK(ox_graph_set_weight(g, fake, fresh, sizeof fresh, &err) == OX_OK);
    CHECK(fake->tensor->storage == OX_DATA_BORROWED && fake->tensor->data == fresh);

    /* sizes are checked, whatever the caller checked before */
    CHECK(ox_graph_set_weight(g, wa, fresh, 4, &err) == OX_EINVAL);
    CHECK_STR(err.msg, "weight 'a': 4 bytes given, it holds 8");
    ox_error_clear(&err);
    CHECK(ox_graph_set_weight(g, wa, fresh, -1, &err) == OX_EINVAL);
    CHECK_STR(err.msg, "weight 'a': -1 bytes given, it holds 8");
    ox_error_clear(&err);
    CHECK(ox_graph_set_weight(g, wa, NULL, 8, &err) == OX_EINVAL);
    ox_error_clear(&err);
    CHECK(ox_graph_set_weight(g, x, fresh, 8, &err) == OX_EINVAL); /* an input is no weight */
    ox_error_clear(&err);
    CHECK(wa->tensor->data == a);

    /* dedup makes one weight stand for both: replacing either now would leave the other stale */
    CHECK(ox_optimize(g, NULL) == OX_OK);
    CHECK(wa->tensor->consumed && wb->tensor->consumed);
    CHECK(ox_graph_set_weight(g, wb, fresh, sizeof fresh, &err) == OX_EINVAL);
    CHECK(strstr(err.msg, "weight 'b' was folded into other constants by optimize(): apply weights before") != NULL);
    CHECK(wb->tensor->data == b);
    CHECK(!ox_graph_failed(g));
    ox_graph_free(g);
}

int main(void) {
    test_rename_dim_params();
    test_rename_many();
    test_set_weight();
    return CHECK_DONE();
}
