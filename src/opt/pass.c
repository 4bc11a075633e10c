/*
 * pass.c — the optimizer's driver (ox_optimize walks passes.def) and its generic passes that need
 * no file of their own: Constant nodes lifted to initializers, folding, dead code. No-op removal is
 * simplify.c, initializer and node dedup dedup.c, the model-specific fusions fuse.c; what they all
 * share is pass_internal.h.
 *
 * Passes replace a value by setting value->replaced_by and let readers catch up as they are visited
 * (forward order sees every producer before its readers), so no replacement rescans the graph;
 * oxp_resolve_all settles the rest at the end of each pass.
 *
 * Nested graphs (If/Loop/Scan bodies) are not built yet: passes.def says how a pass will see them.
 */
#include "opt/pass.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "opt/fold.h"
#include "opt/pass_internal.h"

/* ---- the tables ---- */

typedef ox_code pass_fn(ox_graph *g, ox_pass_stats *st);

static const struct {
    const char *name;
    pass_fn *run;
} passes[] = {
#define OX_PASS(name, fn) {#name, fn},
#include "opt/passes.def"
#undef OX_PASS
};

const ox_pass_stat ox_pass_stat_table[OX_PASS_STAT_COUNT] = {
#define OX_STAT(name, what) {#name, offsetof(ox_pass_stats, name), what},
#include "opt/stats.def"
#undef OX_STAT
};

/* Every counter is a uint32_t, and the table names each once. */
_Static_assert(sizeof(ox_pass_stats) == OX_PASS_STAT_COUNT * sizeof(uint32_t), "stats.def: uint32_t fields only");

uint32_t ox_pass_stat_get(const ox_pass_stats *st, int i) {
    uint32_t v;
    memcpy(&v, (const char *)st + ox_pass_stat_table[i].offset, sizeof v);
    return v;
}

ox_code ox_optimize(ox_graph *g, ox_pass_stats *st) {
    if (st) st->nodes_before = g->nnodes;
    ox_code rc = OX_OK;
    for (size_t i = 0; i < sizeof passes / sizeof *passes && rc == OX_OK; i++) rc = passes[i].run(g, st);
    if (st) st->nodes_after = g->nnodes;
    return rc;
}

/* ---- replacing values ---- */

void oxp_resolve_all(ox_graph *g) {
    for (uint32_t i = 0; i < g->nnodes; i++)
        if (!g->nodes[i]->dead) oxp_resolve_inputs(g->nodes[i]);
    for (uint32_t i = 0; i < g->noutputs; i++) g->outputs[i] = oxp_resolve(g->outputs[i]);
}

bool oxp_replace(ox_value *from, ox_value *to, bool fresh) {
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
        to->name = from->name; /* a folded value keeps its name: easier to follow in Netron */
        from->name = NULL;
    }
    from->replaced_by = to;
    return true;
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
        if (n->dead || !oxp_op_is(n, "Constant") || n->noutputs != 1) continue;
        ox_tensor *t = constant_tensor(g, n);
        if (!t) continue;
        ox_value *init = ox_graph_adopt_tensor(g, NULL, t);
        if (!init) return ox_graph_status(g);
        if (!oxp_replace(n->outputs[0], init, true)) continue;
        n->dead = true;
        if (st) st->constants_lifted++;
    }
    oxp_resolve_all(g);
    ox_graph_compact(g);
    return ox_graph_status(g);
}

/* ---- folding ---- */

enum { FOLD_FREE_BYTES = 1024 }; /* a weight view smaller than this is copied, not viewed */
/* A fold may add this much even when it frees less: small tables computed from aranges and
 * weights (T5's relative-position buckets, MaxViT's and Swin's bias gathers) are worth storing. A
 * growing fold frees nothing, so a chain can keep an intermediate alive; each is capped here. */
enum { FOLD_GROW_BYTES = 256 * 1024 };

