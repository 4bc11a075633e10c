/*
 * fuse.c — the model-specific fusions: a few nodes that one ONNX op computes become that op.
 * BatchNormalization folds into the Conv, ConvTranspose or Gemm before it (as a weight view scaled
 * while writing: nothing computed now); MatMul + Add becomes Gemm; a zero Pad becomes Conv's pads;
 * and from opset 23 the patterns Hugging Face writes by hand become RMSNormalization and
 * RotaryEmbedding. Each is a row of the table at the end of this file, with the opset it needs.
 *
 * Adding a fusion: a function that matches from the pattern's last node and calls take_place, and
 * a row.
 */
#include <math.h>
#include <string.h>

#include "opt/pass_internal.h"

/* The only reader of v is a live node, and v is not a graph output. */
static bool single_use(const ox_value *v) { return v && v->uses == 1 && !v->is_output; }

/* A float32 constant's values, or NULL. */
static const float *f32(ox_graph *g, ox_value *v, int64_t n) {
    if (!oxp_is_const(v) || v->tensor->dtype != OX_FLOAT || ox_tensor_numel(v->tensor) != n) return NULL;
    return ox_tensor_bytes(g, v->tensor);
}

static const char *fused_name(ox_graph *g, const ox_value *base, const char *suffix) {
    const char *b = base && base->name ? base->name : "fused";
    return ox_arena_printf(g->arena, "%s_%s", b, suffix); /* made unique when added */
}

/* `fused` (just appended) takes the place of `old` in g->nodes, and its float output takes over
 * old's readers and name; `absorbed` (the other node fused away) and old die. */
static bool take_place(ox_node *fused, ox_node *old, ox_node *absorbed, ox_graph *g, ox_pass_stats *st) {
    uint32_t at = old->id, last = fused->id;
    g->nodes[at] = fused;
    g->nodes[last] = old;
    fused->id = at;
    old->id = last;
    fused->outputs[0]->dtype = OX_FLOAT;
    if (!oxp_replace(old->outputs[0], fused->outputs[0], true)) return false;
    old->dead = absorbed->dead = true;
    if (st) st->fused++;
    return true;
}

/*
 * Gemm(A, B, C; alpha, beta) -> BatchNormalization becomes Gemm(A, B', C'; alpha, beta = 1) with
 *   k = scale / sqrt(var + eps),  B' = B with output column o times k[o],  C' = (beta C - mean) k + B
 * B' is a SCALED view when B is [out, in] (transB = 1, what linear lowers to); computed otherwise.
 */
