/*
 * attention.c — scaled_dot_product_attention.
 *
 * From opset 23 rank-4 float inputs become one ONNX Attention node (ONNX Runtime 1.32 runs it on CPU
 * with torch's semantics: upper-left causal mask, bool masks keep True, grouped-query heads, rows
 * with every key masked give 0). Everything else is the MatMul/Softmax form torch's math backend
 * computes:
 *
 *     scores = (Q @ K^T) * scale;  masked positions -inf (bool or causal) or + attn_mask (float)
 *     out    = safe_softmax(scores) @ V
 *
 * safe_softmax gives 0, not NaN, on rows where every key is masked, as torch's math backend does.
 */
#include "lower/lower.h"

#include <math.h>
#include <stdint.h>

enum { MAX_CONST_MASK = 1 << 20 }; /* larger causal masks are computed, not stored */

typedef struct sdpa {
    ox_value *q, *k, *v, *mask;
    ox_dtype t;
    bool causal, gqa, has_scale;
    double scale;
} sdpa;

/* ---- the Attention op (opset 23+) ---- */

static bool attention_op_fits(const ox_lower *L, const sdpa *a) {
    return L->opset >= 23 && a->q->rank == 4 && a->k->rank == 4 && a->v->rank == 4 &&
        (a->t == OX_FLOAT || a->t == OX_FLOAT16); /* ORT's double Attention is float inside */
}

static ox_value *attention_op(ox_lower *L, const sdpa *a) {
    ox_value *mask = a->mask && a->mask->dtype != OX_BOOL ? ox_cast(L, a->mask, a->t) : a->mask;
    ox_node *n = ox_op(L, "Attention", mask ? 4 : 3, a->q, a->k, a->v, mask);
    if (!n) return NULL;
    if (a->causal) ox_node_set_int(L->g, n, "is_causal", 1);
    if (a->has_scale) ox_node_set_float(L->g, n, "scale", (float)a->scale);
    return ox_typed(ox_out(n), a->t);
}

/* ---- the MatMul/Softmax form ---- */

/* Repeats each of the Hk key/value heads Hq/Hk times, next to each other (repeat_interleave on
 * dim -3): unsqueeze a group dim, expand it, merge it into the head dim. */
static ox_value *repeat_heads(ox_lower *L, ox_value *x, int64_t hq, int64_t groups) {
    int r = x->rank;
    int64_t ones[16], axis = r - 2;
    if (r > 15) return NULL;
    for (int k = 0; k <= r; k++) ones[k] = 1;
    ones[r - 2] = groups;
    ox_value *u = ox_out(ox_op(L, "Unsqueeze", 2, x, ox_const_i64_1d(L, axis)));
    ox_value *e = ox_out(ox_op(L, "Expand", 2, u, ox_const_ints(L, r + 1, ones)));
    ox_value *parts[3] = {NULL, ox_const_i64_1d(L, hq), ox_shape_of(L, x, r - 2, INT64_MAX)};
    int np = 0;
    ox_value *list[3];
    if (r > 3) parts[0] = ox_shape_of(L, x, 0, r - 3);
    for (int k = 0; k < 3; k++)
        if (parts[k]) list[np++] = parts[k];
    ox_node *shape = ox_op_array(L, "Concat", 1, np, list);
    if (shape) ox_node_set_int(L->g, shape, "axis", 0);
    return ox_binary(L, "Reshape", e, ox_typed(ox_out(shape), OX_INT64), x->dtype);
}

