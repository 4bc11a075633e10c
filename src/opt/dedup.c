/*
 * dedup.c — equal initializers become one, then common subexpressions: nodes with the same op,
 * inputs and attributes become one (random ops excepted). Both go through one open-addressing hash
 * table, so the pass is linear; a key match is confirmed by a full comparison.
 */
#include <stdint.h>
#include <string.h>

#include "opt/pass_internal.h"

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
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
            return a->run == b->run &&
                memcmp(a->scale, b->scale, a->nbytes / 4 / (size_t)a->run * sizeof *a->scale) == 0;
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
        if (!t->items[i]) {
            t->keys[i] = key;
            t->items[i] = x;
            return NULL;
        }
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
    if (strcmp(a->op_type, b->op_type) != 0 || a->ninputs != b->ninputs || a->noutputs != b->noutputs ||
        a->nattrs != b->nattrs)
        return false;
    if ((a->domain == NULL) != (b->domain == NULL) || (a->domain && strcmp(a->domain, b->domain))) return false;
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
        if (first && oxp_replace(v, first, false)) {
            v->dead = true;
            v->tensor->consumed = first->tensor->consumed = true; /* now one weight stands for both */
            if (st) st->initializers_deduped++;
        }
    }
    if (!table_init(g, &t, g->nnodes)) return ox_graph_status(g);
    for (uint32_t i = 0; i < g->nnodes; i++) {
        ox_node *n = g->nodes[i];
        if (n->dead) continue;
        oxp_resolve_inputs(n);
        if (n->ninputs == 0 || is_random(n)) continue;
        ox_node *first = table_find_or_add(&t, node_key(n), n, node_eq);
        if (!first) continue;
        bool ok = true;
        for (int k = 0; k < n->noutputs; k++) ok &= !n->outputs[k]->is_output;
        if (!ok) continue;
        for (int k = 0; k < n->noutputs; k++) oxp_replace(n->outputs[k], first->outputs[k], false);
        n->dead = true;
        if (st) st->cse_removed++;
    }
    oxp_resolve_all(g);
    ox_graph_compact(g);
    return ox_graph_status(g);
}
