/*
 * fold.c — constant-folding kernels (fold.h). Numeric kernels read their inputs through one
 * element accessor into doubles and write back through another, so one kernel serves every dtype
 * it accepts; int64 shape arithmetic stays exact below 2^53, and larger values are refused.
 */
#include "fold.h"

#include <math.h>
#include <string.h>

enum { MAX_RANK = 16 };
static const size_t MAX_OUT = 64u << 20;   /* never fold into more than 64 MiB */

ox_tensor *ox_tensor_new(ox_graph *g, ox_dtype dtype, int rank, const int64_t *dims) {
    if (rank < 0 || rank > MAX_RANK || !ox_dtype_size(dtype)) return NULL;
    ox_tensor *t = ox_arena_alloc(g->arena, sizeof *t);
    int64_t *d = rank ? ox_arena_array(g->arena, (size_t)rank, sizeof *d) : NULL;
    if (!t || (rank && !d)) { ox_graph_status(g); return NULL; }
    if (rank) memcpy(d, dims, (size_t)rank * sizeof *d);
    *t = (ox_tensor){.dtype = dtype, .rank = rank, .dims = d, .storage = OX_DATA_OWNED};
    int64_t numel = ox_tensor_numel(t);
    if (numel < 0 || (uint64_t)numel > MAX_OUT / ox_dtype_size(dtype)) return NULL;
    t->nbytes = (size_t)numel * ox_dtype_size(dtype);
    t->data = ox_arena_alloc(g->arena, t->nbytes ? t->nbytes : 1);
    if (!t->data) { ox_graph_status(g); return NULL; }
    return t;
}

/* ---- element access ---- */

static bool numeric(ox_dtype t) {
    switch (t) {
    case OX_FLOAT: case OX_DOUBLE: case OX_INT64: case OX_INT32: case OX_INT16: case OX_INT8:
    case OX_UINT8: case OX_BOOL:
        return true;
    default:
        return false;
    }
}

static double get(const ox_tensor *t, int64_t i) {
    const unsigned char *p = (const unsigned char *)t->data + (size_t)i * ox_dtype_size(t->dtype);
    switch (t->dtype) {
    case OX_FLOAT: { float v; memcpy(&v, p, 4); return v; }
    case OX_DOUBLE: { double v; memcpy(&v, p, 8); return v; }
    case OX_INT64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case OX_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case OX_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case OX_INT8: { int8_t v; memcpy(&v, p, 1); return v; }
    case OX_UINT8: case OX_BOOL: return *p;
    default: return NAN;
    }
}

static void put(ox_tensor *t, int64_t i, double v) {
    unsigned char *p = (unsigned char *)(void *)t->data + (size_t)i * ox_dtype_size(t->dtype);
    switch (t->dtype) {
    case OX_FLOAT: { float x = (float)v; memcpy(p, &x, 4); break; }
    case OX_DOUBLE: memcpy(p, &v, 8); break;
    case OX_INT64: { int64_t x = (int64_t)v; memcpy(p, &x, 8); break; }
    case OX_INT32: { int32_t x = (int32_t)v; memcpy(p, &x, 4); break; }
    case OX_INT16: { int16_t x = (int16_t)v; memcpy(p, &x, 2); break; }
    case OX_INT8: { int8_t x = (int8_t)v; memcpy(p, &x, 1); break; }
    case OX_UINT8: *p = (unsigned char)v; break;
    case OX_BOOL: *p = v != 0; break;
    default: break;
    }
}

/* int64 values beyond 2^53 would not survive the trip through double. */
static bool exact(const ox_tensor *t) {
    if (t->dtype != OX_INT64) return true;
    int64_t n = ox_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, (const unsigned char *)t->data + (size_t)i * 8, 8);
        if (v > (1LL << 53) || v < -(1LL << 53)) return false;
    }
    return true;
}

static ox_code bad(ox_graph *g, const ox_node *n, const char *what) {
    return ox_error_set(&g->err, OX_EINVAL, n->name, "%s%s%s: %s", n->op_type, n->name ? " " : "",
                        n->name ? n->name : "", what);
}

/* ---- broadcasting elementwise ---- */

