/*
 * ir.h — the graph oxport lowers into, optimizes and serializes: ONNX's own model.
 *
 *     ox_graph *g = ox_graph_new(20);                        // opset 20
 *     ox_dim d[2] = {{.param = "batch"}, {.value = 8}};
 *     ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 2, d);
 *     ox_node *n = ox_graph_add_node(g, "Sigmoid", NULL, 1, &x, 1);
 *     ox_graph_add_output(g, n->outputs[0]);
 *     if (ox_graph_failed(g)) puts(g->err.msg);
 *     ox_graph_free(g);                                      // frees every node, value, name
 *
 * Ownership: the graph's arena owns every node, value, attribute, name string and OWNED tensor
 * byte. BORROWED tensor bytes belong to the caller (PyTorch), who keeps them alive as long as the
 * graph. Pointers returned by ox_graph_* stay valid until ox_graph_free.
 *
 * Errors: calls that can fail return NULL or a non-zero ox_code and record the first error in
 * g->err; out of memory is sticky (see arena.h), so a builder may chain calls and check
 * ox_graph_failed once.
 */
#ifndef OX_IR_H
#define OX_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/arena.h"
#include "ir/error.h"

/* ONNX TensorProto.DataType codes, so they serialize as they are. */
typedef enum ox_dtype {
    OX_UNDEFINED = 0,
    OX_FLOAT = 1,
    OX_UINT8 = 2,
    OX_INT8 = 3,
    OX_UINT16 = 4,
    OX_INT16 = 5,
    OX_INT32 = 6,
    OX_INT64 = 7,
    OX_STRING = 8,
    OX_BOOL = 9,
    OX_FLOAT16 = 10,
    OX_DOUBLE = 11,
    OX_UINT32 = 12,
    OX_UINT64 = 13,
    OX_COMPLEX64 = 14,
    OX_COMPLEX128 = 15,
    OX_BFLOAT16 = 16,
    OX_DTYPE_COUNT
} ox_dtype;

size_t ox_dtype_size(ox_dtype t); /* bytes per element; 0 for UNDEFINED and STRING */
const char *ox_dtype_name(ox_dtype t); /* "float32", "int64", ... (torch's spelling) */
bool ox_dtype_is_float(ox_dtype t);
bool ox_dtype_is_int(ox_dtype t); /* signed or unsigned integer, not bool */

/* The highest rank the core handles, everywhere: lowering's stack arrays, folding, tensors. It is
 * PyTorch's own limit on a tensor's dims. */
enum { OX_MAX_RANK = 64 };

typedef struct ox_graph ox_graph;

/* One dimension: a size, or a named symbol when param is non-NULL. */
typedef struct ox_dim {
    int64_t value;
    const char *param;
} ox_dim;

typedef enum ox_storage {
    OX_DATA_ABSENT = 0, /* fake weights: shape and dtype only */
    OX_DATA_BORROWED, /* bytes owned by the caller (a PyTorch tensor) */
    OX_DATA_OWNED, /* bytes in the graph's arena (a constant made by lowering or folding) */
    OX_DATA_PERMUTED, /* the bytes of `base` transposed by `perm`: produced while writing,
                       * never stored, so folding Transpose into a weight copies nothing */
    OX_DATA_SCALED, /* float32 `base` with element e multiplied by scale[e / run], rounded to
                     * float: BatchNorm folded into a Conv weight, computed while writing */
} ox_storage;

/* PERMUTED and SCALED tensors are views: their bytes are computed from `base` when read. */
#define ox_tensor_is_view(t) ((t)->storage == OX_DATA_PERMUTED || (t)->storage == OX_DATA_SCALED)
/* Whether t holds or is computed from model weights (a view: whether its base does). */
#define ox_tensor_is_weight(t) ((t)->weight || (ox_tensor_is_view(t) && (t)->base && (t)->base->weight))

typedef struct ox_tensor {
    ox_dtype dtype;
    int rank;
    const int64_t *dims;
    const void *data; /* row-major, little-endian; NULL when ABSENT */
    size_t nbytes;
    ox_storage storage;
    bool consumed; /* a pass read these bytes into other constants (fold, fusion, dedup):
                    * replacing them afterwards would leave those stale */
    bool weight; /* model weights (ox_graph_add_initializer), or bytes computed from them
                  * (folds, fusions): what save(include_initializers=False) leaves out */
    const struct ox_tensor *base; /* views only; never itself a view */
    const int64_t *perm; /* PERMUTED only: output dim i is base dim perm[i] */
    const double *scale; /* SCALED only: numel / run factors */
    int64_t run; /* SCALED only: consecutive elements that share a factor */
} ox_tensor;

int64_t ox_tensor_numel(const ox_tensor *t); /* -1 on overflow */
/* Whether t's bytes can be produced (not fake, directly or through its base). */
bool ox_tensor_has_data(const ox_tensor *t);
/* Copies bytes [off, off + n) of t's row-major content into dst; false when t has no data or the
 * range is outside it. Byte ranges need not align with elements. */
