/*
 * inline.c — function calls instantiated in the graph (see inline.h for the rules).
 *
 * Each instantiation binds the body's value names to graph values in a hash map that lives in a
 * scratch arena for the duration of the call; attributes are resolved into the scratch arena too
 * and copied into the graph's arena only when a node takes them, so the graph keeps nothing that
 * a nested call resolved and then discarded.
 */
#include "onnx/inline.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ir/hash.h"

/* The chain of calls being inlined: recursion check and messages. */
typedef struct frame {
    const ox_function *fn;
    const struct frame *caller;
    int depth;
} frame;

typedef struct ctx {
    ox_graph *g;
    ox_arena *scratch;
    const ox_function *const *lib;
    int nlib;
    const char *source;
    ox_error *err;
} ctx;

static const char *norm_domain(const char *d) { return !d || !strcmp(d, "ai.onnx") ? "" : d; }

const ox_function *ox_function_find(const ox_function *const *library, int nlibrary, const char *domain,
                                    const char *op_type) {
    if (!op_type) return NULL;
    domain = norm_domain(domain);
    for (int i = 0; i < nlibrary; i++) {
        const ox_function *f = library[i];
        if (f && f->name && !strcmp(f->name, op_type) && !strcmp(norm_domain(f->domain), domain)) return f;
    }
    return NULL;
}

/* A non-default domain that holds library functions: its nodes are calls, never model ops. */
static bool function_domain(const ctx *c, const char *domain) {
    domain = norm_domain(domain);
    if (!*domain) return false;
    for (int i = 0; i < c->nlib; i++)
        if (c->lib[i] && !strcmp(norm_domain(c->lib[i]->domain), domain)) return true;
    return false;
}

/* ---- messages ---- */

/* "function this::inner (called from this::outer)" */
static void describe(const frame *fr, char *buf, size_t size) {
    const ox_function *f = fr->fn;
    int w = snprintf(buf, size, "function %s%s%s", f->domain && *f->domain ? f->domain : "",
                     f->domain && *f->domain ? "::" : "", f->name);
    for (const frame *up = fr->caller; up && w >= 0 && (size_t)w < size; up = up->caller) {
        w += snprintf(buf + w, size - (size_t)w, " (called from %s%s%s)",
                      up->fn->domain && *up->fn->domain ? up->fn->domain : "",
                      up->fn->domain && *up->fn->domain ? "::" : "", up->fn->name);
    }
}

static ox_code fail(ctx *c, const frame *fr, const ox_function_node *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static ox_code fail(ctx *c, const frame *fr, const ox_function_node *n, const char *fmt, ...) {
    char who[384], what[512], node[192] = "";
    va_list ap;
    if (ox_graph_failed(c->g)) { /* out of memory: that is the error */
        ox_error_set(c->err, ox_graph_status(c->g), NULL, "%s", c->g->err.msg);
        return c->err->code;
    }
    describe(fr, who, sizeof who);
    if (n) snprintf(node, sizeof node, ", node '%s' (%s)", n->name && *n->name ? n->name : "", n->op_type);
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ox_error_set(c->err, OX_ELOWER, fr->fn->name, "%s%s: %s", who, node, what);
}

static ox_code oom(ctx *c) {
    if (!ox_graph_failed(c->g)) ox_error_set(&c->g->err, OX_ENOMEM, NULL, "out of memory while inlining a function");
    return ox_error_set(c->err, OX_ENOMEM, NULL, "out of memory while inlining a function");
}

static const char *type_name(ox_attr_type t) {
    switch (t) {
    case OX_ATTR_FLOAT: return "float";
    case OX_ATTR_INT: return "int";
    case OX_ATTR_STRING: return "string";
    case OX_ATTR_TENSOR: return "tensor";
    case OX_ATTR_FLOATS: return "floats";
    case OX_ATTR_INTS: return "ints";
    case OX_ATTR_STRINGS: return "strings";
    }
    return "unknown";
}

/* ---- value names of one instantiation: open addressing, names are the body's ---- */

typedef struct vmap {
    const char **keys;
    ox_value **vals;
    uint32_t cap;
} vmap;

/* Keyed (ir/hash.h): body names come from FunctionProtos a model or a translation supplies. */
static uint32_t hash(const char *s) { return (uint32_t)ox_hash_bytes(s, strlen(s)); }

static bool vmap_init(ctx *c, vmap *m, size_t n) {
    uint32_t cap = 16;
    while (cap < 2 * n && cap < (1u << 30)) cap *= 2;
    if (cap < 2 * n) return false;
    m->cap = cap;
    m->keys = ox_arena_array(c->scratch, cap, sizeof *m->keys);
    m->vals = ox_arena_array(c->scratch, cap, sizeof *m->vals);
    return m->keys && m->vals;
}

/* The slot of key: its entry, or the empty slot where it would go. */
static uint32_t vmap_slot(const vmap *m, const char *key) {
    uint32_t i = hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key)) i = (i + 1) & (m->cap - 1);
    return i;
}