static bool fuse_bn_gemm(ox_graph *g, ox_node *bn, ox_node *gemm, ox_pass_stats *st) {
    ox_value *w = gemm->inputs[1], *c = gemm->ninputs > 2 ? gemm->inputs[2] : NULL;
    if (!oxp_is_const(w) || w->tensor->dtype != OX_FLOAT || w->tensor->rank != 2 || ox_tensor_is_view(w->tensor))
        return false;
    bool tb = ox_node_attr_int(gemm, "transB", 0) != 0;
    const int64_t *wd = w->tensor->dims;
    int64_t out = tb ? wd[0] : wd[1], in = tb ? wd[1] : wd[0];
    const float *scale = f32(g, bn->inputs[1], out), *shift = f32(g, bn->inputs[2], out);
    const float *mean = f32(g, bn->inputs[3], out), *var = f32(g, bn->inputs[4], out);
    int64_t cn = c && oxp_is_const(c) ? ox_tensor_numel(c->tensor) : 0;
    if (!scale || !shift || !mean || !var ||
        (c && (!oxp_is_const(c) || c->tensor->dtype != OX_FLOAT || (cn != out && cn != 1))))
        return false;
    const float *cv = c ? ox_tensor_bytes(g, c->tensor) : NULL;
    if (c && !cv) return false;
    const ox_attr *eps_a = ox_node_attr(bn, "epsilon");
    double eps = eps_a && eps_a->type == OX_ATTR_FLOAT ? eps_a->u.f : 1e-5;
    const ox_attr *beta_a = ox_node_attr(gemm, "beta");
    double beta = beta_a && beta_a->type == OX_ATTR_FLOAT ? beta_a->u.f : 1.0;
    double *k = ox_arena_array(g->arena, (size_t)out, sizeof *k);
    ox_tensor *nb = ox_tensor_new(g, OX_FLOAT, 1, &out);
    if (!k || !nb) {
        ox_graph_status(g);
        return false;
    }
    nb->weight = true;
    for (int64_t o = 0; o < out; o++) {
        k[o] = scale[o] / sqrt((double)var[o] + eps);
        double cb = c ? beta * cv[cn == 1 ? 0 : o] : 0.0;
        ((float *)(void *)nb->data)[o] = (float)((cb - mean[o]) * k[o] + shift[o]);
    }
    ox_tensor *nw;
    if (tb) {
        nw = ox_arena_alloc(g->arena, sizeof *nw);
        if (!nw) {
            ox_graph_status(g);
            return false;
        }
        *nw = (ox_tensor){.dtype = OX_FLOAT,
                          .rank = 2,
                          .dims = wd,
                          .nbytes = w->tensor->nbytes,
                          .storage = OX_DATA_SCALED,
                          .base = w->tensor,
                          .scale = k,
                          .run = in};
        w->tensor->consumed = true;
    } else {
        const float *wv = ox_tensor_bytes(g, w->tensor);
        nw = ox_tensor_new(g, OX_FLOAT, 2, wd);
        if (!wv || !nw) {
            ox_graph_status(g);
            return false;
        }
        nw->weight = true;
        for (int64_t i = 0; i < in; i++)
            for (int64_t o = 0; o < out; o++)
                ((float *)(void *)nw->data)[i * out + o] = (float)(wv[i * out + o] * k[o]);
    }
    ox_value *wn = ox_graph_adopt_tensor(g, fused_name(g, w, "bn_fused"), nw);
    ox_value *bnv = ox_graph_adopt_tensor(g, fused_name(g, w, "bn_fused_bias"), nb);
    if (!wn || !bnv) return false;
    ox_value *ins[3] = {gemm->inputs[0], wn, bnv};
    ox_node *fused = ox_graph_add_node(g, "Gemm", NULL, 3, ins, 1);
    if (!fused) return false;
    const ox_attr *alpha = ox_node_attr(gemm, "alpha");
    if (alpha && alpha->type == OX_ATTR_FLOAT) ox_node_set_float(g, fused, "alpha", alpha->u.f);
    if (ox_node_attr_int(gemm, "transA", 0)) ox_node_set_int(g, fused, "transA", 1);
    if (tb) ox_node_set_int(g, fused, "transB", 1);
    fused->name = gemm->name;
    fused->source = gemm->source;
    return take_place(fused, bn, gemm, g, st);
}

/*
 * Conv(x, W, b) → BatchNormalization(scale, B, mean, var, eps) becomes Conv(x, W', b') with
 *   k = scale / sqrt(var + eps),  W'[o] = W[o] * k[o],  b' = (b - mean) * k + B
 * (for ConvTranspose the output channel is W's dim 1, per group). Float32 only.
 */