typedef double (*binop)(double, double);
static double op_add(double a, double b) { return a + b; }
static double op_sub(double a, double b) { return a - b; }
static double op_mul(double a, double b) { return a * b; }
static double op_div_f(double a, double b) { return a / b; }
static double op_div_i(double a, double b) { return b == 0 ? NAN : trunc(a / b); }
static double op_eq(double a, double b) { return a == b; }
static double op_lt(double a, double b) { return a < b; }
static double op_le(double a, double b) { return a <= b; }
static double op_gt(double a, double b) { return a > b; }
static double op_ge(double a, double b) { return a >= b; }
static double op_and(double a, double b) { return a != 0 && b != 0; }
static double op_or(double a, double b) { return a != 0 || b != 0; }
static double op_max(double a, double b) { return a > b || isnan(a) ? a : b; }
static double op_min(double a, double b) { return a < b || isnan(a) ? a : b; }

/* numpy broadcasting of k inputs: out dims, and per input the strides (0 where broadcast). */
static bool broadcast(const ox_tensor *const *in, int k, int *rank, int64_t *dims,
                      int64_t strides[][MAX_RANK]) {
    int r = 0;
    for (int j = 0; j < k; j++) {
        if (in[j]->rank > MAX_RANK) return false;
        if (in[j]->rank > r) r = in[j]->rank;
    }
    for (int i = 0; i < r; i++) {
        dims[i] = 1;
        for (int j = 0; j < k; j++) {
            int off = i - (r - in[j]->rank);
            int64_t d = off >= 0 ? in[j]->dims[off] : 1;
            if (d == 1) continue;
            if (dims[i] != 1 && dims[i] != d) return false;
            dims[i] = d;
        }
    }
    for (int j = 0; j < k; j++) {
        int64_t s = 1;
        for (int i = r - 1; i >= 0; i--) {
            int off = i - (r - in[j]->rank);
            int64_t d = off >= 0 ? in[j]->dims[off] : 1;
            strides[j][i] = d == 1 ? 0 : s;
            s *= d;
        }
    }
    *rank = r;
    return true;
}

static ox_code elementwise(ox_graph *g, const ox_node *n, const ox_tensor *const *in, int k,
                           ox_dtype out_dtype, binop f2, ox_tensor **out) {
    int r;
    int64_t dims[MAX_RANK], strides[3][MAX_RANK], idx[MAX_RANK] = {0}, off[3] = {0};
    if (k > 3 || !broadcast(in, k, &r, dims, strides)) return bad(g, n, "shapes do not broadcast");
    ox_tensor *t = ox_tensor_new(g, out_dtype, r, dims);
    if (!t) return ox_graph_failed(g) ? ox_graph_status(g) : OX_EUNSUPPORTED;
    int64_t numel = ox_tensor_numel(t);
    for (int64_t e = 0; e < numel; e++) {
        double v;
        if (k == 3) v = get(in[0], off[0]) != 0 ? get(in[1], off[1]) : get(in[2], off[2]);   /* Where */
        else v = f2(get(in[0], off[0]), get(in[1], off[1]));
        if (isnan(v) && !ox_dtype_is_float(out_dtype)) return OX_EUNSUPPORTED;   /* x / 0 on ints */
        put(t, e, v);
        for (int i = r - 1; i >= 0; i--) {
            for (int j = 0; j < k; j++) off[j] += strides[j][i];
            if (++idx[i] < dims[i]) break;
            for (int j = 0; j < k; j++) off[j] -= strides[j][i] * idx[i];
            idx[i] = 0;
        }
    }
    out[0] = t;
    return OX_OK;
}

/* ---- shape kernels ---- */

static ox_tensor *copy_with_shape(ox_graph *g, const ox_tensor *x, int rank, const int64_t *dims) {
    ox_tensor *t = ox_tensor_new(g, x->dtype, rank, dims);
    if (t && t->nbytes == x->nbytes) memcpy((void *)t->data, x->data, x->nbytes);
    return t && t->nbytes == x->nbytes ? t : NULL;
}

static bool ints_of(const ox_tensor *t, int64_t *out, int max, int *count) {
    int64_t n = ox_tensor_numel(t);
    if (t->dtype != OX_INT64 || t->rank > 1 || n > max) return false;
    for (int64_t i = 0; i < n; i++) memcpy(&out[i], (const unsigned char *)t->data + (size_t)i * 8, 8);
    *count = (int)n;
    return true;
}