/* false when key is not bound; *v may be NULL for a bound omitted input. */
static bool vmap_get(const vmap *m, const char *key, ox_value **v) {
    uint32_t i = vmap_slot(m, key);
    if (!m->keys[i]) return false;
    *v = m->vals[i];
    return true;
}

/* false when key is already bound. The map is sized for every name, so it never fills. */
static bool vmap_put(vmap *m, const char *key, ox_value *v) {
    uint32_t i = vmap_slot(m, key);
    if (m->keys[i]) return false;
    m->keys[i] = key;
    m->vals[i] = v;
    return true;
}

/* ---- attributes ---- */

static bool imports(const ox_function *f, const char *domain) {
    domain = norm_domain(domain);
    for (uint32_t i = 0; i < f->nopsets; i++)
        if (!strcmp(norm_domain(f->opsets[i].domain), domain)) return true;
    return false;
}

static const ox_attr *find_attr(const ox_attr *attrs, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (attrs[i].name && !strcmp(attrs[i].name, name)) return &attrs[i];
    return NULL;
}

/* The value of an attribute that refers to the function's `ref`, typed as declared: *out, or
 * false when neither the call nor the function's defaults give one (the attribute is left out). */
static ox_code resolve_ref(ctx *c, const frame *fr, const ox_function_node *n, const ox_attr *decl, const char *ref,
                           const ox_attr *call_attrs, int ncall, ox_attr *out, bool *present) {
    const ox_attr *v = find_attr(call_attrs, ncall, ref);
    if (!v) v = find_attr(fr->fn->attribute_defaults, fr->fn->nattribute_defaults, ref);
    *present = v != NULL;
    if (!v) return OX_OK;
    *out = *v;
    out->name = decl->name;
    if (decl->type == v->type || (int)decl->type == 0) return OX_OK;
    if (decl->type == OX_ATTR_FLOAT && v->type == OX_ATTR_INT) {
        out->type = OX_ATTR_FLOAT;
        out->u.f = (float)v->u.i;
        return OX_OK;
    }
    if (decl->type == OX_ATTR_FLOATS && v->type == OX_ATTR_INTS) {
        int cnt = v->u.ints.n;
        float *fv = cnt ? ox_arena_array(c->scratch, (size_t)cnt, sizeof *fv) : NULL;
        if (cnt && !fv) return oom(c);
        for (int k = 0; k < cnt; k++) fv[k] = (float)v->u.ints.v[k];
        out->type = OX_ATTR_FLOATS;
        out->u.floats.v = fv;
        out->u.floats.n = cnt;
        return OX_OK;
    }
    return fail(c, fr, n,
                "attribute '%s' takes the function's attribute '%s', declared %s, but the "
                "value given is %s",
                decl->name, ref, type_name(decl->type), type_name(v->type));
}