static bool fuse_bn(ox_graph *g, ox_node *bn, ox_pass_stats *st) {
    if (bn->ninputs != 5 || bn->noutputs != 1) return false;
    ox_value *y = bn->inputs[0];
    ox_node *conv = y ? y->producer : NULL;
    if (!conv || conv->dead || !single_use(y) || conv->ninputs < 2) return false;
    if (oxp_op_is(conv, "Gemm")) return y->rank == 2 && fuse_bn_gemm(g, bn, conv, st);
    bool transposed = oxp_op_is(conv, "ConvTranspose");
    if (!transposed && !oxp_op_is(conv, "Conv")) return false;
    ox_value *w = conv->inputs[1], *b = conv->ninputs > 2 ? conv->inputs[2] : NULL;
    if (!oxp_is_const(w) || w->tensor->dtype != OX_FLOAT || w->tensor->rank < 3) return false;
    int64_t group = ox_node_attr_int(conv, "group", 1);
    const int64_t *wd = w->tensor->dims;
    int64_t cout = transposed ? wd[1] * group : wd[0];
    if (group < 1 || (transposed && wd[0] % group)) return false;
    const float *scale = f32(g, bn->inputs[1], cout), *shift = f32(g, bn->inputs[2], cout);
    const float *mean = f32(g, bn->inputs[3], cout), *var = f32(g, bn->inputs[4], cout);
    const float *bias = b ? f32(g, b, cout) : NULL;
    if (!scale || !shift || !mean || !var || (b && !bias) || !ox_tensor_has_data(w->tensor)) return false;
    const ox_attr *eps_a = ox_node_attr(bn, "epsilon");
    double eps = eps_a && eps_a->type == OX_ATTR_FLOAT ? eps_a->u.f : 1e-5;

    /* W is [Cout, ...], or for ConvTranspose [Cin, Cout/group, ...] where input channel ci belongs
     * to group ci / (Cin/group): a run of `inner` weights per (row, channel) shares one factor. */
    int64_t inner = 1;
    for (int i = transposed ? 2 : 1; i < w->tensor->rank; i++) inner *= wd[i];
    int64_t rows = transposed ? wd[0] : 1, per_row = transposed ? wd[1] : cout;
    ox_tensor *nb = ox_tensor_new(g, OX_FLOAT, 1, &cout);
    double *k = ox_arena_array(g->arena, (size_t)cout, sizeof *k);
    double *run_k = transposed ? ox_arena_array(g->arena, (size_t)(rows * per_row), sizeof *run_k) : k;
    if (!nb || !k || !run_k) {
        ox_graph_status(g);
        return false;
    }
    nb->weight = true;
    for (int64_t o = 0; o < cout; o++) {
        k[o] = scale[o] / sqrt((double)var[o] + eps);
        ((float *)(void *)nb->data)[o] = (float)(((bias ? bias[o] : 0.0) - mean[o]) * k[o] + shift[o]);
    }
    if (transposed)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < per_row; c++) run_k[r * per_row + c] = k[r / (wd[0] / group) * wd[1] + c];

    /* W' is a view: W scaled while the model is written, so the pass reads no weight bytes */
    ox_tensor *nw;
    if (!ox_tensor_is_view(w->tensor)) {
        nw = ox_arena_alloc(g->arena, sizeof *nw);
        if (!nw) {
            ox_graph_status(g);
            return false;
        }
        *nw = (ox_tensor){.dtype = OX_FLOAT,
                          .rank = w->tensor->rank,
                          .dims = wd,
                          .nbytes = w->tensor->nbytes,
                          .storage = OX_DATA_SCALED,
                          .base = w->tensor,
                          .scale = run_k,
                          .run = inner};
        w->tensor->consumed = true;
    } else { /* a view of a view is not kept: compute W' now */
        const float *wv = ox_tensor_bytes(g, w->tensor);
        nw = ox_tensor_new(g, OX_FLOAT, w->tensor->rank, wd);
        if (!wv || !nw) {
            ox_graph_status(g);
            return false;
        }
        nw->weight = true;
        float *out = (float *)(void *)nw->data;
        size_t numel = w->tensor->nbytes / sizeof(float);
        for (size_t e = 0; e < numel; e++) out[e] = (float)(wv[e] * run_k[e / (size_t)inner]);
    }
    ox_value *wn = ox_graph_adopt_tensor(g, fused_name(g, w, "bn_fused"), nw);
    ox_value *bnv = ox_graph_adopt_tensor(g, fused_name(g, w, "bn_fused_bias"), nb);
    if (!wn || !bnv) return false;
    /* Conv's output moves to the BN's place: the Conv now computes what the BN did. */
    ox_value *ins[3] = {conv->inputs[0], wn, bnv};
    ox_node *fused = ox_graph_add_node(g, conv->op_type, NULL, 3, ins, 1);
    if (!fused) return false;
    fused->attrs = conv->attrs;
    fused->nattrs = conv->nattrs;
    fused->cap_attrs = conv->cap_attrs;
    fused->name = conv->name;
    fused->source = conv->source;
    return take_place(fused, bn, conv, g, st);
}

