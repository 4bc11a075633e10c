/*
 * pass_internal.h — what the optimizer's own files share (pass.c, simplify.c, dedup.c, fuse.c),
 * as SQLite's btreeInt.h: not for callers of the optimizer, who include pass.h. Names carry an
 * oxp_ prefix so that they cannot meet a static helper of the same name in another file.
 *
 * Replacing a value: a pass sets value->replaced_by (oxp_replace) and each reader catches up when
 * the forward walk reaches it (oxp_resolve_inputs, producers come before readers); oxp_resolve_all
 * settles the rest (later nodes, graph outputs) once at the end of the pass. Nothing rescans the
 * graph per replacement.
 *
 *     for (uint32_t i = 0; i < g->nnodes; i++) {
 *         ox_node *n = g->nodes[i];
 *         if (n->dead) continue;
 *         oxp_resolve_inputs(n);
 *         if (oxp_op_is(n, "Identity") && oxp_replace(n->outputs[0], n->inputs[0], false)) n->dead = true;
 *     }
 *     oxp_resolve_all(g);
 *     ox_graph_compact(g);
 */
#ifndef OX_PASS_INTERNAL_H
#define OX_PASS_INTERNAL_H

#include <math.h>
#include <string.h>

#include "ir/tensor.h"
#include "opt/pass.h"

static inline ox_value *oxp_resolve(ox_value *v) {
    while (v && v->replaced_by) v = v->replaced_by;
    return v;
}

static inline void oxp_resolve_inputs(ox_node *n) {
    for (int k = 0; k < n->ninputs; k++) n->inputs[k] = oxp_resolve(n->inputs[k]);
}

/* Every live node's inputs and the graph outputs: the sweep at the end of each pass. */
void oxp_resolve_all(ox_graph *g);

/*
 * Makes readers of `from` read `to`. A graph output keeps its name: `to` takes it over, which is
 * only possible when `to` is a node's value (or a constant made for this purpose, `fresh`) that is
 * not itself an input or an output already. Returns false when the replacement cannot be made.
 */
bool oxp_replace(ox_value *from, ox_value *to, bool fresh);

/* n is `op` of the default domain. */
static inline bool oxp_op_is(const ox_node *n, const char *op) { return !n->domain && strcmp(n->op_type, op) == 0; }

/* v is a live initializer whose bytes can be read. */
static inline bool oxp_is_const(const ox_value *v) {
    return v && v->kind == OX_VALUE_INITIALIZER && !v->dead && ox_tensor_has_data(v->tensor);
}

/* Element i of a constant as a double (NaN when the dtype is not numeric). */
static inline double oxp_elem(const ox_tensor *t, int64_t i) {
    unsigned char b[16];
    size_t es = ox_dtype_size(t->dtype);
    if (!es || es > sizeof b || !ox_tensor_read(t, (size_t)i * es, es, b)) return NAN;
    return ox_elem_double(t->dtype, b);
}

/* The dims Shape node n reports: x's dims [*start, *end). False when x's shape is not known. */
bool oxp_shape_range(const ox_node *n, const ox_value **x, int64_t *start, int64_t *end);

/* v = ConstantOfShape(shape) with a constant int64 shape: *t describes its result (dtype, rank,
 * dims in `dims`, which has room for 16, nbytes; no data yet) and `value` (16 bytes) holds its one
 * element. False for other values and for a result over 16 MiB, the most fold computes as a
 * temporary. */
bool oxp_constant_of_shape(const ox_value *v, ox_tensor *t, int64_t *dims, unsigned char *value);

#endif
