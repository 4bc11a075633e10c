/*
 * pass.h — graph passes run by ONNXProgram.optimize(). Each is linear in the graph's size (hash
 * tables where it must compare), and none copies a weight: folding a Transpose into a weight makes
 * a PERMUTED view that the writer transposes while streaming.
 *
 *     ox_pass_stats st = {0};
 *     if (ox_optimize(g, &st) != OX_OK) ... g->err ...
 */
#ifndef OX_PASS_H
#define OX_PASS_H

#include "ir/ir.h"

typedef struct ox_pass_stats {
    uint32_t nodes_before, nodes_after;
    uint32_t constants_lifted;      /* Constant nodes turned into initializers */
    uint32_t folded;                /* nodes evaluated at export time */
    uint32_t noops_removed;         /* Identity, same-type Cast, x*1, ... */
    uint32_t cse_removed;           /* nodes that repeated an earlier one */
    uint32_t initializers_deduped;  /* initializers equal to an earlier one */
    uint32_t fused;                 /* nodes absorbed by a fusion */
    uint32_t nodes_removed;         /* dead nodes */
    uint32_t initializers_removed;  /* initializers nothing reads */
} ox_pass_stats;

/* Constant nodes with a `value` tensor become initializers named after their output. */
ox_code ox_pass_lift_constants(ox_graph *g, ox_pass_stats *st);
/* Nodes whose inputs are all constants are evaluated (fold.h kernels), Shape/Size of static shapes
 * become constants; a fold that would grow the model by more than it removes is not done. */
ox_code ox_pass_fold(ox_graph *g, ox_pass_stats *st);
/* Removes nodes that compute their input: Identity, Cast to the same type, Reshape/Expand to the
 * same static shape, one-input Concat, inference Dropout, x*1, x+0, x-0, x/1, Transpose pairs that
 * cancel (other Transpose pairs are merged into one). */
ox_code ox_pass_simplify(ox_graph *g, ox_pass_stats *st);
/* Initializers with equal dtype, shape and bytes become one; then nodes with equal op, inputs and
 * attributes become one (random ops excepted). */
ox_code ox_pass_dedup(ox_graph *g, ox_pass_stats *st);
/* BatchNormalization folded into the Conv/ConvTranspose before it (new weights, uniquely named);
 * MatMul + Add of a 1-D constant to Gemm where the input is 2-D; Pad(0) folded into Conv. */
ox_code ox_pass_fuse(ox_graph *g, ox_pass_stats *st);
/* Drops nodes whose outputs nobody reads and initializers nobody reads. Graph inputs stay: they
 * are the model's signature. */
ox_code ox_pass_dce(ox_graph *g, ox_pass_stats *st);
/* Every pass, in order. */
ox_code ox_optimize(ox_graph *g, ox_pass_stats *st);

#endif
