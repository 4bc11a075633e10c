/* The lowering driver: table lookup, binding, unsupported-op collection, promotion, constants.
 * It uses only rows every build has (sigmoid); the op lowerings are checked end to end in pytest,
 * and the detection paths of Faster R-CNN here too, so that they run under the sanitizers. */
#include <string.h>

#include "check.h"
#include "lower/lower.h"

typedef struct {
    ox_graph *g;
    ox_aten_program p;
} prog;

static void prog_init(prog *P, uint32_t nvalues) {
    P->g = ox_graph_new(20);
    memset(&P->p, 0, sizeof P->p);
    P->p.nvalues = nvalues;
    P->p.table = ox_arena_array(P->g->arena, nvalues, sizeof *P->p.table);
    P->p.nodes = ox_arena_array(P->g->arena, 8, sizeof *P->p.nodes);
    P->p.outputs = ox_arena_array(P->g->arena, 4, sizeof *P->p.outputs);
}

static ox_dim dims34[2] = {{.value = 3}, {.value = 4}};

/* Appends node `target` reading value `in` and producing value `out`. */
static void add_node(prog *P, const char *target, const char *name, uint32_t in, uint32_t out) {
    ox_aten_node *n = &P->p.nodes[P->p.nnodes++];
    ox_arena *a = P->g->arena;
    n->target = target;
    n->name = name;
    n->where = "block.act (Sigmoid), model.py:7";
    n->nargs = 1;
    n->args = ox_arena_alloc(a, sizeof *n->args);
    n->args[0].kind = OX_ARG_VALUE;
    n->args[0].u.ref = in;
    n->noutputs = 1;
    n->outputs = ox_arena_alloc(a, sizeof *n->outputs);
    n->outputs[0] = out;
    n->meta = ox_arena_alloc(a, sizeof *n->meta);
    n->meta[0] = (ox_meta){.dtype = OX_FLOAT, .rank = 2, .dims = dims34};
}

static void test_lower_ok(void) {
    prog P;
    prog_init(&P, 3);
    P.p.table[0] = ox_graph_add_input(P.g, "x", OX_FLOAT, 2, dims34);
    add_node(&P, "aten::sigmoid.default", "sigmoid", 0, 1);
    add_node(&P, "aten::sigmoid.default", "sigmoid_1", 1, 2);
    P.p.outputs[P.p.noutputs++] = 2;
    P.p.outputs[P.p.noutputs++] = 0; /* the input itself is an output: goes through Identity */
    ox_lower_report rep;
    CHECK(ox_lower_run(P.g, &P.p, &rep) == OX_OK);
    CHECK_EQ_INT(rep.nunsupported, 0);
    CHECK_EQ_INT(P.g->nnodes, 3);
    CHECK_STR(P.g->nodes[0]->op_type, "Sigmoid");
    CHECK_STR(P.g->nodes[0]->name, "sigmoid");
    CHECK_STR(P.g->nodes[0]->outputs[0]->name, "sigmoid");
    CHECK(P.g->nodes[0]->outputs[0]->has_meta);
    CHECK_EQ_INT(P.g->nodes[0]->outputs[0]->dims[1].value, 4);
    CHECK_STR(P.g->nodes[2]->op_type, "Identity");
    CHECK_EQ_INT(P.g->noutputs, 2);
    CHECK_STR(P.g->outputs[0]->name, "sigmoid_1");
    CHECK(P.g->outputs[1]->kind == OX_VALUE_NODE && P.g->outputs[1]->producer == P.g->nodes[2]);
    ox_graph_free(P.g);
}

static void test_unsupported_collected(void) {
    prog P;
    prog_init(&P, 5);
    P.p.table[0] = ox_graph_add_input(P.g, "x", OX_FLOAT, 2, dims34);
    add_node(&P, "aten::frobnicate.default", "frob", 0, 1);
    add_node(&P, "aten::sigmoid.default", "sigmoid", 1, 2); /* goes on past the gap */
    add_node(&P, "aten::frobnicate.default", "frob_1", 2, 3);
    add_node(&P, "mylib::custom.default", "custom", 3, 4);
    P.p.outputs[P.p.noutputs++] = 4;
    ox_lower_report rep;
    CHECK(ox_lower_run(P.g, &P.p, &rep) == OX_EUNSUPPORTED);
    CHECK_EQ_INT(rep.nunsupported, 2);
    if (rep.nunsupported == 2) {
        CHECK_STR(rep.unsupported[0].target, "aten::frobnicate.default");
        CHECK_EQ_INT(rep.unsupported[0].count, 2);
        CHECK_STR(rep.unsupported[0].node, "frob");
        CHECK_STR(rep.unsupported[0].where, "block.act (Sigmoid), model.py:7");
        CHECK_STR(rep.unsupported[0].arg_dtypes, "float32");
        CHECK(rep.unsupported[0].reason == NULL);
        CHECK_STR(rep.unsupported[1].target, "mylib::custom.default");
    }
    CHECK(strstr(P.g->err.msg, "2 unsupported ops") != NULL);
    ox_graph_free(P.g);
}