/* Key and value with as many heads as the query (enable_gqa), when they have fewer. */
static bool gqa_heads(ox_lower *L, sdpa *a) {
    int64_t hq, hk, hv;
    int r = a->q->rank;
    if (!a->gqa || r < 3) return true;
    if (!ox_static_dim(a->q, r - 3, &hq) || !ox_static_dim(a->k, a->k->rank - 3, &hk) ||
        !ox_static_dim(a->v, a->v->rank - 3, &hv)) {
        ox_lower_unsupported(L, "enable_gqa=True with symbolic head counts");
        return false;
    }
    if (hk == 0 || hv == 0 || hq % hk || hq % hv) {
        ox_lower_fail(L, "%lld query heads cannot be grouped over %lld key / %lld value heads", (long long)hq,
                      (long long)hk, (long long)hv);
        return false;
    }
    if (hk != hq) a->k = repeat_heads(L, a->k, hq, hq / hk);
    if (hv != hq) a->v = repeat_heads(L, a->v, hq, hq / hv);
    return a->k && a->v;
}

/* The scale as a value: given, or 1/sqrt(E) from the query's last dim. */
static ox_value *scale_value(ox_lower *L, const sdpa *a) {
    int64_t e;
    if (a->has_scale) return ox_const_scalar(L, a->t, a->scale);
    if (ox_static_dim(a->q, a->q->rank - 1, &e)) return ox_const_scalar(L, a->t, e > 0 ? 1.0 / sqrt((double)e) : 1.0);
    ox_value *ev = ox_cast(L, ox_shape_of(L, a->q, -1, INT64_MAX), a->t);
    return ox_unary(L, "Reciprocal", ox_out(ox_op(L, "Sqrt", 1, ev)), a->t);
}

/* A 0-d int64 holding dim -2 of x (the sequence length). */
static ox_value *seq_len(ox_lower *L, ox_value *x) {
    int64_t n;
    if (ox_static_dim(x, x->rank - 2, &n)) return ox_const_i64(L, n);
    return ox_unary(L, "Squeeze", ox_shape_of(L, x, -2, -1), OX_INT64);
}

/* The [L, S] bool mask keeping key j for query i when j <= i (torch's upper-left causal mask). */
static ox_value *causal_mask(ox_lower *L, const sdpa *a) {
    int64_t l, s;
    if (ox_static_dim(a->q, a->q->rank - 2, &l) && ox_static_dim(a->k, a->k->rank - 2, &s) &&
        (l == 0 || s <= MAX_CONST_MASK / l)) {
        int64_t dims[2] = {l, s}, n = l * s;
        uint8_t *keep = ox_arena_alloc(L->g->arena, (size_t)(n > 0 ? n : 1));
        if (!keep) return NULL;
        for (int64_t i = 0; i < l; i++)
            for (int64_t j = 0; j < s; j++) keep[i * s + j] = j <= i;
        return ox_const_tensor(L, OX_BOOL, 2, dims, keep);
    }
    ox_value *zero = ox_const_scalar(L, OX_INT64, 0), *one = ox_const_scalar(L, OX_INT64, 1);
    int64_t axis = 1;
    ox_value *rows = ox_out(ox_op(L, "Range", 3, zero, seq_len(L, a->q), one));
    rows = ox_out(ox_op(L, "Unsqueeze", 2, rows, ox_const_i64_1d(L, axis)));
    ox_value *cols = ox_out(ox_op(L, "Range", 3, zero, seq_len(L, a->k), one));
    return ox_binary(L, "LessOrEqual", cols, rows, OX_BOOL);
}

