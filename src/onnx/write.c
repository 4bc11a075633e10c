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
#include <dirent.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
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

/* ---- the files beside the model: names, the old model's data, leftovers ---- */

/* A set of names (the external-data locations a model references); few, so a list. */
typedef struct names {
    char **v;
    size_t n, cap;
    bool oom;
} names;

static bool names_has(const names *s, const char *p, size_t len) {
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->v[i]) == len && memcmp(s->v[i], p, len) == 0) return true;
    return false;
}

static void names_add(names *s, const char *p, size_t len) {
    if (s->oom || names_has(s, p, len)) return;
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 4;
        char **nv = realloc(s->v, ncap * sizeof *nv);
        if (!nv) {
            s->oom = true;
            return;
        }
        s->v = nv;
        s->cap = ncap;
    }
    char *c = malloc(len + 1);
    if (!c) {
        s->oom = true;
        return;
    }
    memcpy(c, p, len);
    c[len] = 0;
    s->v[s->n++] = c;
}

static void names_free(names *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* The messages that can hold a TensorProto, for the location scan. */
enum scan_kind { S_MODEL, S_FUNCTION, S_GRAPH, S_NODE, S_ATTR, S_SPARSE, S_TENSOR, S_ENTRY, S_SKIP };

static enum scan_kind scan_child(enum scan_kind k, uint64_t field) {
    switch (k) {
    case S_MODEL:
        return field == OX_ModelProto_graph ? S_GRAPH : field == OX_ModelProto_functions ? S_FUNCTION : S_SKIP;
    case S_FUNCTION: return field == OX_FunctionProto_node ? S_NODE : S_SKIP;
    case S_GRAPH:
        return field == OX_GraphProto_node            ? S_NODE :
            field == OX_GraphProto_initializer        ? S_TENSOR :
            field == OX_GraphProto_sparse_initializer ? S_SPARSE :
                                                        S_SKIP;
    case S_NODE: return field == OX_NodeProto_attribute ? S_ATTR : S_SKIP;
    case S_ATTR:
        if (field == OX_AttributeProto_t || field == OX_AttributeProto_tensors) return S_TENSOR;
        if (field == OX_AttributeProto_g || field == OX_AttributeProto_graphs) return S_GRAPH;
        if (field == OX_AttributeProto_sparse_tensor || field == OX_AttributeProto_sparse_tensors) return S_SPARSE;
        return S_SKIP;
    case S_SPARSE: return field == 1 || field == 2 ? S_TENSOR : S_SKIP; /* SparseTensorProto values, indices */
    case S_TENSOR: return field == OX_TensorProto_external_data ? S_ENTRY : S_SKIP;
    default: return S_SKIP;
    }
}

/* Adds to *out every external_data "location" of the message [p, end) of kind k. False when the
 * bytes are not a well-formed message (as far as the scan reads them) or nest deeper than 64. */
static bool scan_locations(const uint8_t *p, const uint8_t *end, enum scan_kind k, int depth, names *found) {
    const uint8_t *key = NULL, *value = NULL;
    size_t key_len = 0, value_len = 0;
    if (depth > 64) return false;
    while (p < end) {
        uint64_t tag, v;
        if (!ox_varint_decode(&p, end, &tag)) return false;
        switch (ox_wire_type(tag)) {
        case OX_WIRE_VARINT:
            if (!ox_varint_decode(&p, end, &v)) return false;
            break;
        case OX_WIRE_I64:
            if (end - p < 8) return false;
            p += 8;
            break;
        case OX_WIRE_I32:
            if (end - p < 4) return false;
            p += 4;
            break;
        case OX_WIRE_LEN: {
            if (!ox_varint_decode(&p, end, &v) || v > (uint64_t)(end - p)) return false;
            enum scan_kind c = scan_child(k, ox_wire_field(tag));
            if (k == S_ENTRY && ox_wire_field(tag) == OX_StringStringEntryProto_key) key = p, key_len = (size_t)v;
            else if (k == S_ENTRY && ox_wire_field(tag) == OX_StringStringEntryProto_value)
                value = p, value_len = (size_t)v;
            else if (c != S_SKIP && !scan_locations(p, p + v, c, depth + 1, found)) return false;
            p += v;
            break;
        }
        default: return false; /* groups are not in onnx.proto */
        }
    }
    if (k == S_ENTRY && key && key_len == 8 && memcmp(key, "location", 8) == 0 && value)
        names_add(found, (const char *)value, value_len);
    return !found->oom;
}

/* What the model file now at `path` references. */
typedef enum { OLD_NONE, OLD_KNOWN, OLD_UNKNOWN } old_state;

/* OLD_NONE: no file at path; OLD_KNOWN: its locations are in *refs; OLD_UNKNOWN: it could not
 * be read or parsed, so nothing beside it may be assumed unreferenced. O_NONBLOCK: a FIFO at
 * path must not stall the save (it is then not regular, hence OLD_UNKNOWN). */
static old_state read_old_locations(const char *path, names *refs) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return errno == ENOENT ? OLD_NONE : OLD_UNKNOWN;
    struct stat st;
    old_state r = OLD_UNKNOWN;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size <= SIZE_MAX) {
        size_t len = (size_t)st.st_size;
        void *addr = NULL;
        if (len == 0) r = OLD_KNOWN;
        else if (ox_extdata_map(fd, len, &addr) == 0) {
            r = scan_locations(addr, (const uint8_t *)addr + len, S_MODEL, 0, refs) ? OLD_KNOWN : OLD_UNKNOWN;
            ox_extdata_unmap(addr, len);
        }
    }
    close(fd);
    return r;
}

