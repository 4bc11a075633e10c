#include <string.h>

#include "check.h"
#include "opt/pass.h"

static ox_dim d4[1] = {{.value = 4}};

static void test_dce(void) {
    ox_graph *g = ox_graph_new(20);
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 1, d4);
    ox_value *unused_in = ox_graph_add_input(g, "unused", OX_FLOAT, 1, d4);
    float w[4] = {1, 2, 3, 4}, w2[4] = {5, 6, 7, 8};
    int64_t wd[1] = {4};
    ox_value *used_w = ox_graph_add_initializer(g, "w", OX_FLOAT, 1, wd, w, sizeof w);
    ox_graph_add_initializer(g, "dead_w", OX_FLOAT, 1, wd, w2, sizeof w2);
    ox_value *ab[2] = {x, used_w};
    ox_node *add = ox_graph_add_node(g, "Add", NULL, 2, ab, 1);
    ox_node *dead1 = ox_graph_add_node(g, "Relu", NULL, 1, &x, 1); /* read by dead2 only */
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
    CHECK_EQ_INT(g->ninputs, 2); /* inputs are the signature: kept */
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

static ox_value *node1(ox_graph *g, const char *op, ox_value *a, ox_value *b) {
    ox_value *in[2] = {a, b};
    ox_node *n = ox_graph_add_node(g, op, NULL, b ? 2 : 1, in, 1);
    return n ? n->outputs[0] : NULL;
}

static void test_simplify(void) {
    ox_graph *g = ox_graph_new(20);
    ox_dim d[2] = {{.value = 2}, {.value = 3}};
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 2, d);
    float one = 1.0f, zero = 0.0f;
    ox_value *c1 = ox_graph_add_constant(g, "one", OX_FLOAT, 0, NULL, &one);
    ox_value *c0 = ox_graph_add_constant(g, "zero", OX_FLOAT, 0, NULL, &zero);
    ox_value *v = node1(g, "Identity", x, NULL);
    v = node1(g, "Mul", v, c1);
    v = node1(g, "Add", c0, v);
    ox_node *cast = ox_graph_add_node(g, "Cast", NULL, 1, &v, 1);
    ox_node_set_int(g, cast, "to", OX_FLOAT);
    v = cast->outputs[0];
    v->dtype = OX_FLOAT;
    ox_node *t1 = ox_graph_add_node(g, "Transpose", NULL, 1, &v, 1);
    ox_node_set_ints(g, t1, "perm", (const int64_t[]){1, 0}, 2);
    t1->outputs[0]->rank = 2;
    ox_node *t2 = ox_graph_add_node(g, "Transpose", NULL, 1, t1->outputs, 1); /* default perm */
    ox_value *r = node1(g, "Relu", t2->outputs[0], NULL);
    ox_value_set_name(g, r, "y");
    ox_graph_add_output(g, r);
    ox_pass_stats st = {0};
    CHECK(ox_optimize(g, &st) == OX_OK);
    CHECK_EQ_INT(g->nnodes, 1); /* only Relu is left, reading x */
    CHECK_STR(g->nodes[0]->op_type, "Relu");
    CHECK(g->nodes[0]->inputs[0] == x);
    CHECK_STR(g->outputs[0]->name, "y");
    CHECK_EQ_INT(g->ninitializers, 0);
    ox_graph_free(g);

    /* x * 1 where the constant would broadcast x up: not a no-op */
    g = ox_graph_new(20);
    ox_dim d1[1] = {{.value = 3}};
    x = ox_graph_add_input(g, "x", OX_FLOAT, 1, d1);
    float ones[6] = {1, 1, 1, 1, 1, 1};
    int64_t cd[2] = {2, 3};
    ox_value *c = ox_graph_add_constant(g, "ones", OX_FLOAT, 2, cd, ones);
    ox_graph_add_output(g, node1(g, "Mul", x, c));
    CHECK(ox_optimize(g, &st) == OX_OK);
    CHECK_EQ_INT(g->nnodes, 1);
    ox_graph_free(g);
}