static void test_bad_reference(void) {
    prog P;
    prog_init(&P, 3);
    P.p.table[0] = ox_graph_add_input(P.g, "x", OX_FLOAT, 2, dims34);
    add_node(&P, "aten::sigmoid.default", "sigmoid", 2, 1); /* value 2 is never produced */
    P.p.outputs[P.p.noutputs++] = 1;
    ox_lower_report rep;
    CHECK(ox_lower_run(P.g, &P.p, &rep) == OX_ELOWER);
    CHECK(strstr(P.g->err.msg, "aten::sigmoid.default") != NULL);
    CHECK(strstr(P.g->err.msg, "node sigmoid") != NULL);
    CHECK(strstr(P.g->err.msg, "never produced") != NULL);
    ox_graph_free(P.g);

    prog_init(&P, 2);
    P.p.table[0] = ox_graph_add_input(P.g, "x", OX_FLOAT, 2, dims34);
    P.p.outputs[P.p.noutputs++] = 1; /* output never produced */
    CHECK(ox_lower_run(P.g, &P.p, &rep) == OX_ELOWER);
    ox_graph_free(P.g);
}

static void test_table(void) {
    CHECK(ox_lower_supports("aten::sigmoid.default", 20));
    CHECK(!ox_lower_supports("aten::sigmoid.default", 17));
    CHECK(!ox_lower_supports("aten::frobnicate.default", 20));
    CHECK(!ox_lower_supports(NULL, 20));
    int lo, hi, n = 0;
    const char *prev = "";
    for (const char *t; (t = ox_lower_target(n, &lo, &hi)); n++) {
        CHECK(strcmp(prev, t) < 0); /* sorted, no duplicate rows */
        CHECK(lo >= 18 && hi <= 24 && lo <= hi);
        prev = t;
    }
    CHECK(n >= 2);
    CHECK(ox_lower_target(-1, NULL, NULL) == NULL);
}

static void test_promote(void) {
    CHECK_EQ_INT(ox_promote(OX_INT64, OX_FLOAT), OX_FLOAT);
    CHECK_EQ_INT(ox_promote(OX_BOOL, OX_INT32), OX_INT32);
    CHECK_EQ_INT(ox_promote(OX_FLOAT16, OX_FLOAT), OX_FLOAT);
    CHECK_EQ_INT(ox_promote(OX_FLOAT16, OX_BFLOAT16), OX_FLOAT);
    CHECK_EQ_INT(ox_promote(OX_UINT8, OX_INT8), OX_INT16);
    CHECK_EQ_INT(ox_promote(OX_UINT8, OX_INT32), OX_INT32);
    CHECK_EQ_INT(ox_promote(OX_INT32, OX_INT64), OX_INT64);
    CHECK_EQ_INT(ox_promote(OX_DOUBLE, OX_INT64), OX_DOUBLE);
    CHECK_EQ_INT(ox_promote(OX_UNDEFINED, OX_INT64), OX_INT64);
}

static void test_constants(void) {
    prog P;
    prog_init(&P, 1);
    ox_aten_node n = {.target = "aten::x.default", .name = "x"};
    ox_lower L = {.g = P.g, .prog = &P.p, .node = &n, .opset = 20};
    struct {
        ox_dtype t;
        double v;
        unsigned bits;
    } cases[] = {
        {OX_FLOAT16, 1.0, 0x3c00},
        {OX_FLOAT16, -2.5, 0xc100},
        {OX_FLOAT16, 65504.0, 0x7bff},
        {OX_FLOAT16, 1e6, 0x7c00},
        {OX_FLOAT16, 5.960464477539063e-08, 0x0001},
        {OX_FLOAT16, 0.1, 0x2e66},
        {OX_BFLOAT16, 1.0, 0x3f80},
        {OX_BFLOAT16, 3.140625, 0x4049},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ox_value *c = ox_const_scalar(&L, cases[i].t, cases[i].v);
        CHECK(c && c->tensor->rank == 0 && c->tensor->nbytes == 2);
        if (!c) continue;
        unsigned short h;
        memcpy(&h, c->tensor->data, 2);
        if (h != cases[i].bits) {
            fprintf(stderr, "case %zu: got 0x%04x, expected 0x%04x\n", i, h, cases[i].bits);
            check_failures++;
        }
    }
    int64_t v[3] = {1, -1, 5};
    ox_value *c = ox_const_ints(&L, 3, v);
    CHECK(c && c->dtype == OX_INT64 && c->rank == 1 && c->dims[0].value == 3);
    CHECK(ox_const_scalar(&L, OX_STRING, 1.0) == NULL); /* no such scalar */
    CHECK(L.unsupported_reason != NULL);
    ox_graph_free(P.g);
}