bool oxp_shape_range(const ox_node *n, const ox_value **x, int64_t *start, int64_t *end) {
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
    if (oxp_op_is(n, "Size")) {
        int64_t numel = x && ox_value_is_static(x) ? ox_value_numel(x) : -1;
        ox_tensor *t = numel < 0 ? NULL : ox_tensor_new(g, OX_INT64, 0, NULL);
        if (t) memcpy((void *)t->data, &numel, 8);
        return t;
    }
    int64_t start, end;
    if (!oxp_shape_range(n, &x, &start, &end)) return NULL;
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
    if (!sh || sh->dead || !oxp_op_is(sh, "Shape") || !oxp_shape_range(sh, &x, &start, &end)) return NULL;
    int64_t len = end - start, pick[64], npick = 0;
    if (oxp_op_is(n, "Gather")) {
        const ox_value *idx = n->ninputs == 2 ? n->inputs[1] : NULL;
        if (!oxp_is_const(idx) || ox_node_attr_int(n, "axis", 0) != 0 || idx->tensor->rank > 1) return NULL;
        npick = ox_tensor_numel(idx->tensor);
        if (npick < 0 || npick > 64) return NULL;
        for (int64_t k = 0; k < npick; k++) {
            double v = oxp_elem(idx->tensor, k);
            if (isnan(v) || v < -len || v >= len) return NULL;
            pick[k] = (int64_t)v < 0 ? (int64_t)v + len : (int64_t)v;
        }
        if (idx->tensor->rank == 0) { /* a 0-d index gives a 0-d result */
            if (!dim_static(&x->dims[start + pick[0]])) return NULL;
            ox_tensor *t = ox_tensor_new(g, OX_INT64, 0, NULL);
            if (t) ((int64_t *)(void *)t->data)[0] = x->dims[start + pick[0]].value;
            return t;
        }
    } else { /* Slice(data, starts, ends[, axes[, steps]]) on the 1-D shape */
        if (n->ninputs < 3 || !oxp_is_const(n->inputs[1]) || !oxp_is_const(n->inputs[2])) return NULL;
        if (ox_tensor_numel(n->inputs[1]->tensor) != 1 || ox_tensor_numel(n->inputs[2]->tensor) != 1) return NULL;
        if (n->ninputs > 3 && n->inputs[3] &&
            !(oxp_is_const(n->inputs[3]) && ox_tensor_numel(n->inputs[3]->tensor) == 1 &&
              (oxp_elem(n->inputs[3]->tensor, 0) == 0 || oxp_elem(n->inputs[3]->tensor, 0) == -1)))
            return NULL;
        double step =
            n->ninputs > 4 && n->inputs[4] ? (oxp_is_const(n->inputs[4]) ? oxp_elem(n->inputs[4]->tensor, 0) : NAN) : 1;
        double b = oxp_elem(n->inputs[1]->tensor, 0), e = oxp_elem(n->inputs[2]->tensor, 0);
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
bool oxp_constant_of_shape(const ox_value *v, ox_tensor *t, int64_t *dims, unsigned char *value) {
    const ox_node *p = v ? v->producer : NULL;
    if (!p || p->dead || !oxp_op_is(p, "ConstantOfShape") || p->ninputs != 1 || p->noutputs != 1 || p->outputs[0] != v)
        return false;
    const ox_value *s = p->inputs[0];
    if (!oxp_is_const(s) || s->tensor->dtype != OX_INT64 || s->tensor->rank != 1 || s->tensor->dims[0] > 16)
        return false;
    const ox_attr *a = ox_node_attr(p, "value");
    ox_dtype dtype = OX_FLOAT; /* no value: a float 0 */
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
        double d = oxp_elem(s->tensor, i);
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
    *t = (ox_tensor){.dtype = b->dtype,
                     .rank = b->rank,
                     .dims = dims,
                     .nbytes = b->nbytes,
                     .storage = OX_DATA_PERMUTED,
                     .base = b,
                     .perm = perm};
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
            if (!b) goto done; /* no memory for an optional temporary: the node just stays */
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
    if (grown > freed && grown > FOLD_GROW_BYTES) {
        rc = OX_EUNSUPPORTED;
        goto done;
    } /* would grow the file */
    bool weight = false; /* computed from weights: saved or left out with them */
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
        oxp_resolve_inputs(n);
        ox_tensor *out[8] = {0};
        if ((oxp_op_is(n, "Shape") || oxp_op_is(n, "Size")) && n->ninputs == 1) {
            if (!(out[0] = fold_shape(g, n))) continue;
        } else if ((oxp_op_is(n, "Gather") || oxp_op_is(n, "Slice")) && n->noutputs == 1 &&
                   (out[0] = fold_shape_pick(g, n))) {
            /* a static part of a symbolic shape */
        } else {
            bool view = oxp_op_is(n, "Transpose") && n->ninputs == 1;
            bool all_const = n->ninputs > 0 && n->ninputs <= 16 && (view || ox_fold_has_kernel(n->op_type));
            bool look[16] = {0};
            ox_tensor temp[16];
            int64_t temp_dims[16][16];
            unsigned char value[16][16];
            size_t freed = 0;
            for (int k = 0; k < n->ninputs && all_const; k++) {
                ox_value *v = n->inputs[k];
                if (!v) continue;
                if (oxp_is_const(v)) {
                    if (v->uses == 1) freed += v->tensor->nbytes;
                    continue;
                }
                /* a ConstantOfShape stays (its result is not stored), but what reads it folds */
                look[k] = !view && oxp_constant_of_shape(v, &temp[k], temp_dims[k], value[k]);
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
                ox_code rc = fold_with_kernel(g, n, look, temp, (const unsigned char(*)[16])value, freed, out);
                if (rc == OX_ENOMEM) return ox_graph_status(g);
                if (rc != OX_OK) continue;
            }
        }
        bool done = true;
        for (int k = 0; k < n->noutputs && done; k++) {
            if (!out[k]) {
                done = false;
                break;
            }
            ox_value *c = ox_graph_adopt_tensor(g, NULL, out[k]);
            if (!c) return ox_graph_status(g);
            done = oxp_replace(n->outputs[k], c, true);
        }
        if (!done) continue;
        for (int k = 0; k < n->ninputs; k++)
            if (n->inputs[k]) n->inputs[k]->uses--;
        n->dead = true;
        if (st) st->folded++;
    }
    oxp_resolve_all(g);
    ox_graph_compact(g);
    return ox_graph_status(g);
}

/* ---- dead code ---- */

ox_code ox_pass_dce(ox_graph *g, ox_pass_stats *st) {
    oxp_resolve_all(g);
    ox_graph_count_uses(g);
    /* Reverse topological order: when a node is reached, every reader of its outputs has been
     * decided, so one sweep finds every dead node. */
    for (uint32_t i = g->nnodes; i-- > 0;) {
        ox_node *n = g->nodes[i];
        if (n->dead) continue;
        bool live = false;
        for (int k = 0; k < n->noutputs && !live; k++) live = n->outputs[k]->uses > 0 || n->outputs[k]->is_output;
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
