/*
 * pass.c — the optimizer's passes. Passes replace a value by setting value->replaced_by and let
 * readers catch up as they are visited (forward order sees every producer before its readers), so
 * no replacement rescans the graph; resolve_all settles the rest at the end of each pass.
 */
#include "opt/pass.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "opt/fold.h"

/* ---- replacing values ---- */

static ox_value *resolve(ox_value *v) {
    while (v && v->replaced_by) v = v->replaced_by;
    return v;
}

static void resolve_inputs(ox_node *n) {
    for (int k = 0; k < n->ninputs; k++) n->inputs[k] = resolve(n->inputs[k]);
}

static void resolve_all(ox_graph *g) {
    for (uint32_t i = 0; i < g->nnodes; i++)
        if (!g->nodes[i]->dead) resolve_inputs(g->nodes[i]);
    for (uint32_t i = 0; i < g->noutputs; i++) g->outputs[i] = resolve(g->outputs[i]);
}

/*
 * Makes readers of `from` read `to`. A graph output keeps its name: `to` takes it over, which is
 * only possible when `to` is a node's value (or a constant made for this purpose, `fresh`) that is
 * not itself an input or an output already. Returns false when the replacement cannot be made.
 */
static bool replace(ox_value *from, ox_value *to, bool fresh) {
    if (!to || from == to) return false;
    if (from->is_output) {
        if (to->is_output || to->kind == OX_VALUE_INPUT) return false;
        if (to->kind == OX_VALUE_INITIALIZER && !fresh) return false;
        to->name = from->name;
        from->name = NULL;
        to->is_output = true;
        from->is_output = false;
        if (!to->has_meta && from->has_meta) {
            to->dtype = from->dtype;
            to->rank = from->rank;
            to->dims = from->dims;
            to->has_meta = true;
        }
    } else if (fresh && from->name && !to->name) {
        to->name = from->name;   /* a folded value keeps its name: easier to follow in Netron */
        from->name = NULL;
    }
    from->replaced_by = to;
    return true;
}

static bool op_is(const ox_node *n, const char *op) {
    return !n->domain && strcmp(n->op_type, op) == 0;
}

static bool is_const(const ox_value *v) {
    return v && v->kind == OX_VALUE_INITIALIZER && !v->dead && ox_tensor_has_data(v->tensor);
}

/* Element i of a constant as a double (NaN when the dtype is not numeric). */
static double elem(const ox_tensor *t, int64_t i) {
    unsigned char b[16];
    size_t es = ox_dtype_size(t->dtype);
    if (!es || es > sizeof b || !ox_tensor_read(t, (size_t)i * es, es, b)) return NAN;
    return ox_elem_double(t->dtype, b);
}

/* ---- Constant nodes → initializers ---- */

/* The tensor a Constant node holds, whatever attribute form it uses; NULL for forms left alone
 * (sparse_value, strings). */
static ox_tensor *constant_tensor(ox_graph *g, const ox_node *n) {
    if (n->nattrs != 1) return NULL;
    const ox_attr *a = &n->attrs[0];
    ox_tensor *t = NULL;
    if (!strcmp(a->name, "value") && a->type == OX_ATTR_TENSOR) return a->u.t;
    if (!strcmp(a->name, "value_float") && a->type == OX_ATTR_FLOAT) {
        if ((t = ox_tensor_new(g, OX_FLOAT, 0, NULL))) memcpy((void *)t->data, &a->u.f, 4);
    } else if (!strcmp(a->name, "value_int") && a->type == OX_ATTR_INT) {
        if ((t = ox_tensor_new(g, OX_INT64, 0, NULL))) memcpy((void *)t->data, &a->u.i, 8);
    } else if (!strcmp(a->name, "value_floats") && a->type == OX_ATTR_FLOATS) {
        int64_t n1 = a->u.floats.n;
        if ((t = ox_tensor_new(g, OX_FLOAT, 1, &n1)) && n1) memcpy((void *)t->data, a->u.floats.v, (size_t)n1 * 4);
    } else if (!strcmp(a->name, "value_ints") && a->type == OX_ATTR_INTS) {
        int64_t n1 = a->u.ints.n;
        if ((t = ox_tensor_new(g, OX_INT64, 1, &n1)) && n1) memcpy((void *)t->data, a->u.ints.v, (size_t)n1 * 8);
    }
    return t;
}

ox_code ox_pass_lift_constants(ox_graph *g, ox_pass_stats *st) {
    for (uint32_t i = 0; i < g->nnodes; i++) {
        ox_node *n = g->nodes[i];
        if (n->dead || !op_is(n, "Constant") || n->noutputs != 1) continue;
        ox_tensor *t = constant_tensor(g, n);
        if (!t) continue;
        ox_value *init = ox_graph_adopt_tensor(g, NULL, t);
        if (!init) return ox_graph_status(g);
        if (!replace(n->outputs[0], init, true)) continue;
        n->dead = true;
        if (st) st->constants_lifted++;
    }
    resolve_all(g);
    ox_graph_compact(g);
    return ox_graph_status(g);
}

/* ---- folding ---- */

enum { FOLD_FREE_BYTES = 1024 };   /* a weight view smaller than this is copied, not viewed */
/* A fold may add this much even when it frees less: small tables computed from aranges and
 * weights (T5's relative-position buckets, MaxViT's and Swin's bias gathers) are worth storing. A
 * growing fold frees nothing, so a chain can keep an intermediate alive; each is capped here. */
enum { FOLD_GROW_BYTES = 256 * 1024 };

/* The dims Shape node n reports: x's dims [*start, *end). False when x's shape is not known. */
static bool shape_range(const ox_node *n, const ox_value **x, int64_t *start, int64_t *end) {
    *x = n->inputs[0];
    if (!*x || (*x)->rank < 0 || ((*x)->rank && !(*x)->dims)) return false;
    int64_t r = (*x)->rank, b = ox_node_attr_int(n, "start", 0), e = ox_node_attr_int(n, "end", r);
    if (b < 0) b += r;
    if (e < 0) e += r;
    *start = b < 0 ? 0 : b > r ? r : b;
    *end = e < *start ? *start : e > r ? r : e;
    return true;
}

static bool dim_static(const ox_dim *d) { return !d->param && d->value >= 0; }

/* Shape of the dims it reports, when they are static (the others may be symbolic), and Size of a
 * static shape, whatever the input's value. */
static ox_tensor *fold_shape(ox_graph *g, const ox_node *n) {
    const ox_value *x = n->inputs[0];
    if (op_is(n, "Size")) {
        int64_t numel = x && ox_value_is_static(x) ? ox_value_numel(x) : -1;
        ox_tensor *t = numel < 0 ? NULL : ox_tensor_new(g, OX_INT64, 0, NULL);
        if (t) memcpy((void *)t->data, &numel, 8);
        return t;
    }
    int64_t start, end;
    if (!shape_range(n, &x, &start, &end)) return NULL;
    for (int64_t k = start; k < end; k++)
        if (!dim_static(&x->dims[k])) return NULL;
    int64_t len = end - start;
    ox_tensor *t = ox_tensor_new(g, OX_INT64, 1, &len);
    if (t)
        for (int64_t k = 0; k < len; k++) ((int64_t *)(void *)t->data)[k] = x->dims[start + k].value;
    return t;
}

