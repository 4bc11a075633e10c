/* onnx/write.c — the ONNX ModelProto writer. The wire layout is documented field by field in onnx/write.h.
 *
 * One function per message, each run in two modes: counting (out.s == NULL: only adds up the bytes
 * it would emit) and writing. A nested message is counted first for its length prefix, then written,
 * so a message at depth d is walked d times: linear in the graph, as the depth is fixed (at most 6).
 * Counting and writing share every line of field code, which is what keeps ox_model_size exact. */
#include "onnx/write.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx/extdata.h"
#include "onnx/wire.h"

enum {
    SINK_BUF = 1 << 20, /* the file writer's own buffer */
    SINK_DIRECT = 256 << 10, /* writes at least this long skip the buffer */
};
#define EXT_INLINE UINT64_MAX /* ext_off entry of an initializer whose bytes stay inline */

/* ---- output: a memory buffer or a buffered file descriptor ---- */

typedef struct sink {
    unsigned char *buf;
    size_t cap, len;
    int fd; /* -1: memory, buf is the caller's and is never flushed */
    const char *path; /* the file's final name, for messages */
    ox_error *err;
    uint64_t pos; /* bytes emitted so far */
    bool failed;
} sink;

/* write(2) until done: retries EINTR and short writes. False with errno set. */
static bool write_all(int fd, const void *p, size_t n) {
    const unsigned char *c = p;
    while (n) {
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30); /* some kernels cap at 2 GiB */
        ssize_t r = write(fd, c, chunk);
        if (r < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (r == 0) {
            errno = EIO;
            return false;
        }
        c += r;
        n -= (size_t)r;
    }
    return true;
}

static void sink_io_error(sink *s) {
    ox_error_set(s->err, OX_EIO, s->path, "cannot write '%s': %s", s->path, strerror(errno));
    s->failed = true;
}

static void sink_flush(sink *s) {
    if (s->failed || s->fd < 0 || !s->len) return;
    if (!write_all(s->fd, s->buf, s->len)) sink_io_error(s);
    s->len = 0;
}

static void sink_put(sink *s, const void *p, size_t n) {
    if (s->failed || !n) return;
    if (s->fd < 0) {
        if (n > s->cap - s->len) { /* only a size computed wrong can get here */
            ox_error_set(s->err, OX_EINVAL, NULL, "internal error: model larger than its computed size");
            s->failed = true;
            return;
        }
    } else if (n >= SINK_DIRECT) { /* tensor bytes: straight from where they are */
        sink_flush(s);
        if (!s->failed && !write_all(s->fd, p, n)) sink_io_error(s);
        s->pos += n;
        return;
    } else if (n > s->cap - s->len) {
        sink_flush(s);
        if (s->failed) return;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->pos += n;
}

/* Zero padding of the external data file (file sinks only). */
static void sink_zeros(sink *s, uint64_t n) {
    while (n && !s->failed) {
        if (s->len == s->cap) sink_flush(s);
        size_t k = s->cap - s->len;
        if (k > n) k = (size_t)n;
        memset(s->buf + s->len, 0, k);
        s->len += k;
        s->pos += k;
        n -= k;
    }
}

/* ---- fields ---- */

typedef struct out {
    sink *s; /* NULL: count only */
    size_t n; /* counted bytes; saturates at SIZE_MAX (= too large) */
} out;

static size_t sat_add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

static void put(out *o, const void *p, size_t n) {
    if (o->s) sink_put(o->s, p, n);
    else o->n = sat_add(o->n, n);
}

static void put_varint(out *o, uint64_t v) {
    if (!o->s) {
        o->n = sat_add(o->n, ox_varint_len(v));
        return;
    }
    unsigned char b[OX_VARINT_MAX];
    sink_put(o->s, b, ox_varint_encode(b, v));
}

static void put_tag(out *o, unsigned field, ox_wire wire_type) { put_varint(o, ox_wire_tag(field, wire_type)); }

static void f_varint(out *o, unsigned field, uint64_t v) {
    put_tag(o, field, OX_WIRE_VARINT);
    put_varint(o, v);
}

/* int64 and int32 fields: a negative value is its 64-bit two's complement, 10 bytes. */
static void f_int64(out *o, unsigned field, int64_t v) { f_varint(o, field, (uint64_t)v); }

static void f_float(out *o, unsigned field, float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                          (unsigned char)(u >> 24)};
    put_tag(o, field, OX_WIRE_I32);
    put(o, b, sizeof b);
}

