/*
 * lower.h — ATen graph → ONNX nodes.
 *
 * The binding builds one ox_aten_program from the FX graph (one walk in Python) and calls
 * ox_lower_run once. Each ATen node names its overload ("aten::addmm.default"), carries its
 * arguments in schema order (defaults filled in by the walker), and the dtype/shape torch recorded
 * for each output. Lowering looks the overload up in lower.def and calls its function, which emits
 * ONNX nodes into the graph and binds each ATen output to an ONNX value.
 *
 *     ox_lower_report rep = {0};
 *     if (ox_lower_run(g, &prog, &rep) != OX_OK) ...   // g->err; rep lists unsupported ops
 *
 * Argument encoding (what the Python walker sends):
 *   None → NONE; bool → BOOL; int → INT; float → FLOAT; str → STRING; bytes → BYTES; list/tuple → LIST;
 *   an FX value → VALUE (by id); torch.dtype → INT holding the ONNX dtype code;
 *   device, layout, memory_format → NONE.
 *
 * Writing a lowering: a row in lower.def names its family, its target and its function, which is
 * defined in src/lower/<family>.c (the file of the op's family: elementwise.c, reduce.c, shape.c,
 * ...; tests/c/test_lower_layout.c fails when a function sits elsewhere). It reads its arguments,
 * emits through ox_op and the typed helpers below, and binds each output:
 *
 *     OX_ATEN(math, "aten::log1p.default", lower_log1p)             // lower.def
 *
 *     int lower_log1p(ox_lower *L) {                                // math.c
 *         ox_dtype t;
 *         ox_value *x = ox_arg_value_as_out(L, 0, &t);              // ints compute in float
 *         ox_value *y = ox_binary(L, "Add", x, ox_const_scalar(L, t, 1), t);
 *         return ox_bind(L, 0, ox_unary(L, "Log", y, t));
 *     }
 *
 * A function returns OX_OK or an error code after calling ox_lower_fail/ox_lower_unsupported.
 * Helpers return NULL once anything failed, and every helper accepts NULL inputs, so a function may
 * chain calls and check once at the end (ox_bind of NULL reports the failure).
 */
#ifndef OX_LOWER_H
#define OX_LOWER_H

#include "ir/ir.h"

typedef enum ox_arg_kind {
    OX_ARG_NONE = 0,
    OX_ARG_BOOL,
    OX_ARG_INT,
    OX_ARG_FLOAT,
    OX_ARG_STRING,
    OX_ARG_VALUE,
    OX_ARG_LIST,
    OX_ARG_BYTES,
} ox_arg_kind;

typedef struct ox_arg {
    ox_arg_kind kind;
    union {
        int64_t i; /* BOOL (0/1), INT */
        double f; /* FLOAT */
        const char *s; /* STRING */
        struct {
            const void *p;
            size_t n;
        } bytes; /* BYTES (arena copy) */
        uint32_t ref; /* VALUE: id in the program's value table */
        struct {
            struct ox_arg *items;
            int n;
        } list;
    } u;
} ox_arg;

/* What torch recorded for one output: dtype and shape. */
typedef struct ox_meta {
    ox_dtype dtype;
    int rank; /* -1: not a tensor or not known */
    ox_dim *dims;
} ox_meta;

typedef struct ox_aten_node {
    const char *target; /* "aten::addmm.default" */
    const char *name; /* FX node name: the ONNX value and node names derive from it */
    const char *where; /* module path and source line, for messages; may be NULL */
    ox_arg *args;
    int nargs;
    uint32_t *outputs; /* ids in the program's value table */
    ox_meta *meta; /* one per output */
    int noutputs;
} ox_aten_node;

/* The ATen program: a value table (graph inputs and initializers are entered up front, node
 * outputs as they are lowered), nodes in order and the graph outputs. All in the graph's arena. */
typedef struct ox_aten_program {
    ox_value **table; /* id → ONNX value; NULL until bound */
    uint32_t nvalues;
    ox_aten_node *nodes;
    uint32_t nnodes;
    uint32_t *outputs; /* ids */
    const char **output_names; /* NULL or one per output (NULL entries keep the FX name) */
    uint32_t noutputs;
} ox_aten_program;

/* One unsupported overload, seen `count` times; `first` is the first node that used it. */
typedef struct ox_unsupported {
    const char *target;
    const char *node;
    const char *where;
    const char *reason; /* NULL: no lowering exists; else why this use is not supported */
    char arg_dtypes[128]; /* "float32, int64" */
    int count;
} ox_unsupported;

typedef struct ox_lower_report {
    ox_unsupported *unsupported; /* arena-owned */
    int nunsupported;
    uint32_t aten_nodes, onnx_nodes;
} ox_lower_report;

/* Lowers every node; collects all unsupported ops before failing with OX_EUNSUPPORTED. */
ox_code ox_lower_run(ox_graph *g, ox_aten_program *p, ox_lower_report *rep);