static void test_identity_output_keeps_name(void) {
    /* Identity between a graph input and a graph output must stay: the input cannot be renamed. */
    ox_graph *g = ox_graph_new(20);
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 1, d4);
    ox_value *y = node1(g, "Identity", x, NULL);
    ox_value_set_name(g, y, "y");
    ox_graph_add_output(g, y);
    /* Identity after a node: the node's value takes the output's name */
    ox_value *r = node1(g, "Relu", x, NULL);
    ox_value *z = node1(g, "Identity", r, NULL);
    ox_value_set_name(g, z, "z");
    ox_graph_add_output(g, z);
    CHECK(ox_optimize(g, NULL) == OX_OK);
    CHECK_EQ_INT(g->nnodes, 2);
    CHECK_STR(g->outputs[0]->name, "y");
    CHECK_STR(g->outputs[1]->name, "z");
    CHECK(g->outputs[1]->producer && !strcmp(g->outputs[1]->producer->op_type, "Relu"));
    ox_graph_free(g);
}

static void test_fold_shape_and_transpose_view(void) {
    ox_graph *g = ox_graph_new(20);
    ox_dim d[2] = {{.value = 2}, {.value = 3}};
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 2, d);
    ox_value *s = node1(g, "Shape", x, NULL);
    ox_value *y = node1(g, "Reshape", x, s); /* reshape to its own shape: gone too */
    /* a weight big enough to be folded into a view */
    enum { R = 24, C = 20 };
    float w[R * C];
    for (int i = 0; i < R * C; i++) w[i] = (float)i;
    int64_t wd[2] = {R, C};
    ox_value *wv = ox_graph_add_initializer(g, "w", OX_FLOAT, 2, wd, w, sizeof w);
    ox_node *t = ox_graph_add_node(g, "Transpose", NULL, 1, &wv, 1);
    ox_node_set_ints(g, t, "perm", (const int64_t[]){1, 0}, 2);
    ox_graph_add_output(g, node1(g, "MatMul", y, node1(g, "Identity", t->outputs[0], NULL)));
    ox_pass_stats st = {0};
    CHECK(ox_optimize(g, &st) == OX_OK);
    CHECK_EQ_INT(g->nnodes, 1);
    CHECK_STR(g->nodes[0]->op_type, "MatMul");
    CHECK(g->nodes[0]->inputs[0] == x);
    ox_value *wt = g->nodes[0]->inputs[1];
    CHECK(wt->kind == OX_VALUE_INITIALIZER && wt->tensor->storage == OX_DATA_PERMUTED);
    CHECK(wt->tensor->dims[0] == C && wt->tensor->dims[1] == R);
    float back[R * C];
    CHECK(ox_tensor_read(wt->tensor, 0, sizeof back, back));
    int bad = 0;
    for (int i = 0; i < C; i++)
        for (int j = 0; j < R; j++) bad += back[i * R + j] != w[j * C + i];
    CHECK_EQ_INT(bad, 0);
    float part[3]; /* an unaligned range */
    CHECK(ox_tensor_read(wt->tensor, 2, 8, part));
    CHECK(ox_tensor_read(wt->tensor, sizeof back, 0, part));
    CHECK(!ox_tensor_read(wt->tensor, sizeof back - 2, 8, part));
    CHECK_EQ_INT(g->ninitializers, 1); /* the view; the original is no longer read */
    ox_graph_free(g);

    /* a tied weight (read as it is by a Gather and transposed by a MatMul): a folded Transpose would
     * write it twice, so the node stays */
    g = ox_graph_new(20);
    ox_dim di[1] = {{.value = 2}};
    ox_value *ids = ox_graph_add_input(g, "ids", OX_INT64, 1, di);
    wv = ox_graph_add_initializer(g, "wte", OX_FLOAT, 2, wd, w, sizeof w);
    ox_value *emb = node1(g, "Gather", wv, ids);
    t = ox_graph_add_node(g, "Transpose", NULL, 1, &wv, 1);
    ox_node_set_ints(g, t, "perm", (const int64_t[]){1, 0}, 2);
    ox_graph_add_output(g, node1(g, "MatMul", emb, t->outputs[0]));
    CHECK(ox_optimize(g, &st) == OX_OK);
    CHECK_EQ_INT(g->nnodes, 3);
    CHECK_EQ_INT(g->ninitializers, 1);
    CHECK(g->initializers[0]->tensor->storage == OX_DATA_BORROWED);
    ox_graph_free(g);
}