/* Gather(Shape(x), idx) and Slice(Shape(x), ...) with constant indices that pick only static dims
 * of a partly symbolic shape: a constant. Symbolic dims elsewhere in x do not matter. */
static ox_tensor *fold_shape_pick(ox_graph *g, const ox_node *n) {
    const ox_value *s = n->inputs[0];
    const ox_node *sh = s ? s->producer : NULL;
    const ox_value *x;
    int64_t start, end;
    if (!sh || sh->dead || !op_is(sh, "Shape") || !shape_range(sh, &x, &start, &end)) return NULL;
    int64_t len = end - start, pick[64], npick = 0;
    if (op_is(n, "Gather")) {
        const ox_value *idx = n->ninputs == 2 ? n->inputs[1] : NULL;
        if (!is_const(idx) || ox_node_attr_int(n, "axis", 0) != 0 || idx->tensor->rank > 1) return NULL;
        npick = ox_tensor_numel(idx->tensor);
        if (npick < 0 || npick > 64) return NULL;
        for (int64_t k = 0; k < npick; k++) {
            double v = elem(idx->tensor, k);
            if (isnan(v) || v < -len || v >= len) return NULL;
            pick[k] = (int64_t)v < 0 ? (int64_t)v + len : (int64_t)v;
        }
        if (idx->tensor->rank == 0) {   /* a 0-d index gives a 0-d result */
            if (!dim_static(&x->dims[start + pick[0]])) return NULL;
            ox_tensor *t = ox_tensor_new(g, OX_INT64, 0, NULL);
            if (t) ((int64_t *)(void *)t->data)[0] = x->dims[start + pick[0]].value;
            return t;
        }
    } else {   /* Slice(data, starts, ends[, axes[, steps]]) on the 1-D shape */
        if (n->ninputs < 3 || !is_const(n->inputs[1]) || !is_const(n->inputs[2])) return NULL;
        if (ox_tensor_numel(n->inputs[1]->tensor) != 1 || ox_tensor_numel(n->inputs[2]->tensor) != 1) return NULL;
        if (n->ninputs > 3 && n->inputs[3] && !(is_const(n->inputs[3]) && ox_tensor_numel(n->inputs[3]->tensor) == 1 &&
                                                 (elem(n->inputs[3]->tensor, 0) == 0 || elem(n->inputs[3]->tensor, 0) == -1)))
            return NULL;
        double step = n->ninputs > 4 && n->inputs[4] ? (is_const(n->inputs[4]) ? elem(n->inputs[4]->tensor, 0) : NAN) : 1;
        double b = elem(n->inputs[1]->tensor, 0), e = elem(n->inputs[2]->tensor, 0);
        if (step != 1 || isnan(b) || isnan(e)) return NULL;
        if (b < 0) b += (double)len;
        if (e < 0) e += (double)len;
        b = b < 0 ? 0 : b > (double)len ? (double)len : b;
        e = e < b ? b : e > (double)len ? (double)len : e;
        for (int64_t k = (int64_t)b; k < (int64_t)e && npick < 64; k++) pick[npick++] = k;
        if ((int64_t)e - (int64_t)b > 64) return NULL;
    }
    for (int64_t k = 0; k < npick; k++)
        if (!dim_static(&x->dims[start + pick[k]])) return NULL;
    ox_tensor *t = ox_tensor_new(g, OX_INT64, 1, &npick);
    if (t)
        for (int64_t k = 0; k < npick; k++) ((int64_t *)(void *)t->data)[k] = x->dims[start + pick[k]].value;
    return t;
}

/* The most a ConstantOfShape's result may hold to be computed, as a temporary, for a node that
 * reads it (the result itself is never stored: fold.h). */
static const size_t FOLD_TEMP_BYTES = (size_t)16 << 20;

/* v = ConstantOfShape(shape) with a constant int64 shape: *t describes its result (dtype, rank,
 * dims in `dims`, nbytes; no data yet) and `value` holds its one element. False for other values
 * and for a result over FOLD_TEMP_BYTES. */
static bool constant_of_shape(const ox_value *v, ox_tensor *t, int64_t *dims, unsigned char *value) {
    const ox_node *p = v ? v->producer : NULL;
    if (!p || p->dead || !op_is(p, "ConstantOfShape") || p->ninputs != 1 || p->noutputs != 1 ||
        p->outputs[0] != v)
        return false;
    const ox_value *s = p->inputs[0];
    if (!is_const(s) || s->tensor->dtype != OX_INT64 || s->tensor->rank != 1 || s->tensor->dims[0] > 16)
        return false;
    const ox_attr *a = ox_node_attr(p, "value");
    ox_dtype dtype = OX_FLOAT;   /* no value: a float 0 */
    memset(value, 0, 16);
    if (a) {
        if (a->type != OX_ATTR_TENSOR || !a->u.t || ox_tensor_numel(a->u.t) != 1) return false;
        dtype = a->u.t->dtype;
        size_t es = ox_dtype_size(dtype);
        if (!es || es > 16 || !ox_tensor_read(a->u.t, 0, es, value)) return false;
    }
    int rank = (int)s->tensor->dims[0];
    size_t nbytes = ox_dtype_size(dtype);
    for (int i = 0; i < rank; i++) {
        double d = elem(s->tensor, i);
        if (!(d >= 0) || d > (double)FOLD_TEMP_BYTES) return false;
        dims[i] = (int64_t)d;
        if (dims[i] && nbytes > FOLD_TEMP_BYTES / (size_t)dims[i]) return false;
        nbytes *= (size_t)dims[i];
    }
    *t = (ox_tensor){.dtype = dtype, .rank = rank, .dims = dims, .nbytes = nbytes, .storage = OX_DATA_OWNED};
    return true;
}

/* Transpose of a whole weight: a view, transposed when written (nothing copied now). */
static ox_tensor *fold_transpose_view(ox_graph *g, const ox_node *n) {
    const ox_tensor *b = n->inputs[0]->tensor;
    if (ox_tensor_is_view(b) || b->rank < 2 || b->rank > 16) return NULL;
    int64_t *perm = ox_arena_array(g->arena, (size_t)b->rank, sizeof *perm);
    int64_t *dims = ox_arena_array(g->arena, (size_t)b->rank, sizeof *dims);
    ox_tensor *t = ox_arena_alloc(g->arena, sizeof *t);
    if (!perm || !dims || !t) return NULL;
    const ox_attr *a = ox_node_attr(n, "perm");
    bool seen[16] = {0};
    for (int i = 0; i < b->rank; i++) {
        int64_t p = a ? (i < a->u.ints.n ? a->u.ints.v[i] : -1) : b->rank - 1 - i;
        if (a && a->u.ints.n != b->rank) return NULL;
        if (p < 0) p += b->rank;
        if (p < 0 || p >= b->rank || seen[p]) return NULL;
        seen[p] = true;
        perm[i] = p;
        dims[i] = b->dims[p];
    }
    *t = (ox_tensor){.dtype = b->dtype, .rank = b->rank, .dims = dims, .nbytes = b->nbytes,
                     .storage = OX_DATA_PERMUTED, .base = b, .perm = perm};
    return t;
}

