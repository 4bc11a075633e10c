/*
 * onnx/read_internal.h — what the reader's two files share: read.c (wire decoding, tensors,
 * attributes, graphs, models) and read_function.c (FunctionProto). Internal to them, as SQLite's
 * btreeInt.h is to btree.c; the public contract is onnx/read.h. The functions here are hidden
 * (oxport builds with -fvisibility=hidden) and prefixed oxr_ so that they cannot clash within
 * the core's static library.
 *
 *     rctx c = {.err = err, .base = p, .a = arena, .copy_tensors = true};
 *     field f;
 *     int r;
 *     for (span s = {p, p + n}; (r = oxr_next_field(&c, &s, &f)) > 0;)
 *         if (f.num == OX_FunctionProto_name && !(name = oxr_str(&c, &f, "FunctionProto.name")))
 *             return c.err->code;
 *     if (r < 0) return c.err->code;       // malformed bytes: the message is in c.err
 *
 * Every message is walked by oxr_next_field, which checks each tag, varint and length against the
 * end of the enclosing message before anything is read. Errors go to c->err, with c->where (the
 * node being read, when set) as their place; functions that fail return false, NULL, -1 or the
 * error code, as their comments say.
 */
#ifndef OX_ONNX_READ_INTERNAL_H
#define OX_ONNX_READ_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnx/read.h"
#include "onnx/wire.h"

typedef struct span {
    const uint8_t *p, *end;
} span;

typedef struct field {
    uint32_t num;
    unsigned wt; /* ox_wire */
    uint64_t v; /* VARINT value, or the little-endian bits of I32 / I64 */
    span s; /* LEN payload */
} field;

typedef struct rctx {
    ox_error *err;
    const uint8_t *base; /* start of the bytes, for offsets in messages */
    ox_arena *a; /* results: the graph's or the function's arena */
    ox_graph *g; /* NULL when reading a function */
    ox_read_info *info; /* NULL when reading a function */
    ox_arena *ia; /* the info's arena */
    ox_read_options o;
    const char *base_dir; /* folder of external data; NULL: none */
    bool info_kept; /* the caller takes the info: mappings may outlive the call */
    bool copy_tensors; /* functions: tensor bytes are always copied */
    int depth;
    char where[256]; /* the node being read, for messages */
} rctx;

/* Sets c->err (where: c->where) and returns code. */
ox_code oxr_fail(rctx *c, ox_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
ox_code oxr_oom(rctx *c);

/* The next field of s: 1, 0 at the end of s, -1 on malformed bytes (error set). */
int oxr_next_field(rctx *c, span *s, field *f);

/* f has wire type wt; else false with OX_EFORMAT naming `what`. */
bool oxr_want(rctx *c, const field *f, unsigned wt, const char *what);

/* A string field as a C string in arena a (oxr_str: c->a). NULL on error (a string is never NULL
 * otherwise): wrong wire type, a NUL byte (OX_EUNSUPPORTED), out of memory. */
const char *oxr_str_in(rctx *c, ox_arena *a, const field *f, const char *what);
const char *oxr_str(rctx *c, const field *f, const char *what);

/* An element count that must fit an int; else false with OX_EFORMAT. */
bool oxr_int_count(rctx *c, size_t n, const char *what);

/* What a first pass over a NodeProto finds: its names and how many inputs, outputs and attributes
 * the second pass will read. */
typedef struct oxr_node_head {
    const char *name, *op_type, *domain; /* op_type "" when absent; name and domain may be NULL */
    size_t nin, nout, nattr;
} oxr_node_head;

/* The first pass over NodeProto m (node `index` of its graph): fills *h and sets c->where to name
 * the node for later messages. drops: record the fields the IR has no place for (the graph
 * reader's policy; a function body is read for inlining only). OX_OK or the error's code. */
ox_code oxr_node_head_read(rctx *c, span m, uint32_t index, bool drops, oxr_node_head *h);

/* Parses an AttributeProto into *a (in c->a). ref: where ref_attr_name goes (functions); NULL in a
 * graph, where a reference is refused. */
ox_code oxr_read_attr(rctx *c, span m, ox_attr *a, const char **ref);

/* Parses an OperatorSetIdProto into *op, its domain in arena a. */
ox_code oxr_read_opset(rctx *c, span m, ox_arena *a, ox_read_opset *op);

#endif