static void test_dedup(void) {
    ox_graph *g = ox_graph_new(20);
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 1, d4);
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4}, c[4] = {1, 2, 3, 5};
    int64_t wd[1] = {4};
    ox_value *wa = ox_graph_add_initializer(g, "a", OX_FLOAT, 1, wd, a, sizeof a);
    ox_value *wb = ox_graph_add_initializer(g, "b", OX_FLOAT, 1, wd, b, sizeof b);
    ox_value *wc = ox_graph_add_initializer(g, "c", OX_FLOAT, 1, wd, c, sizeof c);
    ox_value *p = node1(g, "Add", x, wa), *q = node1(g, "Add", x, wb), *r = node1(g, "Add", x, wc);
    ox_value *s1 = node1(g, "Mul", p, q);
    ox_graph_add_output(g, s1);
    ox_graph_add_output(g, r);
    ox_pass_stats st = {0};
    CHECK(ox_optimize(g, &st) == OX_OK);
    CHECK_EQ_INT(st.initializers_deduped, 1);
    CHECK_EQ_INT(st.cse_removed, 1);
    CHECK_EQ_INT(g->nnodes, 3); /* Add(x,a), Add(x,c), Mul */
    CHECK_EQ_INT(g->ninitializers, 2);
    ox_node *mul = g->nodes[2];
    CHECK(mul->inputs[0] == mul->inputs[1]);
    ox_graph_free(g);
}

static void test_fuse(void) {
    ox_graph *g = ox_graph_new(20);
    ox_dim d[4] = {{.value = 1}, {.value = 1}, {.value = 2}, {.value = 2}};
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 4, d);
    /* Pad(0) on the spatial dims, then Conv 1x1 with 2 output channels, then BatchNormalization */
    int64_t pads[8] = {0, 0, 1, 1, 0, 0, 1, 1}, pd[1] = {8};
    ox_value *pv = ox_graph_add_constant(g, "pads", OX_INT64, 1, pd, pads);
    ox_value *p = node1(g, "Pad", x, pv);
    float w[2] = {2, 3}, b[2] = {1, 1};
    int64_t wd[4] = {2, 1, 1, 1}, bd[1] = {2};
    ox_value *wv = ox_graph_add_initializer(g, "conv.weight", OX_FLOAT, 4, wd, w, sizeof w);
    ox_value *bv = ox_graph_add_initializer(g, "conv.bias", OX_FLOAT, 1, bd, b, sizeof b);
    ox_value *cin[3] = {p, wv, bv};
    ox_node *conv = ox_graph_add_node(g, "Conv", NULL, 3, cin, 1);
    float scale[2] = {1, 2}, shift[2] = {0, 1}, mean[2] = {1, 0}, var[2] = {3, 0};
    ox_value *bnin[5] = {conv->outputs[0],
                         ox_graph_add_initializer(g, "bn.weight", OX_FLOAT, 1, bd, scale, sizeof scale),
                         ox_graph_add_initializer(g, "bn.bias", OX_FLOAT, 1, bd, shift, sizeof shift),
                         ox_graph_add_initializer(g, "bn.running_mean", OX_FLOAT, 1, bd, mean, sizeof mean),
                         ox_graph_add_initializer(g, "bn.running_var", OX_FLOAT, 1, bd, var, sizeof var)};
    ox_node *bn = ox_graph_add_node(g, "BatchNormalization", NULL, 5, bnin, 1);
    ox_node_set_float(g, bn, "epsilon", 1.0f);
    ox_value_set_name(g, bn->outputs[0], "y");
    /* then MatMul + Add on a 2-D value */
    ox_dim d2[2] = {{.value = 3}, {.value = 2}};
    ox_value *a = ox_graph_add_input(g, "a", OX_FLOAT, 2, d2);
    float m[4] = {1, 2, 3, 4}, c[2] = {5, 6};
    int64_t md[2] = {2, 2};
    ox_value *mm = node1(g, "MatMul", a, ox_graph_add_initializer(g, "m", OX_FLOAT, 2, md, m, sizeof m));
    ox_value *z = node1(g, "Add", mm, ox_graph_add_initializer(g, "c", OX_FLOAT, 1, bd, c, sizeof c));
    ox_graph_add_output(g, bn->outputs[0]);
    ox_graph_add_output(g, z);
    ox_pass_stats st = {0};
    CHECK(ox_optimize(g, &st) == OX_OK);
    CHECK_EQ_INT(st.fused, 3);
    CHECK_EQ_INT(g->nnodes, 2);
    ox_node *fc = g->nodes[0], *gemm = g->nodes[1];
    CHECK_STR(fc->op_type, "Conv");
    CHECK(fc->inputs[0] == x);
    const ox_attr *pa = ox_node_attr(fc, "pads");
    CHECK(pa && pa->u.ints.n == 4 && pa->u.ints.v[0] == 1 && pa->u.ints.v[3] == 1);
    const ox_tensor *wt = fc->inputs[1]->tensor;
    CHECK(wt->storage == OX_DATA_SCALED && wt->base->data == w); /* a view: nothing computed yet */
    float nw[2] = {0};
    CHECK(ox_tensor_read(wt, 0, sizeof nw, nw));
    const float *nb = fc->inputs[2]->tensor->data;
    CHECK(nw[0] == 1.0f && nw[1] == 6.0f); /* k = {0.5, 2} */
    CHECK(nb[0] == 0.0f && nb[1] == 3.0f);
    CHECK(strcmp(fc->inputs[1]->name, "conv.weight") != 0); /* a new, unique name */
    CHECK_STR(g->outputs[0]->name, "y");
    CHECK_STR(gemm->op_type, "Gemm");
    CHECK(gemm->inputs[0] == a);
    CHECK(w[0] == 2.0f); /* the borrowed weight is untouched */
    ox_graph_free(g);
}