/* Runs n's kernel on its constant inputs and, where look[k], on the temporary tensor temp[k]
 * describes (a ConstantOfShape's result, filled here and freed before returning). OX_OK with out[]
 * set when the fold is worth making; OX_EUNSUPPORTED when the node stays; another code on OOM. */
static ox_code fold_with_kernel(ox_graph *g, ox_node *n, const bool *look, ox_tensor *temp,
                                const unsigned char (*value)[16], size_t freed, ox_tensor **out) {
    const ox_tensor *in[16];
    void *buf[16] = {0};
    ox_code rc = OX_EUNSUPPORTED;
    for (int k = 0; k < n->ninputs; k++) {
        in[k] = NULL;
        if (look[k]) {
            size_t es = ox_dtype_size(temp[k].dtype);
            /* malloc, not the arena: a temporary of up to FOLD_TEMP_BYTES is not kept */
            unsigned char *b = buf[k] = malloc(temp[k].nbytes ? temp[k].nbytes : 1);
            if (!b) goto done;   /* no memory for an optional temporary: the node just stays */
            if (temp[k].nbytes) memcpy(b, value[k], es);
            for (size_t have = es; have < temp[k].nbytes; have *= 2)
                memcpy(b + have, b, have < temp[k].nbytes - have ? have : temp[k].nbytes - have);
            temp[k].data = b;
            in[k] = &temp[k];
        } else if (n->inputs[k]) {
            if (!ox_tensor_bytes(g, n->inputs[k]->tensor)) goto done;
            in[k] = n->inputs[k]->tensor;
        }
    }
    rc = ox_fold_eval(g, n, in, out);
    if (rc == OX_ENOMEM) goto done;
    if (rc != OX_OK) {
        /* A node the kernel rejects stays as it is: ONNX Runtime will say the same thing, with
         * its own words, if the node is wrong. */
        if (rc != OX_EUNSUPPORTED) ox_error_clear(&g->err);
        rc = OX_EUNSUPPORTED;
        goto done;
    }
    size_t grown = 0;
    for (int k = 0; k < n->noutputs; k++) grown += out[k] ? out[k]->nbytes : 0;
    if (grown > freed && grown > FOLD_GROW_BYTES) { rc = OX_EUNSUPPORTED; goto done; }   /* would grow the file */
    bool weight = false;   /* computed from weights: saved or left out with them */
    for (int k = 0; k < n->ninputs; k++) weight |= in[k] && ox_tensor_is_weight(in[k]);
    for (int k = 0; k < n->noutputs; k++)
        if (out[k]) out[k]->weight = weight;
done:
    for (int k = 0; k < n->ninputs; k++) {
        free(buf[k]);
        if (look[k]) temp[k].data = NULL;
    }
    return rc;
}

ox_code ox_pass_fold(ox_graph *g, ox_pass_stats *st) {
    ox_graph_count_uses(g);
    for (uint32_t i = 0; i < g->nnodes && !ox_graph_failed(g); i++) {
        ox_node *n = g->nodes[i];
        if (n->dead || n->domain || n->noutputs < 1 || n->noutputs > 8) continue;
        resolve_inputs(n);
        ox_tensor *out[8] = {0};
        if ((op_is(n, "Shape") || op_is(n, "Size")) && n->ninputs == 1) {
            if (!(out[0] = fold_shape(g, n))) continue;
        } else if ((op_is(n, "Gather") || op_is(n, "Slice")) && n->noutputs == 1 && (out[0] = fold_shape_pick(g, n))) {
            /* a static part of a symbolic shape */
        } else {
            bool view = op_is(n, "Transpose") && n->ninputs == 1;
            bool all_const = n->ninputs > 0 && n->ninputs <= 16 && (view || ox_fold_has_kernel(n->op_type));
            bool look[16] = {0};
            ox_tensor temp[16];
            int64_t temp_dims[16][16];
            unsigned char value[16][16];
            size_t freed = 0;
            for (int k = 0; k < n->ninputs && all_const; k++) {
                ox_value *v = n->inputs[k];
                if (!v) continue;
                if (is_const(v)) {
                    if (v->uses == 1) freed += v->tensor->nbytes;
                    continue;
                }
                /* a ConstantOfShape stays (its result is not stored), but what reads it folds */
                look[k] = !view && constant_of_shape(v, &temp[k], temp_dims[k], value[k]);
                all_const = look[k];
            }
            if (!all_const) continue;
            if (view && n->inputs[0]->tensor->nbytes > FOLD_FREE_BYTES) {
                /* a weight read elsewhere too (a tied embedding) would be written twice: the
                 * Transpose stays, and ONNX Runtime folds it when the session starts */
                if (freed < n->inputs[0]->tensor->nbytes || n->inputs[0]->is_output) continue;
                if (!(out[0] = fold_transpose_view(g, n))) continue;
            } else if (!ox_fold_has_kernel(n->op_type)) {
                continue;
            } else {
                ox_code rc = fold_with_kernel(g, n, look, temp, (const unsigned char (*)[16])value, freed, out);
                if (rc == OX_ENOMEM) return ox_graph_status(g);
                if (rc != OX_OK) continue;
            }
        }
        bool done = true;
        for (int k = 0; k < n->noutputs && done; k++) {
            if (!out[k]) { done = false; break; }
            ox_value *c = ox_graph_adopt_tensor(g, NULL, out[k]);
            if (!c) return ox_graph_status(g);
            done = replace(n->outputs[k], c, true);
        }
        if (!done) continue;
        for (int k = 0; k < n->ninputs; k++)
            if (n->inputs[k]) n->inputs[k]->uses--;
        n->dead = true;
        if (st) st->folded++;
    }
    resolve_all(g);
    ox_graph_compact(g);
    return ox_graph_status(g);
}

/* ---- no-op removal ---- */

/* The node computes its input `in` as output 0: its readers read `in` instead. */
static bool forward(ox_node *n, ox_value *in, ox_pass_stats *st) {
    for (int k = 1; k < n->noutputs; k++)
        if (n->outputs[k]->uses || n->outputs[k]->is_output) return false;   /* e.g. a Dropout mask */
    if (!in || !replace(n->outputs[0], in, false)) return false;
    n->dead = true;
    if (st) st->noops_removed++;
    return true;
}

/* Reshape(x, shape) gives x's own shape. */
static bool reshape_is_noop(const ox_node *n) {
    const ox_value *x = n->inputs[0], *s = n->ninputs > 1 ? n->inputs[1] : NULL;
    if (!is_const(s) || s->tensor->dtype != OX_INT64 || s->tensor->rank != 1 || !ox_value_is_static(x))
        return false;
    int64_t r = s->tensor->dims[0];
    if (r != x->rank || r > 64) return false;
    bool allowzero = ox_node_attr_int(n, "allowzero", 0) != 0;
    int minus = -1;
    for (int i = 0; i < r; i++) {
        int64_t d = (int64_t)elem(s->tensor, i);
        if (d == 0 && !allowzero) continue;            /* copies x's dim i */
        if (d == -1 && minus < 0) { minus = i; continue; }
        if (d != x->dims[i].value) return false;
    }
    return true;   /* every other dim equal, so a single -1 can only be x's own size there */
}

