/*
 * fold.c — constant-folding kernels (fold.h): one small function per op or family, found through
 * one table (`kernels[]`, at the end).
 *
 * Numbers are computed in one of three domains chosen by the dtype's class: double for the
 * floating types (float16 and bfloat16 are widened exactly and rounded back once, to nearest even),
 * int64 for signed and uint64 for unsigned integers and bool. Integer arithmetic wraps, as numpy's
 * and ONNX Runtime's does. What ONNX leaves undefined (integer division by zero, NaN or an
 * out-of-range float cast to an integer type, integers to negative powers) is not folded:
 * OX_EUNSUPPORTED, and the node stays for the runtime to decide.
 *
 * Data-movement kernels (Identity, Reshape, Squeeze, Unsqueeze, Gather, GatherND, Concat, Slice,
 * Transpose, Expand, Where) copy elements as bytes, so they serve every fixed-size dtype.
 *
 * Inputs are checked before anything is read: a tensor whose byte count disagrees with its shape, an
 * index or axis out of range, shapes that do not broadcast are errors naming the node (OX_EINVAL),
 * never an out-of-bounds read. Tensors without bytes (fake weights) and PERMUTED views (callers
 * materialize them first with ox_tensor_bytes) are not folded; Shape and Size need no bytes.
 */
#include "opt/fold.h"
#include "ir/tensor.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { MAX_IN = 16 };
static const size_t MAX_OUT = (size_t)64 << 20; /* never fold into more than 64 MiB */

/* ---- outputs ---- */

/* An output tensor: ox_tensor_new within fold's size limit. */
static ox_tensor *out_tensor(ox_graph *g, ox_dtype dtype, int rank, const int64_t *dims) {
    size_t es = ox_dtype_size(dtype);
    uint64_t numel = 1;
    for (int i = 0; i < rank && dims; i++) {
        if (dims[i] < 0) return NULL;
        if (dims[i] && numel > MAX_OUT / (uint64_t)dims[i]) return NULL;
        numel *= (uint64_t)dims[i];
    }
    if (!es || numel > MAX_OUT / es) return NULL;
    return ox_tensor_new(g, dtype, rank, dims);
}

/* out_tensor said no: out of memory (now in g->err) or an output over the size limit. */
static ox_code no_output(ox_graph *g) { return ox_arena_oom(g->arena) ? ox_graph_status(g) : OX_EUNSUPPORTED; }

static void *bytes_of(ox_tensor *t) {
    return (void *)t->data; /* an output made by out_tensor: its bytes are ours to write */
}