static ox_code k_reshape(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out) {
    int64_t shape[MAX_RANK];
    int r;
    if (n->ninputs != 2 || !in[1] || !ints_of(in[1], shape, MAX_RANK, &r)) return OX_EUNSUPPORTED;
    bool allowzero = ox_node_attr_int(n, "allowzero", 0) != 0;
    int64_t known = 1, numel = ox_tensor_numel(in[0]);
    int minus = -1;
    for (int i = 0; i < r; i++) {
        if (shape[i] == 0 && !allowzero) {
            if (i >= in[0]->rank) return bad(g, n, "shape copies a dim the input does not have");
            shape[i] = in[0]->dims[i];
        }
        if (shape[i] == -1) {
            if (minus >= 0) return bad(g, n, "two -1 in shape");
            minus = i;
        } else if (shape[i] < 0) return bad(g, n, "negative size in shape");
        else known *= shape[i];
    }
    if (minus >= 0) {
        if (!known || numel % known) return bad(g, n, "shape does not divide the input");
        shape[minus] = numel / known;
    }
    out[0] = copy_with_shape(g, in[0], r, shape);
    return out[0] ? OX_OK : bad(g, n, "shape does not match the number of elements");
}

static ox_code k_unsqueeze(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out) {
    int64_t axes[MAX_RANK], dims[MAX_RANK];
    int na;
    if (n->ninputs != 2 || !in[1] || !ints_of(in[1], axes, MAX_RANK, &na)) return OX_EUNSUPPORTED;
    int r = in[0]->rank + na;
    if (r > MAX_RANK) return OX_EUNSUPPORTED;
    bool mark[MAX_RANK] = {0};
    for (int i = 0; i < na; i++) {
        int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
        if (a < 0 || a >= r || mark[a]) return bad(g, n, "axis out of range or repeated");
        mark[a] = true;
    }
    for (int i = 0, j = 0; i < r; i++) dims[i] = mark[i] ? 1 : in[0]->dims[j++];
    out[0] = copy_with_shape(g, in[0], r, dims);
    return out[0] ? OX_OK : ox_graph_status(g);
}

static ox_code k_squeeze(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out) {
    int64_t axes[MAX_RANK], dims[MAX_RANK];
    int na = 0, r = 0;
    bool mark[MAX_RANK] = {0};
    if (n->ninputs > 1 && in[1]) {
        if (!ints_of(in[1], axes, MAX_RANK, &na)) return OX_EUNSUPPORTED;
        for (int i = 0; i < na; i++) {
            int64_t a = axes[i] < 0 ? axes[i] + in[0]->rank : axes[i];
            if (a < 0 || a >= in[0]->rank || in[0]->dims[a] != 1) return bad(g, n, "cannot squeeze that axis");
            mark[a] = true;
        }
    } else {
        for (int i = 0; i < in[0]->rank; i++) mark[i] = in[0]->dims[i] == 1;
    }
    for (int i = 0; i < in[0]->rank; i++)
        if (!mark[i]) dims[r++] = in[0]->dims[i];
    out[0] = copy_with_shape(g, in[0], r, dims);
    return out[0] ? OX_OK : ox_graph_status(g);
}

static ox_code k_concat(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out) {
    int r = in[0]->rank;
    int64_t axis = ox_node_attr_int(n, "axis", 0), dims[MAX_RANK];
    if (axis < 0) axis += r;
    if (r < 1 || axis < 0 || axis >= r) return bad(g, n, "axis out of range");
    memcpy(dims, in[0]->dims, (size_t)r * sizeof *dims);
    dims[axis] = 0;
    for (int k = 0; k < n->ninputs; k++) {
        if (!in[k] || in[k]->rank != r || in[k]->dtype != in[0]->dtype) return bad(g, n, "inputs differ in rank or dtype");
        for (int i = 0; i < r; i++)
            if (i != axis && in[k]->dims[i] != in[0]->dims[i]) return bad(g, n, "inputs differ in shape");
        dims[axis] += in[k]->dims[axis];
    }
    ox_tensor *t = ox_tensor_new(g, in[0]->dtype, r, dims);
    if (!t) return ox_graph_failed(g) ? ox_graph_status(g) : OX_EUNSUPPORTED;
    size_t es = ox_dtype_size(t->dtype);
    int64_t outer = 1;
    for (int i = 0; i < axis; i++) outer *= dims[i];
    unsigned char *dst = (void *)t->data;
    for (int64_t o = 0; o < outer; o++)
        for (int k = 0; k < n->ninputs; k++) {
            size_t chunk = in[k]->nbytes / (size_t)(outer ? outer : 1);
            if (!outer || !in[k]->nbytes) continue;
            memcpy(dst, (const unsigned char *)in[k]->data + (size_t)o * chunk, chunk);
            dst += chunk;
        }
    (void)es;
    out[0] = t;
    return OX_OK;
}

