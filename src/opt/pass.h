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

/* What the passes did, one counter per row of stats.def (names and meanings there). */
typedef struct ox_pass_stats {
#define OX_STAT(name, what) uint32_t name;
#include "opt/stats.def"
#undef OX_STAT
} ox_pass_stats;

/* The same rows as data, for whoever lists every counter (the binding's dict): field name, its
 * offset in ox_pass_stats, what it counts. In stats.def order; OX_PASS_STAT_COUNT entries. */
typedef struct ox_pass_stat {
    const char *name;
    size_t offset;
    const char *what;
} ox_pass_stat;

enum {
#define OX_STAT(name, what) OX_PASS_STAT_##name,
#include "opt/stats.def"
#undef OX_STAT
    OX_PASS_STAT_COUNT
};

extern const ox_pass_stat ox_pass_stat_table[OX_PASS_STAT_COUNT];

/* Counter i of st: the field ox_pass_stat_table[i] names. */
uint32_t ox_pass_stat_get(const ox_pass_stats *st, int i);

/* Constant nodes with a `value` tensor become initializers named after their output. */
ox_code ox_pass_lift_constants(ox_graph *g, ox_pass_stats *st);
/* Nodes whose inputs are all constants are evaluated (fold.h kernels), Shape/Size of static shapes
 * become constants; a fold that would grow the model by more than it removes is not done. */
ox_code ox_pass_fold(ox_graph *g, ox_pass_stats *st);
/* Removes nodes that compute their input: Identity, Cast to the same type, Reshape/Expand to the
 * same static shape, one-input Concat, inference Dropout, x*1, x+0, x-0, x/1, Transpose pairs that
 * cancel (other Transpose pairs are merged into one); negative-index wraps of values that cannot be
 * negative, and attention's guard for fully masked rows where a constant mask leaves every row
 * something. */
ox_code ox_pass_simplify(ox_graph *g, ox_pass_stats *st);
/* Initializers with equal dtype, shape and bytes become one; then nodes with equal op, inputs and
 * attributes become one (random ops excepted). */
ox_code ox_pass_dedup(ox_graph *g, ox_pass_stats *st);
/* The fusion table of fuse.c, walked once over the nodes: BatchNormalization folded into the
 * Conv/ConvTranspose/Gemm before it (weight views, uniquely named); MatMul + Add of a 1-D constant
 * to Gemm where the input is 2-D; Pad(0) folded into Conv; from opset 23, RMSNormalization and
 * RotaryEmbedding from the patterns Hugging Face writes by hand (the graph is then reordered). */
ox_code ox_pass_fuse(ox_graph *g, ox_pass_stats *st);
/* Drops nodes whose outputs nobody reads and initializers nobody reads. Graph inputs stay: they
 * are the model's signature. */
ox_code ox_pass_dce(ox_graph *g, ox_pass_stats *st);
/* Every row of passes.def, in order, until one fails; st (may be NULL) counts what they did, and
 * nodes_before/nodes_after frame the whole run. */
ox_code ox_optimize(ox_graph *g, ox_pass_stats *st);

#endif