static void f_bytes(out *o, unsigned field, const void *p, size_t n) {
    put_tag(o, field, OX_WIRE_LEN);
    put_varint(o, n);
    put(o, p, n);
}

/* A tensor's bytes: straight from where they are, or, for a view, produced a chunk at a
 * time so that the transposed weight never exists whole in memory. */
static void sink_tensor(sink *s, const ox_tensor *t) {
    if (!ox_tensor_is_view(t)) {
        sink_put(s, t->data, t->nbytes);
        return;
    }
    size_t size = ox_tensor_read_chunk(t);
    unsigned char *chunk = malloc(size ? size : 1);
    if (!chunk) {
        ox_error_set(s->err, OX_ENOMEM, NULL, "no memory for a %zu-byte write buffer", size);
        s->failed = true;
        return;
    }
    for (size_t off = 0; off < t->nbytes && !s->failed; off += size) {
        size_t n = t->nbytes - off < size ? t->nbytes - off : size;
        if (!ox_tensor_read(t, off, n, chunk)) {
            ox_error_set(s->err, OX_EINVAL, NULL, "a transposed tensor could not be read");
            s->failed = true;
            break;
        }
        sink_put(s, chunk, n);
    }
    free(chunk);
}

static void f_tensor_bytes(out *o, unsigned field, const ox_tensor *t) {
    put_tag(o, field, OX_WIRE_LEN);
    put_varint(o, t->nbytes);
    if (o->s) sink_tensor(o->s, t);
    else o->n = sat_add(o->n, t->nbytes);
}

static void f_string(out *o, unsigned field, const char *s) {
    if (!s) s = "";
    f_bytes(o, field, s, strlen(s));
}

typedef struct ctx ctx;
typedef void (*msg_fn)(const ctx *c, out *o, const void *arg);

/* A nested message: counted for its length prefix, then (when writing) written. */
static void f_msg(const ctx *c, out *o, unsigned field, msg_fn fn, const void *arg) {
    out count = {NULL, 0};
    fn(c, &count, arg);
    put_tag(o, field, OX_WIRE_LEN);
    put_varint(o, count.n);
    if (o->s) fn(c, o, arg);
    else o->n = sat_add(o->n, count.n);
}

/* Fields by name: FIELD(M, F, WT) is OX_M_F, the number of row (M, F) of onnx/fields.def, and
 * does not compile (a negative array size) unless that row declares wire type WT. Each F_ macro
 * names the wire type its helper writes, so no field goes out with a wire type its row does not
 * declare. */
#define FIELD(M, F, WT) ((void)sizeof(char[(int)OX_##M##_##F##_WIRE == (int)OX_WIRE_##WT ? 1 : -1]), OX_##M##_##F)
#define F_VARINT(o, M, F, v) f_varint(o, FIELD(M, F, VARINT), v)
#define F_INT64(o, M, F, v) f_int64(o, FIELD(M, F, VARINT), v)
#define F_FLOAT(o, M, F, v) f_float(o, FIELD(M, F, I32), v)
#define F_STRING(o, M, F, v) f_string(o, FIELD(M, F, LEN), v)
#define F_TENSOR_BYTES(o, M, F, t) f_tensor_bytes(o, FIELD(M, F, LEN), t)
#define F_MSG(c, o, M, F, fn, arg) f_msg(c, o, FIELD(M, F, LEN), fn, arg)

/* ---- messages ---- */

struct ctx {
    ox_graph *g;
    ox_save_options o; /* defaults applied */
    uint64_t *ext_off; /* per g->initializers index, EXT_INLINE when inline; NULL: none */
    uint64_t data_size; /* external data file length */
    const char **domains; /* distinct non-default node domains, in order of first use */
    uint32_t ndomains;
};

typedef struct tensor_arg {
    const ox_tensor *t;
    const char *name; /* NULL for attribute tensors */
    uint64_t off; /* external offset, or EXT_INLINE */
} tensor_arg;

typedef struct opset_arg {
    const char *domain;
    int64_t version;
} opset_arg;