/* Records "<Op> node '<name>': <what>" and returns OX_EINVAL. */
static ox_code bad(ox_graph *g, const ox_node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static ox_code bad(ox_graph *g, const ox_node *n, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (n->name) return ox_error_set(&g->err, OX_EINVAL, n->name, "%s node '%s': %s", n->op_type, n->name, what);
    return ox_error_set(&g->err, OX_EINVAL, NULL, "%s node: %s", n->op_type, what);
}

/* ---- dtype classes and element access ---- */

enum { F_FLOAT = 1, F_SINT = 2, F_UINT = 4, F_BOOL = 8, F_OTHER = 16 };
enum { F_INT = F_SINT | F_UINT, F_NUM = F_FLOAT | F_INT, F_ANY = F_NUM | F_BOOL | F_OTHER };

static unsigned dclass(ox_dtype t) {
    switch (t) {
    case OX_FLOAT:
    case OX_DOUBLE:
    case OX_FLOAT16:
    case OX_BFLOAT16: return F_FLOAT;
    case OX_INT8:
    case OX_INT16:
    case OX_INT32:
    case OX_INT64: return F_SINT;
    case OX_UINT8:
    case OX_UINT16:
    case OX_UINT32:
    case OX_UINT64: return F_UINT;
    case OX_BOOL: return F_BOOL;
    case OX_COMPLEX64:
    case OX_COMPLEX128: return F_OTHER;
    default: return 0; /* undefined, string: no fixed-size elements */
    }
}

static int dbits(ox_dtype t) { return (int)ox_dtype_size(t) * 8; }

/* One element in its class's domain: f for floats, i for signed, u for unsigned and bool. */
typedef ox_number num;

static num load(const ox_tensor *t, int64_t k) {
    return ox_elem_load(t->dtype, (const unsigned char *)t->data + (size_t)k * ox_dtype_size(t->dtype));
}

/* Integers keep their low bits (v.i and v.u share them), which is numpy's wrap-around. */
static void store(ox_tensor *t, int64_t k, num v) {
    ox_elem_store(t->dtype, (unsigned char *)bytes_of(t) + (size_t)k * ox_dtype_size(t->dtype), v);
}

/* An integer magnitude as a double, rounded to odd when it has more than 53 significant bits: the
 * rounding that follows (to float, float16 or bfloat16) then rounds as if from the exact value. */
static double odd_double(uint64_t m) {
    int shift = 0;
    uint64_t sticky = 0;
    while (m >> 53) {
        sticky |= m & 1;
        m >>= 1;
        shift++;
    }
    return ldexp((double)(m | sticky), shift);
}

/* v, of class `from`, as the domain value of dtype `to`. False where ONNX leaves the result
 * undefined: NaN or a float out of the integer type's range (after truncation toward zero). */
static bool convert(num v, unsigned from, ox_dtype to, num *out) {
    unsigned k = dclass(to);
    if (k == F_BOOL) {
        out->u = from == F_FLOAT ? v.f != 0 : v.u != 0;
        return true;
    }
    if (from == F_FLOAT) {
        if (k == F_FLOAT) {
            *out = v;
            return true;
        }
        if (isnan(v.f)) return false;
        double t = trunc(v.f);
        if (k == F_SINT) {
            double lim = ldexp(1, dbits(to) - 1);
            /* below the range of int32/int64 (-inf too), x86's and ARM's conversions both give
             * the minimum, as torch and numpy do; above it or NaN they differ, so no fold */
            if (t < -lim && dbits(to) >= 32) {
                out->i = dbits(to) == 64 ? INT64_MIN : INT32_MIN;
                return true;
            }
            if (t < -lim || t >= lim) return false;
            out->i = (int64_t)t;
        } else {
            if (t < 0 || t >= ldexp(1, dbits(to))) return false;
            out->u = (uint64_t)t;
        }
        return true;
    }
    if (k == F_FLOAT) {
        if (to == OX_DOUBLE) out->f = from == F_SINT ? (double)v.i : (double)v.u;
        else if (from == F_SINT && v.i < 0) out->f = -odd_double(0 - v.u);
        else out->f = odd_double(v.u);
        return true;
    }
    *out = v; /* integer to integer: the bits, wrapped when stored */
    return true;
}

/* a + b and a * b for integer class k (F_SINT, or F_UINT and F_BOOL) in a dtype of `bits` bits:
 * false when the exact result does not fit. For the ops where numpy wraps but ONNX Runtime
 * saturates or goes through double (ReduceSum, ReduceProd, Pow). */
static bool add_fits(unsigned k, int bits, num a, num b, num *r) {
    if (k != F_SINT) {
        uint64_t max = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
        if (b.u > max - a.u) return false;
        r->u = a.u + b.u;
        return true;
    }
    int64_t hi = bits == 64 ? INT64_MAX : ((int64_t)1 << (bits - 1)) - 1, lo = -hi - 1;
    if (b.i > 0 ? a.i > hi - b.i : a.i < lo - b.i) return false;
    r->i = a.i + b.i;
    return true;
}

static bool mul_fits(unsigned k, int bits, num a, num b, num *r) {
    if (k != F_SINT) {
        uint64_t max = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
        if (b.u && a.u > max / b.u) return false;
        r->u = a.u * b.u;
        return true;
    }
    int64_t x = a.i, y = b.i, hi = bits == 64 ? INT64_MAX : ((int64_t)1 << (bits - 1)) - 1, lo = -hi - 1;
    if (x > 0 ? (y > 0 ? x > hi / y : y < lo / x) : (y > 0 ? x < lo / y : x && y < hi / x)) return false;
    r->i = x * y;
    return true;
}

/* ---- reading ints: axes, shapes, starts, perms ---- */

static ox_code check_int_tensor(ox_graph *g, const ox_node *n, const ox_tensor *t, const char *what) {
    if (t->dtype != OX_INT64 && t->dtype != OX_INT32)
        return bad(g, n, "%s must be int32 or int64, not %s", what, ox_dtype_name(t->dtype));
    if (t->rank > 1) return bad(g, n, "%s must be 1-D, not of rank %d", what, t->rank);
    return OX_OK;
}

/* Up to OX_MAX_RANK ints from input t or, when t is NULL, from the INTS attribute `attr` (NULL: no
 * attribute form). *given says whether either was there. More than OX_MAX_RANK: not folded. */
static ox_code int_list(ox_graph *g, const ox_node *n, const ox_tensor *t, const char *attr, const char *what,
                        int64_t *v, int *count, bool *given) {
    *count = 0;
    *given = false;
    if (t) {
        ox_code rc = check_int_tensor(g, n, t, what);
        if (rc != OX_OK) return rc;
        int64_t m = ox_tensor_numel(t);
        if (m > OX_MAX_RANK) return OX_EUNSUPPORTED;
        for (int64_t i = 0; i < m; i++) v[i] = load(t, i).i;
        *count = (int)m;
        *given = true;
        return OX_OK;
    }
    const ox_attr *a = attr ? ox_node_attr(n, attr) : NULL;
    if (!a) return OX_OK;
    if (a->type != OX_ATTR_INTS) return bad(g, n, "attribute '%s' must be a list of ints", attr);
    if (a->u.ints.n > OX_MAX_RANK) return OX_EUNSUPPORTED;
    if (a->u.ints.n) memcpy(v, a->u.ints.v, (size_t)a->u.ints.n * sizeof *v);
    *count = a->u.ints.n;
    *given = true;
    return OX_OK;
}

/* axis in [-rank, rank) made non-negative; false when out of range. */
static bool norm_axis(int64_t *axis, int rank) {
    if (*axis < -(int64_t)rank || *axis >= rank) return false;
    if (*axis < 0) *axis += rank;
    return true;
}

/* ---- walking tensors ---- */

/* numpy broadcasting of k shapes, walked in the output's row-major order: off[j] is the element of
 * input j under the current output element (strides are 0 along broadcast dims). */
typedef struct {
    int rank, k;
    int64_t dims[OX_MAX_RANK], idx[OX_MAX_RANK];
    int64_t stride[MAX_IN][OX_MAX_RANK];
    int64_t off[MAX_IN];
} walk;

static bool walk_init(walk *w, int k, const ox_tensor *const *t) {
    memset(w, 0, sizeof *w);
    w->k = k;
    for (int j = 0; j < k; j++)
        if (t[j]->rank > w->rank) w->rank = t[j]->rank;
    for (int i = 0; i < w->rank; i++) {
        w->dims[i] = 1;
        for (int j = 0; j < k; j++) {
            int at = i - (w->rank - t[j]->rank);
            int64_t d = at >= 0 ? t[j]->dims[at] : 1;
            if (d == 1) continue;
            if (w->dims[i] != 1 && w->dims[i] != d) return false;
            w->dims[i] = d;
        }
    }
    for (int j = 0; j < k; j++) {
        int64_t s = 1; /* at most the input's element count, which was checked */
        for (int i = w->rank - 1; i >= 0; i--) {
            int at = i - (w->rank - t[j]->rank);
            int64_t d = at >= 0 ? t[j]->dims[at] : 1;
            w->stride[j][i] = d == 1 ? 0 : s;
            s *= d;
        }
    }
    return true;
}

static void walk_next(walk *w) {
    for (int i = w->rank - 1; i >= 0; i--) {
        if (++w->idx[i] < w->dims[i]) {
            for (int j = 0; j < w->k; j++) w->off[j] += w->stride[j][i];
            return;
        }
        for (int j = 0; j < w->k; j++) w->off[j] -= w->stride[j][i] * (w->idx[i] - 1);
        w->idx[i] = 0;
    }
}

/* Advances the row-major index idx over dims (n of them) by one, moving the offset *off by the
 * strides (in elements); past the last index everything returns to the start. */
static void odometer_next(int n, int64_t *idx, const int64_t *dims, const int64_t *stride, int64_t *off) {
    for (int i = n - 1; i >= 0; i--) {
        if (++idx[i] < dims[i]) {
            *off += stride[i];
            return;
        }
        *off -= stride[i] * (idx[i] - 1);
        idx[i] = 0;
    }
}

static void row_major_strides(const ox_tensor *x, int64_t *stride) {
    int64_t s = 1;
    for (int i = x->rank - 1; i >= 0; i--) {
        stride[i] = s;
        s *= x->dims[i];
    }
}

/* Fills t with x's elements at base + sum(idx[i] * stride[i]) (in elements) for every index of t.
 * Each stride times its extent stays within x: the offset never overflows. */
static void copy_strided(ox_tensor *t, const ox_tensor *x, int64_t base, const int64_t *stride) {
    size_t es = ox_dtype_size(x->dtype);
    int64_t numel = ox_tensor_numel(t), idx[OX_MAX_RANK] = {0}, src = base;
    unsigned char *dst = bytes_of(t);
    const unsigned char *from = x->data;
    for (int64_t e = 0; e < numel; e++) {
        memcpy(dst + (size_t)e * es, from + (size_t)src * es, es);
        odometer_next(t->rank, idx, t->dims, stride, &src);
    }
}

/* A copy of x's bytes under another shape with the same element count. */
static ox_code copy_as(ox_graph *g, const ox_tensor *x, int rank, const int64_t *dims, ox_tensor **out) {
    ox_tensor *t = out_tensor(g, x->dtype, rank, dims);
    if (!t) return no_output(g);
    if (t->nbytes) memcpy(bytes_of(t), x->data, t->nbytes);
    *out = t;
    return OX_OK;
}

static const char *shape_str(const ox_tensor *t, char *buf, size_t cap) {
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->rank && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
    return buf;
}

/* ---- kernels: each gets inputs already checked (present where required, shape consistent with
 * their bytes, input 0 of a dtype the row accepts) and writes out[0] ---- */

typedef ox_code (*kernel_fn)(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg);

static ox_code k_identity(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    return copy_as(g, in[0], in[0]->rank, in[0]->dims, out);
}

static ox_code k_cast(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    const ox_attr *a = ox_node_attr(n, "to");
    if (!a || a->type != OX_ATTR_INT) return bad(g, n, "needs an int attribute 'to'");
    if (a->u.i <= 0 || a->u.i >= OX_DTYPE_COUNT || !(dclass((ox_dtype)a->u.i) & (F_NUM | F_BOOL)))
        return OX_EUNSUPPORTED; /* string, complex, float8, int4, ... */
    ox_dtype to = (ox_dtype)a->u.i;
    const ox_tensor *x = in[0];
    if (to == x->dtype) return k_identity(g, n, in, out, 0);
    ox_tensor *t = out_tensor(g, to, x->rank, x->dims);
    if (!t) return no_output(g);
    unsigned from = dclass(x->dtype);
    int64_t numel = ox_tensor_numel(x);
    for (int64_t e = 0; e < numel; e++) {
        num v;
        if (!convert(load(x, e), from, to, &v)) return OX_EUNSUPPORTED;
        store(t, e, v);
    }
    *out = t;
    return OX_OK;
}

static ox_code k_shape(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    const ox_tensor *x = in[0];
    int64_t r = x->rank, start = ox_node_attr_int(n, "start", 0), end = ox_node_attr_int(n, "end", r);
    if (start < 0) start = start < -r ? 0 : start + r;
    if (end < 0) end = end < -r ? 0 : end + r;
    if (start > r) start = r;
    if (end > r) end = r;
    int64_t len = end > start ? end - start : 0;
    ox_tensor *t = out_tensor(g, OX_INT64, 1, &len);
    if (!t) return no_output(g);
    if (len) memcpy(bytes_of(t), x->dims + start, (size_t)len * sizeof(int64_t));
    *out = t;
    return OX_OK;
}

static ox_code k_size(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    int64_t numel = ox_tensor_numel(in[0]);
    ox_tensor *t = out_tensor(g, OX_INT64, 0, NULL);
    if (!t) return no_output(g);
    memcpy(bytes_of(t), &numel, sizeof numel);
    *out = t;
    return OX_OK;
}

static ox_code k_gather(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    const ox_tensor *x = in[0], *ix = in[1];
    int64_t axis = ox_node_attr_int(n, "axis", 0);
    if (x->rank < 1) return bad(g, n, "data must have rank 1 or more, not 0");
    if (!norm_axis(&axis, x->rank)) return bad(g, n, "axis %lld out of range for rank %d", (long long)axis, x->rank);
    if (ix->dtype != OX_INT64 && ix->dtype != OX_INT32)
        return bad(g, n, "indices must be int32 or int64, not %s", ox_dtype_name(ix->dtype));
    if (x->rank - 1 + ix->rank > OX_MAX_RANK) return OX_EUNSUPPORTED;
    int64_t len = x->dims[axis], ni = ox_tensor_numel(ix);
    for (int64_t j = 0; j < ni; j++) {
        int64_t k = load(ix, j).i;
        if (k < -len || k >= len)
            return bad(g, n, "index out of range: %lld (at position %lld) for axis %lld of size %lld", (long long)k,
                       (long long)j, (long long)axis, (long long)len);
    }
    int64_t dims[OX_MAX_RANK];
    int r = 0;
    for (int i = 0; i < axis; i++) dims[r++] = x->dims[i];
    for (int i = 0; i < ix->rank; i++) dims[r++] = ix->dims[i];
    for (int i = (int)axis + 1; i < x->rank; i++) dims[r++] = x->dims[i];
    ox_tensor *t = out_tensor(g, x->dtype, r, dims);
    if (!t) return no_output(g);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= x->dims[i];
    for (int i = (int)axis + 1; i < x->rank; i++) inner *= x->dims[i];
    size_t block = (size_t)inner * ox_dtype_size(x->dtype);
    unsigned char *dst = bytes_of(t);
    if (block && t->nbytes)
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < ni; j++) {
                int64_t k = load(ix, j).i;
                if (k < 0) k += len;
                memcpy(dst, (const unsigned char *)x->data + (size_t)(o * len + k) * block, block);
                dst += block;
            }
    *out = t;
    return OX_OK;
}