/* Expand(x, shape) gives x's own shape: every shape entry is 1 or x's dim (right-aligned). */
static bool expand_is_noop(const ox_node *n) {
    const ox_value *x = n->inputs[0], *s = n->ninputs > 1 ? n->inputs[1] : NULL;
    if (!is_const(s) || s->tensor->rank != 1 || !ox_value_is_static(x)) return false;
    int64_t r = s->tensor->dims[0];
    if (r > x->rank) return false;
    for (int64_t i = 0; i < r; i++) {
        int64_t d = (int64_t)elem(s->tensor, i), xd = x->dims[x->rank - r + i].value;
        if (d != 1 && d != xd) return false;
    }
    return true;
}

/* c is a constant (or a ConstantOfShape of a constant shape) whose every element equals `e`, of
 * x's dtype, whose broadcast cannot change x's shape (a single element of rank at most x's). */
static bool is_neutral(const ox_value *c, const ox_value *x, double e) {
    if (!c || !x || x->dtype == OX_UNDEFINED || x->rank < 0) return false;
    ox_tensor t;
    int64_t dims[16];
    unsigned char value[16];
    const ox_tensor *ct = NULL;
    if (is_const(c)) {
        ct = c->tensor;
    } else if (constant_of_shape(c, &t, dims, value)) {
        t.data = value;   /* one element at most is read: numel must be 1 */
        ct = &t;
    }
    if (!ct || ct->dtype != x->dtype || ox_tensor_numel(ct) != 1 || ct->rank > x->rank) return false;
    return elem(ct, 0) == e;
}

static bool transpose_perm(const ox_node *n, int rank, int64_t *perm) {
    const ox_attr *a = ox_node_attr(n, "perm");
    if (rank < 0 || rank > 16) return false;
    if (!a) {
        for (int i = 0; i < rank; i++) perm[i] = rank - 1 - i;
        return true;
    }
    if (a->type != OX_ATTR_INTS || a->u.ints.n != rank) return false;
    for (int i = 0; i < rank; i++) {
        perm[i] = a->u.ints.v[i];
        if (perm[i] < 0 || perm[i] >= rank) return false;
    }
    return true;
}

static int input_rank(const ox_node *n) {
    const ox_value *x = n->inputs[0];
    if (x && x->rank >= 0) return x->rank;
    return n->outputs[0]->rank;
}

static void simplify_transpose(ox_graph *g, ox_node *n, ox_pass_stats *st) {
    int64_t p2[16], p1[16], both[16];
    int rank = input_rank(n);
    if (!transpose_perm(n, rank, p2)) return;
    bool identity = true;
    for (int i = 0; i < rank; i++) identity &= p2[i] == i;
    if (identity) { forward(n, n->inputs[0], st); return; }
    ox_node *prev = n->inputs[0] ? n->inputs[0]->producer : NULL;
    if (!prev || prev->dead || !op_is(prev, "Transpose") || !transpose_perm(prev, rank, p1)) return;
    /* y = T(T(x, p1), p2): y dim i is x dim p1[p2[i]]. */
    identity = true;
    for (int i = 0; i < rank; i++) {
        both[i] = p1[p2[i]];
        identity &= both[i] == i;
    }
    if (identity) { forward(n, prev->inputs[0], st); return; }
    n->inputs[0] = prev->inputs[0];
    ox_node_set_ints(g, n, "perm", both, rank);
    if (st) st->noops_removed++;   /* prev is read by one node fewer; DCE drops it if unused */
}

/* Whether every element of v is >= 0, as far as a short walk up its producers can tell: a
 * non-negative constant, Shape, Size, a Range from a non-negative start with a positive step, and
 * what moves, gathers or adds such values. NaN is not >= 0: only integer tensors qualify. */
static bool nonneg(const ox_value *v, int depth) {
    if (!v || depth > 16 || !ox_dtype_is_int(v->dtype)) return false;
    if (v->kind == OX_VALUE_INITIALIZER) {
        int64_t n = is_const(v) ? ox_tensor_numel(v->tensor) : -1;
        if (n < 0 || n > 4096) return false;
        for (int64_t i = 0; i < n; i++)
            if (!(elem(v->tensor, i) >= 0)) return false;
        return true;
    }
    const ox_node *p = v->producer;
    if (!p || p->dead || p->domain || p->ninputs < 1) return false;
    const char *op = p->op_type;
    if (!strcmp(op, "Shape") || !strcmp(op, "Size")) return true;
    if (!strcmp(op, "Range"))
        return p->ninputs == 3 && nonneg(p->inputs[0], depth + 1) && is_const(p->inputs[2]) &&
               ox_tensor_numel(p->inputs[2]->tensor) == 1 && elem(p->inputs[2]->tensor, 0) > 0;
    static const char *const moves[] = {"Unsqueeze", "Squeeze", "Reshape", "Expand", "Transpose", "Identity",
                                        "Flatten", "Slice", "Gather", "GatherND", "GatherElements", "Tile",
                                        "CumSum", "Abs", "Relu"};
    for (size_t k = 0; k < sizeof moves / sizeof *moves; k++)
        if (!strcmp(op, moves[k])) return !strcmp(op, "Abs") || nonneg(p->inputs[0], depth + 1);
    if (!strcmp(op, "Cast")) {   /* a wider or equal integer type keeps the sign */
        int64_t to = ox_node_attr_int(p, "to", -1);
        return (to == OX_INT64 || (to == OX_INT32 && p->inputs[0]->dtype == OX_INT32)) && nonneg(p->inputs[0], depth + 1);
    }
    bool all = !strcmp(op, "Add") || !strcmp(op, "Mul") || !strcmp(op, "Concat") || !strcmp(op, "Max") ||
               !strcmp(op, "Min");
    if (!strcmp(op, "Where")) all = p->ninputs == 3;
    if (!all) return false;
    for (int k = !strcmp(op, "Where") ? 1 : 0; k < p->ninputs; k++)
        if (!nonneg(p->inputs[k], depth + 1)) return false;
    return true;
}

/* Shape(x, k, k + 1) of a symbolic dim named p reads the first graph input dim named p instead:
 * every size of that name then comes from one node, which dedup merges, and x's producer may die. */
static void canonical_shape(ox_graph *g, ox_node *n) {
    const ox_value *x;
    int64_t start, end;
    if (n->ninputs != 1 || !shape_range(n, &x, &start, &end) || end - start != 1) return;
    const char *p = x->dims[start].param;
    if (!p) return;
    for (uint32_t i = 0; i < g->ninputs; i++) {
        ox_value *in = g->inputs[i];
        for (int k = 0; in->dims && k < in->rank; k++) {
            if (!in->dims[k].param || strcmp(in->dims[k].param, p) != 0) continue;
            if (in == x && k == start) return;
            n->inputs[0]->uses--;
            n->inputs[0] = in;
            in->uses++;
            ox_node_set_int(g, n, "start", k);
            ox_node_set_int(g, n, "end", k + 1);
            return;
        }
    }
}