static bool is_initializer(const ox_value *v) { return v->kind == OX_VALUE_INITIALIZER && v->tensor; }

/* Whether initializer v goes into the file: all of them, or with include_initializers false only
 * the constants the exporter made that owe nothing to the weights (shapes, axes, scalars), so that
 * a graph saved without its weights still has everything apply_weights cannot give back. */
static bool written(const ctx *c, const ox_value *v) {
    return is_initializer(v) && (c->o.include_initializers || !ox_tensor_is_weight(v->tensor));
}

static bool in_value_info(const ox_value *v) {
    return v->has_meta && v->kind == OX_VALUE_NODE && !v->is_output && v->producer && !v->producer->dead &&
        v->dtype != OX_UNDEFINED;
}

static const char *value_name(const ox_value *v) { return v && v->name ? v->name : ""; }

static void entry_msg(const ctx *c, out *o, const void *arg) {
    const ox_metadata_prop *p = arg;
    F_STRING(o, StringStringEntryProto, key, p->key);
    F_STRING(o, StringStringEntryProto, value, p->value);
}

static void tensor_msg(const ctx *c, out *o, const void *arg) {
    const tensor_arg *a = arg;
    const ox_tensor *t = a->t;
    for (int i = 0; i < t->rank; i++) F_INT64(o, TensorProto, dims, t->dims[i]);
    F_VARINT(o, TensorProto, data_type, (uint64_t)t->dtype);
    if (a->name) F_STRING(o, TensorProto, name, a->name);
    if (a->off == EXT_INLINE) {
        F_TENSOR_BYTES(o, TensorProto, raw_data, t);
        return;
    }
    char off[24], len[24];
    snprintf(off, sizeof off, "%" PRIu64, a->off);
    snprintf(len, sizeof len, "%" PRIu64, (uint64_t)t->nbytes);
    ox_metadata_prop e[3] = {{"location", c->o.data_location}, {"offset", off}, {"length", len}};
    for (int i = 0; i < 3; i++) F_MSG(c, o, TensorProto, external_data, entry_msg, &e[i]);
    F_VARINT(o, TensorProto, data_location, OX_TensorProto_EXTERNAL);
}

static void dim_msg(const ctx *c, out *o, const void *arg) {
    const ox_dim *d = arg;
    if (d->param) F_STRING(o, TensorShapeProto_Dimension, dim_param, d->param);
    else if (d->value >= 0) F_INT64(o, TensorShapeProto_Dimension, dim_value, d->value);
}

static void shape_msg(const ctx *c, out *o, const void *arg) {
    static const ox_dim unknown = {-1, NULL};
    const ox_value *v = arg;
    for (int i = 0; i < v->rank; i++) F_MSG(c, o, TensorShapeProto, dim, dim_msg, v->dims ? &v->dims[i] : &unknown);
}

static void tensor_type_msg(const ctx *c, out *o, const void *arg) {
    const ox_value *v = arg;
    F_VARINT(o, TypeProto_Tensor, elem_type, (uint64_t)v->dtype);
    if (v->rank >= 0) F_MSG(c, o, TypeProto_Tensor, shape, shape_msg, v);
}

static void type_msg(const ctx *c, out *o, const void *arg) {
    F_MSG(c, o, TypeProto, tensor_type, tensor_type_msg, arg);
}

static void value_info_msg(const ctx *c, out *o, const void *arg) {
    const ox_value *v = arg;
    F_STRING(o, ValueInfoProto, name, value_name(v));
    if (v->dtype != OX_UNDEFINED) F_MSG(c, o, ValueInfoProto, type, type_msg, v);
}