/* A deep copy of src into the graph's arena. */
static bool copy_attr(ox_arena *a, ox_attr *dst, const ox_attr *src) {
    *dst = *src;
    dst->name = ox_arena_strdup(a, src->name);
    switch (src->type) {
    case OX_ATTR_STRING: dst->u.s = ox_arena_strdup(a, src->u.s ? src->u.s : ""); return dst->name && dst->u.s;
    case OX_ATTR_FLOATS:
        if (src->u.floats.n > 0) {
            dst->u.floats.v = ox_arena_array(a, (size_t)src->u.floats.n, sizeof(float));
            if (!dst->u.floats.v) return false;
            memcpy(dst->u.floats.v, src->u.floats.v, (size_t)src->u.floats.n * sizeof(float));
        }
        return dst->name != NULL;
    case OX_ATTR_INTS:
        if (src->u.ints.n > 0) {
            dst->u.ints.v = ox_arena_array(a, (size_t)src->u.ints.n, sizeof(int64_t));
            if (!dst->u.ints.v) return false;
            memcpy(dst->u.ints.v, src->u.ints.v, (size_t)src->u.ints.n * sizeof(int64_t));
        }
        return dst->name != NULL;
    case OX_ATTR_STRINGS:
        if (src->u.strings.n > 0) {
            const char **sv = ox_arena_array(a, (size_t)src->u.strings.n, sizeof *sv);
            if (!sv) return false;
            for (int k = 0; k < src->u.strings.n; k++)
                if (!(sv[k] = ox_arena_strdup(a, src->u.strings.v[k] ? src->u.strings.v[k] : ""))) return false;
            dst->u.strings.v = sv;
        }
        return dst->name != NULL;
    case OX_ATTR_TENSOR: {
        const ox_tensor *t = src->u.t;
        ox_tensor *copy = ox_arena_alloc(a, sizeof *copy);
        if (!copy || !t) return false;
        *copy = (ox_tensor){.dtype = t->dtype, .rank = t->rank, .nbytes = t->nbytes, .storage = OX_DATA_OWNED};
        if (t->rank > 0) {
            int64_t *d = ox_arena_array(a, (size_t)t->rank, sizeof *d);
            if (!d) return false;
            memcpy(d, t->dims, (size_t)t->rank * sizeof *d);
            copy->dims = d;
        }
        if (t->nbytes) {
            void *bytes = ox_arena_alloc(a, t->nbytes);
            if (!bytes || !ox_tensor_read(t, 0, t->nbytes, bytes)) return false;
            copy->data = bytes;
        }
        dst->u.t = copy;
        return dst->name != NULL;
    }
    default: return dst->name != NULL;
    }
}

/* ---- instantiation ---- */

static ox_code check_opsets(ctx *c, const frame *fr) {
    const ox_function *f = fr->fn;
    for (uint32_t i = 0; i < f->nopsets; i++) {
        const char *d = norm_domain(f->opsets[i].domain);
        long long v = (long long)f->opsets[i].version;
        if (!*d && v > c->g->opset)
            return fail(c, fr, NULL,
                        "it imports opset %lld of the default domain, newer than the model's "
                        "opset %d: export with opset_version=%lld or more, or write the function for "
                        "opset %d",
                        v, c->g->opset, v, c->g->opset);
        if (*d && v != 1 && !function_domain(c, d))
            return fail(c, fr, NULL,
                        "it imports domain '%s' at version %lld, but the model declares "
                        "every domain other than the default one at version 1",
                        d, v);
    }
    return OX_OK;
}

static ox_code inline_fn(ctx *c, const frame *fr, ox_value *const *inputs, int ninputs, const ox_attr *call_attrs,
                         int ncall, const char *prefix, ox_value **outputs, int noutputs);