/* The negative-index wrap Where(Less(i, 0), Add(i, n), i) goes when i is an arange from 0 (through
 * Unsqueeze), and stays when i could be negative. */
static void test_nonneg_wrap(void) {
    for (int start = 0; start >= -1; start--) {
        ox_graph *g = ox_graph_new(18);
        ox_dim d[1] = {{.param = "n"}};
        ox_value *x = ox_graph_add_input(g, "x", OX_INT64, 1, d);
        int64_t s0 = start, one = 1, zero = 0, axes = 0;
        ox_value *n = node1(g, "Shape", x, NULL);
        ox_value *lim = node1(g, "Squeeze", n, NULL);
        ox_value *rin[3] = {ox_graph_add_constant(g, NULL, OX_INT64, 0, NULL, &s0), lim,
                            ox_graph_add_constant(g, NULL, OX_INT64, 0, NULL, &one)};
        ox_node *range = ox_graph_add_node(g, "Range", NULL, 3, rin, 1);
        int64_t ad = 1;
        ox_value *i = node1(g, "Unsqueeze", range->outputs[0], ox_graph_add_constant(g, NULL, OX_INT64, 1, &ad, &axes));
        ox_value *neg = node1(g, "Less", i, ox_graph_add_constant(g, NULL, OX_INT64, 0, NULL, &zero));
        neg->dtype = OX_BOOL;
        ox_value *up = node1(g, "Add", i, n);
        ox_value *win[3] = {neg, up, i};
        ox_node *w = ox_graph_add_node(g, "Where", NULL, 3, win, 1);
        ox_graph_add_output(g, w->outputs[0]);
        i->dtype = range->outputs[0]->dtype = up->dtype = w->outputs[0]->dtype = lim->dtype = n->dtype = OX_INT64;
        CHECK(ox_optimize(g, NULL) == OX_OK);
        bool has_where = false;
        for (uint32_t k = 0; k < g->nnodes; k++) has_where |= strcmp(g->nodes[k]->op_type, "Where") == 0;
        CHECK(has_where == (start < 0));
        ox_graph_free(g);
    }
}

/* BatchNormalization after Gemm: folded into the weight (a view for transB = 1, computed for
 * transB = 0) and the bias; beta applied to C. */