/* Temporary files are ".<model>.oxport-tmp-<pid>-<n>": hidden, named after their model and
 * their writer, so a later save of that model can tell a leftover from a save in progress. */
static const char TMP_MARK[] = ".oxport-tmp-";

/* The pid in name when it is a temporary file of model `base`, else 0. */
static long tmp_owner(const char *name, const char *base) {
    size_t bl = strlen(base);
    if (name[0] != '.' || strncmp(name + 1, base, bl) != 0 || strncmp(name + 1 + bl, TMP_MARK, sizeof TMP_MARK - 1))
        return 0;
    const char *p = name + 1 + bl + sizeof TMP_MARK - 1;
    char *e;
    long pid = strtol(p, &e, 10);
    if (e == p || *e != '-' || pid <= 0) return 0;
    return pid;
}

/* Whether name is one of the names the writer gives model `base`'s data files when it chooses:
 * "<base>.data" or "<base>.<8 hex digits>.data". */
static bool own_data_name(const char *name, const char *base) {
    size_t bl = strlen(base), nl = strlen(name);
    if (nl < bl + 6 || strncmp(name, base, bl) != 0 || name[bl] != '.' || strcmp(name + nl - 5, ".data") != 0)
        return false;
    if (nl == bl + 5) return true; /* <base>.data */
    if (nl != bl + 1 + 8 + 5) return false;
    for (size_t i = bl + 1; i < bl + 9; i++)
        if (!strchr("0123456789abcdef", name[i])) return false;
    return true;
}

/* Removes from the folder (open as dfd) the leftovers of earlier saves of `base`: temporary files
 * whose writer is gone (any but ours while we hold the folder's lock: no other saver is then
 * writing in it), and, when `keep` is known (the model now in place references exactly these),
 * this model's data files that it does not reference. Returns how many were removed. */
static int remove_leftovers(int dfd, const char *base, bool locked, const names *keep) {
    int fd2 = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd2 < 0) return 0;
    DIR *d = fdopendir(fd2);
    if (!d) {
        close(fd2);
        return 0;
    }
    int removed = 0;
    long me = (long)getpid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid = tmp_owner(e->d_name, base);
        bool stale = false;
        if (pid) stale = pid != me && (locked || (kill((pid_t)pid, 0) != 0 && errno == ESRCH));
        else if (keep && locked && own_data_name(e->d_name, base))
            stale = !names_has(keep, e->d_name, strlen(e->d_name));
        struct stat st;
        if (stale && fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            unlinkat(dfd, e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

/* Four random bytes as 8 hex digits: the token of a data file name chosen per save. */
static void random_token(char tok[9]) {
    static unsigned counter;
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid() << 12 ^ __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    }
    snprintf(tok, 9, "%08" PRIx32, r);
}

/* The data file's name when the caller gave none: "<base>.data" (torch.onnx's name) unless the
 * model now in place may reference that file or something other than a regular file has the
 * name; then "<base>.<token>.data", a name no file has. NULL on out of memory or when no free
 * name was found. malloc'd. */
static char *choose_data_name(int dfd, const char *base, old_state old, const names *refs) {
    size_t bl = strlen(base);
    char *name = malloc(bl + 1 + 8 + 5 + 1);
    if (!name) return NULL;
    snprintf(name, bl + 6, "%s.data", base);
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ?
            errno == ENOENT :
            S_ISREG(st.st_mode) && old != OLD_UNKNOWN && !names_has(refs, name, strlen(name)))
        return name;
    for (int i = 0; i < 64; i++) {
        char tok[9];
        random_token(tok);
        snprintf(name, bl + 15, "%s.%s.data", base, tok);
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT) return name;
    }
    free(name);
    return NULL;
}

/* ---- writing a file under a temporary name ---- */

typedef struct tmpfile_ {
    char *tmp; /* temporary name in the folder, NULL once renamed or removed */
    const char *target; /* final name in the folder */
    const char *shown; /* the target as the caller named it, for messages */
    int dfd, fd;
} tmpfile_;

