/*
 * lower.c — the driver: the table built from lower.def, the lookup, and ox_lower_run, which calls
 * each node's function, binds its outputs and collects every unsupported op before failing; plus
 * the helper API of lower.h that the family files share. No lowering lives here.
 */
#include "lower/lower.h"
#include "ir/tensor.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the table ---- */

static int lower_unary_row(ox_lower *L);
static ox_value *resolve(ox_lower *L, int i, uint32_t ref);

typedef struct row {
    const char *target;
    ox_lower_fn fn;
    const char *op; /* OX_UNARY rows */
} row;

static row rows[] = {
#define OX_ATEN(family, target, fn) {target, fn, NULL},
#define OX_UNARY(family, target, onnx_op) {target, lower_unary_row, onnx_op},
#include "lower/lower.def"
};
enum { NROWS = sizeof rows / sizeof rows[0] };

static int row_cmp(const void *a, const void *b) { return strcmp(((const row *)a)->target, ((const row *)b)->target); }

static pthread_once_t rows_once = PTHREAD_ONCE_INIT;
static void sort_rows(void) { qsort(rows, NROWS, sizeof rows[0], row_cmp); }

static const row *find_row(const char *target) {
    pthread_once(&rows_once, sort_rows);
    row key = {.target = target};
    return target ? bsearch(&key, rows, NROWS, sizeof rows[0], row_cmp) : NULL;
}

static bool opset_lowered(int opset) { return opset >= OX_LOWER_MIN_OPSET && opset <= OX_LOWER_MAX_OPSET; }

bool ox_lower_supports(const char *target, int opset) { return find_row(target) && opset_lowered(opset); }

const char *ox_lower_target(int i, int *min_opset, int *max_opset) {
    pthread_once(&rows_once, sort_rows);
    if (i < 0 || i >= NROWS) return NULL;
    if (min_opset) *min_opset = OX_LOWER_MIN_OPSET;
    if (max_opset) *max_opset = OX_LOWER_MAX_OPSET;
    return rows[i].target;
}

/* 1:1 rows compute in the output dtype torch recorded: sqrt of an int tensor is float. */
static int lower_unary_row(ox_lower *L) {
    ox_dtype t;
    ox_value *x = ox_arg_value_as_out(L, 0, &t);
    return ox_bind(L, 0, ox_unary(L, L->row_op, x, t));
}

/* ---- failures ---- */

/* "aten::addmm.default (node addmm, at fc0 / model.py:12)" into buf. */
static const char *node_where(const ox_lower *L, char *buf, size_t size) {
    const ox_aten_node *n = L->node;
    if (n->where && *n->where) snprintf(buf, size, "%s (node %s, at %s)", n->target, n->name, n->where);
    else snprintf(buf, size, "%s (node %s)", n->target, n->name);
    return buf;
}

int ox_lower_fail(ox_lower *L, const char *fmt, ...) {
    char msg[768], where[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    node_where(L, where, sizeof where);
    ox_error_set(&L->g->err, OX_ELOWER, where, "%s: %s", where, msg);
    return OX_ELOWER;
}

int ox_lower_unsupported(ox_lower *L, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!L->unsupported_reason) L->unsupported_reason = ox_arena_strdup(L->g->arena, msg);
    return OX_EUNSUPPORTED;
}

/* Lowering stops touching the graph once it failed, or once this node was found unsupported. */
static bool stopped(const ox_lower *L) { return ox_graph_failed(L->g) || L->unsupported_reason; }

/* ---- arguments ---- */

int ox_nargs(const ox_lower *L) { return L->node->nargs; }

const ox_arg *ox_arg_at(const ox_lower *L, int i) { return i >= 0 && i < L->node->nargs ? &L->node->args[i] : NULL; }

bool ox_arg_is_none(const ox_lower *L, int i) {
    const ox_arg *a = ox_arg_at(L, i);
    return !a || a->kind == OX_ARG_NONE;
}