/* MatMul(A, B) + C with A 2-D, B a 2-D constant, C a constant of B's last dim: Gemm(A, B, C). */
static bool fuse_gemm(ox_graph *g, ox_node *add, ox_pass_stats *st) {
    if (add->ninputs != 2) return false;
    for (int side = 0; side < 2; side++) {
        ox_value *mm_out = add->inputs[side], *c = add->inputs[1 - side];
        ox_node *mm = mm_out ? mm_out->producer : NULL;
        if (!mm || mm->dead || !oxp_op_is(mm, "MatMul") || !single_use(mm_out)) continue;
        ox_value *a = mm->inputs[0], *b = mm->inputs[1];
        if (!a || a->rank != 2 || !oxp_is_const(b) || b->tensor->rank != 2 || !oxp_is_const(c)) continue;
        if (a->dtype != OX_FLOAT || b->tensor->dtype != OX_FLOAT || c->tensor->dtype != OX_FLOAT) continue;
        int64_t n = b->tensor->dims[1];
        if (!(c->tensor->rank == 1 && c->tensor->dims[0] == n) &&
            !(c->tensor->rank == 2 && c->tensor->dims[0] == 1 && c->tensor->dims[1] == n))
            continue;
        ox_value *ins[3] = {a, b, c};
        ox_node *gemm = ox_graph_add_node(g, "Gemm", NULL, 3, ins, 1);
        if (!gemm) return false;
        gemm->name = mm->name;
        gemm->source = mm->source;
        return take_place(gemm, add, mm, g, st);
    }
    return false;
}

/* Pad(x, pads, 0) with zero padding on the batch and channel dims → Conv's own pads. */
static bool fuse_pad(ox_graph *g, ox_node *conv, ox_pass_stats *st) {
    ox_value *p = conv->inputs[0];
    ox_node *pad = p ? p->producer : NULL;
    if (!pad || pad->dead || !oxp_op_is(pad, "Pad") || !single_use(p) || pad->ninputs < 2) return false;
    const ox_attr *mode = ox_node_attr(pad, "mode");
    if (mode && (mode->type != OX_ATTR_STRING || strcmp(mode->u.s, "constant") != 0)) return false;
    if (pad->ninputs > 2 && pad->inputs[2] &&
        (!oxp_is_const(pad->inputs[2]) || oxp_elem(pad->inputs[2]->tensor, 0) != 0))
        return false;
    if (pad->ninputs > 3 && pad->inputs[3]) return false; /* axes */
    const ox_attr *ap = ox_node_attr(conv, "auto_pad");
    if (ap && ap->type == OX_ATTR_STRING && strcmp(ap->u.s, "NOTSET") != 0) return false;
    ox_value *pv = pad->inputs[1];
    if (!oxp_is_const(pv) || pv->tensor->dtype != OX_INT64 || pv->tensor->rank != 1) return false;
    int64_t n2 = pv->tensor->dims[0], r = n2 / 2, sp = r - 2;
    if (n2 % 2 || r < 3 || r > 10) return false;
    int64_t pads[20], cur[20] = {0};
    for (int64_t i = 0; i < n2; i++) pads[i] = (int64_t)oxp_elem(pv->tensor, i);
    if (pads[0] || pads[1] || pads[r] || pads[r + 1]) return false;
    const ox_attr *cp = ox_node_attr(conv, "pads");
    if (cp && (cp->type != OX_ATTR_INTS || cp->u.ints.n != 2 * sp)) return false;
    for (int64_t i = 0; i < sp; i++) {
        int64_t b = pads[2 + i], e = pads[r + 2 + i];
        if (b < 0 || e < 0) return false;
        cur[i] = (cp ? cp->u.ints.v[i] : 0) + b;
        cur[sp + i] = (cp ? cp->u.ints.v[sp + i] : 0) + e;
    }
    ox_node_set_ints(g, conv, "pads", cur, (int)(2 * sp));
    conv->inputs[0] = pad->inputs[0];
    pad->dead = true;
    if (st) st->fused++;
    return true;
}

/* The live producer of v when it is `op`, else NULL. */
static ox_node *made_by(const ox_value *v, const char *op) {
    ox_node *n = v ? v->producer : NULL;
    return n && !n->dead && oxp_op_is(n, op) ? n : NULL;
}

/* The one-element float constant v holds, or NAN. */
static double scalar(const ox_value *v) {
    return oxp_is_const(v) && ox_tensor_numel(v->tensor) == 1 ? oxp_elem(v->tensor, 0) : NAN;
}