/* Where(Less(i, 0), ..., i) with i never negative (a negative-index wrap around an arange): i. */
static void simplify_where(ox_node *n, ox_pass_stats *st) {
    if (n->ninputs != 3) return;
    const ox_node *c = n->inputs[0] ? n->inputs[0]->producer : NULL;
    if (!c || c->dead || !op_is(c, "Less") || c->ninputs != 2 || c->inputs[0] != n->inputs[2]) return;
    const ox_value *zero = c->inputs[1];
    if (!is_const(zero) || ox_tensor_numel(zero->tensor) != 1 || elem(zero->tensor, 0) != 0) return;
    if (nonneg(n->inputs[2], 0) && n->inputs[2]->dtype == n->outputs[0]->dtype) forward(n, n->inputs[2], st);
}

/* Where(IsNaN(p), 0, p) with p = Softmax(x + c) over the last axis, c a constant with a value
 * above -inf in every row: attention's guard for fully masked rows, which cannot fire when the
 * mask is known to leave each row something. (Every row of c, broadcast or not, then gives each
 * row of x + c a finite-or-larger score for finite x.) */
static bool guard_is_noop(const ox_node *n) {
    ox_value *c = n->inputs[0], *zero = n->inputs[1], *p = n->inputs[2];
    const ox_node *isnan = c ? c->producer : NULL, *sm = p ? p->producer : NULL;
    if (!isnan || !op_is(isnan, "IsNaN") || isnan->inputs[0] != p || !sm || !op_is(sm, "Softmax")) return false;
    if (!is_const(zero) || ox_tensor_numel(zero->tensor) != 1 || elem(zero->tensor, 0) != 0) return false;
    int64_t axis = ox_node_attr_int(sm, "axis", -1);
    if (axis != -1 && !(p->rank > 0 && axis == p->rank - 1)) return false;
    const ox_node *add = sm->inputs[0] ? sm->inputs[0]->producer : NULL;
    if (!add || !op_is(add, "Add") || add->ninputs != 2) return false;
    const ox_value *mask = is_const(add->inputs[1]) ? add->inputs[1] : is_const(add->inputs[0]) ? add->inputs[0] : NULL;
    if (!mask || !ox_dtype_is_float(mask->tensor->dtype)) return false;
    const ox_tensor *t = mask->tensor;
    int64_t numel = ox_tensor_numel(t), row = t->rank > 0 ? t->dims[t->rank - 1] : 1;
    if (numel <= 0 || row <= 0 || numel > (1 << 22)) return false;
    for (int64_t r = 0; r < numel; r += row) {
        bool some = false;
        for (int64_t j = 0; j < row && !some; j++) some = elem(t, r + j) > -INFINITY;
        if (!some) return false;
    }
    return true;
}

ox_code ox_pass_simplify(ox_graph *g, ox_pass_stats *st) {
    ox_graph_count_uses(g);
    for (uint32_t i = 0; i < g->nnodes && !ox_graph_failed(g); i++) {
        ox_node *n = g->nodes[i];
        if (n->dead || n->domain || n->ninputs < 1 || n->noutputs < 1) continue;
        resolve_inputs(n);
        ox_value *x = n->inputs[0], *y = n->ninputs > 1 ? n->inputs[1] : NULL;
        const char *op = n->op_type;
        if (!strcmp(op, "Identity")) forward(n, x, st);
        else if (!strcmp(op, "Cast")) {
            if (x && x->dtype != OX_UNDEFINED && ox_node_attr_int(n, "to", -1) == x->dtype) forward(n, x, st);
        } else if (!strcmp(op, "Reshape")) {
            if (reshape_is_noop(n)) forward(n, x, st);
        } else if (!strcmp(op, "Expand")) {
            if (expand_is_noop(n)) forward(n, x, st);
        } else if (!strcmp(op, "Concat")) {
            if (n->ninputs == 1) forward(n, x, st);

        } else if (!strcmp(op, "Dropout")) {
            /* inference unless training_mode is given and not a constant false */
            ox_value *train = n->ninputs > 2 ? n->inputs[2] : NULL;
            if (!train || (is_const(train) && elem(train->tensor, 0) == 0)) forward(n, x, st);
        } else if (!strcmp(op, "Mul")) {
            if (is_neutral(y, x, 1)) forward(n, x, st);
            else if (is_neutral(x, y, 1)) forward(n, y, st);
        } else if (!strcmp(op, "Add")) {
            if (is_neutral(y, x, 0)) forward(n, x, st);
            else if (is_neutral(x, y, 0)) forward(n, y, st);
        } else if (!strcmp(op, "Sub")) {
            if (is_neutral(y, x, 0)) forward(n, x, st);
        } else if (!strcmp(op, "Div")) {
            if (is_neutral(y, x, 1)) forward(n, x, st);
        } else if (!strcmp(op, "And")) {
            if (is_neutral(y, x, 1)) forward(n, x, st);
            else if (is_neutral(x, y, 1)) forward(n, y, st);
        } else if (!strcmp(op, "Or")) {
            if (is_neutral(y, x, 0)) forward(n, x, st);
            else if (is_neutral(x, y, 0)) forward(n, y, st);
        } else if (!strcmp(op, "Transpose")) {
            simplify_transpose(g, n, st);
        } else if (!strcmp(op, "Where")) {
            if (n->ninputs == 3 && guard_is_noop(n)) forward(n, n->inputs[2], st);
            else simplify_where(n, st);
        } else if (!strcmp(op, "Shape")) {
            canonical_shape(g, n);
        }
    }
    resolve_all(g);
    ox_graph_compact(g);
    return ox_graph_status(g);
}

/* ---- dedup: equal initializers, then common subexpressions ---- */

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 1099511628211ull; }
    return h;
}

/* A tensor's key: dtype, shape and a sample of its bytes (whole when small). Equal tensors have
 * equal keys; a key match is confirmed with a full comparison. */
static uint64_t tensor_key(const ox_tensor *t) {
    uint64_t h = mix(1469598103934665603ull, (uint64_t)t->dtype);
    for (int i = 0; i < t->rank; i++) h = mix(h, (uint64_t)t->dims[i]);
    h = mix(h, t->nbytes);
    if (ox_tensor_is_view(t)) return mix(mix(h, (uint64_t)(uintptr_t)t->base), (uint64_t)t->storage);
    if (t->nbytes <= 4096) return hash_bytes(h, t->data, t->nbytes);
    for (int k = 0; k < 16; k++) {
        size_t off = (t->nbytes - 64) / 15 * (size_t)k;
        h = hash_bytes(h, (const unsigned char *)t->data + off, 64);
    }
    return h;
}