/* Creates ".<base>.oxport-tmp-<pid>-<n>" in the folder dfd, with the mode `mode`. */
static ox_code tmp_open(tmpfile_ *f, int dfd, const char *base, const char *target, const char *shown, mode_t mode,
                        ox_error *err) {
    static unsigned counter;
    f->target = target;
    f->shown = shown;
    f->dfd = dfd;
    f->fd = -1;
    size_t cap = strlen(base) + sizeof TMP_MARK + 48;
    f->tmp = malloc(cap);
    if (!f->tmp) return ox_error_set(err, OX_ENOMEM, shown, "out of memory saving '%s'", shown);
    int e = 0;
    for (int i = 0; i < 100 && f->fd < 0; i++) {
        snprintf(f->tmp, cap, ".%s%s%ld-%u", base, TMP_MARK, (long)getpid(),
                 __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
        f->fd = openat(dfd, f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        e = errno;
        if (f->fd < 0 && e != EEXIST) break;
    }
    if (f->fd < 0) {
        free(f->tmp);
        f->tmp = NULL;
        return ox_error_set(err, OX_EIO, shown, "cannot create a temporary file beside '%s': %s", shown, strerror(e));
    }
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
    if (rc != 0) return ox_error_set(err, OX_EIO, f->shown, "cannot sync '%s': %s", f->shown, strerror(e));
    return OX_OK;
}

static ox_code tmp_commit(tmpfile_ *f, ox_error *err) {
    if (renameat(f->dfd, f->tmp, f->dfd, f->target) != 0)
        return ox_error_set(err, OX_EIO, f->shown, "cannot rename '%s' to '%s': %s", f->tmp, f->shown, strerror(errno));
    free(f->tmp);
    f->tmp = NULL;
    return OX_OK;
}

static void tmp_discard(tmpfile_ *f) {
    if (f->fd >= 0) close(f->fd);
    if (f->tmp) unlinkat(f->dfd, f->tmp, 0);
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

/* The order of ox_model_save, and why each step is where it is (see write.h for the contract):
 *   1. refuse a path that is a folder, open the folder and take its lock (flock: one oxport save
 *      at a time per folder, so the leftovers of step 3 are really left over);
 *   2. read which data files the model now in place references (its "old" data);
 *   3. remove leftover temporary files of this model;
 *   4. choose the data file's name: one the old model does not reference;
 *   5. data to a temporary file, fsync, rename to its name (nothing references it yet);
 *   6. model to a temporary file, fsync, rename over the model: the commit point;
 *   7. fsync the folder; remove the old data (and this model's unreferenced data files).
 * Before 6, a failure removes what this save made; the old files are untouched throughout. */
ox_code ox_model_save(ox_graph *g, const ox_save_options *o, const char *path, ox_error *err) {
    ox_error local = {0};
    if (!err) err = &local; /* the sink needs somewhere to put its messages */
    if (!path || !*path) return ox_error_set(err, OX_EINVAL, NULL, "model path is empty");
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = path + dirlen;
    if (!*base) return ox_error_set(err, OX_EINVAL, path, "model path '%s' names a folder", path);
    struct stat pst;
    bool path_exists = stat(path, &pst) == 0;
    if (path_exists && S_ISDIR(pst.st_mode))
        return ox_error_set(err, OX_EIO, path, "cannot save to '%s': %s", path, strerror(EISDIR));
    mode_t mode = path_exists ? (pst.st_mode & 07777) : (0666 & ~process_umask());
    bool choose = o && o->external_data && o->choose_data_location && !o->data_location;
    if (o && o->external_data && !choose && !ox_extdata_bare_name(o->data_location))
        return ox_error_set(err, OX_EINVAL, o->data_location,
                            "external data location '%s' must be a bare file name (no '/', not '.' or '..')",
                            o->data_location ? o->data_location : "(null)");
    if (o && o->external_data && !choose && strcmp(o->data_location, base) == 0)
        return ox_error_set(err, OX_EINVAL, path, "external data location '%s' is the model file itself",
                            o->data_location);

    ctx c;
    memset(&c, 0, sizeof c);
    ox_code rc = OX_OK;
    size_t size = 0;
    names old = {0}, keep = {0};
    char *dir = NULL, *data_name = NULL, *data_shown = NULL;
    unsigned char *buf = NULL;
    tmpfile_ data = {.fd = -1}, model = {.fd = -1};
    bool data_placed = false;
    int dfd = -1;

    dir = malloc(dirlen + 2);
    if (!dir) {
        rc = ox_error_set(err, OX_ENOMEM, path, "out of memory saving '%s'", path);
        goto done;
    }
    if (dirlen) {
        memcpy(dir, path, dirlen);
        dir[dirlen] = 0;
    } else strcpy(dir, ".");
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = ox_error_set(err, OX_EIO, path, "cannot save '%s': cannot open its folder: %s", path, strerror(errno));
        goto done;
    }
    data.dfd = model.dfd = dfd;
    /* Released when dfd is closed, or when the process dies. Best effort: without it (a file
     * system without flock) only leftovers whose writer is dead are removed. */
    bool locked = flock(dfd, LOCK_EX) == 0;

    old_state st = read_old_locations(path, &old);
    remove_leftovers(dfd, base, locked, NULL);

    ox_save_options opts = {.include_initializers = true};
    if (o) opts = *o;
    if (opts.external_data) {
        data_name = opts.data_location ? strdup(opts.data_location) : choose_data_name(dfd, base, st, &old);
        data_shown = data_name ? malloc(dirlen + strlen(data_name) + 1) : NULL;
        if (!data_shown) {
            rc = data_name ? ox_error_set(err, OX_ENOMEM, path, "out of memory saving '%s'", path) :
                             ox_error_set(err, OX_EIO, path, "no free name for the external data of '%s'", path);
            goto unlock;
        }
        memcpy(data_shown, path, dirlen);
        strcpy(data_shown + dirlen, data_name);
        opts.data_location = data_name;
    }
    rc = plan(&c, g, &opts, err);
    if (rc == OX_OK) rc = plan_size(&c, &size, err);
    if (rc != OX_OK) goto unlock;

    buf = malloc(SINK_BUF);
    if (!buf) {
        rc = ox_error_set(err, OX_ENOMEM, path, "out of memory saving '%s'", path);
        goto unlock;
    }

    /* The data file is written even when no tensor goes to it (empty): with external_data the
     * caller finds one beside the model, as with an earlier save. */
    if (data_name) {
        if ((rc = tmp_open(&data, dfd, base, data_name, data_shown, mode, err)) != OX_OK) goto unlock;
        sink s = {.buf = buf, .cap = SINK_BUF, .fd = data.fd, .path = data_shown, .err = err};
        if ((rc = write_data_file(&c, &s)) != OX_OK) goto unlock;
        if (s.pos != c.data_size) {
            rc = ox_error_set(err, OX_EINVAL, data_shown,
                              "internal error: wrote %" PRIu64 " bytes of external data, planned %" PRIu64, s.pos,
                              c.data_size);
            goto unlock;
        }
        if ((rc = tmp_finish(&data, err)) != OX_OK) goto unlock;
        if ((rc = tmp_commit(&data, err)) != OX_OK) goto unlock;
        data_placed = true;
        names_add(&keep, data_name, strlen(data_name));
    }

    if ((rc = tmp_open(&model, dfd, base, base, path, mode, err)) != OX_OK) goto unlock;
    sink s = {.buf = buf, .cap = SINK_BUF, .fd = model.fd, .path = path, .err = err};
    out w = {&s, 0};
    model_msg(&c, &w, NULL);
    sink_flush(&s);
    if (s.failed) {
        rc = err->code;
        goto unlock;
    }
    if (s.pos != size) {
        rc = ox_error_set(err, OX_EINVAL, path, "internal error: wrote %" PRIu64 " bytes, computed %zu", s.pos, size);
        goto unlock;
    }
    if ((rc = tmp_finish(&model, err)) != OX_OK) goto unlock;
    if ((rc = tmp_commit(&model, err)) != OX_OK) goto unlock; /* the commit point */
    data_placed = false; /* the data file is now the model's */

    /* Make the renames durable; they have happened, so a failure here is not reported. */
    (void)fsync(dfd);
    /* The old model's data, now unreferenced: only files named after this model ("<base>." ...),
     * so that a data file another model shares is never removed. */
    int removed = 0;
    for (size_t i = 0; st == OLD_KNOWN && i < old.n; i++) {
        const char *n = old.v[i];
        struct stat fst;
        if (strchr(n, '/') || strncmp(n, base, strlen(base)) != 0 || n[strlen(base)] != '.' ||
            names_has(&keep, n, strlen(n)))
            continue;
        if (fstatat(dfd, n, &fst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(fst.st_mode) && unlinkat(dfd, n, 0) == 0)
            removed++;
    }
    if (!keep.oom) removed += remove_leftovers(dfd, base, locked, &keep);
    if (removed) (void)fsync(dfd);

unlock:
    /* Before the commit point: the data file this save placed is referenced by nothing (its name
     * was chosen so, or, given explicitly, it replaced a file the old model did not use). */
    if (data_placed && !names_has(&old, data_name, strlen(data_name))) unlinkat(dfd, data_name, 0);
    tmp_discard(&data);
    tmp_discard(&model);
    close(dfd); /* releases the lock */
done:
    free(buf);
    free(dir);
    free(data_name);
    free(data_shown);
    names_free(&old);
    names_free(&keep);
    ctx_free(&c);
    return rc;
}