/* The input of Mul(a, b) that is not `side`, or NULL when neither is. */
static ox_value *other_input(const ox_node *mul, const ox_value *side) {
    if (mul->ninputs != 2) return NULL;
    return mul->inputs[0] == side ? mul->inputs[1] : mul->inputs[1] == side ? mul->inputs[0] : NULL;
}

/* r = 1 / sqrt(mean(x * x, last axis, keepdims) + eps): x when m = Mul(x, r) is that, else NULL. */
static ox_value *rms_input(ox_node *m, double *eps) {
    for (int side = 0; side < 2; side++) {
        ox_value *x = m->inputs[side], *r = m->inputs[1 - side];
        ox_node *rec = made_by(r, "Reciprocal"), *sq = rec ? made_by(rec->inputs[0], "Sqrt") : NULL;
        ox_node *add = sq ? made_by(sq->inputs[0], "Add") : NULL;
        if (!add || add->ninputs != 2 || !x || x->rank < 1) continue;
        int mi = isnan(scalar(add->inputs[1])) ? 1 : 0; /* the side that is not eps */
        double e = scalar(add->inputs[1 - mi]);
        ox_node *mean = made_by(add->inputs[mi], "ReduceMean");
        if (isnan(e) || !mean || mean->ninputs != 2 || ox_node_attr_int(mean, "keepdims", 1) != 1) continue;
        const ox_value *axes = mean->inputs[1];
        if (!oxp_is_const(axes) || ox_tensor_numel(axes->tensor) != 1) continue;
        double ax = oxp_elem(axes->tensor, 0);
        if (ax != -1 && ax != x->rank - 1) continue;
        ox_node *p = mean->inputs[0] ? mean->inputs[0]->producer : NULL;
        if (!p || p->dead || p->ninputs != 2 || p->inputs[0] != x) continue;
        if (!(oxp_op_is(p, "Mul") && p->inputs[1] == x) && !(oxp_op_is(p, "Pow") && scalar(p->inputs[1]) == 2))
            continue;
        *eps = e;
        return x;
    }
    return NULL;
}

/* Opset 23: the chain above is RMSNormalization, with the weight of `scaled` = Mul(w, m) where
 * w is a 1-D initializer of the last dim; without one (scaled NULL), a scale of ones. */
static bool fuse_rms(ox_graph *g, ox_node *m, ox_node *scaled, ox_pass_stats *st) {
    double eps;
    if (m->dead || m->ninputs != 2) return false;
    ox_value *x = rms_input(m, &eps);
    if (!x || !ox_dtype_is_float(x->dtype) || x->dtype == OX_DOUBLE || !x->dims) return false;
    const ox_dim *last = &x->dims[x->rank - 1];
    ox_value *w = NULL;
    if (scaled) {
        w = other_input(scaled, m->outputs[0]);
        if (!single_use(m->outputs[0]) || !w || w->kind != OX_VALUE_INITIALIZER || w->dtype != x->dtype ||
            w->rank != 1 || last->param || w->dims[0].value != last->value)
            return false;
    } else {
        if (last->param || last->value < 1 || x->dtype != OX_FLOAT) return false;
        float *ones = ox_arena_array(g->arena, (size_t)last->value, sizeof *ones);
        if (!ones) {
            ox_graph_status(g);
            return false;
        }
        for (int64_t i = 0; i < last->value; i++) ones[i] = 1.0f;
        if (!(w = ox_graph_add_constant(g, NULL, OX_FLOAT, 1, &last->value, ones))) return false;
    }
    ox_value *ins[2] = {x, w};
    ox_node *rms = ox_graph_add_node(g, "RMSNormalization", NULL, 2, ins, 1);
    if (!rms) return false;
    ox_node_set_int(g, rms, "axis", -1);
    ox_node_set_float(g, rms, "epsilon", (float)eps);
    ox_node_set_int(g, rms, "stash_type", 1);
    ox_node *old = scaled ? scaled : m;
    rms->name = old->name;
    rms->source = m->source;
    if (!take_place(rms, old, m, g, st)) return false;
    rms->outputs[0]->dtype = x->dtype;
    return true;
}