/* GatherND: each tuple of the last indices dim picks a slab of data after the batch_dims leading
 * dims, which data and indices share. Every index is checked before anything is copied. */
static ox_code k_gather_nd(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    const ox_tensor *x = in[0], *ix = in[1];
    int r = x->rank, q = ix->rank;
    int64_t b = ox_node_attr_int(n, "batch_dims", 0);
    if (ix->dtype != OX_INT64 && ix->dtype != OX_INT32)
        return bad(g, n, "indices must be int64, not %s", ox_dtype_name(ix->dtype));
    if (r < 1 || q < 1) return bad(g, n, "data and indices must have rank 1 or more (%d, %d)", r, q);
    if (b < 0 || b >= r || b >= q)
        return bad(g, n, "batch_dims %lld must be less than both ranks (%d, %d)", (long long)b, r, q);
    for (int i = 0; i < b; i++)
        if (x->dims[i] != ix->dims[i])
            return bad(g, n, "batch dim %d is %lld in data and %lld in indices", i, (long long)x->dims[i],
                       (long long)ix->dims[i]);
    int64_t m = ix->dims[q - 1];
    if (m < 1 || m > r - b)
        return bad(g, n, "indices' last dim is %lld, must be 1 to %lld", (long long)m, (long long)(r - b));
    int64_t dims[OX_MAX_RANK], xs[OX_MAX_RANK];
    int orank = 0;
    for (int i = 0; i < q - 1; i++) dims[orank++] = ix->dims[i];
    for (int i = (int)(b + m); i < r; i++) dims[orank++] = x->dims[i];
    if (orank > OX_MAX_RANK) return OX_EUNSUPPORTED;
    row_major_strides(x, xs);
    int64_t nb = 1, tuples = 1; /* batches, and index tuples in each */
    for (int i = 0; i < b; i++) nb *= ix->dims[i];
    for (int i = (int)b; i < q - 1; i++) tuples *= ix->dims[i];
    for (int64_t j = 0; j < ox_tensor_numel(ix); j++) {
        int64_t k = load(ix, j).i, len = x->dims[b + j % m];
        if (k < -len || k >= len)
            return bad(g, n, "index out of range: %lld (at position %lld) for data dim %lld of size %lld", (long long)k,
                       (long long)j, (long long)(b + j % m), (long long)len);
    }
    ox_tensor *t = out_tensor(g, x->dtype, orank, dims);
    if (!t) return no_output(g);
    /* a slab is everything after the indexed dims: xs[b + m - 1] elements */
    size_t es = ox_dtype_size(x->dtype), slab = (size_t)xs[b + m - 1] * es;
    int64_t batch_stride = b ? xs[b - 1] : 0;
    unsigned char *dst = bytes_of(t);
    if (slab && t->nbytes)
        for (int64_t o = 0; o < nb; o++)
            for (int64_t u = 0; u < tuples; u++) {
                int64_t off = o * batch_stride, at = (o * tuples + u) * m;
                for (int64_t c = 0; c < m; c++) {
                    int64_t k = load(ix, at + c).i;
                    if (k < 0) k += x->dims[b + c];
                    off += k * xs[b + c];
                }
                memcpy(dst, (const unsigned char *)x->data + (size_t)off * es, slab);
                dst += slab;
            }
    *out = t;
    return OX_OK;
}

static ox_code k_concat(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    const ox_attr *a = ox_node_attr(n, "axis");
    if (!a || a->type != OX_ATTR_INT) return bad(g, n, "needs an int attribute 'axis'");
    const ox_tensor *x = in[0];
    int r = x->rank;
    int64_t axis = a->u.i, dims[OX_MAX_RANK];
    if (r < 1) return bad(g, n, "inputs must have rank 1 or more, not 0");
    if (!norm_axis(&axis, r)) return bad(g, n, "axis %lld out of range for rank %d", (long long)a->u.i, r);
    memcpy(dims, x->dims, (size_t)r * sizeof *dims);
    dims[axis] = 0;
    for (int k = 0; k < n->ninputs; k++) {
        const ox_tensor *y = in[k];
        if (y->dtype != x->dtype)
            return bad(g, n, "input %d is %s, input 0 is %s", k, ox_dtype_name(y->dtype), ox_dtype_name(x->dtype));
        if (y->rank != r) return bad(g, n, "input %d has rank %d, input 0 has rank %d", k, y->rank, r);
        for (int i = 0; i < r; i++)
            if (i != axis && y->dims[i] != x->dims[i])
                return bad(g, n, "input %d has size %lld on axis %d, input 0 has %lld", k, (long long)y->dims[i], i,
                           (long long)x->dims[i]);
        if (y->dims[axis] > INT64_MAX - dims[axis]) return OX_EUNSUPPORTED;
        dims[axis] += y->dims[axis];
    }
    ox_tensor *t = out_tensor(g, x->dtype, r, dims);
    if (!t) return no_output(g);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= dims[i];
    for (int i = (int)axis + 1; i < r; i++) inner *= dims[i];
    size_t es = ox_dtype_size(x->dtype);
    unsigned char *dst = bytes_of(t);
    if (t->nbytes)
        for (int64_t o = 0; o < outer; o++)
            for (int k = 0; k < n->ninputs; k++) {
                size_t chunk = (size_t)(in[k]->dims[axis] * inner) * es;
                if (!chunk) continue;
                memcpy(dst, (const unsigned char *)in[k]->data + (size_t)o * chunk, chunk);
                dst += chunk;
            }
    *out = t;
    return OX_OK;
}

