/*
 * edit.c — changes made to a finished graph on the user's behalf: dim_params renamed
 * (ONNXProgram.rename_axes) and weights pointed at other bytes (apply_weights). The binding
 * converts Python's arguments and calls these; what is renamed and which replacement is refused is
 * decided here, where the C tests reach it.
 */
#include <inttypes.h>
#include <string.h>

#include "ir/ir.h"

/* Whether p is one of the n strings in set (by content). */
static bool listed(const char *const *set, uint32_t n, const char *p) {
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(set[i], p) == 0) return true;
    return false;
}

ox_code ox_graph_rename_dim_params(ox_graph *g, uint32_t n, const char *const *from, const char *const *to,
                                   const char ***found, uint32_t *nfound, ox_error *err) {
    const char **list = NULL;
    uint32_t count = 0, cap = 0;
    *found = NULL;
    *nfound = 0;
    for (uint32_t e = 0; e < n; e++) {
        if (!from[e] || !to[e]) return ox_error_set(err, OX_EINVAL, NULL, "rename_dim_params: a name is missing");
        if (!*to[e]) return ox_error_set(err, OX_EINVAL, NULL, "rename_dim_params: empty new name for '%s'", from[e]);
    }
    /* A fresh copy per entry: a param pointing at one was renamed already (dims arrays can be
     * shared between values), so a swap {a: b, b: a} is not undone by the second visit. */
    const char **news = n ? ox_arena_array(g->arena, n, sizeof *news) : NULL;
    for (uint32_t e = 0; news && e < n; e++) news[e] = ox_arena_strdup(g->arena, to[e]);
    if (ox_arena_oom(g->arena)) goto oom;
    for (uint32_t i = 0; i < g->nvalues && !ox_arena_oom(g->arena); i++) {
        ox_value *v = g->values[i];
        for (int j = 0; v->dims && j < v->rank; j++) {
            const char *p = v->dims[j].param;
            uint32_t e = 0;
            if (!p) continue;
            while (e < n && p != news[e]) e++;
            if (e < n) continue;
            if (!listed(list, count, p)) {
                if (count == cap) { /* the arena cannot grow an array: a new one, twice as long */
                    const char **bigger = ox_arena_array(g->arena, cap ? 2 * (size_t)cap : 8, sizeof *bigger);
                    if (!bigger) break;
                    if (count) memcpy(bigger, list, count * sizeof *list);
                    list = bigger;
                    cap = cap ? 2 * cap : 8;
                }
                list[count++] = p;
            }
            for (e = 0; e < n; e++)
                if (strcmp(p, from[e]) == 0) {
                    v->dims[j].param = news[e];
                    break;
                }
        }
    }
    if (ox_arena_oom(g->arena)) goto oom;
    *found = list;
    *nfound = count;
    return OX_OK;
oom:
    ox_graph_status(g);
    return ox_error_set(err, OX_ENOMEM, NULL, "out of memory");
}

ox_code ox_graph_set_weight(ox_graph *g, ox_value *v, const void *data, int64_t nbytes, ox_error *err) {
    ox_tensor *t = v->kind == OX_VALUE_INITIALIZER ? v->tensor : NULL;
    const char *name = v->name ? v->name : "";
    if (!t || v->id >= g->nvalues || g->values[v->id] != v)
        return ox_error_set(err, OX_EINVAL, name, "'%s' is not a weight of this graph", name);
    if (nbytes < 0 || (uint64_t)nbytes != (uint64_t)t->nbytes || (!data && nbytes))
        return ox_error_set(err, OX_EINVAL, name, "weight '%s': %" PRId64 " bytes given, it holds %zu", name, nbytes,
                            t->nbytes);
    if (t->consumed)
        return ox_error_set(err, OX_EINVAL, name,
                            "weight '%s' was folded into other constants by optimize(): "
                            "apply weights before optimizing (export with optimize=False, apply_weights, then "
                            "optimize())",
                            name);
    t->data = data;
    t->storage = OX_DATA_BORROWED;
    return OX_OK;
}