static const char *kind_name(ox_arg_kind k) {
    static const char *names[] = {"None", "bool", "int", "float", "str", "tensor", "list", "bytes"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static ox_value *resolve(ox_lower *L, int i, uint32_t ref) {
    if (ref >= L->prog->nvalues || !L->prog->table[ref]) {
        ox_lower_fail(L, "argument %d refers to a value that was never produced", i);
        return NULL;
    }
    return L->prog->table[ref];
}

ox_value *ox_arg_ref(ox_lower *L, const ox_arg *a) { return resolve(L, -1, a->u.ref); }

ox_value *ox_arg_value_opt(ox_lower *L, int i) {
    const ox_arg *a = ox_arg_at(L, i);
    if (stopped(L) || !a || a->kind == OX_ARG_NONE) return NULL;
    if (a->kind != OX_ARG_VALUE) {
        ox_lower_unsupported(L, "argument %d is a %s where a tensor was expected", i, kind_name(a->kind));
        return NULL;
    }
    return resolve(L, i, a->u.ref);
}

ox_value *ox_arg_value(ox_lower *L, int i) {
    if (stopped(L)) return NULL;
    ox_value *v = ox_arg_value_opt(L, i);
    if (!v && !stopped(L)) ox_lower_fail(L, "argument %d: a tensor is required, got None", i);
    return v;
}

int64_t ox_arg_int(ox_lower *L, int i, int64_t dflt) {
    const ox_arg *a = ox_arg_at(L, i);
    if (!a || a->kind == OX_ARG_NONE) return dflt;
    if (a->kind == OX_ARG_INT || a->kind == OX_ARG_BOOL) return a->u.i;
    if (!stopped(L)) ox_lower_unsupported(L, "argument %d is a %s where an int was expected", i, kind_name(a->kind));
    return dflt;
}

double ox_arg_float(ox_lower *L, int i, double dflt) {
    const ox_arg *a = ox_arg_at(L, i);
    if (!a || a->kind == OX_ARG_NONE) return dflt;
    if (a->kind == OX_ARG_FLOAT) return a->u.f;
    if (a->kind == OX_ARG_INT || a->kind == OX_ARG_BOOL) return (double)a->u.i;
    if (!stopped(L)) ox_lower_unsupported(L, "argument %d is a %s where a float was expected", i, kind_name(a->kind));
    return dflt;
}

bool ox_arg_bool(ox_lower *L, int i, bool dflt) { return ox_arg_int(L, i, dflt) != 0; }

const char *ox_arg_string(ox_lower *L, int i, const char *dflt) {
    const ox_arg *a = ox_arg_at(L, i);
    if (!a || a->kind == OX_ARG_NONE) return dflt;
    if (a->kind == OX_ARG_STRING) return a->u.s;
    if (!stopped(L)) ox_lower_unsupported(L, "argument %d is a %s where a string was expected", i, kind_name(a->kind));
    return dflt;
}

int ox_arg_ints(ox_lower *L, int i, int64_t *out, int max) {
    const ox_arg *a = ox_arg_at(L, i);
    if (stopped(L)) return -1;
    if (!a || a->kind == OX_ARG_NONE) return 0;
    if (a->kind == OX_ARG_INT) {
        if (max < 1) {
            ox_lower_fail(L, "argument %d: too many values", i);
            return -1;
        }
        out[0] = a->u.i;
        return 1;
    }
    if (a->kind != OX_ARG_LIST) {
        ox_lower_unsupported(L, "argument %d is a %s where a list of ints was expected", i, kind_name(a->kind));
        return -1;
    }
    if (a->u.list.n > max) {
        ox_lower_fail(L, "argument %d has %d values, at most %d are supported", i, a->u.list.n, max);
        return -1;
    }
    for (int k = 0; k < a->u.list.n; k++) {
        const ox_arg *e = &a->u.list.items[k];
        if (e->kind != OX_ARG_INT) {
            ox_lower_unsupported(L,
                                 "argument %d item %d is a %s where an int was expected "
                                 "(symbolic sizes are not lowered here)",
                                 i, k, kind_name(e->kind));
            return -1;
        }
        out[k] = e->u.i;
    }
    return a->u.list.n;
}

ox_value *ox_arg_scalar(ox_lower *L, int i, ox_dtype dtype) {
    const ox_arg *a = ox_arg_at(L, i);
    if (stopped(L)) return NULL;
    if (!a || a->kind == OX_ARG_NONE) {
        ox_lower_fail(L, "argument %d: a scalar is required, got None", i);
        return NULL;
    }
    switch (a->kind) {
    case OX_ARG_BOOL:
    case OX_ARG_INT: return ox_const_scalar(L, dtype, (double)a->u.i);
    case OX_ARG_FLOAT: return ox_const_scalar(L, dtype, a->u.f);
    case OX_ARG_VALUE: return ox_cast(L, resolve(L, i, a->u.ref), dtype);
    default:
        ox_lower_unsupported(L, "argument %d is a %s where a number was expected", i, kind_name(a->kind));
        return NULL;
    }
}

bool ox_norm_dim(ox_lower *L, int64_t *d, int rank, const char *what) {
    if (rank < 0) {
        ox_lower_unsupported(L, "%s: the input's rank is not known", what);
        return false;
    }
    int r = rank ? rank : 1;
    if (*d < -r || *d >= r) {
        ox_lower_fail(L, "%s %lld out of range for a rank-%d input", what, (long long)*d, rank);
        return false;
    }
    if (*d < 0) *d += r;
    return true;
}

const ox_meta *ox_out_meta(const ox_lower *L, int i) {
    return i >= 0 && i < L->node->noutputs ? &L->node->meta[i] : NULL;
}

ox_dtype ox_out_dtype(const ox_lower *L, int i) {
    const ox_meta *m = ox_out_meta(L, i);
    return m ? m->dtype : OX_UNDEFINED;
}

ox_dtype ox_out_dtype_required(ox_lower *L, int i) {
    ox_dtype t = ox_out_dtype(L, i);
    if (t == OX_UNDEFINED) ox_lower_fail(L, "torch recorded no dtype for the output");
    return t;
}

/* ---- emitting ---- */

ox_node *ox_op_array(ox_lower *L, const char *op_type, int noutputs, int ninputs, ox_value *const *inputs) {
    if (stopped(L)) return NULL;
    ox_node *n = ox_graph_add_node(L->g, op_type, NULL, ninputs, inputs, noutputs);
    if (!n) return NULL;
    /* The first node takes the FX node's name, the rest the name with a suffix; ONNX Runtime
     * refuses two nodes of one name, so ox_node_set_name makes clashes unique. */
    if (L->emitted++ == 0) ox_node_set_name(L->g, n, L->node->name);
    else {
        char buf[256];
        snprintf(buf, sizeof buf, "%s_n%d", L->node->name, L->emitted - 1);
        ox_node_set_name(L->g, n, buf);
    }
    n->source = L->node->target;
    /* Until told otherwise an output has its first input's dtype: true of most ONNX ops. */
    ox_value *first = ninputs > 0 ? inputs[0] : NULL;
    for (int k = 0; k < noutputs; k++) n->outputs[k]->dtype = first ? first->dtype : OX_UNDEFINED;
    return ox_graph_failed(L->g) ? NULL : n;
}

static ox_node *op_va(ox_lower *L, const char *op_type, int noutputs, int ninputs, va_list ap) {
    ox_value *inputs[16];
    if (ninputs < 0 || ninputs > 16) {
        ox_lower_fail(L, "%s with %d inputs", op_type, ninputs);
        return NULL;
    }
    for (int k = 0; k < ninputs; k++) inputs[k] = va_arg(ap, ox_value *);
    /* A NULL first input means an earlier helper failed: optional inputs are never first. */
    if (ninputs > 0 && !inputs[0]) {
        if (!stopped(L)) ox_lower_fail(L, "%s: its first input is missing", op_type);
        return NULL;
    }
    return ox_op_array(L, op_type, noutputs, ninputs, inputs);
}

ox_node *ox_op(ox_lower *L, const char *op_type, int ninputs, ...) {
    va_list ap;
    va_start(ap, ninputs);
    ox_node *n = op_va(L, op_type, 1, ninputs, ap);
    va_end(ap);
    return n;
}

ox_node *ox_opn(ox_lower *L, const char *op_type, int noutputs, int ninputs, ...) {
    va_list ap;
    va_start(ap, ninputs);
    ox_node *n = op_va(L, op_type, noutputs, ninputs, ap);
    va_end(ap);
    return n;
}

ox_value *ox_out(const ox_node *n) { return n && n->noutputs > 0 ? n->outputs[0] : NULL; }

/* ---- constants ---- */

ox_value *ox_const_tensor(ox_lower *L, ox_dtype dtype, int rank, const int64_t *dims, const void *data) {
    if (stopped(L)) return NULL;
    return ox_graph_add_constant(L->g, NULL, dtype, rank, dims, data);
}

ox_value *ox_const_ints(ox_lower *L, int n, const int64_t *v) {
    int64_t dims[1] = {n};
    return ox_const_tensor(L, OX_INT64, 1, dims, v);
}

ox_value *ox_const_scalar(ox_lower *L, ox_dtype dtype, double v) {
    unsigned char bytes[16];
    if (stopped(L)) return NULL;
    if (!ox_elem_store_double(dtype, bytes, v)) {
        ox_lower_unsupported(L, "a scalar constant of dtype %s", ox_dtype_name(dtype));
        return NULL;
    }
    return ox_const_tensor(L, dtype, 0, NULL, bytes);
}

ox_value *ox_cast(ox_lower *L, ox_value *x, ox_dtype to) {
    if (!x || stopped(L)) return NULL;
    if (x->dtype == to) return x;
    ox_node *n = ox_op(L, "Cast", 1, x);
    if (!n) return NULL;
    ox_node_set_int(L->g, n, "to", to);
    n->outputs[0]->dtype = to;
    if (x->rank >= 0) ox_value_set_shape(L->g, n->outputs[0], x->rank, x->dims); /* Cast keeps shape */
    return n->outputs[0];
}

ox_value *ox_reshape(ox_lower *L, ox_value *x, int n, const int64_t *shape) {
    return ox_out(ox_op(L, "Reshape", 2, x, ox_const_ints(L, n, shape)));
}

/* Where(c, a, b) of dtype t. ONNX Runtime has no Where kernel for bool or bfloat16 data: those
 * choose between uint8 or float copies, which hold every value exactly, and are cast back. */
ox_value *ox_where(ox_lower *L, ox_value *c, ox_value *a, ox_value *b, ox_dtype t) {
    ox_dtype wt = t == OX_BOOL ? OX_UINT8 : t == OX_BFLOAT16 ? OX_FLOAT : t;
    if (wt != t) {
        a = ox_cast(L, a, wt);
        b = ox_cast(L, b, wt);
    }
    ox_value *r = ox_out(ox_op(L, "Where", 3, c, a, b));
    if (r) r->dtype = wt;
    return ox_cast(L, r, t);
}

/* ---- typed ops, int64 constants, shapes ---- */

ox_value *ox_typed(ox_value *v, ox_dtype t) {
    if (v) v->dtype = t;
    return v;
}

ox_value *ox_unary(ox_lower *L, const char *op_type, ox_value *x, ox_dtype t) {
    return ox_typed(ox_out(ox_op(L, op_type, 1, x)), t);
}

ox_value *ox_binary(ox_lower *L, const char *op_type, ox_value *a, ox_value *b, ox_dtype t) {
    return ox_typed(ox_out(ox_op(L, op_type, 2, a, b)), t);
}

ox_value *ox_op_typed(ox_lower *L, const char *op_type, ox_dtype t, int ninputs, ...) {
    va_list ap;
    va_start(ap, ninputs);
    ox_node *n = op_va(L, op_type, 1, ninputs, ap);
    va_end(ap);
    return ox_typed(ox_out(n), t);
}

ox_value *ox_const_i64(ox_lower *L, int64_t v) { return ox_const_tensor(L, OX_INT64, 0, NULL, &v); }

ox_value *ox_const_i64_1d(ox_lower *L, int64_t v) { return ox_const_ints(L, 1, &v); }

ox_value *ox_shape_of(ox_lower *L, ox_value *x, int64_t start, int64_t end) {
    ox_node *n = ox_op(L, "Shape", 1, x);
    if (!n) return NULL;
    if (start) ox_node_set_int(L->g, n, "start", start);
    if (end != INT64_MAX) ox_node_set_int(L->g, n, "end", end);
    return ox_typed(ox_out(n), OX_INT64);
}

ox_value *ox_wrap_index(ox_lower *L, ox_value *x, int64_t axis, ox_value *idx) {
    int64_t n;
    ox_value *size =
        ox_static_dim(x, (int)axis, &n) ? ox_const_scalar(L, OX_INT64, (double)n) : ox_shape_of(L, x, axis, axis + 1);
    ox_value *neg = ox_out(ox_op(L, "Less", 2, idx, ox_const_scalar(L, OX_INT64, 0)));
    ox_value *up = ox_binary(L, "Add", idx, size, OX_INT64);
    return ox_op_typed(L, "Where", OX_INT64, 3, neg, up, idx);
}

bool ox_static_dim(const ox_value *x, int k, int64_t *size) {
    if (!x || k < 0 || k >= x->rank || !x->dims || x->dims[k].param || x->dims[k].value < 0) return false;
    *size = x->dims[k].value;
    return true;
}

bool ox_static_shape(const ox_value *x, int64_t *dims) {
    if (!x || x->rank < 0 || x->rank > OX_MAX_RANK || (x->rank && !x->dims)) return false;
    for (int k = 0; k < x->rank; k++) {
        if (x->dims[k].param || x->dims[k].value < 0) return false;
        if (dims) dims[k] = x->dims[k].value;
    }
    return true;
}

bool ox_out_static_shape(const ox_lower *L, int i, int64_t *dims, int *rank) {
    const ox_meta *m = ox_out_meta(L, i);
    if (!m || m->rank < 0 || m->rank > OX_MAX_RANK || (m->rank && !m->dims)) return false;
    for (int k = 0; k < m->rank; k++) {
        if (m->dims[k].param || m->dims[k].value < 0) return false;
        dims[k] = m->dims[k].value;
    }
    *rank = m->rank;
    return true;
}

/* ---- arguments read into emitted values ---- */

ox_value *ox_arg_value_as_out(ox_lower *L, int i, ox_dtype *t) {
    *t = ox_out_dtype(L, 0);
    ox_value *x = ox_arg_value(L, i);
    if (*t == OX_UNDEFINED && x) *t = x->dtype;
    return ox_cast(L, x, *t);
}

bool ox_arg_ints_n(ox_lower *L, int i, int n, int64_t *out, int64_t dflt, const char *what) {
    int64_t buf[OX_MAX_RANK];
    int got = ox_arg_ints(L, i, buf, OX_MAX_RANK);
    if (got < 0) return false;
    if (got > 1 && got != n) {
        ox_lower_fail(L, "%s has %d values for %d spatial dims", what, got, n);
        return false;
    }
    for (int k = 0; k < n; k++) {
        out[k] = got == 0 ? dflt : got == 1 ? buf[0] : buf[k];
        /* Sizes beyond int32 are no real layer's, and would overflow the size arithmetic. */
        if (out[k] < -INT32_MAX || out[k] > INT32_MAX) {
            ox_lower_fail(L, "%s value %lld out of range", what, (long long)out[k]);
            return false;
        }
    }
    return true;
}

ox_value *ox_size_1d(ox_lower *L, ox_value *v) {
    int64_t one = 1;
    return ox_typed(ox_reshape(L, ox_cast(L, v, OX_INT64), 1, &one), OX_INT64);
}

ox_value *ox_concat_sizes(ox_lower *L, int n, ox_value **parts) {
    if (n == 1) return parts[0];
    ox_node *c = ox_op_array(L, "Concat", 1, n, parts);
    if (c) ox_node_set_int(L->g, c, "axis", 0);
    return ox_typed(ox_out(c), OX_INT64);
}

ox_value *ox_arg_sizes(ox_lower *L, int i, bool neg_to_one, bool *has_zero) {
    const ox_arg *a = ox_arg_at(L, i);
    *has_zero = false;
    if (!a || a->kind == OX_ARG_NONE) {
        ox_lower_fail(L, "argument %d: a size list is required, got None", i);
        return NULL;
    }
    if (a->kind == OX_ARG_VALUE) return ox_size_1d(L, ox_arg_value(L, i));
    const ox_arg *items = a->kind == OX_ARG_LIST ? a->u.list.items : a;
    int n = a->kind == OX_ARG_LIST ? a->u.list.n : 1;
    if (a->kind != OX_ARG_LIST && a->kind != OX_ARG_INT) {
        ox_lower_unsupported(L, "argument %d is not a size list", i);
        return NULL;
    }
    if (n > OX_MAX_RANK) {
        ox_lower_fail(L, "argument %d has %d sizes, at most %d are supported", i, n, OX_MAX_RANK);
        return NULL;
    }
    int64_t ints[OX_MAX_RANK];
    ox_value *parts[OX_MAX_RANK];
    int nparts = 0, nints = 0;
    for (int k = 0; k <= n; k++) {
        const ox_arg *e = k < n ? &items[k] : NULL;
        if (e && e->kind == OX_ARG_INT) {
            int64_t v = e->u.i;
            if (v == 0) *has_zero = true;
            ints[nints++] = neg_to_one && v == -1 ? 1 : v;
            continue;
        }
        if (nints) parts[nparts++] = ox_const_ints(L, nints, ints);
        nints = 0;
        if (!e) break;
        if (e->kind != OX_ARG_VALUE) {
            ox_lower_unsupported(L, "argument %d item %d is not an int or a symbolic size", i, k);
            return NULL;
        }
        if (e->u.ref >= L->prog->nvalues || !L->prog->table[e->u.ref]) {
            ox_lower_fail(L, "argument %d item %d refers to a value that was never produced", i, k);
            return NULL;
        }
        parts[nparts++] = ox_size_1d(L, L->prog->table[e->u.ref]);
    }
    if (nparts == 0) return ox_const_ints(L, 0, ints);
    return ox_concat_sizes(L, nparts, parts);
}

/* ---- unbatched inputs of batch-first layers ---- */

ox_value *ox_batch_in(ox_lower *L, ox_value *x, int nsp, bool *unbatched) {
    *unbatched = false;
    if (!x) return NULL;
    if (x->rank == nsp + 1) {
        *unbatched = true;
        return ox_binary(L, "Unsqueeze", x, ox_const_i64_1d(L, 0), x->dtype);
    }
    if (x->rank >= 0 && x->rank != nsp + 2) {
        ox_lower_fail(L, "input of rank %d, expected %d or %d", x->rank, nsp + 1, nsp + 2);
        return NULL;
    }
    return x;
}

ox_value *ox_batch_out(ox_lower *L, ox_value *y, bool unbatched) {
    return unbatched ? ox_out(ox_op(L, "Squeeze", 2, y, ox_const_i64_1d(L, 0))) : y;
}

/* ---- type promotion (torch.promote_types for tensors) ---- */

int ox_dtype_category(ox_dtype t) {
    if (t == OX_BOOL) return 0;
    if (ox_dtype_is_int(t)) return 1;
    if (ox_dtype_is_float(t)) return 2;
    return 3; /* complex */
}

ox_dtype ox_work_dtype(ox_dtype t) { return t == OX_FLOAT16 || t == OX_BFLOAT16 ? OX_FLOAT : t; }

ox_dtype ox_promote(ox_dtype a, ox_dtype b) {
    if (a == b) return a;
    if (a == OX_UNDEFINED) return b;
    if (b == OX_UNDEFINED) return a;
    int ca = ox_dtype_category(a), cb = ox_dtype_category(b);
    if (ca != cb) return ca > cb ? a : b;
    if (ca == 2) {
        /* float16 with bfloat16 gives float32, as torch does. */
        if ((a == OX_FLOAT16 && b == OX_BFLOAT16) || (a == OX_BFLOAT16 && b == OX_FLOAT16)) return OX_FLOAT;
        return ox_dtype_size(a) >= ox_dtype_size(b) ? a : b;
    }
    if (ca == 1) {
        bool ua = a == OX_UINT8 || a == OX_UINT16 || a == OX_UINT32 || a == OX_UINT64;
        bool ub = b == OX_UINT8 || b == OX_UINT16 || b == OX_UINT32 || b == OX_UINT64;
        size_t sa = ox_dtype_size(a), sb = ox_dtype_size(b);
        if (ua == ub) return sa >= sb ? a : b;
        /* signed with unsigned: the signed type if it is wider, else the next wider signed one */
        ox_dtype s = ua ? b : a, u = ua ? a : b;
        if (ox_dtype_size(s) > ox_dtype_size(u)) return s;
        switch (ox_dtype_size(u)) {
        case 1: return OX_INT16;
        case 2: return OX_INT32;
        default: return OX_INT64;
        }
    }
    return ox_dtype_size(a) >= ox_dtype_size(b) ? a : b;
}

/* ---- binding outputs ---- */

int ox_bind(ox_lower *L, int i, ox_value *v) {
    if (L->unsupported_reason) return OX_EUNSUPPORTED;
    if (ox_graph_failed(L->g)) return ox_graph_status(L->g);
    if (!v) return ox_lower_fail(L, "output %d was not produced", i);
    if (i < 0 || i >= L->node->noutputs) return ox_lower_fail(L, "output %d out of range", i);
    uint32_t id = L->node->outputs[i];
    if (id >= L->prog->nvalues) return ox_lower_fail(L, "output %d has a bad id", i);
    /* A value made for this node and not yet named takes the FX name and torch's metadata. */
    if (v->kind == OX_VALUE_NODE && !v->name) {
        const ox_meta *m = &L->node->meta[i];
        const char *name =
            L->node->noutputs == 1 ? L->node->name : ox_arena_printf(L->g->arena, "%s_out%d", L->node->name, i);
        if (!name || ox_value_set_name(L->g, v, name) != OX_OK) return ox_graph_status(L->g);
        if (m->rank >= 0 && m->dtype != OX_UNDEFINED) {
            v->dtype = m->dtype;
            ox_value_set_shape(L->g, v, m->rank, m->dims);
            v->has_meta = true;
        }
    }
    L->prog->table[id] = v;
    return ox_graph_status(L->g);
}

/* ---- the driver ---- */

static void arg_dtypes(const ox_lower *L, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < L->node->nargs && used + 1 < size; i++) {
        const ox_arg *a = &L->node->args[i];
        const char *s;
        if (a->kind == OX_ARG_VALUE)
            s = a->u.ref < L->prog->nvalues && L->prog->table[a->u.ref] ?
                ox_dtype_name(L->prog->table[a->u.ref]->dtype) :
                "tensor";
        else s = kind_name(a->kind);
        int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", s);
        if (w < 0) break;
        used += (size_t)w;
    }
}

static int record_unsupported(ox_lower *L, ox_lower_report *rep, int *cap, const char *reason) {
    ox_graph *g = L->g;
    for (int k = 0; k < rep->nunsupported; k++) {
        ox_unsupported *u = &rep->unsupported[k];
        bool same_reason = (!u->reason && !reason) || (u->reason && reason && !strcmp(u->reason, reason));
        if (!strcmp(u->target, L->node->target) && same_reason) {
            u->count++;
            return OX_OK;
        }
    }
    if (rep->nunsupported == *cap) {
        int ncap = *cap ? *cap * 2 : 8;
        ox_unsupported *nu = ox_arena_array(g->arena, (size_t)ncap, sizeof *nu);
        if (!nu) return ox_graph_status(g);
        if (rep->nunsupported) memcpy(nu, rep->unsupported, (size_t)rep->nunsupported * sizeof *nu);
        rep->unsupported = nu;
        *cap = ncap;
    }
    ox_unsupported *u = &rep->unsupported[rep->nunsupported++];
    memset(u, 0, sizeof *u);
    u->target = L->node->target;
    u->node = L->node->name;
    u->where = L->node->where;
    u->reason = reason;
    u->count = 1;
    arg_dtypes(L, u->arg_dtypes, sizeof u->arg_dtypes);
    return OX_OK;
}

/* After an unsupported op, stand-in values (typed as torch said) let lowering go on to find the
 * rest. They never reach a saved model: the run fails at the end. */
static int bind_placeholders(ox_lower *L) {
    for (int i = 0; i < L->node->noutputs; i++) {
        const ox_meta *m = &L->node->meta[i];
        ox_value *v = ox_graph_add_value(L->g, NULL, m->dtype, m->rank, m->dims);
        if (!v) return ox_graph_status(L->g);
        if (L->node->outputs[i] < L->prog->nvalues) L->prog->table[L->node->outputs[i]] = v;
    }
    return OX_OK;
}

ox_code ox_lower_run(ox_graph *g, ox_aten_program *p, ox_lower_report *rep) {
    int cap = 0;
    memset(rep, 0, sizeof *rep);
    for (uint32_t i = 0; i < p->nnodes; i++) {
        ox_aten_node *an = &p->nodes[i];
        ox_lower L = {.g = g, .prog = p, .node = an, .opset = g->opset};
        const row *r = find_row(an->target);
        int rc;
        if (!r || !opset_lowered(g->opset)) {
            const char *reason = r ?
                ox_arena_printf(g->arena, "lowered only for opsets %d to %d", OX_LOWER_MIN_OPSET, OX_LOWER_MAX_OPSET) :
                NULL;
            rc = record_unsupported(&L, rep, &cap, reason);
            if (rc == OX_OK) rc = bind_placeholders(&L);
        } else {
            L.row_op = r->op;
            rc = r->fn(&L);
            if (L.unsupported_reason) {
                /* Whatever the function emitted before giving up stays unused: DCE drops it. */
                rc = record_unsupported(&L, rep, &cap, L.unsupported_reason);
                if (rc == OX_OK) rc = bind_placeholders(&L);
            }
        }
        if (rc != OX_OK && rc != OX_EUNSUPPORTED) {
            if (!ox_graph_failed(g)) ox_lower_fail(&L, "lowering failed (%s)", ox_code_name((ox_code)rc));
            return ox_graph_status(g);
        }
        if (ox_graph_failed(g)) return ox_graph_status(g);
    }
    rep->aten_nodes = p->nnodes;
    if (rep->nunsupported) {
        ox_error_set(&g->err, OX_EUNSUPPORTED, NULL, "%d unsupported op%s", rep->nunsupported,
                     rep->nunsupported == 1 ? "" : "s");
        return OX_EUNSUPPORTED;
    }
    for (uint32_t i = 0; i < p->noutputs; i++) {
        uint32_t id = p->outputs[i];
        ox_value *v = id < p->nvalues ? p->table[id] : NULL;
        if (!v) return ox_error_set(&g->err, OX_ELOWER, NULL, "graph output %u was never produced", i);
        const char *want = p->output_names && p->output_names[i] ? p->output_names[i] : NULL;
        /* A graph output must be a node's own value, named once: an input, an initializer or a
         * value listed twice goes through Identity. */
        if (v->kind != OX_VALUE_NODE || v->is_output || want) {
            bool need_identity = v->kind != OX_VALUE_NODE || v->is_output;
            if (need_identity) {
                ox_node *n = ox_graph_add_node(g, "Identity", NULL, 1, &v, 1);
                if (!n) return ox_graph_status(g);
                n->outputs[0]->dtype = v->dtype;
                ox_value_set_shape(g, n->outputs[0], v->rank, v->dims);
                n->outputs[0]->has_meta = v->rank >= 0 && v->dtype != OX_UNDEFINED;
                v = n->outputs[0];
                if (!want && ox_value_set_name(g, v, "output") != OX_OK) return ox_graph_status(g);
            }
            if (want && ox_value_set_name(g, v, want) != OX_OK) return ox_graph_status(g);
        }
        if (ox_graph_add_output(g, v) != OX_OK) return ox_graph_status(g);
    }
    rep->onnx_nodes = g->nnodes;
    return ox_graph_status(g);
}
