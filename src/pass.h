/*
 * pass.h — graph passes run by ONNXProgram.optimize(). Each is linear in the graph's size.
 *
 *     ox_pass_stats st = {0};
 *     if (ox_optimize(g, &st) != OX_OK) ... g->err ...
 *
 * The full optimizer (folding, no-op removal, CSE, fusion) builds on these.
 */
#ifndef OX_PASS_H
#define OX_PASS_H

#include "ir.h"

typedef struct ox_pass_stats {
    uint32_t nodes_before, nodes_after;
    uint32_t constants_lifted;      /* Constant nodes turned into initializers */
    uint32_t nodes_removed;         /* dead nodes */
    uint32_t initializers_removed;  /* initializers nothing reads */
} ox_pass_stats;

/* Constant nodes with a `value` tensor become initializers named after their output. */
ox_code ox_pass_lift_constants(ox_graph *g, ox_pass_stats *st);
/* Drops nodes whose outputs nobody reads and initializers nobody reads. Graph inputs stay: they
 * are the model's signature. */
ox_code ox_pass_dce(ox_graph *g, ox_pass_stats *st);
/* Every pass, in order. */
ox_code ox_optimize(ox_graph *g, ox_pass_stats *st);

#endif