static void test_fuse_bn_gemm(void) {
    for (int tb = 0; tb < 2; tb++) {
        ox_graph *g = ox_graph_new(20);
        ox_dim d[2] = {{.value = 1}, {.value = 2}};
        ox_value *a = ox_graph_add_input(g, "a", OX_FLOAT, 2, d);
        /* W as [in=2, out=3] (transB 0) or its transpose [3, 2] (transB 1) */
        float w0[6] = {1, 2, 3, 4, 5, 6}, w1[6] = {1, 4, 2, 5, 3, 6}, c[3] = {1, 1, 1};
        int64_t wd0[2] = {2, 3}, wd1[2] = {3, 2}, od[1] = {3};
        ox_value *wv = ox_graph_add_initializer(g, "w", OX_FLOAT, 2, tb ? wd1 : wd0, tb ? w1 : w0, sizeof w0);
        ox_value *cv = ox_graph_add_initializer(g, "c", OX_FLOAT, 1, od, c, sizeof c);
        ox_value *gin[3] = {a, wv, cv};
        ox_node *gemm = ox_graph_add_node(g, "Gemm", NULL, 3, gin, 1);
        ox_node_set_float(g, gemm, "beta", 2.0f);
        if (tb) ox_node_set_int(g, gemm, "transB", 1);
        gemm->outputs[0]->rank = 2;
        float scale[3] = {1, 2, 3}, shift[3] = {0, 1, 0}, mean[3] = {1, 0, 2}, var[3] = {1, 1, 1};
        ox_value *bnin[5] = {gemm->outputs[0], ox_graph_add_initializer(g, "s", OX_FLOAT, 1, od, scale, sizeof scale),
                             ox_graph_add_initializer(g, "b", OX_FLOAT, 1, od, shift, sizeof shift),
                             ox_graph_add_initializer(g, "m", OX_FLOAT, 1, od, mean, sizeof mean),
                             ox_graph_add_initializer(g, "v", OX_FLOAT, 1, od, var, sizeof var)};
        ox_node *bn = ox_graph_add_node(g, "BatchNormalization", NULL, 5, bnin, 1);
        ox_node_set_float(g, bn, "epsilon", 0.0f);
        ox_graph_add_output(g, bn->outputs[0]);
        CHECK(ox_optimize(g, NULL) == OX_OK);
        CHECK_EQ_INT(g->nnodes, 1);
        ox_node *f = g->nodes[0];
        CHECK_STR(f->op_type, "Gemm");
        CHECK(ox_node_attr(f, "beta") == NULL && ox_node_attr_int(f, "transB", 0) == tb);
        float nw[6], nb[3];
        CHECK(ox_tensor_read(f->inputs[1]->tensor, 0, sizeof nw, nw));
        CHECK(ox_tensor_read(f->inputs[2]->tensor, 0, sizeof nb, nb));
        CHECK(f->inputs[1]->tensor->storage == (tb ? OX_DATA_SCALED : OX_DATA_OWNED));
        for (int i = 0; i < 2; i++)
            for (int o = 0; o < 3; o++) {
                float want = w0[i * 3 + o] * scale[o];
                CHECK(tb ? nw[o * 2 + i] == want : nw[i * 3 + o] == want);
            }
        for (int o = 0; o < 3; o++) CHECK(nb[o] == (2 * c[o] - mean[o]) * scale[o] + shift[o]);
        ox_graph_free(g);
    }
}