static ox_value *decomposed(ox_lower *L, sdpa *a) {
    int kr = a->k->rank;
    ox_dtype t = a->t;
    if (a->q->rank < 2 || kr < 2 || a->v->rank < 2) {
        ox_lower_unsupported(L, "query, key and value need a known rank of at least 2");
        return NULL;
    }
    if (kr > 16) {
        ox_lower_unsupported(L, "key of rank %d", kr);
        return NULL;
    }
    if (!gqa_heads(L, a)) return NULL;
    int64_t perm[16];
    for (int i = 0; i < kr; i++) perm[i] = i;
    perm[kr - 2] = kr - 1;
    perm[kr - 1] = kr - 2;
    ox_node *kt = ox_op(L, "Transpose", 1, a->k);
    if (kt) ox_node_set_ints(L->g, kt, "perm", perm, kr);
    ox_value *scores = ox_binary(L, "MatMul", a->q, ox_out(kt), t);
    scores = ox_binary(L, "Mul", scores, scale_value(L, a), t);
    ox_value *minus_inf = ox_const_scalar(L, t, -INFINITY);
    if (a->causal) scores = ox_op_typed(L, "Where", t, 3, causal_mask(L, a), scores, minus_inf);
    else if (a->mask && a->mask->dtype == OX_BOOL) scores = ox_op_typed(L, "Where", t, 3, a->mask, scores, minus_inf);
    else if (a->mask) scores = ox_binary(L, "Add", scores, ox_cast(L, a->mask, t), t);
    ox_node *sm = ox_op(L, "Softmax", 1, scores);
    if (sm) ox_node_set_int(L->g, sm, "axis", -1);
    ox_value *probs = ox_typed(ox_out(sm), t);
    if (a->mask) { /* a causal mask never masks a whole row */
        /* A row whose every score is -inf comes out of Softmax as NaN (-inf - -inf); it becomes
         * zeros. Testing the probabilities costs one node less than testing the scores' max. */
        ox_value *dead = ox_unary(L, "IsNaN", probs, OX_BOOL);
        probs = ox_op_typed(L, "Where", t, 3, dead, ox_const_scalar(L, t, 0), probs);
    }
    return ox_binary(L, "MatMul", probs, a->v, t);
}

/* scaled_dot_product_attention(query, key, value, attn_mask?, dropout_p, is_causal, *, scale?,
 * enable_gqa) */
int lower_sdpa(ox_lower *L) {
    sdpa a = {
        .q = ox_arg_value(L, 0),
        .k = ox_arg_value(L, 1),
        .v = ox_arg_value(L, 2),
        .mask = ox_arg_value_opt(L, 3),
        .causal = ox_arg_bool(L, 5, false),
        .has_scale = !ox_arg_is_none(L, 6),
        .scale = ox_arg_float(L, 6, 0),
        .gqa = ox_arg_bool(L, 7, false),
    };
    double p = ox_arg_float(L, 4, 0);
    if (!a.q || !a.k || !a.v) return ox_bind(L, 0, NULL);
    if (p != 0)
        return ox_lower_unsupported(L,
                                    "dropout_p=%g: attention dropout is random and applies even "
                                    "in eval() mode; pass dropout_p=0 when exporting",
                                    p);
    if (a.causal && a.mask) return ox_lower_fail(L, "is_causal=True together with an attn_mask");
    a.t = ox_out_dtype(L, 0) ? ox_out_dtype(L, 0) : a.q->dtype;
    if (!ox_dtype_is_float(a.t)) return ox_lower_unsupported(L, "attention over %s tensors", ox_dtype_name(a.t));
    a.q = ox_cast(L, a.q, a.t);
    a.k = ox_cast(L, a.k, a.t);
    a.v = ox_cast(L, a.v, a.t);
    ox_value *q0 = ox_arg_value(L, 0), *k0 = ox_arg_value(L, 1), *v0 = ox_arg_value(L, 2);
    /* Casts lose the static shapes the lowering reads; keep the originals' for them. */
    if (a.q && a.q != q0) {
        a.q->rank = q0->rank;
        a.q->dims = q0->dims;
    }
    if (a.k && a.k != k0) {
        a.k->rank = k0->rank;
        a.k->dims = k0->dims;
    }
    if (a.v && a.v != v0) {
        a.v->rank = v0->rank;
        a.v->dims = v0->dims;
    }
    if (!a.q || !a.k || !a.v) return ox_bind(L, 0, NULL);
    if (attention_op_fits(L, &a)) return ox_bind(L, 0, attention_op(L, &a));
    return ox_bind(L, 0, decomposed(L, &a));
}