static void attr_msg(const ctx *c, out *o, const void *arg) {
    const ox_attr *a = arg;
    F_STRING(o, AttributeProto, name, a->name);
    switch (a->type) {
    case OX_ATTR_FLOAT: F_FLOAT(o, AttributeProto, f, a->u.f); break;
    case OX_ATTR_INT: F_INT64(o, AttributeProto, i, a->u.i); break;
    case OX_ATTR_STRING: F_STRING(o, AttributeProto, s, a->u.s); break;
    case OX_ATTR_TENSOR: {
        tensor_arg t = {a->u.t, NULL, EXT_INLINE};
        F_MSG(c, o, AttributeProto, t, tensor_msg, &t);
        break;
    }
    case OX_ATTR_FLOATS:
        for (int i = 0; i < a->u.floats.n; i++) F_FLOAT(o, AttributeProto, floats, a->u.floats.v[i]);
        break;
    case OX_ATTR_INTS:
        for (int i = 0; i < a->u.ints.n; i++) F_INT64(o, AttributeProto, ints, a->u.ints.v[i]);
        break;
    case OX_ATTR_STRINGS:
        for (int i = 0; i < a->u.strings.n; i++) F_STRING(o, AttributeProto, strings, a->u.strings.v[i]);
        break;
    }
    F_VARINT(o, AttributeProto, type, (uint64_t)a->type);
}

static void node_msg(const ctx *c, out *o, const void *arg) {
    const ox_node *n = arg;
    for (int i = 0; i < n->ninputs; i++) F_STRING(o, NodeProto, input, value_name(n->inputs[i]));
    for (int i = 0; i < n->noutputs; i++) F_STRING(o, NodeProto, output, value_name(n->outputs[i]));
    if (n->name) F_STRING(o, NodeProto, name, n->name);
    F_STRING(o, NodeProto, op_type, n->op_type);
    for (int i = 0; i < n->nattrs; i++) F_MSG(c, o, NodeProto, attribute, attr_msg, &n->attrs[i]);
    if (n->domain && *n->domain) F_STRING(o, NodeProto, domain, n->domain);
}

static void graph_msg(const ctx *c, out *o, const void *arg) {
    const ox_graph *g = c->g;
    for (uint32_t i = 0; i < g->nnodes; i++)
        if (!g->nodes[i]->dead) F_MSG(c, o, GraphProto, node, node_msg, g->nodes[i]);
    if (g->name) F_STRING(o, GraphProto, name, g->name);
    for (uint32_t i = 0; i < g->ninitializers; i++) {
        const ox_value *v = g->initializers[i];
        if (!written(c, v)) continue;
        tensor_arg t = {v->tensor, value_name(v), c->ext_off ? c->ext_off[i] : EXT_INLINE};
        F_MSG(c, o, GraphProto, initializer, tensor_msg, &t);
    }
    for (uint32_t i = 0; i < g->ninputs; i++) F_MSG(c, o, GraphProto, input, value_info_msg, g->inputs[i]);
    if (c->o.keep_initializers_as_inputs) {
        for (uint32_t i = 0; i < g->ninitializers; i++)
            if (is_initializer(g->initializers[i])) F_MSG(c, o, GraphProto, input, value_info_msg, g->initializers[i]);
    }
    for (uint32_t i = 0; i < g->noutputs; i++) F_MSG(c, o, GraphProto, output, value_info_msg, g->outputs[i]);
    for (uint32_t i = 0; i < g->nvalues; i++)
        if (in_value_info(g->values[i])) F_MSG(c, o, GraphProto, value_info, value_info_msg, g->values[i]);
}

static void opset_msg(const ctx *c, out *o, const void *arg) {
    const opset_arg *a = arg;
    F_STRING(o, OperatorSetIdProto, domain, a->domain); /* written even when "" (torch.onnx does) */
    F_INT64(o, OperatorSetIdProto, version, a->version);
}

static void model_msg(const ctx *c, out *o, const void *arg) {
    const ox_graph *g = c->g;
    F_INT64(o, ModelProto, ir_version, g->ir_version);
    F_STRING(o, ModelProto, producer_name, c->o.producer_name);
    if (c->o.producer_version && *c->o.producer_version)
        F_STRING(o, ModelProto, producer_version, c->o.producer_version);
    F_MSG(c, o, ModelProto, graph, graph_msg, NULL);
    opset_arg def = {"", g->opset};
    F_MSG(c, o, ModelProto, opset_import, opset_msg, &def);
    for (uint32_t i = 0; i < c->ndomains; i++) {
        opset_arg d = {c->domains[i], 1};
        F_MSG(c, o, ModelProto, opset_import, opset_msg, &d);
    }
    for (uint32_t i = 0; i < g->nmetadata; i++) F_MSG(c, o, ModelProto, metadata_props, entry_msg, &g->metadata[i]);
}