/* ---- detection paths (Faster R-CNN): roi_align, stack of empty tensors, symbolic split ---- */

static ox_aten_node *add_node_args(prog *P, const char *target, int nargs, const ox_arg *args, int noutputs,
                                   uint32_t first_out, const ox_meta *meta) {
    ox_aten_node *n = &P->p.nodes[P->p.nnodes++];
    ox_arena *a = P->g->arena;
    n->target = target;
    n->name = "node";
    n->where = "model.roi_heads (RoIHeads), roi_heads.py:786";
    n->nargs = nargs;
    n->args = ox_arena_array(a, (size_t)nargs, sizeof *n->args);
    memcpy(n->args, args, (size_t)nargs * sizeof *args);
    n->noutputs = noutputs;
    n->outputs = ox_arena_array(a, (size_t)noutputs, sizeof *n->outputs);
    n->meta = ox_arena_array(a, (size_t)noutputs, sizeof *n->meta);
    for (int k = 0; k < noutputs; k++) {
        n->outputs[k] = first_out + (uint32_t)k;
        n->meta[k] = meta[k];
        P->p.outputs[P->p.noutputs++] = first_out + (uint32_t)k;
    }
    return n;
}

static const ox_node *find_op(const ox_graph *g, const char *op_type) {
    for (uint32_t k = 0; k < g->nnodes; k++)
        if (strcmp(g->nodes[k]->op_type, op_type) == 0) return g->nodes[k];
    return NULL;
}

static void test_roi_align(void) {
    static ox_dim xd[4] = {{.value = 2}, {.value = 3}, {.value = 16}, {.value = 20}};
    static ox_dim rd[2] = {{.value = 5}, {.value = 5}};
    static ox_dim od[4] = {{.value = 5}, {.value = 3}, {.value = 7}, {.value = 7}};
    prog P;
    prog_init(&P, 3);
    P.p.table[0] = ox_graph_add_input(P.g, "x", OX_FLOAT16, 4, xd);
    P.p.table[1] = ox_graph_add_input(P.g, "rois", OX_FLOAT16, 2, rd);
    ox_arg args[7] = {{.kind = OX_ARG_VALUE, .u.ref = 0},  {.kind = OX_ARG_VALUE, .u.ref = 1},
                      {.kind = OX_ARG_FLOAT, .u.f = 0.25}, {.kind = OX_ARG_INT, .u.i = 7},
                      {.kind = OX_ARG_INT, .u.i = 7},      {.kind = OX_ARG_INT, .u.i = -1},
                      {.kind = OX_ARG_BOOL, .u.i = 1}};
    ox_meta m = {.dtype = OX_FLOAT16, .rank = 4, .dims = od};
    add_node_args(&P, "torchvision::roi_align.default", 7, args, 1, 2, &m);
    ox_lower_report rep;
    CHECK(ox_lower_run(P.g, &P.p, &rep) == OX_OK);
    const ox_node *n = find_op(P.g, "RoiAlign");
    CHECK(n != NULL);
    if (n) {
        CHECK_EQ_INT(n->ninputs, 3);
        CHECK(n->inputs[0]->dtype == OX_FLOAT && n->inputs[2]->dtype == OX_INT64); /* float16 computed in float */
        CHECK_EQ_INT(ox_node_attr_int(n, "sampling_ratio", -9), 0); /* adaptive */
        CHECK_EQ_INT(ox_node_attr_int(n, "output_height", 0), 7);
        const ox_attr *mode = ox_node_attr(n, "coordinate_transformation_mode");
        CHECK(mode && strcmp(mode->u.s, "half_pixel") == 0);
    }
    CHECK(P.g->outputs[0]->dtype == OX_FLOAT16);
    ox_graph_free(P.g);

    prog_init(&P, 3); /* rois of the wrong rank: an error naming them and the node */
    P.p.table[0] = ox_graph_add_input(P.g, "x", OX_FLOAT, 4, xd);
    P.p.table[1] = ox_graph_add_input(P.g, "rois", OX_FLOAT, 1, rd);
    add_node_args(&P, "torchvision::roi_align.default", 7, args, 1, 2, &m);
    CHECK(ox_lower_run(P.g, &P.p, &rep) == OX_ELOWER);
    CHECK(strstr(P.g->err.msg, "rois of rank 1") != NULL);
    CHECK(strstr(P.g->err.msg, "roi_heads.py:786") != NULL);
    ox_graph_free(P.g);
}