/* One body node: a nested call, or a node appended to the graph. Binds its outputs in m. */
static ox_code inline_node(ctx *c, const frame *fr, const ox_function_node *n, vmap *m, const ox_attr *call_attrs,
                           int ncall, const char *prefix) {
    const ox_function *f = fr->fn;
    ox_graph *g = c->g;
    const char *domain = norm_domain(n->domain);
    if (!imports(f, domain))
        return fail(c, fr, n, "the node is in domain '%s', which the function does not import", domain);

    ox_value **ins = n->ninputs ? ox_arena_array(c->scratch, (size_t)n->ninputs, sizeof *ins) : NULL;
    ox_value **outs = n->noutputs ? ox_arena_array(c->scratch, (size_t)n->noutputs, sizeof *outs) : NULL;
    ox_attr *attrs = n->nattrs ? ox_arena_array(c->scratch, (size_t)n->nattrs, sizeof *attrs) : NULL;
    if ((n->ninputs && !ins) || (n->noutputs && !outs) || (n->nattrs && !attrs)) return oom(c);
    for (int k = 0; k < n->ninputs; k++) {
        if (!*n->inputs[k]) continue; /* omitted optional input */
        if (!vmap_get(m, n->inputs[k], &ins[k]))
            return fail(c, fr, n, "input '%s' is neither a function input nor produced by an earlier node",
                        n->inputs[k]);
    }
    int nattrs = 0;
    for (int k = 0; k < n->nattrs; k++) {
        const char *ref = n->attr_refs ? n->attr_refs[k] : NULL;
        if (!ref) {
            attrs[nattrs++] = n->attrs[k];
            continue;
        }
        bool present;
        ox_code rc = resolve_ref(c, fr, n, &n->attrs[k], ref, call_attrs, ncall, &attrs[nattrs], &present);
        if (rc != OX_OK) return rc;
        nattrs += present;
    }

    const char *label = n->name && *n->name ? n->name : n->op_type;
    const char *here = ox_arena_printf(c->scratch, "%s/%s", prefix, label);
    if (!here) return oom(c);
    const ox_function *callee = ox_function_find(c->lib, c->nlib, domain, n->op_type);
    if (callee) {
        for (const frame *up = fr; up; up = up->caller)
            if (up->fn == callee)
                return fail(c, fr, n, "function %s calls itself: recursive functions cannot be inlined", callee->name);
        if (fr->depth + 1 >= OX_INLINE_MAX_DEPTH)
            return fail(c, fr, n, "functions nest deeper than %d calls", OX_INLINE_MAX_DEPTH);
        if (n->ninputs > callee->ninputs || n->noutputs > callee->noutputs)
            return fail(c, fr, n, "the call has %d inputs and %d outputs; function %s takes %d and gives %d",
                        n->ninputs, n->noutputs, callee->name, callee->ninputs, callee->noutputs);
        frame inner = {.fn = callee, .caller = fr, .depth = fr->depth + 1};
        ox_code rc = inline_fn(c, &inner, ins, n->ninputs, attrs, nattrs, here, outs, n->noutputs);
        if (rc != OX_OK) return rc;
    } else {
        if (function_domain(c, domain))
            return fail(c, fr, n,
                        "it calls %s::%s, which is not among the functions given (domain '%s' "
                        "holds only functions, which are inlined)",
                        domain, n->op_type, domain);
        ox_node *node = ox_graph_add_node(g, n->op_type, *domain ? domain : NULL, n->ninputs, ins, n->noutputs);
        if (!node || ox_node_set_name(g, node, here) != OX_OK) return oom(c);
        node->source = c->source;
        if (nattrs) {
            ox_attr *copy = ox_arena_array(g->arena, (size_t)nattrs, sizeof *copy);
            if (!copy) return oom(c);
            for (int k = 0; k < nattrs; k++)
                if (!copy_attr(g->arena, &copy[k], &attrs[k])) return oom(c);
            node->attrs = copy;
            node->nattrs = node->cap_attrs = nattrs;
        }
        for (int k = 0; k < n->noutputs; k++) outs[k] = node->outputs[k];
    }

    for (int k = 0; k < n->noutputs; k++) {
        const char *o = n->outputs[k];
        if (!*o) continue; /* omitted optional output */
        if (!vmap_put(m, o, outs[k])) return fail(c, fr, n, "value '%s' is produced twice", o);
        /* A value the function returns is named by whoever receives it. */
        bool returned = false;
        for (int j = 0; j < f->noutputs && !returned; j++) returned = !strcmp(f->outputs[j], o);
        ox_value *v = outs[k];
        if (!returned && v && !v->name && v->kind == OX_VALUE_NODE) {
            const char *name = ox_arena_printf(c->scratch, "%s/%s", prefix, o);
            if (!name || ox_value_set_name(g, v, name) != OX_OK) return oom(c);
        }
    }
    return OX_OK;
}