static ox_code k_gather(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out) {
    const ox_tensor *x = in[0], *ix = in[1];
    int64_t axis = ox_node_attr_int(n, "axis", 0);
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis >= x->rank) return bad(g, n, "axis out of range");
    if ((ix->dtype != OX_INT64 && ix->dtype != OX_INT32) || x->rank + ix->rank - 1 > MAX_RANK)
        return OX_EUNSUPPORTED;
    int64_t dims[MAX_RANK];
    int r = 0;
    for (int i = 0; i < axis; i++) dims[r++] = x->dims[i];
    for (int i = 0; i < ix->rank; i++) dims[r++] = ix->dims[i];
    for (int i = (int)axis + 1; i < x->rank; i++) dims[r++] = x->dims[i];
    ox_tensor *t = ox_tensor_new(g, x->dtype, r, dims);
    if (!t) return ox_graph_failed(g) ? ox_graph_status(g) : OX_EUNSUPPORTED;
    int64_t outer = 1, inner = 1, ni = ox_tensor_numel(ix), len = x->dims[axis];
    for (int i = 0; i < axis; i++) outer *= x->dims[i];
    for (int i = (int)axis + 1; i < x->rank; i++) inner *= x->dims[i];
    size_t es = ox_dtype_size(x->dtype), block = (size_t)inner * es;
    unsigned char *dst = (void *)t->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ni; j++) {
            int64_t k = (int64_t)get(ix, j);
            if (k < 0) k += len;
            if (k < 0 || k >= len) return bad(g, n, "index out of range");
            memcpy(dst, (const unsigned char *)x->data + ((size_t)(o * len + k)) * block, block);
            dst += block;
        }
    out[0] = t;
    return OX_OK;
}

static ox_code k_cast(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out) {
    ox_dtype to = (ox_dtype)ox_node_attr_int(n, "to", 0);
    if (!numeric(to) || !numeric(in[0]->dtype) || !exact(in[0])) return OX_EUNSUPPORTED;
    ox_tensor *t = ox_tensor_new(g, to, in[0]->rank, in[0]->dims);
    if (!t) return ox_graph_failed(g) ? ox_graph_status(g) : OX_EUNSUPPORTED;
    int64_t numel = ox_tensor_numel(t);
    for (int64_t i = 0; i < numel; i++) {
        double v = get(in[0], i);
        if (!ox_dtype_is_float(to) && to != OX_BOOL) {
            if (isnan(v) || fabs(v) > 9.0e15) return OX_EUNSUPPORTED;   /* undefined in C */
            v = trunc(v);
        }
        put(t, i, v);
    }
    out[0] = t;
    return OX_OK;
}

static ox_code k_range(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out) {
    for (int k = 0; k < 3; k++)
        if (!in[k] || in[k]->rank != 0 || in[k]->dtype != in[0]->dtype) return bad(g, n, "inputs must be scalars of one dtype");
    double start = get(in[0], 0), limit = get(in[1], 0), delta = get(in[2], 0);
    if (delta == 0 || isnan(start + limit + delta)) return bad(g, n, "delta is zero");
    double count = ceil((limit - start) / delta);
    int64_t len = count > 0 ? (int64_t)count : 0;
    ox_tensor *t = ox_tensor_new(g, in[0]->dtype, 1, &len);
    if (!t) return ox_graph_failed(g) ? ox_graph_status(g) : OX_EUNSUPPORTED;
    for (int64_t i = 0; i < len; i++) put(t, i, start + (double)i * delta);
    out[0] = t;
    return OX_OK;
}

static ox_code k_unary(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out) {
    ox_tensor *t = ox_tensor_new(g, in[0]->dtype, in[0]->rank, in[0]->dims);
    if (!t) return ox_graph_failed(g) ? ox_graph_status(g) : OX_EUNSUPPORTED;
    int64_t numel = ox_tensor_numel(t);
    for (int64_t i = 0; i < numel; i++) {
        double v = get(in[0], i);
        switch (n->op_type[0]) {
        case 'N': v = !strcmp(n->op_type, "Neg") ? -v : (double)(v == 0); break;   /* Neg, Not */
        case 'S': v = sqrt(v); break;
        case 'R': v = 1.0 / v; break;
        case 'A': v = fabs(v); break;
        default: break;   /* Identity */
        }
        put(t, i, v);
    }
    out[0] = t;
    return OX_OK;
}