/* The opsets every row of lower.def is lowered for: one range for the whole table. */
enum { OX_LOWER_MIN_OPSET = 18, OX_LOWER_MAX_OPSET = 24 };

/* Capability query, answered before lowering: is `target` lowered natively at this opset? */
bool ox_lower_supports(const char *target, int opset);
/* The i-th table row (NULL past the end), for listing what is supported; *min_opset and
 * *max_opset get the range it is lowered for (either pointer may be NULL). */
const char *ox_lower_target(int i, int *min_opset, int *max_opset);

/* ---- for lowering functions ---- */

typedef struct ox_lower {
    ox_graph *g;
    ox_aten_program *prog;
    const ox_aten_node *node;
    int opset;
    int emitted; /* nodes emitted for this ATen node: names the next one */
    const char *row_op; /* OX_UNARY rows: the ONNX op of the row */
    const char *unsupported_reason; /* set by ox_lower_unsupported */
} ox_lower;

typedef int (*ox_lower_fn)(ox_lower *L);

/* Arguments. Out-of-range or NONE arguments give the default; a wrong kind fails the lowering. */
int ox_nargs(const ox_lower *L);
bool ox_arg_is_none(const ox_lower *L, int i);
const ox_arg *ox_arg_at(const ox_lower *L, int i); /* NULL past the end */
ox_value *ox_arg_value(ox_lower *L, int i); /* required tensor */
ox_value *ox_arg_value_opt(ox_lower *L, int i); /* NULL when None/absent */
int64_t ox_arg_int(ox_lower *L, int i, int64_t dflt);
double ox_arg_float(ox_lower *L, int i, double dflt); /* INT accepted too */
bool ox_arg_bool(ox_lower *L, int i, bool dflt);
const char *ox_arg_string(ox_lower *L, int i, const char *dflt);
/* A list of ints (or a single int) into out[max]; returns the count, -1 on failure (reported). */
int ox_arg_ints(ox_lower *L, int i, int64_t *out, int max);
/* The value a tensor item of a list argument refers to (a must be of kind VALUE); NULL, failing,
 * when it refers to nothing. */
ox_value *ox_arg_ref(ox_lower *L, const ox_arg *a);
/* A scalar argument (Python number, or a 0-d tensor value) as a value of dtype `like`. */
ox_value *ox_arg_scalar(ox_lower *L, int i, ox_dtype dtype);

/* Normalizes dim *d for an input of this rank (0-d inputs accept 0 and -1, as in torch); reports
 * an unknown rank or an out-of-range dim, naming `what`, and returns false. */
bool ox_norm_dim(ox_lower *L, int64_t *d, int rank, const char *what);

/* Output metadata torch recorded. ox_out_dtype_required fails (OX_UNDEFINED) when there is no
 * dtype, naming the lack. */
const ox_meta *ox_out_meta(const ox_lower *L, int i);
ox_dtype ox_out_dtype(const ox_lower *L, int i);
ox_dtype ox_out_dtype_required(ox_lower *L, int i);

/* Emitting. ox_op makes a node with one output; ox_opn with noutputs. Inputs may be NULL for
 * omitted optional inputs; the node is named after the ATen node. Returns NULL after a failure. */
ox_node *ox_op(ox_lower *L, const char *op_type, int ninputs, ...);
ox_node *ox_opn(ox_lower *L, const char *op_type, int noutputs, int ninputs, ...);
ox_node *ox_op_array(ox_lower *L, const char *op_type, int noutputs, int ninputs, ox_value *const *inputs);
ox_value *ox_out(const ox_node *n); /* outputs[0], NULL-safe */

/* Constants (initializers with OWNED bytes). */
ox_value *ox_const_ints(ox_lower *L, int n, const int64_t *v); /* 1-D int64 */
ox_value *ox_const_scalar(ox_lower *L, ox_dtype dtype, double v); /* 0-d of dtype */
ox_value *ox_const_tensor(ox_lower *L, ox_dtype dtype, int rank, const int64_t *dims, const void *data);

/* Common shapes of emitted code. */
ox_value *ox_cast(ox_lower *L, ox_value *x, ox_dtype to); /* x itself when already `to` */
ox_value *ox_reshape(ox_lower *L, ox_value *x, int n, const int64_t *shape);
/* Where(c, a, b) of dtype t, through uint8 or float for bool or bfloat16 (ONNX Runtime lacks them). */
ox_value *ox_where(ox_lower *L, ox_value *c, ox_value *a, ox_value *b, ox_dtype t);

/* Type promotion as in PyTorch (torch.result_type for two tensors of these dtypes). */
ox_dtype ox_promote(ox_dtype a, ox_dtype b);
/* torch's dtype categories, in promotion order: 0 bool, 1 integer, 2 floating, 3 complex. */
int ox_dtype_category(ox_dtype t);
/* The dtype t is computed in: float for float16 and bfloat16 (ONNX Runtime's CPU kernels lack many
 * reductions and math ops for them, and torch's CPU kernels accumulate them in float), else t. */