/* Static dims picked out of a partly symbolic shape become constants; the symbolic one stays. */
static void test_partial_shape(void) {
    ox_graph *g = ox_graph_new(18);
    ox_dim d[3] = {{.param = "batch"}, {.value = 16}, {.value = 4}};
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 3, d);
    ox_value *s = node1(g, "Shape", x, NULL);
    s->dtype = OX_INT64;
    int64_t one = 1, zero = 0, two = 2, d1 = 1;
    ox_value *i1 = ox_graph_add_constant(g, NULL, OX_INT64, 0, NULL, &one); /* 0-d */
    ox_value *i0 = ox_graph_add_constant(g, NULL, OX_INT64, 1, &d1, &zero); /* [0] */
    ox_value *picked = node1(g, "Gather", s, i1);
    ox_value *batch = node1(g, "Gather", s, i0);
    ox_value *sl[3] = {s, ox_graph_add_constant(g, NULL, OX_INT64, 1, &d1, &one),
                       ox_graph_add_constant(g, NULL, OX_INT64, 1, &d1, &two)};
    ox_node *slice = ox_graph_add_node(g, "Slice", NULL, 3, sl, 1);
    ox_node *tail = ox_graph_add_node(g, "Shape", NULL, 1, &x, 1);
    ox_node_set_int(g, tail, "start", 1);
    ox_graph_add_output(g, picked);
    ox_graph_add_output(g, batch);
    ox_graph_add_output(g, slice->outputs[0]);
    ox_graph_add_output(g, tail->outputs[0]);
    CHECK(ox_optimize(g, NULL) == OX_OK);
    const ox_value *o0 = g->outputs[0], *o1 = g->outputs[1], *o2 = g->outputs[2], *o3 = g->outputs[3];
    CHECK(o0->kind == OX_VALUE_INITIALIZER && o0->tensor->rank == 0 && *(const int64_t *)o0->tensor->data == 16);
    CHECK(o1->kind == OX_VALUE_NODE); /* batch: symbolic */
    CHECK(o2->kind == OX_VALUE_INITIALIZER && *(const int64_t *)o2->tensor->data == 16);
    CHECK(o3->kind == OX_VALUE_INITIALIZER && o3->tensor->dims[0] == 2 && ((const int64_t *)o3->tensor->data)[1] == 4);
    ox_graph_free(g);

    /* the size "batch" of an intermediate value is read from the input that names it, so that two
     * reads of it merge */
    g = ox_graph_new(18);
    x = ox_graph_add_input(g, "x", OX_FLOAT, 3, d);
    ox_value *r = node1(g, "Relu", x, NULL);
    r->rank = 3;
    r->dims = d;
    ox_node *s1 = ox_graph_add_node(g, "Shape", NULL, 1, &r, 1);
    ox_node_set_int(g, s1, "end", 1);
    ox_node *s2 = ox_graph_add_node(g, "Shape", NULL, 1, &x, 1);
    ox_node_set_int(g, s2, "start", 0);
    ox_node_set_int(g, s2, "end", 1);
    ox_value *both[2] = {s1->outputs[0], s2->outputs[0]};
    ox_node *cat = ox_graph_add_node(g, "Concat", NULL, 2, both, 1);
    ox_node_set_int(g, cat, "axis", 0);
    ox_graph_add_output(g, cat->outputs[0]);
    ox_graph_add_output(g, r);
    CHECK(ox_optimize(g, NULL) == OX_OK);
    int shapes = 0;
    for (uint32_t i = 0; i < g->nnodes; i++)
        if (!strcmp(g->nodes[i]->op_type, "Shape")) {
            shapes++;
            CHECK(g->nodes[i]->inputs[0] == x);
        }
    CHECK_EQ_INT(shapes, 1);
    ox_graph_free(g);
}

/* Where(IsNaN(p), 0, p) over p = Softmax(x + mask) goes when the constant mask leaves every row
 * a value above -inf, and stays when one row is all -inf. */
static void test_attention_guard(void) {
    for (int dead = 0; dead <= 1; dead++) {
        ox_graph *g = ox_graph_new(18);
        ox_dim d[2] = {{.value = 2}, {.value = 2}};
        ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 2, d);
        int64_t md[2] = {2, 2};
        float inf = 1.0f / 0.0f, m[4] = {0, -inf, dead ? -inf : 0, -inf}, zero = 0;
        ox_value *s = node1(g, "Add", x, ox_graph_add_constant(g, NULL, OX_FLOAT, 2, md, m));
        ox_value *p = node1(g, "Softmax", s, NULL);
        ox_value *nan = node1(g, "IsNaN", p, NULL);
        ox_value *win[3] = {nan, ox_graph_add_constant(g, NULL, OX_FLOAT, 0, NULL, &zero), p};
        ox_node *w = ox_graph_add_node(g, "Where", NULL, 3, win, 1);
        s->dtype = p->dtype = w->outputs[0]->dtype = OX_FLOAT;
        nan->dtype = OX_BOOL;
        p->rank = 2;
        ox_graph_add_output(g, w->outputs[0]);
        CHECK(ox_optimize(g, NULL) == OX_OK);
        bool has_where = false;
        for (uint32_t k = 0; k < g->nnodes; k++) has_where |= strcmp(g->nodes[k]->op_type, "Where") == 0;
        CHECK(has_where == (dead == 1));
        ox_graph_free(g);
    }
}