bool ox_tensor_read(const ox_tensor *t, size_t off, size_t n, void *dst);
/* A good size, in bytes, for the pieces in which to read t whole: for a transposed view, a band of
 * output rows, so that each piece is one pass of the tiled copy. At most t->nbytes. */
size_t ox_tensor_read_chunk(const ox_tensor *t);
/* t's bytes in memory, for a pass that computes from them (t is marked consumed): data itself, or
 * for PERMUTED tensors a copy made in g's arena (the view is then replaced by the copy). NULL when t
 * has no data or on OOM. */
const void *ox_tensor_bytes(ox_graph *g, ox_tensor *t);

typedef enum ox_value_kind {
    OX_VALUE_NODE = 0, /* produced by a node */
    OX_VALUE_INPUT, /* graph input */
    OX_VALUE_INITIALIZER, /* constant weight; tensor is set */
} ox_value_kind;

typedef struct ox_node ox_node;

typedef struct ox_value {
    const char *name; /* NULL until named: anonymous values get a unique name on demand */
    ox_dtype dtype; /* OX_UNDEFINED when not known */
    int rank; /* -1 when not known */
    ox_dim *dims; /* rank entries */
    ox_value_kind kind;
    ox_tensor *tensor; /* initializers only */
    ox_node *producer; /* OX_VALUE_NODE only */
    uint32_t id; /* index in g->values */
    uint32_t uses; /* number of node inputs reading it; kept by ox_graph_count_uses */
    bool has_meta; /* dtype and shape came from torch: written as value_info */
    bool is_output;
    bool dead; /* an initializer removed by a pass; dropped by ox_graph_compact */
    struct ox_value *replaced_by; /* set by passes: readers of this value read that one */
} ox_value;

/* ONNX AttributeProto.AttributeType codes. */
typedef enum ox_attr_type {
    OX_ATTR_FLOAT = 1,
    OX_ATTR_INT = 2,
    OX_ATTR_STRING = 3,
    OX_ATTR_TENSOR = 4,
    OX_ATTR_FLOATS = 6,
    OX_ATTR_INTS = 7,
    OX_ATTR_STRINGS = 8,
} ox_attr_type;

typedef struct ox_attr {
    const char *name;
    ox_attr_type type;
    union {
        float f;
        int64_t i;
        const char *s;
        ox_tensor *t;
        struct {
            float *v;
            int n;
        } floats;
        struct {
            int64_t *v;
            int n;
        } ints;
        struct {
            const char **v;
            int n;
        } strings;
    } u;
} ox_attr;

struct ox_node {
    const char *op_type;
    const char *domain; /* NULL or "" for the default ONNX domain */
    const char *name; /* NULL: written without a name */
    ox_value **inputs; /* a NULL entry is an omitted optional input, written as "" */
    int ninputs;
    ox_value **outputs;
    int noutputs;
    ox_attr *attrs;
    int nattrs, cap_attrs;
    const char *source; /* the torch op and place it was lowered from, for messages */
    uint32_t id;
    bool dead; /* removed by a pass; dropped by ox_graph_compact */
};

typedef struct ox_name_table {
    struct ox_name_entry *entries;
    uint32_t cap, count;
} ox_name_table;

typedef struct ox_metadata_prop {
    const char *key, *value;
} ox_metadata_prop;

struct ox_graph {
    ox_arena *arena;
    ox_error err;
    const char *name;
    int opset;
    int64_t ir_version;

    ox_node **nodes; /* topological order */
    uint32_t nnodes, cap_nodes;
    ox_value **values; /* every value, by id */
    uint32_t nvalues, cap_values;
    ox_value **inputs;
    uint32_t ninputs, cap_inputs;
    ox_value **outputs;
    uint32_t noutputs, cap_outputs;
    ox_value **initializers; /* in the order they were added */
    uint32_t ninitializers, cap_initializers;

    ox_metadata_prop *metadata; /* model metadata_props, in order */
    uint32_t nmetadata, cap_metadata;

    /* Names in use, for unique naming: values and nodes are separate namespaces in ONNX, and
     * ONNX Runtime refuses two nodes of the same name. */
    ox_name_table value_names, node_names;
    uint32_t anon_counter;
};

ox_graph *ox_graph_new(int opset); /* NULL when out of memory */
void ox_graph_free(ox_graph *g); /* NULL is a no-op */
bool ox_graph_failed(const ox_graph *g); /* an error (or OOM) has been recorded */
/* Records OOM in g->err when the arena failed; returns the error code now in g->err. */
ox_code ox_graph_status(ox_graph *g);

/* Values. name NULL makes an anonymous value; a name already in use is made unique with a suffix.
 * dims are copied (and their params interned in the arena). */