/* ---- planning: checks, names, opset domains, external layout, size ---- */

static void ctx_free(ctx *c) {
    free(c->ext_off);
    free(c->domains);
    c->ext_off = NULL;
    c->domains = NULL;
}

static const char *node_where(const ox_node *n) { return n->name ? n->name : n->op_type; }

static ox_code check_node(const ox_node *n, ox_error *err) {
    if (!n->op_type) return ox_error_set(err, OX_EINVAL, n->name, "node %u has no op_type", n->id);
    for (int i = 0; i < n->nattrs; i++) {
        const ox_attr *a = &n->attrs[i];
        if (!a->name)
            return ox_error_set(err, OX_EINVAL, node_where(n), "node '%s' (%s): attribute %d has no name",
                                node_where(n), n->op_type, i);
        switch (a->type) {
        case OX_ATTR_FLOAT:
        case OX_ATTR_INT:
        case OX_ATTR_STRING: break;
        case OX_ATTR_FLOATS:
        case OX_ATTR_INTS:
        case OX_ATTR_STRINGS: {
            int len = a->type == OX_ATTR_FLOATS ? a->u.floats.n :
                a->type == OX_ATTR_INTS         ? a->u.ints.n :
                                                  a->u.strings.n;
            bool null = a->type == OX_ATTR_FLOATS ? !a->u.floats.v :
                a->type == OX_ATTR_INTS           ? !a->u.ints.v :
                                                    !a->u.strings.v;
            if (len < 0 || (len > 0 && null))
                return ox_error_set(err, OX_EINVAL, node_where(n), "node '%s' (%s): attribute '%s' has a bad list",
                                    node_where(n), n->op_type, a->name);
            break;
        }
        case OX_ATTR_TENSOR:
            if (!a->u.t || !ox_tensor_has_data(a->u.t) || a->u.t->rank < 0 || (a->u.t->rank > 0 && !a->u.t->dims))
                return ox_error_set(err, OX_EINVAL, node_where(n),
                                    "node '%s' (%s): tensor attribute '%s' has no data or no dims", node_where(n),
                                    n->op_type, a->name);
            break;
        default:
            return ox_error_set(err, OX_EINVAL, node_where(n), "node '%s' (%s): attribute '%s' has unknown type %d",
                                node_where(n), n->op_type, a->name, (int)a->type);
        }
    }
    return OX_OK;
}

static bool name_value(ox_graph *g, ox_value *v) { return !v || ox_value_name(g, v) != NULL; }

/* Names every value that will be written, in writing order. False on out of memory. */
static bool name_values(ox_graph *g, const ox_save_options *o) {
    for (uint32_t i = 0; i < g->nnodes; i++) {
        ox_node *n = g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->ninputs; k++)
            if (!name_value(g, n->inputs[k])) return false;
        for (int k = 0; k < n->noutputs; k++)
            if (!name_value(g, n->outputs[k])) return false;
    }
    for (uint32_t i = 0; i < g->ninitializers; i++) {
        const ox_value *v = g->initializers[i];
        bool kept = o->include_initializers || o->keep_initializers_as_inputs ||
            (is_initializer(v) && !ox_tensor_is_weight(v->tensor));
        if (kept && is_initializer(v) && !name_value(g, g->initializers[i])) return false;
    }
    for (uint32_t i = 0; i < g->ninputs; i++)
        if (!name_value(g, g->inputs[i])) return false;
    for (uint32_t i = 0; i < g->noutputs; i++)
        if (!name_value(g, g->outputs[i])) return false;
    for (uint32_t i = 0; i < g->nvalues; i++)
        if (in_value_info(g->values[i]) && !name_value(g, g->values[i])) return false;
    return true;
}