/* ---- dispatch ---- */

typedef struct {
    const char *op;
    int min_inputs, max_inputs;
    bool any_dtype;        /* data movement: bytes copied, any dtype */
    binop f2;              /* elementwise binary */
    int out;               /* 0: like input, 1: bool */
    ox_code (*fn)(ox_graph *, const ox_node *, const ox_tensor *const *, ox_tensor **);
} kernel;

static const kernel kernels[] = {
    {"Identity", 1, 1, false, NULL, 0, k_unary}, {"Neg", 1, 1, false, NULL, 0, k_unary},
    {"Not", 1, 1, false, NULL, 0, k_unary}, {"Sqrt", 1, 1, false, NULL, 0, k_unary},
    {"Reciprocal", 1, 1, false, NULL, 0, k_unary}, {"Abs", 1, 1, false, NULL, 0, k_unary},
    {"Add", 2, 2, false, op_add, 0, NULL}, {"Sub", 2, 2, false, op_sub, 0, NULL},
    {"Mul", 2, 2, false, op_mul, 0, NULL}, {"Div", 2, 2, false, NULL, 0, NULL},
    {"Max", 2, 2, false, op_max, 0, NULL}, {"Min", 2, 2, false, op_min, 0, NULL},
    {"Equal", 2, 2, false, op_eq, 1, NULL}, {"Less", 2, 2, false, op_lt, 1, NULL},
    {"LessOrEqual", 2, 2, false, op_le, 1, NULL}, {"Greater", 2, 2, false, op_gt, 1, NULL},
    {"GreaterOrEqual", 2, 2, false, op_ge, 1, NULL}, {"And", 2, 2, false, op_and, 1, NULL},
    {"Or", 2, 2, false, op_or, 1, NULL}, {"Where", 3, 3, false, NULL, 0, NULL},
    {"Cast", 1, 1, false, NULL, 0, k_cast}, {"Range", 3, 3, false, NULL, 0, k_range},
    {"Reshape", 2, 2, true, NULL, 0, k_reshape}, {"Unsqueeze", 2, 2, true, NULL, 0, k_unsqueeze},
    {"Squeeze", 1, 2, true, NULL, 0, k_squeeze}, {"Concat", 1, 64, true, NULL, 0, k_concat},
    {"Gather", 2, 2, true, NULL, 0, k_gather},
};

static const kernel *find(const char *op) {
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        if (!strcmp(kernels[i].op, op)) return &kernels[i];
    return NULL;
}

bool ox_fold_has_kernel(const char *op_type) {
    return op_type && find(op_type) != NULL;
}

ox_code ox_fold_eval(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out) {
    const kernel *k = n->domain ? NULL : find(n->op_type);
    if (!k || n->ninputs < k->min_inputs || n->ninputs > k->max_inputs || n->noutputs != 1)
        return OX_EUNSUPPORTED;
    for (int i = 0; i < n->ninputs; i++) {
        if (!in[i]) continue;
        if (!ox_tensor_has_data(in[i]) || in[i]->storage == OX_DATA_PERMUTED || in[i]->rank > MAX_RANK)
            return OX_EUNSUPPORTED;
        if (!k->any_dtype && (!numeric(in[i]->dtype) || !exact(in[i]))) return OX_EUNSUPPORTED;
    }
    if (!in[0]) return bad(g, n, "first input is missing");
    if (k->fn) return k->fn(g, n, in, out);
    if (!strcmp(k->op, "Where")) {
        if (in[1]->dtype != in[2]->dtype) return bad(g, n, "branches differ in dtype");
        return elementwise(g, n, in, 3, in[1]->dtype, NULL, out);
    }
    if (in[0]->dtype != in[1]->dtype) return bad(g, n, "inputs differ in dtype");
    binop f = k->f2 ? k->f2 : ox_dtype_is_float(in[0]->dtype) ? op_div_f : op_div_i;
    return elementwise(g, n, in, 2, k->out ? OX_BOOL : in[0]->dtype, f, out);
}