/* Mul(w, y) with y made by a Mul: the weighted RMSNormalization, if the rest matches. */
static bool fuse_rms_weighted(ox_graph *g, ox_node *n, ox_pass_stats *st) {
    if (n->ninputs != 2) return false;
    for (int side = 0; side < 2; side++) {
        ox_node *m = made_by(n->inputs[side], "Mul");
        if (m && n->inputs[1 - side] && n->inputs[1 - side]->kind == OX_VALUE_INITIALIZER) return fuse_rms(g, m, n, st);
    }
    return false;
}

/* s = Slice(x, [start], [end], [last axis], [1]): the end may be anything from `end` up ("to the
 * end") when open_end. */
static bool slice_last(const ox_node *s, const ox_value *x, int64_t start, int64_t end, bool open_end) {
    if (!s || s->ninputs < 4 || s->inputs[0] != x) return false;
    double b = scalar(s->inputs[1]), e = scalar(s->inputs[2]), ax = scalar(s->inputs[3]);
    double step = s->ninputs > 4 && s->inputs[4] ? scalar(s->inputs[4]) : 1;
    return b == start && (open_end ? e >= end : e == end) && (ax == -1 || ax == x->rank - 1) && step == 1;
}

/* Whether e's last dim (of size d) is two equal halves, as in HF's cat((freqs, freqs), -1): a
 * Concat of one value with itself, or a constant whose halves match. */
static bool halves_equal(ox_graph *g, ox_value *e, int64_t d) {
    if (!e || !e->dims || e->rank < 1 || e->dims[e->rank - 1].param || e->dims[e->rank - 1].value != d) return false;
    ox_node *cat = made_by(e, "Concat");
    if (cat) {
        int64_t axis = ox_node_attr_int(cat, "axis", 0);
        return cat->ninputs == 2 && cat->inputs[0] == cat->inputs[1] && (axis == -1 || axis == e->rank - 1);
    }
    if (!oxp_is_const(e) || ox_dtype_size(e->dtype) == 0) return false;
    const unsigned char *b = ox_tensor_bytes(g, e->tensor);
    size_t half = (size_t)(d / 2) * ox_dtype_size(e->dtype), rows = e->tensor->nbytes / (2 * half);
    for (size_t r = 0; b && r < rows; r++)
        if (memcmp(b + 2 * r * half, b + (2 * r + 1) * half, half) != 0) return false;
    return b != NULL;
}

/* Unsqueeze(v, [1]): v. */
static ox_value *unsqueezed_at_1(const ox_value *u) {
    ox_node *n = made_by(u, "Unsqueeze");
    return n && n->ninputs == 2 && scalar(n->inputs[1]) == 1 ? n->inputs[0] : NULL;
}

static ox_value *new_node1(ox_graph *g, const char *op, int nin, ox_value **in, ox_dtype t) {
    ox_node *n = ox_graph_add_node(g, op, NULL, nin, in, 1);
    if (!n) return NULL;
    n->outputs[0]->dtype = t;
    return n->outputs[0];
}

/*
 * Opset 23: HF's apply_rotary_pos_emb on q or k ([B, H, S, D]),
 *     x * unsqueeze(cos(e), 1) + cat(-x[..., D/2:], x[..., :D/2]) * unsqueeze(sin(e), 1)
 * with e = [B', S, D] in equal halves, is RotaryEmbedding(x, cos(e)[..., :D/2], sin(...)), the
 * caches expanded to x's batch (ONNX Runtime does not broadcast them). The cache nodes are
 * appended, so the pass reorders the graph afterwards.
 */