static ox_code k_reshape(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    const ox_tensor *x = in[0];
    int64_t shape[OX_MAX_RANK];
    int r;
    bool given;
    if (in[1]->dtype != OX_INT64) return bad(g, n, "shape must be int64, not %s", ox_dtype_name(in[1]->dtype));
    ox_code rc = int_list(g, n, in[1], NULL, "shape", shape, &r, &given);
    if (rc != OX_OK) return rc;
    bool allowzero = ox_node_attr_int(n, "allowzero", 0) != 0, zero = false;
    int64_t known = 1, numel = ox_tensor_numel(x);
    int infer = -1;
    for (int i = 0; i < r; i++) {
        if (shape[i] == 0 && !allowzero) {
            if (i >= x->rank)
                return bad(g, n, "shape[%d] is 0 (copy the input's dim) but the input has rank %d", i, x->rank);
            shape[i] = x->dims[i];
        }
        if (shape[i] == -1) {
            if (infer >= 0) return bad(g, n, "shape has -1 at both %d and %d", infer, i);
            infer = i;
            continue;
        }
        if (shape[i] < 0) return bad(g, n, "shape[%d] is %lld", i, (long long)shape[i]);
        if (shape[i] == 0) zero = true;
        if (shape[i] && known > INT64_MAX / shape[i]) return bad(g, n, "shape's element count overflows");
        known *= shape[i];
    }
    if (infer >= 0) {
        if (allowzero && zero) return bad(g, n, "shape has both 0 and -1 with allowzero=1");
        if (!known || numel % known)
            return bad(g, n, "cannot infer the -1 in shape: %lld elements, the other dims hold %lld", (long long)numel,
                       (long long)known);
        shape[infer] = numel / known;
        known = numel;
    }
    if (known != numel) {
        char buf[256];
        return bad(g, n, "input of shape %s has %lld elements, shape asks for %lld", shape_str(x, buf, sizeof buf),
                   (long long)numel, (long long)known);
    }
    return copy_as(g, x, r, shape, out);
}

static ox_code k_squeeze(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    const ox_tensor *x = in[0];
    int64_t axes[OX_MAX_RANK], dims[OX_MAX_RANK];
    int na, r = 0;
    bool given, drop[OX_MAX_RANK] = {0};
    ox_code rc = int_list(g, n, n->ninputs > 1 ? in[1] : NULL, "axes", "axes", axes, &na, &given);
    if (rc != OX_OK) return rc;
    if (na == 0) /* no axes, or an empty list (as ONNX Runtime reads it): every dim of size 1 */
        for (int i = 0; i < x->rank; i++) drop[i] = x->dims[i] == 1;
    for (int i = 0; i < na; i++) {
        int64_t a = axes[i];
        if (!norm_axis(&a, x->rank))
            return bad(g, n, "axis %lld out of range for rank %d", (long long)axes[i], x->rank);
        if (x->dims[a] != 1)
            return bad(g, n, "axis %lld has size %lld, not 1", (long long)axes[i], (long long)x->dims[a]);
        if (drop[a]) return bad(g, n, "axis %lld is repeated", (long long)axes[i]);
        drop[a] = true;
    }
    for (int i = 0; i < x->rank; i++)
        if (!drop[i]) dims[r++] = x->dims[i];
    return copy_as(g, x, r, dims, out);
}

static ox_code k_unsqueeze(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    const ox_tensor *x = in[0];
    int64_t axes[OX_MAX_RANK], dims[OX_MAX_RANK];
    int na;
    bool given, ins[OX_MAX_RANK] = {0};
    ox_code rc = int_list(g, n, n->ninputs > 1 ? in[1] : NULL, "axes", "axes", axes, &na, &given);
    if (rc != OX_OK) return rc;
    if (!given) return bad(g, n, "needs axes");
    int r = x->rank + na;
    if (r > OX_MAX_RANK) return OX_EUNSUPPORTED;
    for (int i = 0; i < na; i++) {
        int64_t a = axes[i];
        if (!norm_axis(&a, r)) return bad(g, n, "axis %lld out of range for output rank %d", (long long)axes[i], r);
        if (ins[a]) return bad(g, n, "axis %lld is repeated", (long long)axes[i]);
        ins[a] = true;
    }
    for (int i = 0, j = 0; i < r; i++) dims[i] = ins[i] ? 1 : x->dims[j++];
    return copy_as(g, x, r, dims, out);
}

static ox_code k_slice(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    const ox_tensor *x = in[0];
    int r = x->rank;
    int64_t starts[OX_MAX_RANK], ends[OX_MAX_RANK], axes[OX_MAX_RANK], steps[OX_MAX_RANK];
    int ns, ne, na, nst;
    bool hs, he, ha, hst;
    bool attrs = n->ninputs == 1; /* opset 1-9: starts, ends and axes are attributes */
#define OPT_IN(k) (attrs || n->ninputs <= (k) ? NULL : in[k])
    ox_code rc = int_list(g, n, OPT_IN(1), attrs ? "starts" : NULL, "starts", starts, &ns, &hs);
    if (rc == OX_OK) rc = int_list(g, n, OPT_IN(2), attrs ? "ends" : NULL, "ends", ends, &ne, &he);
    if (rc == OX_OK) rc = int_list(g, n, OPT_IN(3), attrs ? "axes" : NULL, "axes", axes, &na, &ha);
    if (rc == OX_OK) rc = int_list(g, n, OPT_IN(4), NULL, "steps", steps, &nst, &hst);
#undef OPT_IN
    if (rc != OX_OK) return rc;
    if (!hs || !he) return bad(g, n, "needs starts and ends");
    if (ne != ns || (ha && na != ns) || (hst && nst != ns))
        return bad(g, n, "starts, ends, axes and steps differ in length (%d, %d, %d, %d)", ns, ne, ha ? na : ns,
                   hst ? nst : ns);
    int64_t first[OX_MAX_RANK] = {0}, step[OX_MAX_RANK], dims[OX_MAX_RANK], stride[OX_MAX_RANK];
    bool seen[OX_MAX_RANK] = {0};
    for (int i = 0; i < r; i++) {
        step[i] = 1;
        dims[i] = x->dims[i];
    }
    for (int j = 0; j < ns; j++) {
        int64_t a = ha ? axes[j] : j;
        if (!norm_axis(&a, r)) return bad(g, n, "axis %lld out of range for rank %d", (long long)(ha ? axes[j] : j), r);
        if (seen[a]) return bad(g, n, "axis %lld is repeated", (long long)a);
        seen[a] = true;
        int64_t s = hst ? steps[j] : 1, d = x->dims[a], b = starts[j], e = ends[j], cnt = 0;
        if (s == 0) return bad(g, n, "step on axis %lld is 0", (long long)a);
        /* ONNX Runtime reads an end of INT32_MAX or INT64_MAX with a negative step as "through
         * index 0", the spec (and numpy) as "nothing": the runtime decides. */
        if (s < 0 && (e == INT32_MAX || e == INT64_MAX)) return OX_EUNSUPPORTED;
        if (b < 0) b += d; /* b + d cannot overflow: b < 0 <= d */
        if (e < 0) e += d;
        if (s > 0) {
            b = b < 0 ? 0 : b > d ? d : b;
            e = e < 0 ? 0 : e > d ? d : e;
            if (e > b) cnt = (int64_t)((uint64_t)(e - b - 1) / (uint64_t)s) + 1;
        } else {
            b = b < 0 ? 0 : b > d - 1 ? d - 1 : b;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            if (d > 0 && b > e) cnt = (int64_t)((uint64_t)(b - e - 1) / (0 - (uint64_t)s)) + 1;
        }
        first[a] = cnt ? b : 0;
        step[a] = cnt > 1 ? s : 1; /* |s| < d here, so step * stride stays inside x */
        dims[a] = cnt;
    }
    ox_tensor *t = out_tensor(g, x->dtype, r, dims);
    if (!t) return no_output(g);
    int64_t base = 0;
    row_major_strides(x, stride);
    for (int i = 0; i < r; i++) {
        base += first[i] * stride[i];
        stride[i] *= step[i];
    }
    if (t->nbytes) copy_strided(t, x, base, stride);
    *out = t;
    return OX_OK;
}