static ox_code plan(ctx *c, ox_graph *g, const ox_save_options *opts, ox_error *err) {
    memset(c, 0, sizeof *c);
    if (!g) return ox_error_set(err, OX_EINVAL, NULL, "cannot serialize: graph is NULL");
    c->g = g;
    if (ox_graph_failed(g)) {
        ox_code code = ox_graph_status(g);
        return ox_error_set(err, code == OX_ENOMEM ? OX_ENOMEM : OX_EINVAL, g->err.where,
                            "cannot serialize a graph that has failed: %s", g->err.msg);
    }
    if (opts) c->o = *opts;
    else c->o.include_initializers = true;
    if (!c->o.producer_name) c->o.producer_name = "oxport";
    if (c->o.external_data && !ox_extdata_bare_name(c->o.data_location))
        return ox_error_set(err, OX_EINVAL, c->o.data_location,
                            "external data location '%s' must be a bare file name (no '/', not '.' "
                            "or '..')",
                            c->o.data_location ? c->o.data_location : "(null)");

    for (uint32_t i = 0; i < g->nnodes; i++) {
        ox_code rc = g->nodes[i]->dead ? OX_OK : check_node(g->nodes[i], err);
        if (rc != OX_OK) return rc;
    }

    if (!name_values(g, &c->o)) {
        ox_graph_status(g);
        return ox_error_set(err, OX_ENOMEM, NULL, "out of memory while naming values to serialize");
    }

    if (c->o.include_initializers) {
        for (uint32_t i = 0; i < g->ninitializers; i++) {
            const ox_value *v = g->initializers[i];
            if (!is_initializer(v)) continue;
            const ox_tensor *t = v->tensor;
            if (!ox_tensor_has_data(t))
                return ox_error_set(err, OX_EINVAL, v->name,
                                    "initializer '%s' has no data (fake weights): supply them with "
                                    "ONNXProgram.apply_weights() or save with include_initializers=False",
                                    v->name);
        }
    }

    /* Opset domains: the distinct ones are few (a handful of custom domains at most), so each node's
     * is looked up in those found so far. */
    for (uint32_t i = 0; i < g->nnodes; i++) {
        const ox_node *n = g->nodes[i];
        const char *d = n->domain;
        if (n->dead || !d || !*d || strcmp(d, "ai.onnx") == 0) continue;
        bool seen = false;
        for (uint32_t k = 0; k < c->ndomains && !seen; k++) seen = strcmp(c->domains[k], d) == 0;
        if (seen) continue;
        if ((c->ndomains & (c->ndomains - 1)) == 0) { /* 0, 1, 2, 4, ...: grow */
            size_t ncap = c->ndomains ? (size_t)c->ndomains * 2 : 4;
            const char **nd = realloc(c->domains, ncap * sizeof *nd);
            if (!nd) {
                ctx_free(c);
                return ox_error_set(err, OX_ENOMEM, node_where(n),
                                    "out of memory listing the opset domains to serialize");
            }
            c->domains = nd;
        }
        c->domains[c->ndomains++] = d;
    }

    if (c->o.external_data && g->ninitializers) {
        c->ext_off = malloc((size_t)g->ninitializers * sizeof *c->ext_off);
        if (!c->ext_off) {
            ctx_free(c);
            return ox_error_set(err, OX_ENOMEM, NULL, "out of memory laying out the external data");
        }
        uint64_t pos = 0;
        for (uint32_t i = 0; i < g->ninitializers; i++) {
            const ox_value *v = g->initializers[i];
            c->ext_off[i] = EXT_INLINE;
            if (!written(c, v)) continue;
            size_t nb = v->tensor->nbytes;
            if (nb == 0 || nb < c->o.external_min_bytes) continue;
            uint64_t off;
            if (!ox_extdata_place(pos, nb, &off)) {
                ctx_free(c);
                return ox_error_set(err, OX_EINVAL, v->name, "external data too large at '%s'", v->name);
            }
            c->ext_off[i] = off;
            pos = off + nb;
        }
        c->data_size = pos;
    }
    return OX_OK;
}

/* The model's size, or an error when it overflows size_t. */
static ox_code plan_size(ctx *c, size_t *size, ox_error *err) {
    out count = {NULL, 0};
    model_msg(c, &count, NULL);
    if (count.n == SIZE_MAX) return ox_error_set(err, OX_EINVAL, NULL, "model too large: its size overflows size_t");
    *size = count.n;
    return OX_OK;
}

size_t ox_model_size(ox_graph *g, const ox_save_options *o) {
    ctx c;
    ox_error err = {0};
    size_t size = 0;
    if (plan(&c, g, o, &err) == OX_OK && plan_size(&c, &size, &err) != OX_OK) size = 0;
    ctx_free(&c);
    return size;
}