ox_value *ox_graph_add_value(ox_graph *g, const char *name, ox_dtype dtype, int rank, const ox_dim *dims);
ox_value *ox_graph_add_input(ox_graph *g, const char *name, ox_dtype dtype, int rank, const ox_dim *dims);
/* An initializer over bytes the caller owns (BORROWED) or that are absent (data NULL). */
ox_value *ox_graph_add_initializer(ox_graph *g, const char *name, ox_dtype dtype, int rank, const int64_t *dims,
                                   const void *data, size_t nbytes);
/* An initializer that takes t itself (t must live in g's arena or outlive g). */
ox_value *ox_graph_adopt_tensor(ox_graph *g, const char *name, ox_tensor *t);
/* A constant whose bytes are copied into the arena (OWNED). name NULL: "_const_<n>". */
ox_value *ox_graph_add_constant(ox_graph *g, const char *name, ox_dtype dtype, int rank, const int64_t *dims,
                                const void *data);
int ox_graph_add_output(ox_graph *g, ox_value *v);
int ox_graph_add_metadata(ox_graph *g, const char *key, const char *value);

/* Rename v (the name is made unique). */
int ox_value_set_name(ox_graph *g, ox_value *v, const char *name);
/* v's name, giving an anonymous value a fresh one ("_v<n>") first. NULL on OOM. */
const char *ox_value_name(ox_graph *g, ox_value *v);
void ox_value_set_shape(ox_graph *g, ox_value *v, int rank, const ox_dim *dims);
bool ox_value_is_static(const ox_value *v); /* rank known and every dim a number */
int64_t ox_value_numel(const ox_value *v); /* -1 unless static */

/* Nodes: appended at the end of g->nodes with noutputs fresh anonymous outputs. inputs may hold
 * NULL for omitted optional inputs. domain NULL is the default domain. */
ox_node *ox_graph_add_node(ox_graph *g, const char *op_type, const char *domain, int ninputs, ox_value *const *inputs,
                           int noutputs);
/* Names n; a name another node has is made unique with a suffix. */
int ox_node_set_name(ox_graph *g, ox_node *n, const char *name);
int ox_node_set_int(ox_graph *g, ox_node *n, const char *name, int64_t v);
int ox_node_set_float(ox_graph *g, ox_node *n, const char *name, float v);
int ox_node_set_string(ox_graph *g, ox_node *n, const char *name, const char *v);
int ox_node_set_ints(ox_graph *g, ox_node *n, const char *name, const int64_t *v, int count);
int ox_node_set_floats(ox_graph *g, ox_node *n, const char *name, const float *v, int count);
/* The tensor attribute takes an OWNED copy of data. */
int ox_node_set_tensor(ox_graph *g, ox_node *n, const char *name, ox_dtype dtype, int rank, const int64_t *dims,
                       const void *data);
const ox_attr *ox_node_attr(const ox_node *n, const char *name); /* NULL when absent */
int64_t ox_node_attr_int(const ox_node *n, const char *name, int64_t dflt);

/* Passes' helpers. */
void ox_graph_count_uses(ox_graph *g); /* recomputes value->uses */
void ox_graph_compact(ox_graph *g); /* drops dead nodes, renumbers ids */
/* Compacts, then reorders g->nodes so that each node follows the producers of its inputs, keeping
 * the present order wherever it already holds (for passes that append nodes other nodes read).
 * OX_EINVAL when the nodes form a cycle. */
ox_code ox_graph_toposort(ox_graph *g);
/* Replace every use of `from` (node inputs and graph outputs) by `to`. */
void ox_graph_replace_uses(ox_graph *g, ox_value *from, ox_value *to);

/* Edits made on the user's behalf once the graph is built (edit.c): ONNXProgram.rename_axes and
 * apply_weights. A refused edit reports to err, not g->err, and leaves g as it was and usable. */

/* Renames every dim_param equal to from[i] to to[i] (i < n, exact names) on every value of g:
 * inputs, outputs, what is written as value_info. All at once: {a: b, b: a} swaps. *found (in g's
 * arena, valid until ox_graph_free) lists the distinct dim_params g held before renaming, in order
 * of first appearance, *nfound of them; n = 0 only lists them. OX_EINVAL, nothing renamed, when a
 * new name is empty; OX_ENOMEM (also in g->err) on out of memory. */
ox_code ox_graph_rename_dim_params(ox_graph *g, uint32_t n, const char *const *from, const char *const *to,
                                   const char ***found, uint32_t *nfound, ox_error *err);
/* Points the weight v (an initializer of g) at nbytes at data, which the caller owns and keeps
 * alive as long as g (BORROWED). OX_EINVAL, v unchanged, when nbytes is not the weight's size or
 * data is NULL for a non-empty weight, and when a pass has read the old bytes into other constants
 * (tensor->consumed): those would keep the old values. */
ox_code ox_graph_set_weight(ox_graph *g, ox_value *v, const void *data, int64_t nbytes, ox_error *err);

#endif