static ox_code k_transpose(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    const ox_tensor *x = in[0];
    int r = x->rank, np;
    int64_t perm[OX_MAX_RANK], dims[OX_MAX_RANK], xs[OX_MAX_RANK], stride[OX_MAX_RANK];
    bool given, seen[OX_MAX_RANK] = {0};
    ox_code rc = int_list(g, n, NULL, "perm", "perm", perm, &np, &given);
    if (rc != OX_OK) return rc;
    if (!given)
        for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
    else if (np != r) return bad(g, n, "perm has %d entries for an input of rank %d", np, r);
    row_major_strides(x, xs);
    for (int i = 0; i < r; i++) {
        int64_t p = perm[i];
        if (!norm_axis(&p, r) || seen[p]) return bad(g, n, "perm is not a permutation of 0..%d", r - 1);
        seen[p] = true;
        dims[i] = x->dims[p];
        stride[i] = xs[p];
    }
    ox_tensor *t = out_tensor(g, x->dtype, r, dims);
    if (!t) return no_output(g);
    if (t->nbytes) copy_strided(t, x, 0, stride);
    *out = t;
    return OX_OK;
}

static ox_code k_expand(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    int64_t shape[OX_MAX_RANK];
    int r;
    bool given;
    if (in[1]->dtype != OX_INT64) return bad(g, n, "shape must be int64, not %s", ox_dtype_name(in[1]->dtype));
    ox_code rc = int_list(g, n, in[1], NULL, "shape", shape, &r, &given);
    if (rc != OX_OK) return rc;
    for (int i = 0; i < r; i++)
        if (shape[i] < 0) return bad(g, n, "shape[%d] is %lld", i, (long long)shape[i]);
    const ox_tensor target = {.dtype = OX_UINT8, .rank = r, .dims = shape};
    const ox_tensor *pair[2] = {in[0], &target};
    if (ox_tensor_numel(&target) < 0) return OX_EUNSUPPORTED; /* walk_init's strides need it */
    walk w;
    if (!walk_init(&w, 2, pair)) {
        char a[256], b[256];
        return bad(g, n, "input of shape %s does not broadcast to %s", shape_str(in[0], a, sizeof a),
                   shape_str(&target, b, sizeof b));
    }
    ox_tensor *t = out_tensor(g, in[0]->dtype, w.rank, w.dims);
    if (!t) return no_output(g);
    size_t es = ox_dtype_size(t->dtype);
    int64_t numel = ox_tensor_numel(t);
    unsigned char *dst = bytes_of(t);
    for (int64_t e = 0; e < numel; e++, walk_next(&w))
        memcpy(dst + (size_t)e * es, (const unsigned char *)in[0]->data + (size_t)w.off[0] * es, es);
    *out = t;
    return OX_OK;
}

/* Tile(input, repeats): output dim k is dims[k] * repeats[k]; element i takes input element
 * i mod dims on every axis. */
static ox_code k_tile(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    const ox_tensor *x = in[0];
    int64_t rep[OX_MAX_RANK], dims[OX_MAX_RANK], xs[OX_MAX_RANK], idx[OX_MAX_RANK] = {0};
    int r = x->rank, nr;
    bool given;
    if (in[1]->dtype != OX_INT64) return bad(g, n, "repeats must be int64, not %s", ox_dtype_name(in[1]->dtype));
    ox_code rc = int_list(g, n, in[1], NULL, "repeats", rep, &nr, &given);
    if (rc != OX_OK) return rc;
    if (nr != r) return bad(g, n, "%d repeats for an input of rank %d", nr, r);
    for (int i = 0; i < r; i++) {
        if (rep[i] < 0) return bad(g, n, "repeats[%d] is %lld", i, (long long)rep[i]);
        if (rep[i] && x->dims[i] > INT64_MAX / rep[i]) return OX_EUNSUPPORTED;
        dims[i] = x->dims[i] * rep[i];
    }
    ox_tensor *t = out_tensor(g, x->dtype, r, dims);
    if (!t) return no_output(g);
    size_t es = ox_dtype_size(t->dtype);
    int64_t numel = ox_tensor_numel(t);
    unsigned char *dst = bytes_of(t);
    const unsigned char *src = x->data;
    row_major_strides(x, xs);
    for (int64_t e = 0; e < numel; e++) {
        int64_t off = 0;
        for (int i = 0; i < r; i++) off += (idx[i] % x->dims[i]) * xs[i];
        memcpy(dst + (size_t)e * es, src + (size_t)off * es, es);
        for (int i = r - 1; i >= 0 && ++idx[i] == dims[i]; i--) idx[i] = 0;
    }
    *out = t;
    return OX_OK;
}

static ox_code k_where(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    if (in[0]->dtype != OX_BOOL) return bad(g, n, "condition must be bool, not %s", ox_dtype_name(in[0]->dtype));
    if (in[1]->dtype != in[2]->dtype)
        return bad(g, n, "X is %s, Y is %s", ox_dtype_name(in[1]->dtype), ox_dtype_name(in[2]->dtype));
    if (!ox_dtype_size(in[1]->dtype)) return OX_EUNSUPPORTED;
    walk w;
    if (!walk_init(&w, 3, in)) {
        char a[128], b[128], c[128];
        return bad(g, n, "shapes %s, %s and %s do not broadcast", shape_str(in[0], a, sizeof a),
                   shape_str(in[1], b, sizeof b), shape_str(in[2], c, sizeof c));
    }
    ox_tensor *t = out_tensor(g, in[1]->dtype, w.rank, w.dims);
    if (!t) return no_output(g);
    size_t es = ox_dtype_size(t->dtype);
    int64_t numel = ox_tensor_numel(t);
    unsigned char *dst = bytes_of(t);
    for (int64_t e = 0; e < numel; e++, walk_next(&w)) {
        int pick = ((const unsigned char *)in[0]->data)[w.off[0]] ? 1 : 2;
        memcpy(dst + (size_t)e * es, (const unsigned char *)in[pick]->data + (size_t)w.off[pick] * es, es);
    }
    *out = t;
    return OX_OK;
}

/* ---- elementwise arithmetic, comparison and logic ---- */

enum {
    B_ADD,
    B_SUB,
    B_MUL,
    B_DIV,
    B_MOD,
    B_FMOD,
    B_MIN,
    B_MAX,
    B_EQ,
    B_LT,
    B_LE,
    B_GT,
    B_GE,
    B_AND,
    B_OR,
    B_XOR, /* from B_EQ on: bool results */
};

/* a op b for inputs of class k; false where the result is undefined (integer x / 0). Comparisons
 * set r->u to 0 or 1. Signed arithmetic goes through uint64: the low bits are numpy's. */
static bool arith(int op, unsigned k, num a, num b, num *r) {
    bool fl = k == F_FLOAT, si = k == F_SINT;
    switch (op) {
    case B_ADD:
        if (fl) r->f = a.f + b.f;
        else r->u = a.u + b.u;
        return true;
    case B_SUB:
        if (fl) r->f = a.f - b.f;
        else r->u = a.u - b.u;
        return true;
    case B_MUL:
        if (fl) r->f = a.f * b.f;
        else r->u = a.u * b.u;
        return true;
    case B_DIV: /* integers: truncation toward zero, as C (and ONNX's reference) */
        if (fl) {
            r->f = a.f / b.f;
            return true;
        }
        if (!b.u) return false;
        if (si) r->u = b.i == -1 ? 0 - a.u : (uint64_t)(a.i / b.i); /* INT64_MIN / -1 wraps */
        else r->u = a.u / b.u;
        return true;
    case B_MOD: /* fmod=0, integers only: the sign of the divisor, as Python's % */
    case B_FMOD: /* fmod=1: the sign of the dividend, as C's fmod and % */
        if (fl) {
            r->f = fmod(a.f, b.f);
            return true;
        }
        if (!b.u) return false;
        if (!si) {
            r->u = a.u % b.u;
            return true;
        }
        r->i = b.i == -1 ? 0 : a.i % b.i;
        if (op == B_MOD && r->i && (r->i < 0) != (b.i < 0)) r->u += b.u;
        return true;
    case B_MIN:
    case B_MAX: {
        bool less;
        if (fl) {
            if (isnan(a.f) || isnan(b.f)) {
                r->f = NAN;
                return true;
            } /* numpy's minimum/maximum */
            less = a.f < b.f;
        } else {
            less = si ? a.i < b.i : a.u < b.u;
        }
        *r = (op == B_MIN) == less ? a : b;
        return true;
    }
    case B_EQ: r->u = fl ? a.f == b.f : a.u == b.u; return true;
    case B_LT: r->u = fl ? a.f < b.f : si ? a.i < b.i : a.u < b.u; return true;
    case B_LE: r->u = fl ? a.f <= b.f : si ? a.i <= b.i : a.u <= b.u; return true;
    case B_GT: r->u = fl ? a.f > b.f : si ? a.i > b.i : a.u > b.u; return true;
    case B_GE: r->u = fl ? a.f >= b.f : si ? a.i >= b.i : a.u >= b.u; return true;
    case B_AND: r->u = a.u && b.u; return true;
    case B_OR: r->u = a.u || b.u; return true;
    case B_XOR: r->u = !a.u != !b.u; return true;
    default: return false;
    }
}