static void test_stack_of_empty_tensors(void) {
    static ox_dim empty[1] = {{.value = 0}};
    static ox_dim od[2] = {{.value = 2}, {.value = 0}};
    prog P;
    prog_init(&P, 3);
    P.p.table[0] = ox_graph_add_input(P.g, "a", OX_FLOAT, 1, empty);
    P.p.table[1] = ox_graph_add_input(P.g, "b", OX_FLOAT, 1, empty);
    ox_arg items[2] = {{.kind = OX_ARG_VALUE, .u.ref = 0}, {.kind = OX_ARG_VALUE, .u.ref = 1}};
    ox_arg args[2] = {{.kind = OX_ARG_LIST, .u.list = {items, 2}}, {.kind = OX_ARG_INT, .u.i = 0}};
    ox_meta m = {.dtype = OX_FLOAT, .rank = 2, .dims = od};
    add_node_args(&P, "aten::stack.default", 2, args, 1, 2, &m);
    ox_lower_report rep;
    CHECK(ox_lower_run(P.g, &P.p, &rep) == OX_OK);
    const ox_node *c = find_op(P.g, "Concat");
    CHECK(c != NULL && c->ninputs == 2); /* both kept: torch.stack drops none */
    ox_graph_free(P.g);
}

static void test_split_with_symbolic_sizes(void) {
    static ox_dim xd[2] = {{.value = -1, .param = "n"}, {.value = 4}};
    static ox_dim d0[2] = {{.value = -1, .param = "u0"}, {.value = 4}};
    static ox_dim d1[2] = {{.value = 3}, {.value = 4}};
    static ox_dim sd[1] = {{.value = 1}};
    prog P;
    prog_init(&P, 4);
    P.p.table[0] = ox_graph_add_input(P.g, "x", OX_FLOAT, 2, xd);
    P.p.table[1] = ox_graph_add_input(P.g, "u0", OX_INT64, 0, sd); /* a symbolic size */
    ox_arg items[2] = {{.kind = OX_ARG_VALUE, .u.ref = 1}, {.kind = OX_ARG_INT, .u.i = 3}};
    ox_arg args[3] = {{.kind = OX_ARG_VALUE, .u.ref = 0},
                      {.kind = OX_ARG_LIST, .u.list = {items, 2}},
                      {.kind = OX_ARG_INT, .u.i = 0}};
    ox_meta m[2] = {{.dtype = OX_FLOAT, .rank = 2, .dims = d0}, {.dtype = OX_FLOAT, .rank = 2, .dims = d1}};
    add_node_args(&P, "aten::split_with_sizes.default", 3, args, 2, 2, m);
    ox_lower_report rep;
    CHECK(ox_lower_run(P.g, &P.p, &rep) == OX_OK);
    const ox_node *s = find_op(P.g, "Split");
    CHECK(s != NULL && s->ninputs == 2 && s->noutputs == 2);
    CHECK(s && s->inputs[1]->kind == OX_VALUE_NODE); /* sizes computed, not a constant */
    ox_graph_free(P.g);

    prog_init(&P, 4); /* split.Tensor with a symbolic size has no list to take: declined, with why */
    P.p.table[0] = ox_graph_add_input(P.g, "x", OX_FLOAT, 2, xd);
    ox_arg args2[3] = {
        {.kind = OX_ARG_VALUE, .u.ref = 0}, {.kind = OX_ARG_INT, .u.i = 3}, {.kind = OX_ARG_INT, .u.i = 0}};
    add_node_args(&P, "aten::split.Tensor", 3, args2, 2, 2, m);
    CHECK(ox_lower_run(P.g, &P.p, &rep) == OX_EUNSUPPORTED);
    CHECK_EQ_INT(rep.nunsupported, 1);
    ox_graph_free(P.g);
}

int main(void) {
    test_lower_ok();
    test_unsupported_collected();
    test_bad_reference();
    test_table();
    test_promote();
    test_constants();
    test_roi_align();
    test_stack_of_empty_tensors();
    test_split_with_symbolic_sizes();
    return CHECK_DONE();
}