static bool tensors_equal(const ox_tensor *a, const ox_tensor *b) {
    if (a->dtype != b->dtype || a->rank != b->rank || a->nbytes != b->nbytes) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    if (ox_tensor_is_view(a) || ox_tensor_is_view(b)) {
        if (a->storage != b->storage || a->base != b->base) return false;
        if (a->storage == OX_DATA_SCALED)
            return a->run == b->run && memcmp(a->scale, b->scale, a->nbytes / 4 / (size_t)a->run * sizeof *a->scale) == 0;
        return memcmp(a->perm, b->perm, (size_t)a->rank * sizeof *a->perm) == 0;
    }
    return a->data == b->data || memcmp(a->data, b->data, a->nbytes) == 0;
}

typedef struct {
    uint64_t *keys;
    void **items;
    uint32_t cap;
} table;

static bool table_init(ox_graph *g, table *t, uint32_t n) {
    t->cap = 64;
    while (t->cap < n * 2 + 1) t->cap *= 2;
    t->keys = ox_arena_array(g->arena, t->cap, sizeof *t->keys);
    t->items = ox_arena_array(g->arena, t->cap, sizeof *t->items);
    return t->keys && t->items;
}

/* Returns the first item with this key for which eq(item, x) holds, or inserts x and returns NULL. */
static void *table_find_or_add(table *t, uint64_t key, void *x, bool (*eq)(const void *, const void *)) {
    uint32_t mask = t->cap - 1;
    for (uint32_t i = (uint32_t)key & mask;; i = (i + 1) & mask) {
        if (!t->items[i]) { t->keys[i] = key; t->items[i] = x; return NULL; }
        if (t->keys[i] == key && eq(t->items[i], x)) return t->items[i];
    }
}

static bool init_eq(const void *a, const void *b) {
    return tensors_equal(((const ox_value *)a)->tensor, ((const ox_value *)b)->tensor);
}

static bool attrs_equal(const ox_attr *a, const ox_attr *b) {
    if (strcmp(a->name, b->name) != 0 || a->type != b->type) return false;
    switch (a->type) {
    case OX_ATTR_FLOAT: return memcmp(&a->u.f, &b->u.f, sizeof a->u.f) == 0;
    case OX_ATTR_INT: return a->u.i == b->u.i;
    case OX_ATTR_STRING: return strcmp(a->u.s, b->u.s) == 0;
    case OX_ATTR_TENSOR: return tensors_equal(a->u.t, b->u.t);
    case OX_ATTR_FLOATS:
        return a->u.floats.n == b->u.floats.n &&
               (!a->u.floats.n || !memcmp(a->u.floats.v, b->u.floats.v, (size_t)a->u.floats.n * sizeof(float)));
    case OX_ATTR_INTS:
        return a->u.ints.n == b->u.ints.n &&
               (!a->u.ints.n || !memcmp(a->u.ints.v, b->u.ints.v, (size_t)a->u.ints.n * sizeof(int64_t)));
    case OX_ATTR_STRINGS:
        if (a->u.strings.n != b->u.strings.n) return false;
        for (int i = 0; i < a->u.strings.n; i++)
            if (strcmp(a->u.strings.v[i], b->u.strings.v[i]) != 0) return false;
        return true;
    }
    return false;
}

static bool node_eq(const void *pa, const void *pb) {
    const ox_node *a = pa, *b = pb;
    if (strcmp(a->op_type, b->op_type) != 0 || a->ninputs != b->ninputs ||
        a->noutputs != b->noutputs || a->nattrs != b->nattrs)
        return false;
    if ((a->domain == NULL) != (b->domain == NULL) || (a->domain && strcmp(a->domain, b->domain)))
        return false;
    for (int k = 0; k < a->ninputs; k++)
        if (a->inputs[k] != b->inputs[k]) return false;
    for (int k = 0; k < a->nattrs; k++) {
        const ox_attr *other = ox_node_attr(b, a->attrs[k].name);
        if (!other || !attrs_equal(&a->attrs[k], other)) return false;
    }
    return true;
}

static uint64_t node_key(const ox_node *n) {
    uint64_t h = hash_bytes(1469598103934665603ull, n->op_type, strlen(n->op_type));
    if (n->domain) h = hash_bytes(h, n->domain, strlen(n->domain));
    for (int k = 0; k < n->ninputs; k++) h = mix(h, (uint64_t)(uintptr_t)n->inputs[k]);
    /* attributes in any order: a sum of their hashes */
    uint64_t ah = 0;
    for (int k = 0; k < n->nattrs; k++) {
        const ox_attr *a = &n->attrs[k];
        uint64_t x = hash_bytes(mix(0, a->type), a->name, strlen(a->name));
        if (a->type == OX_ATTR_INT) x = mix(x, (uint64_t)a->u.i);
        else if (a->type == OX_ATTR_INTS)
            for (int i = 0; i < a->u.ints.n; i++) x = mix(x, (uint64_t)a->u.ints.v[i]);
        ah += x;
    }
    return mix(h, ah);
}

/* Ops whose result differs from one evaluation to the next. */
static bool is_random(const ox_node *n) {
    return !strncmp(n->op_type, "Random", 6) || !strcmp(n->op_type, "Multinomial") ||
           !strcmp(n->op_type, "Bernoulli") || !strcmp(n->op_type, "Dropout");
}

ox_code ox_pass_dedup(ox_graph *g, ox_pass_stats *st) {
    table t;
    if (!table_init(g, &t, g->ninitializers)) return ox_graph_status(g);
    for (uint32_t i = 0; i < g->ninitializers; i++) {
        ox_value *v = g->initializers[i];
        if (v->dead || v->is_output || !ox_tensor_has_data(v->tensor)) continue;
        ox_value *first = table_find_or_add(&t, tensor_key(v->tensor), v, init_eq);
        if (first && replace(v, first, false)) {
            v->dead = true;
            v->tensor->consumed = first->tensor->consumed = true;   /* now one weight stands for both */
            if (st) st->initializers_deduped++;
        }
    }
    if (!table_init(g, &t, g->nnodes)) return ox_graph_status(g);
    for (uint32_t i = 0; i < g->nnodes; i++) {
        ox_node *n = g->nodes[i];
        if (n->dead) continue;
        resolve_inputs(n);
        if (n->ninputs == 0 || is_random(n)) continue;
        ox_node *first = table_find_or_add(&t, node_key(n), n, node_eq);
        if (!first) continue;
        bool ok = true;
        for (int k = 0; k < n->noutputs; k++) ok &= !n->outputs[k]->is_output;
        if (!ok) continue;
        for (int k = 0; k < n->noutputs; k++) replace(n->outputs[k], first->outputs[k], false);
        n->dead = true;
        if (st) st->cse_removed++;
    }
    resolve_all(g);
    ox_graph_compact(g);
    return ox_graph_status(g);
}

/* ---- fusions ---- */

/* The only reader of v is a live node, and v is not a graph output. */
static bool single_use(const ox_value *v) {
    return v && v->uses == 1 && !v->is_output;
}

/* A float32 constant's values, or NULL. */
static const float *f32(ox_graph *g, ox_value *v, int64_t n) {
    if (!is_const(v) || v->tensor->dtype != OX_FLOAT || ox_tensor_numel(v->tensor) != n) return NULL;
    return ox_tensor_bytes(g, v->tensor);
}