/* Binary ops and the variadic Min/Max: inputs of one dtype, broadcast together, folded left. */
static ox_code k_binary(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int op) {
    int k = n->ninputs;
    for (int j = 1; j < k; j++)
        if (in[j]->dtype != in[0]->dtype)
            return bad(g, n, "input %d is %s, input 0 is %s", j, ox_dtype_name(in[j]->dtype),
                       ox_dtype_name(in[0]->dtype));
    unsigned cls = dclass(in[0]->dtype);
    if (op == B_MOD) {
        int64_t fmod_attr = ox_node_attr_int(n, "fmod", 0);
        if (fmod_attr != 0 && fmod_attr != 1) return bad(g, n, "fmod must be 0 or 1, not %lld", (long long)fmod_attr);
        if (fmod_attr) op = B_FMOD;
        else if (cls == F_FLOAT) return bad(g, n, "fmod must be 1 for %s inputs", ox_dtype_name(in[0]->dtype));
    }
    walk w;
    if (!walk_init(&w, k, in)) {
        char a[256], b[256];
        return bad(g, n, "input shapes do not broadcast (%s with %s%s)", shape_str(in[0], a, sizeof a),
                   shape_str(in[1], b, sizeof b), k > 2 ? ", ..." : "");
    }
    ox_tensor *t = out_tensor(g, op >= B_EQ ? OX_BOOL : in[0]->dtype, w.rank, w.dims);
    if (!t) return no_output(g);
    int64_t numel = ox_tensor_numel(t);
    for (int64_t e = 0; e < numel; e++, walk_next(&w)) {
        num acc = load(in[0], w.off[0]);
        for (int j = 1; j < k; j++)
            if (!arith(op, cls, acc, load(in[j], w.off[j]), &acc)) return OX_EUNSUPPORTED;
        store(t, e, acc);
    }
    *out = t;
    return OX_OK;
}

/* x^e for integers, exactly or not at all (false): an overflowing power is numpy's wrap-around
 * but ONNX Runtime's trip through double. Past the bases 0, 1 and -1, 64 steps overflow. */
static bool ipow(unsigned k, int bits, num x, uint64_t e, num *r) {
    bool neg_one = k == F_SINT && x.i == -1;
    if (x.u <= 1 || neg_one) {
        r->u = neg_one ? (e & 1 ? x.u : 1) : (e == 0 ? 1 : x.u);
        return true;
    }
    num p = {.u = 1};
    for (uint64_t i = 0; i < e; i++)
        if (!mul_fits(k, bits, p, x, &p)) return false;
    *r = p;
    return true;
}

/* Pow: the exponent may be of another numeric dtype; the result has the base's dtype. */
static ox_code k_pow(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    const ox_tensor *x = in[0], *y = in[1];
    unsigned xc = dclass(x->dtype), yc = dclass(y->dtype);
    if (!(yc & F_NUM)) return OX_EUNSUPPORTED;
    walk w;
    if (!walk_init(&w, 2, in)) {
        char a[256], b[256];
        return bad(g, n, "input shapes do not broadcast (%s with %s)", shape_str(x, a, sizeof a),
                   shape_str(y, b, sizeof b));
    }
    ox_tensor *t = out_tensor(g, x->dtype, w.rank, w.dims);
    if (!t) return no_output(g);
    int64_t numel = ox_tensor_numel(t);
    for (int64_t e = 0; e < numel; e++, walk_next(&w)) {
        num a = load(x, w.off[0]), b = load(y, w.off[1]), r;
        if (xc == F_FLOAT || yc == F_FLOAT) {
            double fa = xc == F_FLOAT ? a.f : xc == F_SINT ? (double)a.i : (double)a.u;
            double fb = yc == F_FLOAT ? b.f : yc == F_SINT ? (double)b.i : (double)b.u;
            num p = {.f = pow(fa, fb)};
            if (!convert(p, F_FLOAT, x->dtype, &r)) return OX_EUNSUPPORTED;
        } else if (yc == F_SINT && b.i < 0) {
            /* integers to negative powers: defined only for bases 1 and -1 */
            if (xc == F_SINT && a.i == -1) r.i = b.u & 1 ? -1 : 1;
            else if (a.u == 1) r.u = 1;
            else return OX_EUNSUPPORTED;
        } else if (!ipow(xc, dbits(x->dtype), a, b.u, &r)) {
            return OX_EUNSUPPORTED;
        }
        store(t, e, r);
    }
    *out = t;
    return OX_OK;
}

enum { U_NEG, U_ABS, U_SQRT, U_RECIPROCAL, U_EXP, U_LOG, U_FLOOR, U_CEIL, U_NOT, U_COS, U_SIN };

static ox_code k_unary(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int op) {
    const ox_tensor *x = in[0];
    bool fl = dclass(x->dtype) == F_FLOAT, si = dclass(x->dtype) == F_SINT;
    ox_tensor *t = out_tensor(g, x->dtype, x->rank, x->dims);
    if (!t) return no_output(g);
    int64_t numel = ox_tensor_numel(x);
    for (int64_t e = 0; e < numel; e++) {
        num v = load(x, e);
        switch (op) {
        case U_NEG:
            if (fl) v.f = -v.f;
            else v.u = 0 - v.u;
            break;
        case U_ABS:
            if (fl) v.f = fabs(v.f);
            else if (si && v.i < 0) v.u = 0 - v.u;
            break;
        case U_SQRT: v.f = sqrt(v.f); break;
        case U_RECIPROCAL: v.f = 1.0 / v.f; break;
        case U_EXP: v.f = exp(v.f); break;
        case U_LOG: v.f = log(v.f); break;
        case U_FLOOR: v.f = floor(v.f); break;
        case U_CEIL: v.f = ceil(v.f); break;
        case U_NOT: v.u = !v.u; break;
        case U_COS: v.f = cos(v.f); break;
        case U_SIN: v.f = sin(v.f); break;
        default: break;
        }
        store(t, e, v);
    }
    *out = t;
    return OX_OK;
}

/* a < b in dtype class c */
static bool num_less(num a, num b, unsigned c) {
    return c == F_FLOAT ? a.f < b.f : c == F_SINT ? a.i < b.i : a.u < b.u;
}

/* Clip(input, min?, max?): max(min, min(x, max)); NaN stays NaN, as in ONNX Runtime. */
static ox_code k_clip(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    const ox_tensor *x = in[0];
    unsigned c = dclass(x->dtype);
    num bound[2];
    bool has[2] = {false, false};
    for (int k = 0; k < 2; k++) {
        const ox_tensor *b = n->ninputs > k + 1 ? in[k + 1] : NULL;
        if (!b) continue;
        if (b->dtype != x->dtype)
            return bad(g, n, "%s is %s, input is %s", k ? "max" : "min", ox_dtype_name(b->dtype),
                       ox_dtype_name(x->dtype));
        if (ox_tensor_numel(b) != 1) return bad(g, n, "%s must be a scalar", k ? "max" : "min");
        bound[k] = load(b, 0);
        has[k] = true;
    }
    ox_tensor *t = out_tensor(g, x->dtype, x->rank, x->dims);
    if (!t) return no_output(g);
    int64_t numel = ox_tensor_numel(x);
    for (int64_t e = 0; e < numel; e++) {
        num v = load(x, e);
        if (has[0] && num_less(v, bound[0], c)) v = bound[0];
        if (has[1] && num_less(bound[1], v, c)) v = bound[1];
        store(t, e, v);
    }
    *out = t;
    return OX_OK;
}