static bool fuse_rope(ox_graph *g, ox_node *add, ox_pass_stats *st) {
    if (add->ninputs != 2) return false;
    for (int side = 0; side < 4; side++) {
        ox_node *m1 = made_by(add->inputs[side & 1], "Mul"), *m2 = made_by(add->inputs[1 - (side & 1)], "Mul");
        if (!m1 || !m2 || m2->ninputs != 2 || !single_use(m1->outputs[0]) || !single_use(m2->outputs[0])) continue;
        int r = side >> 1; /* the input of m2 that is the rotated x */
        ox_node *cat = made_by(m2->inputs[r], "Concat");
        if (!cat || cat->ninputs != 2) continue;
        ox_node *neg = made_by(cat->inputs[0], "Neg"), *lo = made_by(cat->inputs[1], "Slice");
        ox_node *hi = neg ? made_by(neg->inputs[0], "Slice") : NULL;
        ox_value *x = lo ? lo->inputs[0] : NULL;
        if (!hi || !x || x->rank != 4 || !x->dims || x->dims[3].param || x->dims[3].value < 2 || x->dims[3].value % 2)
            continue;
        if (x->dtype != OX_FLOAT && x->dtype != OX_FLOAT16 && x->dtype != OX_BFLOAT16) continue;
        int64_t d = x->dims[3].value, h = d / 2, axis = ox_node_attr_int(cat, "axis", 0);
        if ((axis != -1 && axis != 3) || !slice_last(lo, x, 0, h, false) || !slice_last(hi, x, h, d, true)) continue;
        /* the factors: unsqueeze(cos(e), 1) and unsqueeze(sin(e), 1) of one e in equal halves; or
         * constants in equal halves, [B', S, D] unsqueezed, or already folded to [B', 1, S, D] */
        ox_value *c4 = other_input(m1, x), *s4 = m2->inputs[1 - r];
        ox_value *cu = unsqueezed_at_1(c4), *su = unsqueezed_at_1(s4);
        bool folded = !cu && !su && oxp_is_const(c4) && oxp_is_const(s4) && c4->rank == 4 && s4->rank == 4 &&
            c4->tensor->dims[1] == 1 && s4->tensor->dims[1] == 1;
        if (folded) cu = c4, su = s4;
        if (!cu || !su || cu->dtype != x->dtype || su->dtype != x->dtype ||
            (!folded && (cu->rank != 3 || su->rank != 3)))
            continue;
        ox_node *cn = made_by(cu, "Cos"), *sn = made_by(su, "Sin");
        ox_value *e = cn && sn && cn->inputs[0] == sn->inputs[0] ? cn->inputs[0] : NULL;
        if (e ? !halves_equal(g, e, d) :
                !(oxp_is_const(cu) && oxp_is_const(su) && halves_equal(g, cu, d) && halves_equal(g, su, d)))
            continue;

        int64_t starts = 0, ends = h, axes = -1, one = 1;
        ox_value *first_half[3] = {ox_graph_add_constant(g, NULL, OX_INT64, 1, &one, &starts),
                                   ox_graph_add_constant(g, NULL, OX_INT64, 1, &one, &ends),
                                   ox_graph_add_constant(g, NULL, OX_INT64, 1, &one, &axes)};
        ox_value *caches[2];
        if (e) { /* one Slice of e feeds both */
            ox_value *sl[4] = {e, first_half[0], first_half[1], first_half[2]};
            ox_value *eh = new_node1(g, "Slice", 4, sl, x->dtype);
            caches[0] = new_node1(g, "Cos", 1, &eh, x->dtype);
            caches[1] = new_node1(g, "Sin", 1, &eh, x->dtype);
        } else {
            for (int k = 0; k < 2; k++) {
                ox_value *v = k ? su : cu;
                if (folded) { /* [B', 1, S, D] -> [B', S, D] */
                    ox_value *sq[2] = {v, ox_graph_add_constant(g, NULL, OX_INT64, 1, &one, &one)};
                    v = new_node1(g, "Squeeze", 2, sq, x->dtype);
                }
                ox_value *sl[4] = {v, first_half[0], first_half[1], first_half[2]};
                caches[k] = new_node1(g, "Slice", 4, sl, x->dtype);
            }
        }
        /* [B, S, D/2] from x's dims 0 and 2: a constant when static */
        ox_value *shape;
        if (!x->dims[0].param && !x->dims[2].param) {
            int64_t bsh[3] = {x->dims[0].value, x->dims[2].value, h}, three = 3;
            shape = ox_graph_add_constant(g, NULL, OX_INT64, 1, &three, bsh);
        } else {
            int64_t idx[2] = {0, 2}, two = 2;
            ox_value *sx = new_node1(g, "Shape", 1, &x, OX_INT64);
            ox_value *gi[2] = {sx, ox_graph_add_constant(g, NULL, OX_INT64, 1, &two, idx)};
            ox_value *bs = new_node1(g, "Gather", 2, gi, OX_INT64);
            ox_value *ci[2] = {bs, ox_graph_add_constant(g, NULL, OX_INT64, 1, &one, &h)};
            ox_node *c = ox_graph_add_node(g, "Concat", NULL, 2, ci, 1);
            if (c) ox_node_set_int(g, c, "axis", 0), c->outputs[0]->dtype = OX_INT64;
            shape = c ? c->outputs[0] : NULL;
        }
        for (int k = 0; k < 2; k++) {
            ox_value *ex[2] = {caches[k], shape};
            caches[k] = new_node1(g, "Expand", 2, ex, x->dtype);
        }
        ox_value *ins[3] = {x, caches[0], caches[1]};
        ox_node *rope = ox_graph_failed(g) ? NULL : ox_graph_add_node(g, "RotaryEmbedding", NULL, 3, ins, 1);
        if (!rope) return false;
        rope->name = add->name;
        rope->source = add->source;
        if (!take_place(rope, add, m1, g, st)) return false;
        rope->outputs[0]->dtype = x->dtype;
        return true;
    }
    return false;
}