ox_code ox_model_write_buffer(ox_graph *g, const ox_save_options *o, void *buf, size_t cap, size_t *written,
                              ox_error *err) {
    if (written) *written = 0;
    if (o && o->external_data)
        return ox_error_set(err, OX_EINVAL, NULL, "external data cannot be written to a buffer: save to a file");
    if (!buf && cap) return ox_error_set(err, OX_EINVAL, NULL, "buffer is NULL");
    ctx c;
    size_t size = 0;
    ox_code rc = plan(&c, g, o, err);
    if (rc == OX_OK) rc = plan_size(&c, &size, err);
    if (rc == OX_OK && size > cap) {
        if (written) *written = size;
        rc = ox_error_set(err, OX_EINVAL, NULL, "buffer of %zu bytes is too small for the %zu-byte model", cap, size);
    }
    if (rc == OX_OK) {
        sink s = {.buf = buf, .cap = cap, .fd = -1, .err = err};
        out w = {&s, 0};
        model_msg(&c, &w, NULL);
        if (!s.failed && s.pos != size)
            ox_error_set(err, OX_EINVAL, NULL, "internal error: wrote %" PRIu64 " bytes, computed %zu", s.pos, size);
        rc = s.failed || s.pos != size ? (err ? err->code : OX_EINVAL) : OX_OK;
        if (rc == OX_OK && written) *written = size;
    }
    ctx_free(&c);
    return rc;
}

/* ---- files ---- */

/* The process umask without changing it (umask(2) would race with other threads creating files):
 * Linux reports it in /proc/self/status; elsewhere assume the usual 022. */
static mode_t process_umask(void) {
    mode_t m = 022;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return m;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned v;
        if (sscanf(line, "Umask: %o", &v) == 1) {
            m = (mode_t)(v & 0777);
            break;
        }
    }
    fclose(f);
    return m;
}

typedef struct tmpfile_ {
    char *tmp; /* temporary name, NULL once renamed or removed */
    const char *target;
    int fd;
} tmpfile_;

/* A temporary file in `dir` (a prefix ending in '/', or ""), with the mode `target` will have. */
static ox_code tmp_open(tmpfile_ *f, const char *dir, size_t dirlen, const char *target, ox_error *err) {
    static const char tail[] = ".oxport-tmp-XXXXXX";
    f->target = target;
    f->fd = -1;
    f->tmp = malloc(dirlen + sizeof tail);
    if (!f->tmp) return ox_error_set(err, OX_ENOMEM, target, "out of memory saving '%s'", target);
    memcpy(f->tmp, dir, dirlen);
    memcpy(f->tmp + dirlen, tail, sizeof tail);
    f->fd = mkstemp(f->tmp);
    if (f->fd < 0) {
        int e = errno;
        free(f->tmp);
        f->tmp = NULL;
        return ox_error_set(err, OX_EIO, target, "cannot create a temporary file beside '%s': %s", target, strerror(e));
    }
    struct stat st;
    mode_t mode = stat(target, &st) == 0 ? (st.st_mode & 07777) : (0666 & ~process_umask());
    (void)fchmod(f->fd, mode); /* best effort: some file systems refuse modes */
    return OX_OK;
}

/* fsync and close; the file stays under its temporary name. */
static ox_code tmp_finish(tmpfile_ *f, ox_error *err) {
    int rc = fsync(f->fd);
    int e = errno;
    if (close(f->fd) != 0 && rc == 0 && errno != EINTR) {
        rc = -1;
        e = errno;
    }
    f->fd = -1;
    if (rc != 0) return ox_error_set(err, OX_EIO, f->target, "cannot sync '%s': %s", f->target, strerror(e));
    return OX_OK;
}

static ox_code tmp_commit(tmpfile_ *f, ox_error *err) {
    if (rename(f->tmp, f->target) != 0)
        return ox_error_set(err, OX_EIO, f->target, "cannot rename '%s' to '%s': %s", f->tmp, f->target,
                            strerror(errno));
    free(f->tmp);
    f->tmp = NULL;
    return OX_OK;
}

static void tmp_discard(tmpfile_ *f) {
    if (f->fd >= 0) close(f->fd);
    if (f->tmp) unlink(f->tmp);
    free(f->tmp);
    f->fd = -1;
    f->tmp = NULL;
}