static ox_code k_range(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    static const char *const names[3] = {"start", "limit", "delta"};
    for (int k = 0; k < 3; k++) {
        if (in[k]->dtype != in[0]->dtype)
            return bad(g, n, "%s is %s, start is %s", names[k], ox_dtype_name(in[k]->dtype),
                       ox_dtype_name(in[0]->dtype));
        if (in[k]->rank > 1 || ox_tensor_numel(in[k]) != 1) return bad(g, n, "%s must be a scalar", names[k]);
    }
    ox_dtype dt = in[0]->dtype;
    num s = load(in[0], 0), l = load(in[1], 0), d = load(in[2], 0);
    uint64_t count = 0;
    if (dclass(dt) == F_FLOAT) {
        if (d.f == 0) return bad(g, n, "delta is 0");
        double c = ceil((l.f - s.f) / d.f);
        if (isnan(c) || c > (double)(MAX_OUT / ox_dtype_size(dt))) return OX_EUNSUPPORTED;
        count = c > 0 ? (uint64_t)c : 0;
    } else {
        if (d.i == 0) return bad(g, n, "delta is 0");
        /* |limit - start| as uint64 is exact even where int64 subtraction would overflow */
        uint64_t span = d.i > 0 ? (l.i > s.i ? l.u - s.u : 0) : (s.i > l.i ? s.u - l.u : 0);
        uint64_t step = d.i > 0 ? d.u : 0 - d.u;
        count = span / step + (span % step != 0);
        if (count > MAX_OUT / ox_dtype_size(dt)) return OX_EUNSUPPORTED;
    }
    int64_t len = (int64_t)count;
    ox_tensor *t = out_tensor(g, dt, 1, &len);
    if (!t) return no_output(g);
    for (int64_t i = 0; i < len; i++) {
        num v;
        if (dclass(dt) == F_FLOAT) v.f = s.f + (double)i * d.f;
        else v.u = s.u + (uint64_t)i * d.u;
        store(t, i, v);
    }
    *out = t;
    return OX_OK;
}

/* ---- reductions ---- */

enum { R_SUM, R_PROD, R_MAX, R_MIN };

/* The value a reduction over no elements gives: 0, 1, the lowest or the highest of the dtype. */
static num reduce_init(int op, ox_dtype dt) {
    unsigned k = dclass(dt);
    int bits = dbits(dt);
    num v = {.u = 0};
    switch (op) {
    case R_SUM:
        if (k == F_FLOAT) v.f = 0;
        break;
    case R_PROD:
        if (k == F_FLOAT) v.f = 1;
        else v.u = 1;
        break;
    case R_MAX:
        if (k == F_FLOAT) v.f = -INFINITY;
        else if (k == F_SINT) v.u = (uint64_t)0 - ((uint64_t)1 << (bits - 1));
        break;
    case R_MIN:
        if (k == F_FLOAT) v.f = INFINITY;
        else if (k == F_SINT) v.u = ((uint64_t)1 << (bits - 1)) - 1;
        else v.u = k == F_BOOL ? 1 : bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
        break;
    default: break;
    }
    return v;
}

/* acc combined with v. Integer sums and products are exact or refused (false): ONNX Runtime
 * saturates where numpy wraps, so a result that does not fit the dtype is left to the runtime. */
static bool reduce_step(int op, ox_dtype dt, num *acc, num v) {
    unsigned k = dclass(dt);
    if (op == R_MAX || op == R_MIN) {
        arith(op == R_MAX ? B_MAX : B_MIN, k == F_BOOL ? F_UINT : k, *acc, v, acc);
        return true;
    }
    if (k == F_FLOAT) {
        if (op == R_SUM) acc->f += v.f;
        else acc->f *= v.f;
        return true;
    }
    return op == R_SUM ? add_fits(k, dbits(dt), *acc, v, acc) : mul_fits(k, dbits(dt), *acc, v, acc);
}

static ox_code k_reduce(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int op) {
    const ox_tensor *x = in[0];
    int r = x->rank, na;
    int64_t axes[OX_MAX_RANK];
    bool given, red[OX_MAX_RANK] = {0};
    ox_code rc = int_list(g, n, n->ninputs > 1 ? in[1] : NULL, "axes", "axes", axes, &na, &given);
    if (rc != OX_OK) return rc;
    bool keepdims = ox_node_attr_int(n, "keepdims", 1) != 0;
    if (na == 0) {
        if (ox_node_attr_int(n, "noop_with_empty_axes", 0)) return k_identity(g, n, in, out, 0);
        for (int i = 0; i < r; i++) red[i] = true;
    }
    for (int i = 0; i < na; i++) {
        int64_t a = axes[i];
        if (!norm_axis(&a, r)) return bad(g, n, "axis %lld out of range for rank %d", (long long)axes[i], r);
        if (red[a]) return bad(g, n, "axis %lld is repeated", (long long)axes[i]);
        red[a] = true;
    }
    /* Output elements walk the kept dims; each sums (or ...) over the reduced dims. */
    int64_t xs[OX_MAX_RANK], odims[OX_MAX_RANK], kdims[OX_MAX_RANK], kstr[OX_MAX_RANK], rdims[OX_MAX_RANK],
        rstr[OX_MAX_RANK];
    int orank = 0, nk = 0, nr = 0;
    int64_t inner = 1;
    row_major_strides(x, xs);
    for (int i = 0; i < r; i++) {
        /* ONNX Runtime refuses Max and Min of bool over nothing; the spec's "lowest value" is false */
        if (red[i] && !x->dims[i] && x->dtype == OX_BOOL && (op == R_MAX || op == R_MIN)) return OX_EUNSUPPORTED;
        if (red[i]) {
            rdims[nr] = x->dims[i];
            rstr[nr++] = xs[i];
            inner *= x->dims[i];
            if (keepdims) odims[orank++] = 1;
        } else {
            kdims[nk] = x->dims[i];
            kstr[nk++] = xs[i];
            odims[orank++] = x->dims[i];
        }
    }
    ox_tensor *t = out_tensor(g, x->dtype, orank, odims);
    if (!t) return no_output(g);
    int64_t numel = ox_tensor_numel(t), kidx[OX_MAX_RANK] = {0}, base = 0;
    for (int64_t e = 0; e < numel; e++) {
        num acc = reduce_init(op, x->dtype);
        int64_t ridx[OX_MAX_RANK] = {0}, off = base;
        for (int64_t j = 0; j < inner; j++) {
            if (!reduce_step(op, x->dtype, &acc, load(x, off))) return OX_EUNSUPPORTED;
            odometer_next(nr, ridx, rdims, rstr, &off);
        }
        store(t, e, acc);
        odometer_next(nk, kidx, kdims, kstr, &base);
    }
    *out = t;
    return OX_OK;
}

/* CumSum along the axis input (a scalar or one element): sums as ReduceSum makes them, in double
 * for floats and exactly or not at all for integers. exclusive leaves out the element itself,
 * reverse sums from the end. */
static ox_code k_cumsum(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out, int arg) {
    const ox_tensor *x = in[0], *ax = in[1];
    if (ax->dtype != OX_INT64 && ax->dtype != OX_INT32)
        return bad(g, n, "axis must be int32 or int64, not %s", ox_dtype_name(ax->dtype));
    if (ax->rank > 1 || ox_tensor_numel(ax) != 1) return bad(g, n, "axis must be a scalar");
    int64_t axis = load(ax, 0).i;
    if (x->rank < 1) return bad(g, n, "input must have rank 1 or more, not 0");
    if (!norm_axis(&axis, x->rank))
        return bad(g, n, "axis %lld out of range for rank %d", (long long)load(ax, 0).i, x->rank);
    bool exclusive = ox_node_attr_int(n, "exclusive", 0) != 0, reverse = ox_node_attr_int(n, "reverse", 0) != 0;
    ox_tensor *t = out_tensor(g, x->dtype, x->rank, x->dims);
    if (!t) return no_output(g);
    int64_t outer = 1, inner = 1, len = x->dims[axis];
    for (int i = 0; i < axis; i++) outer *= x->dims[i];
    for (int i = (int)axis + 1; i < x->rank; i++) inner *= x->dims[i];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            num acc = reduce_init(R_SUM, x->dtype);
            for (int64_t s = 0; s < len; s++) {
                int64_t e = (o * len + (reverse ? len - 1 - s : s)) * inner + j;
                if (exclusive) store(t, e, acc);
                if (!reduce_step(R_SUM, x->dtype, &acc, load(x, e))) return OX_EUNSUPPORTED;
                if (!exclusive) store(t, e, acc);
            }
        }
    *out = t;
    return OX_OK;
}