/* The bare RMSNormalization (no weight): a scale of ones. */
static bool fuse_rms_plain(ox_graph *g, ox_node *m, ox_pass_stats *st) { return fuse_rms(g, m, NULL, st); }

/* ---- the table ---- */

typedef bool fusion_fn(ox_graph *g, ox_node *n, ox_pass_stats *st);

/*
 * One row per rewrite. A walk over the nodes tries, on each node, the rows of that walk whose op
 * matches, in order; the first that fuses ends the node's turn (MatMul + Add becomes Gemm before
 * the same Add is tried as RotaryEmbedding). Walk 2 goes over the same nodes once walk 1 is done:
 * an RMSNormalization with a weight is matched from its outer Mul, so the bare pattern, matched
 * from the inner Mul, waits until those have taken theirs.
 */
static const struct fusion {
    const char *op_type; /* the node the walk stands on: the pattern's last node */
    fusion_fn *fn;
    int min_opset; /* the first opset with the fused op; 0: every opset */
    int walk;
    bool appends; /* appends nodes the fused node reads: the pass ends with a toposort */
} fusions[] = {
    {"BatchNormalization", fuse_bn, 0, 1, false}, /* into Conv, ConvTranspose or Gemm */
    {"Add", fuse_gemm, 0, 1, false},
    {"Add", fuse_rope, 23, 1, true}, /* RotaryEmbedding */
    {"Conv", fuse_pad, 0, 1, false},
    {"Mul", fuse_rms_weighted, 23, 1, false}, /* RMSNormalization */
    {"Mul", fuse_rms_plain, 23, 2, false},
};

/* One walk over the first n0 nodes (fusions append nodes and swap them into place: what lies
 * beyond n0 was made by this pass). Returns how many fusions appended nodes. */
static uint32_t fuse_walk(ox_graph *g, uint32_t n0, int walk, ox_pass_stats *st) {
    uint32_t appended = 0;
    for (uint32_t i = 0; i < n0 && !ox_graph_failed(g); i++) {
        ox_node *n = g->nodes[i];
        if (n->dead || n->domain) continue;
        oxp_resolve_inputs(n);
        for (size_t r = 0; r < sizeof fusions / sizeof *fusions; r++) {
            const struct fusion *f = &fusions[r];
            if (f->walk != walk || g->opset < f->min_opset || !oxp_op_is(n, f->op_type)) continue;
            if (f->fn(g, n, st)) {
                appended += f->appends;
                break;
            }
        }
    }
    return appended;
}

ox_code ox_pass_fuse(ox_graph *g, ox_pass_stats *st) {
    ox_graph_count_uses(g);
    uint32_t n0 = g->nnodes;
    uint32_t appended = fuse_walk(g, n0, 1, st);
    appended += fuse_walk(g, n0, 2, st);
    oxp_resolve_all(g);
    if (appended) return ox_graph_toposort(g);
    ox_graph_compact(g);
    return ox_graph_status(g);
}