static ox_code inline_fn(ctx *c, const frame *fr, ox_value *const *inputs, int ninputs, const ox_attr *call_attrs,
                         int ncall, const char *prefix, ox_value **outputs, int noutputs) {
    const ox_function *f = fr->fn;
    ox_code rc = check_opsets(c, fr);
    if (rc != OX_OK) return rc;
    if (ninputs > f->ninputs) return fail(c, fr, NULL, "called with %d inputs, it takes %d", ninputs, f->ninputs);
    if (noutputs > f->noutputs) return fail(c, fr, NULL, "%d outputs wanted, it gives %d", noutputs, f->noutputs);

    size_t nnames = (size_t)f->ninputs;
    for (int k = 0; k < f->nnodes; k++) nnames += (size_t)f->nodes[k].noutputs;
    vmap m;
    if (!vmap_init(c, &m, nnames)) return oom(c);
    for (int k = 0; k < f->ninputs; k++)
        if (!vmap_put(&m, f->inputs[k], k < ninputs ? inputs[k] : NULL))
            return fail(c, fr, NULL, "input '%s' is listed twice", f->inputs[k]);

    for (int k = 0; k < f->nnodes; k++) {
        rc = inline_node(c, fr, &f->nodes[k], &m, call_attrs, ncall, prefix);
        if (rc != OX_OK) return rc;
    }
    for (int k = 0; k < noutputs; k++) {
        ox_value *v = NULL;
        if (!vmap_get(&m, f->outputs[k], &v) || !v)
            return fail(c, fr, NULL, "output '%s' is never produced", f->outputs[k]);
        outputs[k] = v;
    }
    return OX_OK;
}

ox_code ox_function_inline(ox_graph *g, const ox_inline_call *call, const ox_function *const *library, int nlibrary,
                           ox_value **outputs, int noutputs, ox_error *err) {
    ox_error local = {0};
    if (!err) err = &local;
    if (!g || !call || !call->fn || (call->ninputs && !call->inputs) || (call->nattrs && !call->attrs) ||
        call->ninputs < 0 || call->nattrs < 0 || noutputs < 0 || (noutputs && !outputs) || nlibrary < 0 ||
        (nlibrary && !library))
        return ox_error_set(err, OX_EINVAL, NULL, "ox_function_inline: bad arguments");
    if (ox_graph_failed(g)) return ox_error_set(err, ox_graph_status(g), NULL, "%s", g->err.msg);
    ctx c = {.g = g, .scratch = ox_arena_new(), .lib = library, .nlib = nlibrary, .source = call->source, .err = err};
    if (!c.scratch) return oom(&c);
    frame top = {.fn = call->fn};
    ox_code rc = inline_fn(&c, &top, call->inputs, call->ninputs, call->attrs, call->nattrs,
                           call->prefix ? call->prefix : call->fn->name, outputs, noutputs);
    if (rc == OX_OK && ox_arena_oom(c.scratch)) rc = oom(&c);
    ox_arena_free(c.scratch);
    return rc;
}