static ox_code write_data_file(const ctx *c, sink *s) {
    const ox_graph *g = c->g;
    for (uint32_t i = 0; i < g->ninitializers && c->ext_off && !s->failed; i++) {
        if (c->ext_off[i] == EXT_INLINE) continue;
        const ox_tensor *t = g->initializers[i]->tensor;
        sink_zeros(s, c->ext_off[i] - s->pos);
        sink_tensor(s, t);
    }
    sink_flush(s);
    return s->failed ? s->err->code : OX_OK;
}

ox_code ox_model_save(ox_graph *g, const ox_save_options *o, const char *path, ox_error *err) {
    ox_error local = {0};
    if (!err) err = &local; /* the sink needs somewhere to put its messages */
    if (!path || !*path) return ox_error_set(err, OX_EINVAL, NULL, "model path is empty");
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = path + dirlen;
    if (!*base) return ox_error_set(err, OX_EINVAL, path, "model path '%s' names a folder", path);

    ctx c;
    size_t size = 0;
    ox_code rc = plan(&c, g, o, err);
    if (rc == OX_OK) rc = plan_size(&c, &size, err);
    if (rc != OX_OK) {
        ctx_free(&c);
        return rc;
    }

    char *data_path = NULL;
    unsigned char *buf = NULL;
    tmpfile_ data = {.fd = -1}, model = {.fd = -1};
    if (c.o.external_data) {
        if (strcmp(c.o.data_location, base) == 0) {
            rc = ox_error_set(err, OX_EINVAL, path,
                              "external data location '%s' is the model file "
                              "itself",
                              c.o.data_location);
            goto done;
        }
        size_t ln = strlen(c.o.data_location);
        data_path = malloc(dirlen + ln + 1);
        if (!data_path) {
            rc = ox_error_set(err, OX_ENOMEM, path, "out of memory saving '%s'", path);
            goto done;
        }
        memcpy(data_path, path, dirlen);
        memcpy(data_path + dirlen, c.o.data_location, ln + 1);
    }
    buf = malloc(SINK_BUF);
    if (!buf) {
        rc = ox_error_set(err, OX_ENOMEM, path, "out of memory saving '%s'", path);
        goto done;
    }

    if (data_path) {
        if ((rc = tmp_open(&data, path, dirlen, data_path, err)) != OX_OK) goto done;
        sink s = {.buf = buf, .cap = SINK_BUF, .fd = data.fd, .path = data_path, .err = err};
        if ((rc = write_data_file(&c, &s)) != OX_OK) goto done;
        if (s.pos != c.data_size) {
            rc = ox_error_set(err, OX_EINVAL, data_path,
                              "internal error: wrote %" PRIu64 " bytes of external data, planned %" PRIu64, s.pos,
                              c.data_size);
            goto done;
        }
        if ((rc = tmp_finish(&data, err)) != OX_OK) goto done;
    }

    if ((rc = tmp_open(&model, path, dirlen, path, err)) != OX_OK) goto done;
    sink s = {.buf = buf, .cap = SINK_BUF, .fd = model.fd, .path = path, .err = err};
    out w = {&s, 0};
    model_msg(&c, &w, NULL);
    sink_flush(&s);
    if (s.failed) {
        rc = err->code;
        goto done;
    }
    if (s.pos != size) {
        rc = ox_error_set(err, OX_EINVAL, path, "internal error: wrote %" PRIu64 " bytes, computed %zu", s.pos, size);
        goto done;
    }
    if ((rc = tmp_finish(&model, err)) != OX_OK) goto done;

    if (data_path && (rc = tmp_commit(&data, err)) != OX_OK) goto done;
    if ((rc = tmp_commit(&model, err)) != OX_OK) goto done;

    /* Make the renames durable; they have happened, so a failure here is not reported. */
    char *dir = malloc(dirlen + 2);
    if (dir) {
        if (dirlen) {
            memcpy(dir, path, dirlen);
            dir[dirlen] = 0;
        } else strcpy(dir, ".");
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }

done:
    tmp_discard(&data);
    tmp_discard(&model);
    free(buf);
    free(data_path);
    ctx_free(&c);
    return rc;
}