/* ---- the table ---- */

typedef struct {
    const char *op;
    int min_in, max_in; /* max_in -1: variadic, every input required */
    unsigned dtypes; /* classes input 0 may have */
    bool shape_only; /* input 0's bytes are not read: folds fake weights too */
    kernel_fn fn;
    int arg;
} kernel;

static const kernel kernels[] = {
    {"Identity", 1, 1, F_ANY, false, k_identity, 0},
    {"Cast", 1, 1, F_NUM | F_BOOL, false, k_cast, 0},
    {"Shape", 1, 1, F_ANY, true, k_shape, 0},
    {"Size", 1, 1, F_ANY, true, k_size, 0},
    {"Gather", 2, 2, F_ANY, false, k_gather, 0},
    {"GatherND", 2, 2, F_ANY, false, k_gather_nd, 0},
    {"Concat", 1, -1, F_ANY, false, k_concat, 0},
    {"Reshape", 2, 2, F_ANY, false, k_reshape, 0},
    {"Squeeze", 1, 2, F_ANY, false, k_squeeze, 0},
    {"Unsqueeze", 1, 2, F_ANY, false, k_unsqueeze, 0},
    {"Slice", 1, 5, F_ANY, false, k_slice, 0},
    {"Transpose", 1, 1, F_ANY, false, k_transpose, 0},
    {"Expand", 2, 2, F_ANY, false, k_expand, 0},
    {"Tile", 2, 2, F_ANY, false, k_tile, 0},
    {"Clip", 1, 3, F_NUM, false, k_clip, 0},
    {"Where", 3, 3, F_ANY, false, k_where, 0},
    {"Range", 3, 3, F_FLOAT | F_SINT, false, k_range, 0},

    {"Add", 2, 2, F_NUM, false, k_binary, B_ADD},
    {"Sub", 2, 2, F_NUM, false, k_binary, B_SUB},
    {"Mul", 2, 2, F_NUM, false, k_binary, B_MUL},
    {"Div", 2, 2, F_NUM, false, k_binary, B_DIV},
    {"Mod", 2, 2, F_NUM, false, k_binary, B_MOD},
    {"Min", 1, -1, F_NUM, false, k_binary, B_MIN},
    {"Max", 1, -1, F_NUM, false, k_binary, B_MAX},
    {"Pow", 2, 2, F_FLOAT | F_SINT, false, k_pow, 0},
    {"Equal", 2, 2, F_NUM | F_BOOL, false, k_binary, B_EQ},
    {"Less", 2, 2, F_NUM, false, k_binary, B_LT},
    {"LessOrEqual", 2, 2, F_NUM, false, k_binary, B_LE},
    {"Greater", 2, 2, F_NUM, false, k_binary, B_GT},
    {"GreaterOrEqual", 2, 2, F_NUM, false, k_binary, B_GE},
    {"And", 2, 2, F_BOOL, false, k_binary, B_AND},
    {"Or", 2, 2, F_BOOL, false, k_binary, B_OR},
    {"Xor", 2, 2, F_BOOL, false, k_binary, B_XOR},

    {"Neg", 1, 1, F_FLOAT | F_SINT, false, k_unary, U_NEG},
    {"Abs", 1, 1, F_NUM, false, k_unary, U_ABS},
    {"Sqrt", 1, 1, F_FLOAT, false, k_unary, U_SQRT},
    {"Reciprocal", 1, 1, F_FLOAT, false, k_unary, U_RECIPROCAL},
    {"Exp", 1, 1, F_FLOAT, false, k_unary, U_EXP},
    {"Log", 1, 1, F_FLOAT, false, k_unary, U_LOG},
    {"Floor", 1, 1, F_FLOAT, false, k_unary, U_FLOOR},
    {"Ceil", 1, 1, F_FLOAT, false, k_unary, U_CEIL},
    {"Not", 1, 1, F_BOOL, false, k_unary, U_NOT},
    {"Cos", 1, 1, F_FLOAT, false, k_unary, U_COS},
    {"Sin", 1, 1, F_FLOAT, false, k_unary, U_SIN},

    {"ReduceSum", 1, 2, F_NUM, false, k_reduce, R_SUM},
    {"ReduceProd", 1, 2, F_NUM, false, k_reduce, R_PROD},
    {"ReduceMax", 1, 2, F_NUM | F_BOOL, false, k_reduce, R_MAX},
    {"ReduceMin", 1, 2, F_NUM | F_BOOL, false, k_reduce, R_MIN},
    {"CumSum", 2, 2, F_NUM, false, k_cumsum, 0},
};

static const kernel *find(const char *op) {
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        if (strcmp(kernels[i].op, op) == 0) return &kernels[i];
    return NULL;
}

bool ox_fold_has_kernel(const char *op_type) { return op_type && find(op_type) != NULL; }

/* An input the kernels may trust: a shape that matches its byte count, bytes present unless only
 * the shape is read. */
static ox_code check_input(ox_graph *g, const ox_node *n, int i, const ox_tensor *t, bool need_data) {
    size_t es = ox_dtype_size(t->dtype);
    if (!es) return OX_EUNSUPPORTED; /* strings, undefined */
    if (t->rank < 0 || (t->rank && !t->dims)) return bad(g, n, "input %d has no shape", i);
    if (t->rank > OX_MAX_RANK) return OX_EUNSUPPORTED;
    int64_t numel = ox_tensor_numel(t);
    if (numel < 0) return bad(g, n, "input %d has a negative or overflowing shape", i);
    if (!need_data) return OX_OK;
    if (ox_tensor_is_view(t) || !ox_tensor_has_data(t)) return OX_EUNSUPPORTED;
    if ((uint64_t)numel > SIZE_MAX / es || t->nbytes != (size_t)numel * es || (numel && !t->data)) {
        char buf[256];
        return bad(g, n, "input %d holds %zu bytes, its %s shape %s needs %llu", i, t->nbytes, ox_dtype_name(t->dtype),
                   shape_str(t, buf, sizeof buf), (unsigned long long)numel * (unsigned long long)es);
    }
    return OX_OK;
}

ox_code ox_fold_eval(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out) {
    if (!g || !n || !n->op_type || !out || (n->ninputs && !in)) return OX_EUNSUPPORTED;
    bool default_domain = !n->domain || !*n->domain || strcmp(n->domain, "ai.onnx") == 0;
    const kernel *k = default_domain ? find(n->op_type) : NULL;
    if (!k) return OX_EUNSUPPORTED;
    if (n->noutputs != 1) return bad(g, n, "has %d outputs, expected 1", n->noutputs);
    bool variadic = k->max_in < 0;
    if (variadic && n->ninputs > MAX_IN) return OX_EUNSUPPORTED;
    if (n->ninputs < k->min_in || (!variadic && n->ninputs > k->max_in)) {
        if (variadic) return bad(g, n, "has %d inputs, expected at least %d", n->ninputs, k->min_in);
        return bad(g, n, "has %d inputs, expected %d to %d", n->ninputs, k->min_in, k->max_in);
    }
    for (int i = 0; i < n->ninputs; i++) {
        if (!in[i]) {
            if (i < k->min_in || variadic) return bad(g, n, "input %d is missing", i);
            continue;
        }
        ox_code rc = check_input(g, n, i, in[i], !(k->shape_only && i == 0));
        if (rc != OX_OK) return rc;
    }
    if (!(dclass(in[0]->dtype) & k->dtypes)) return OX_EUNSUPPORTED;
    out[0] = NULL;
    return k->fn(g, n, in, out, k->arg);
}