ox_dtype ox_work_dtype(ox_dtype t);

/* The most spatial dims a conv, pool or resize layer has (3-D). */
enum { OX_MAX_SPATIAL = 3 };

/* ---- the shared helpers: every family file uses these, none keeps its own copy ----
 *
 * Emitted values carry the dtype their first input had (ox_op's rule); where the op's result has
 * another, the typed forms record it, so that later ox_cast calls see the true dtype and skip
 * no-op casts. All accept NULL inputs and return NULL after a failure. */

/* Records that v has dtype t (NULL-safe); returns v. */
ox_value *ox_typed(ox_value *v, ox_dtype t);
/* op(x), op(a, b) and op(inputs...) with one output, of dtype t: the output of ox_op, typed. */
ox_value *ox_unary(ox_lower *L, const char *op_type, ox_value *x, ox_dtype t);
ox_value *ox_binary(ox_lower *L, const char *op_type, ox_value *a, ox_value *b, ox_dtype t);
ox_value *ox_op_typed(ox_lower *L, const char *op_type, ox_dtype t, int ninputs, ...);

/* int64 constants: a 0-d v, and the 1-D [v]. */
ox_value *ox_const_i64(ox_lower *L, int64_t v);
ox_value *ox_const_i64_1d(ox_lower *L, int64_t v);

/* Shape(x)[start:end] as a 1-D int64 value; start 0 and end INT64_MAX are not written. */
ox_value *ox_shape_of(ox_lower *L, ox_value *x, int64_t start, int64_t end);

/* A 0-d (or one-element) size value as a 1-D int64 of one element. */
ox_value *ox_size_1d(ox_lower *L, ox_value *v);
/* parts (1-D int64 values) joined by Concat along axis 0; parts[0] itself when n is 1. */
ox_value *ox_concat_sizes(ox_lower *L, int n, ox_value **parts);

/* idx + the size of x's dim axis where idx < 0 (int64 indices), for ops whose negative indices not
 * every runtime accepts (GatherND, ScatterElements). */
ox_value *ox_wrap_index(ox_lower *L, ox_value *x, int64_t axis, ox_value *idx);

/* Static sizes. ox_static_dim: dim k of x is a known size (into *size). ox_static_shape: the rank
 * is known (at most OX_MAX_RANK) and every dim is a known size; the sizes go to dims[x->rank]
 * unless dims is NULL. ox_out_static_shape: the same for the shape torch recorded for output i. */
bool ox_static_dim(const ox_value *x, int k, int64_t *size);
bool ox_static_shape(const ox_value *x, int64_t *dims);
bool ox_out_static_shape(const ox_lower *L, int i, int64_t *dims, int *rank);

/* Argument i cast to the dtype torch recorded for output 0 (sqrt of an int tensor is float, as in
 * torch), that dtype in *t; when torch recorded none, argument i as it is and its dtype. */
ox_value *ox_arg_value_as_out(ox_lower *L, int i, ox_dtype *t);
/* List argument i as exactly n ints: one value is repeated (int[2] given as 3), none gives dflt;
 * values beyond int32 fail (no real layer has them). `what` names the argument in messages. */
bool ox_arg_ints_n(ox_lower *L, int i, int n, int64_t *out, int64_t dflt, const char *what);
/* Size-list argument i (ints and symbolic sizes, or one tensor) as a 1-D int64 value: a constant
 * when every size is an int, else a Concat of the ints and the symbols. neg_to_one turns -1 into 1
 * (expand's "keep this dim"); *has_zero reports a literal 0 (for Reshape's allowzero). */
ox_value *ox_arg_sizes(ox_lower *L, int i, bool neg_to_one, bool *has_zero);

/* Layers whose ONNX op needs a batch dim (Conv, MaxPool, ...) take torch's unbatched inputs too:
 * an input of rank nsp + 1 (nsp spatial dims) gets a batch dim and *unbatched is set; ranks other
 * than nsp + 1 and nsp + 2 fail. ox_batch_out drops the batch dim again when *unbatched was set. */
ox_value *ox_batch_in(ox_lower *L, ox_value *x, int nsp, bool *unbatched);
ox_value *ox_batch_out(ox_lower *L, ox_value *y, bool unbatched);

/* Binds ATen output i to v. v NULL means the lowering failed; returns the status. */
int ox_bind(ox_lower *L, int i, ox_value *v);

/* Failure reporting. fail: the op is known but this use broke (OX_ELOWER); unsupported: this
 * argument form is not lowered (collected like a missing op, OX_EUNSUPPORTED). */
int ox_lower_fail(ox_lower *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ox_lower_unsupported(ox_lower *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prototypes of every lowering function named in lower.def. */
#define OX_ATEN(family, target, fn) int fn(ox_lower *L);
#include "lower/lower.def"

#endif