/* The fusion table's opset column: x * 1/sqrt(mean(x*x, -1) + eps), bare and weighted, becomes
 * RMSNormalization from opset 23 and stays below it. */
static void test_rms_by_opset(void) {
    for (int opset = 22; opset <= 23; opset++) {
        for (int weighted = 0; weighted <= 1; weighted++) {
            ox_graph *g = ox_graph_new(opset);
            ox_dim d[2] = {{.value = 2}, {.value = 4}};
            ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 2, d);
            int64_t axis = -1, one = 1, wd = 4;
            float eps = 1e-6f, w[4] = {1, 2, 3, 4};
            ox_value *sq = node1(g, "Mul", x, x);
            ox_value *mean = node1(g, "ReduceMean", sq, ox_graph_add_constant(g, NULL, OX_INT64, 1, &one, &axis));
            ox_value *a = node1(g, "Add", mean, ox_graph_add_constant(g, NULL, OX_FLOAT, 0, NULL, &eps));
            ox_value *r = node1(g, "Reciprocal", node1(g, "Sqrt", a, NULL), NULL);
            ox_value *y = node1(g, "Mul", x, r);
            ox_value *wv = ox_graph_add_initializer(g, "norm.weight", OX_FLOAT, 1, &wd, w, sizeof w);
            if (weighted) y = node1(g, "Mul", wv, y);
            ox_graph_add_output(g, y);
            ox_pass_stats st = {0};
            CHECK(ox_optimize(g, &st) == OX_OK);
            CHECK_EQ_INT(st.fused, opset >= 23);
            CHECK_EQ_INT(g->nnodes, opset >= 23 ? 1 : 6 + weighted);
            ox_node *n = g->nodes[g->nnodes - 1];
            if (opset >= 23) {
                CHECK_STR(n->op_type, "RMSNormalization");
                CHECK(n->inputs[0] == x);
                const float *scale = n->inputs[1]->tensor->data;
                CHECK(weighted ? n->inputs[1] == wv : scale[0] == 1.0f && scale[3] == 1.0f);
                CHECK(ox_node_attr(n, "epsilon") && ox_node_attr(n, "epsilon")->u.f == eps);
            }
            CHECK(n->outputs[0] == g->outputs[0]);
            ox_graph_free(g);
        }
    }
}

/* stats.def gives the struct and the table the same rows: what the binding turns into a dict. */
static void test_stats_table(void) {
    static const char *const names[] = {"nodes_before",  "nodes_after",         "constants_lifted",     "folded",
                                        "noops_removed", "cse_removed",         "initializers_deduped", "fused",
                                        "nodes_removed", "initializers_removed"};
    CHECK_EQ_INT(OX_PASS_STAT_COUNT, sizeof names / sizeof *names);
    ox_pass_stats st;
    memset(&st, 0, sizeof st);
    st.nodes_before = 100;
    st.folded = 7;
    st.initializers_removed = 9;
    for (int i = 0; i < OX_PASS_STAT_COUNT; i++) {
        CHECK_STR(ox_pass_stat_table[i].name, names[i]);
        CHECK(ox_pass_stat_table[i].what && ox_pass_stat_table[i].what[0]);
        CHECK(ox_pass_stat_table[i].offset == (size_t)i * sizeof(uint32_t));
    }
    CHECK_EQ_INT(ox_pass_stat_get(&st, OX_PASS_STAT_nodes_before), 100);
    CHECK_EQ_INT(ox_pass_stat_get(&st, OX_PASS_STAT_folded), 7);
    CHECK_EQ_INT(ox_pass_stat_get(&st, OX_PASS_STAT_initializers_removed), 9);
    CHECK_EQ_INT(ox_pass_stat_get(&st, OX_PASS_STAT_fused), 0);
}

int main(void) {
    test_rms_by_opset();
    test_stats_table();
    test_fuse();
    test_fuse_bn_gemm();
    test_dce();
    test_lift_constants();
    test_simplify();
    test_identity_output_keeps_name();
    test_fold_shape_and_transpose_view();
    test_dedup();
    test_nonneg_wrap();
    test_attention_guard();
    test_partial_shape();
    return CHECK_DONE();
}
