#include "pass.h"

#include <string.h>

ox_code ox_pass_lift_constants(ox_graph *g, ox_pass_stats *st) {
    for (uint32_t i = 0; i < g->nnodes; i++) {
        ox_node *n = g->nodes[i];
        if (n->dead || n->domain || strcmp(n->op_type, "Constant") != 0 || n->noutputs != 1) continue;
        const ox_attr *a = ox_node_attr(n, "value");
        if (!a || a->type != OX_ATTR_TENSOR || n->nattrs != 1) continue;   /* value_float etc. stay */
        const ox_tensor *t = a->u.t;
        ox_value *out = n->outputs[0];
        const char *name = ox_value_name(g, out);
        if (!name) return ox_graph_status(g);
        /* The initializer takes the output's place: same name, same readers. The output value
         * gives up its name first so that the initializer can have it. */
        out->name = NULL;
        ox_value *init = ox_graph_add_constant(g, name, t->dtype, t->rank, t->dims, t->data);
        if (!init) return ox_graph_status(g);
        init->name = name;   /* unique_name suffixed it while `name` was still interned */
        ox_graph_replace_uses(g, out, init);
        n->dead = true;
        if (st) st->constants_lifted++;
    }
    ox_graph_compact(g);
    return ox_graph_status(g);
}

ox_code ox_pass_dce(ox_graph *g, ox_pass_stats *st) {
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
        if (v->uses == 0 && !v->is_output) {
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
    if (rc == OX_OK) rc = ox_pass_dce(g, st);
    if (st) st->nodes_after = g->nnodes;
    return rc;
}