static const char *fused_name(ox_graph *g, const ox_value *base, const char *suffix) {
    const char *b = base && base->name ? base->name : "fused";
    return ox_arena_printf(g->arena, "%s_%s", b, suffix);   /* made unique when added */
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
    if (!replace(old->outputs[0], fused->outputs[0], true)) return false;
    old->dead = absorbed->dead = true;
    if (st) st->fused++;
    return true;
}

/*
 * Conv(x, W, b) → BatchNormalization(scale, B, mean, var, eps) becomes Conv(x, W', b') with
 *   k = scale / sqrt(var + eps),  W'[o] = W[o] * k[o],  b' = (b - mean) * k + B
 * (for ConvTranspose the output channel is W's dim 1, per group). Float32 only.
 */
/*
 * Gemm(A, B, C; alpha, beta) -> BatchNormalization becomes Gemm(A, B', C'; alpha, beta = 1) with
 *   k = scale / sqrt(var + eps),  B' = B with output column o times k[o],  C' = (beta C - mean) k + B
 * B' is a SCALED view when B is [out, in] (transB = 1, what linear lowers to); computed otherwise.
 */
static bool fuse_bn_gemm(ox_graph *g, ox_node *bn, ox_node *gemm, ox_pass_stats *st) {
    ox_value *w = gemm->inputs[1], *c = gemm->ninputs > 2 ? gemm->inputs[2] : NULL;
    if (!is_const(w) || w->tensor->dtype != OX_FLOAT || w->tensor->rank != 2 || ox_tensor_is_view(w->tensor)) return false;
    bool tb = ox_node_attr_int(gemm, "transB", 0) != 0;
    const int64_t *wd = w->tensor->dims;
    int64_t out = tb ? wd[0] : wd[1], in = tb ? wd[1] : wd[0];
    const float *scale = f32(g, bn->inputs[1], out), *shift = f32(g, bn->inputs[2], out);
    const float *mean = f32(g, bn->inputs[3], out), *var = f32(g, bn->inputs[4], out);
    int64_t cn = c && is_const(c) ? ox_tensor_numel(c->tensor) : 0;
    if (!scale || !shift || !mean || !var || (c && (!is_const(c) || c->tensor->dtype != OX_FLOAT || (cn != out && cn != 1))))
        return false;
    const float *cv = c ? ox_tensor_bytes(g, c->tensor) : NULL;
    if (c && !cv) return false;
    const ox_attr *eps_a = ox_node_attr(bn, "epsilon");
    double eps = eps_a && eps_a->type == OX_ATTR_FLOAT ? eps_a->u.f : 1e-5;
    const ox_attr *beta_a = ox_node_attr(gemm, "beta");
    double beta = beta_a && beta_a->type == OX_ATTR_FLOAT ? beta_a->u.f : 1.0;
    double *k = ox_arena_array(g->arena, (size_t)out, sizeof *k);
    ox_tensor *nb = ox_tensor_new(g, OX_FLOAT, 1, &out);
    if (!k || !nb) { ox_graph_status(g); return false; }
    nb->weight = true;
    for (int64_t o = 0; o < out; o++) {
        k[o] = scale[o] / sqrt((double)var[o] + eps);
        double cb = c ? beta * cv[cn == 1 ? 0 : o] : 0.0;
        ((float *)(void *)nb->data)[o] = (float)((cb - mean[o]) * k[o] + shift[o]);
    }
    ox_tensor *nw;
    if (tb) {
        nw = ox_arena_alloc(g->arena, sizeof *nw);
        if (!nw) { ox_graph_status(g); return false; }
        *nw = (ox_tensor){.dtype = OX_FLOAT, .rank = 2, .dims = wd, .nbytes = w->tensor->nbytes,
                          .storage = OX_DATA_SCALED, .base = w->tensor, .scale = k, .run = in};
        w->tensor->consumed = true;
    } else {
        const float *wv = ox_tensor_bytes(g, w->tensor);
        nw = ox_tensor_new(g, OX_FLOAT, 2, wd);
        if (!wv || !nw) { ox_graph_status(g); return false; }
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

static bool fuse_bn(ox_graph *g, ox_node *bn, ox_pass_stats *st) {
    if (bn->ninputs != 5 || bn->noutputs != 1) return false;
    ox_value *y = bn->inputs[0];
    ox_node *conv = y ? y->producer : NULL;
    if (!conv || conv->dead || !single_use(y) || conv->ninputs < 2) return false;
    if (op_is(conv, "Gemm")) return y->rank == 2 && fuse_bn_gemm(g, bn, conv, st);
    bool transposed = op_is(conv, "ConvTranspose");
    if (!transposed && !op_is(conv, "Conv")) return false;
    ox_value *w = conv->inputs[1], *b = conv->ninputs > 2 ? conv->inputs[2] : NULL;
    if (!is_const(w) || w->tensor->dtype != OX_FLOAT || w->tensor->rank < 3) return false;
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
    if (!nb || !k || !run_k) { ox_graph_status(g); return false; }
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
        if (!nw) { ox_graph_status(g); return false; }
        *nw = (ox_tensor){.dtype = OX_FLOAT, .rank = w->tensor->rank, .dims = wd, .nbytes = w->tensor->nbytes,
                          .storage = OX_DATA_SCALED, .base = w->tensor, .scale = run_k, .run = inner};
        w->tensor->consumed = true;
    } else {   /* a view of a view is not kept: compute W' now */
        const float *wv = ox_tensor_bytes(g, w->tensor);
        nw = ox_tensor_new(g, OX_FLOAT, w->tensor->rank, wd);
        if (!wv || !nw) { ox_graph_status(g); return false; }
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
        if (!mm || mm->dead || !op_is(mm, "MatMul") || !single_use(mm_out)) continue;
        ox_value *a = mm->inputs[0], *b = mm->inputs[1];
        if (!a || a->rank != 2 || !is_const(b) || b->tensor->rank != 2 || !is_const(c)) continue;
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
    if (!pad || pad->dead || !op_is(pad, "Pad") || !single_use(p) || pad->ninputs < 2) return false;
    const ox_attr *mode = ox_node_attr(pad, "mode");
    if (mode && (mode->type != OX_ATTR_STRING || strcmp(mode->u.s, "constant") != 0)) return false;
    if (pad->ninputs > 2 && pad->inputs[2] &&
        (!is_const(pad->inputs[2]) || elem(pad->inputs[2]->tensor, 0) != 0)) return false;
    if (pad->ninputs > 3 && pad->inputs[3]) return false;   /* axes */
    const ox_attr *ap = ox_node_attr(conv, "auto_pad");
    if (ap && ap->type == OX_ATTR_STRING && strcmp(ap->u.s, "NOTSET") != 0) return false;
    ox_value *pv = pad->inputs[1];
    if (!is_const(pv) || pv->tensor->dtype != OX_INT64 || pv->tensor->rank != 1) return false;
    int64_t n2 = pv->tensor->dims[0], r = n2 / 2, sp = r - 2;
    if (n2 % 2 || r < 3 || r > 10) return false;
    int64_t pads[20], cur[20] = {0};
    for (int64_t i = 0; i < n2; i++) pads[i] = (int64_t)elem(pv->tensor, i);
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
    return n && !n->dead && op_is(n, op) ? n : NULL;
}

/* The one-element float constant v holds, or NAN. */
static double scalar(const ox_value *v) {
    return is_const(v) && ox_tensor_numel(v->tensor) == 1 ? elem(v->tensor, 0) : NAN;
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
        int mi = isnan(scalar(add->inputs[1])) ? 1 : 0;   /* the side that is not eps */
        double e = scalar(add->inputs[1 - mi]);
        ox_node *mean = made_by(add->inputs[mi], "ReduceMean");
        if (isnan(e) || !mean || mean->ninputs != 2 || ox_node_attr_int(mean, "keepdims", 1) != 1) continue;
        const ox_value *axes = mean->inputs[1];
        if (!is_const(axes) || ox_tensor_numel(axes->tensor) != 1) continue;
        double ax = elem(axes->tensor, 0);
        if (ax != -1 && ax != x->rank - 1) continue;
        ox_node *p = mean->inputs[0] ? mean->inputs[0]->producer : NULL;
        if (!p || p->dead || p->ninputs != 2 || p->inputs[0] != x) continue;
        if (!(op_is(p, "Mul") && p->inputs[1] == x) && !(op_is(p, "Pow") && scalar(p->inputs[1]) == 2)) continue;
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
        if (!ones) { ox_graph_status(g); return false; }
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
        if (m && n->inputs[1 - side] && n->inputs[1 - side]->kind == OX_VALUE_INITIALIZER)
            return fuse_rms(g, m, n, st);
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
    if (!is_const(e) || ox_dtype_size(e->dtype) == 0) return false;
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
        int r = side >> 1;   /* the input of m2 that is the rotated x */
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
        bool folded = !cu && !su && is_const(c4) && is_const(s4) && c4->rank == 4 && s4->rank == 4 &&
                      c4->tensor->dims[1] == 1 && s4->tensor->dims[1] == 1;
        if (folded) cu = c4, su = s4;
        if (!cu || !su || cu->dtype != x->dtype || su->dtype != x->dtype || (!folded && (cu->rank != 3 || su->rank != 3)))
            continue;
        ox_node *cn = made_by(cu, "Cos"), *sn = made_by(su, "Sin");
        ox_value *e = cn && sn && cn->inputs[0] == sn->inputs[0] ? cn->inputs[0] : NULL;
        if (e ? !halves_equal(g, e, d) : !(is_const(cu) && is_const(su) && halves_equal(g, cu, d) && halves_equal(g, su, d)))
            continue;

        int64_t starts = 0, ends = h, axes = -1, one = 1;
        ox_value *first_half[3] = {ox_graph_add_constant(g, NULL, OX_INT64, 1, &one, &starts),
                                   ox_graph_add_constant(g, NULL, OX_INT64, 1, &one, &ends),
                                   ox_graph_add_constant(g, NULL, OX_INT64, 1, &one, &axes)};
        ox_value *caches[2];
        if (e) {   /* one Slice of e feeds both */
            ox_value *sl[4] = {e, first_half[0], first_half[1], first_half[2]};
            ox_value *eh = new_node1(g, "Slice", 4, sl, x->dtype);
            caches[0] = new_node1(g, "Cos", 1, &eh, x->dtype);
            caches[1] = new_node1(g, "Sin", 1, &eh, x->dtype);
        } else {
            for (int k = 0; k < 2; k++) {
                ox_value *v = k ? su : cu;
                if (folded) {   /* [B', 1, S, D] -> [B', S, D] */
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

ox_code ox_pass_fuse(ox_graph *g, ox_pass_stats *st) {
    ox_graph_count_uses(g);
    uint32_t n0 = g->nnodes;   /* fusions append nodes and swap them into place */
    uint32_t ropes = 0;        /* ... and fuse_rope appends nodes the fused node reads */
    for (uint32_t i = 0; i < n0 && !ox_graph_failed(g); i++) {
        ox_node *n = g->nodes[i];
        if (n->dead || n->domain) continue;
        resolve_inputs(n);
        if (op_is(n, "BatchNormalization")) fuse_bn(g, n, st);
        else if (op_is(n, "Add")) {
            if (!fuse_gemm(g, n, st) && g->opset >= 23 && fuse_rope(g, n, st)) ropes++;
        }
        else if (op_is(n, "Conv")) fuse_pad(g, n, st);
        else if (op_is(n, "Mul") && g->opset >= 23) fuse_rms_weighted(g, n, st);
    }
    /* RMS norms without a weight: those with one were fused above, their inner Mul is dead */
    for (uint32_t i = 0; i < n0 && g->opset >= 23 && !ox_graph_failed(g); i++) {
        ox_node *n = g->nodes[i];
        if (!n->dead && op_is(n, "Mul")) fuse_rms(g, n, NULL, st);
    }
    resolve_all(g);
    if (ropes) return ox_graph_toposort(g);
    ox_graph_compact(g);
    return ox_graph_status(g);
}

/* ---- dead code ---- */

ox_code ox_pass_dce(ox_graph *g, ox_pass_stats *st) {
    resolve_all(g);
    ox_graph_count_uses(g);
    /* Reverse topological order: when a node is reached, every reader of its outputs has been
     * decided, so one sweep finds every dead node. */
    for (uint32_t i = g->nnodes; i-- > 0;) {
        ox_node *n = g->nodes[i];
        if (n->dead) continue;
        bool live = false;
        for (int k = 0; k < n->noutputs && !live; k++)
            live = n->outputs[k]->uses > 0 || n->outputs[k]->is_output;
        if (live) continue;
        n->dead = true;
        if (st) st->nodes_removed++;
        for (int k = 0; k < n->ninputs; k++)
            if (n->inputs[k]) n->inputs[k]->uses--;
    }
    for (uint32_t i = 0; i < g->ninitializers; i++) {
        ox_value *v = g->initializers[i];
        if (!v->dead && v->uses == 0 && !v->is_output) {
            v->dead = true;
            if (st) st->initializers_removed++;
        }
    }
    ox_graph_compact(g);
    return ox_graph_status(g);
}

ox_code ox_optimize(ox_graph *g, ox_pass_stats *st) {
    if (st) st->nodes_before = g->nnodes;
    ox_code rc = ox_pass_lift_constants(g, st);
    if (rc == OX_OK) rc = ox_pass_simplify(g, st);
    if (rc == OX_OK) rc = ox_pass_fold(g, st);
    if (rc == OX_OK) rc = ox_pass_simplify(g, st);
    if (rc == OX_OK) rc = ox_pass_dedup(g, st);
    if (rc == OX_OK) rc = ox_pass_fuse(g, st);
    /* what fusions left: caches to fold, the same cache built for q and k and in every layer */
    if (rc == OX_OK) rc = ox_pass_fold(g, st);
    if (rc == OX_OK) rc = ox_pass_dedup(g, st);
    if (rc == OX_OK) rc = ox_pass_dce(g, st);
    if (st) st->nodes_after = g->nnodes;
    return rc;
}
