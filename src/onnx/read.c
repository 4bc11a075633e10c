/* onnx/read.c — the bounds-checked ModelProto / FunctionProto reader; the contract is in
 * onnx/read.h, the wire layout in onnx/write.h, the field numbers in onnx/fields.def. Files a model
 * names (external data) are opened and mapped only through onnx/extdata.c.
 *
 * Every message is walked by oxr_next_field(), which checks each tag, varint and length against the
 * end of the enclosing message before anything is read, so no later code can step outside the buffer.
 * A message with repeated fields is walked twice: once to count (and validate) them, once to fill
 * arrays of exactly that size, so no array is ever grown and sizes come from the bytes themselves
 * (each element takes at least one byte: counts never exceed the buffer length). The graph is walked
 * once per field kind (initializers, inputs, nodes, outputs, value_info), since protobuf lets them
 * come in any order and nodes refer to the others by name. FunctionProto is read by read_function.c,
 * with the helpers declared in onnx/read_internal.h. */
#include "onnx/read.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir/hash.h"
#include "onnx/extdata.h"
#include "onnx/read_internal.h"
#include "onnx/wire.h"

/* ---- private state of ox_read_info ---- */

typedef struct mapping {
    void *addr;
    size_t len;
    dev_t dev;
    ino_t ino;
} mapping;

typedef struct file_id {
    dev_t dev;
    ino_t ino;
} file_id;

struct ox_read_priv {
    ox_arena *arena; /* owns the info, its strings and this struct */
    mapping *maps; /* malloc'd */
    size_t nmaps, cap_maps;
    file_id *ext_ids; /* malloc'd, parallel to info->externals (also malloc'd) */
    uint32_t cap_ext;
    ox_extdata_dir dir; /* the base folder, opened on the first external tensor */
};

/* ---- reading context (span, field, rctx: onnx/read_internal.h) ---- */

ox_code oxr_fail(rctx *c, ox_code code, const char *fmt, ...) {
    char msg[sizeof c->err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ox_error_set(c->err, code, c->where[0] ? c->where : NULL, "%s", msg);
}

ox_code oxr_oom(rctx *c) { return oxr_fail(c, OX_ENOMEM, "out of memory while reading the model"); }

static ox_code graph_fail(rctx *c) {
    ox_code code = ox_graph_status(c->g);
    if (code == OX_OK) code = OX_ENOMEM;
    return ox_error_set(c->err, code, c->g->err.where[0] ? c->g->err.where : NULL, "%s",
                        c->g->err.msg[0] ? c->g->err.msg : "out of memory while reading the model");
}

static ox_code malformed(rctx *c, const uint8_t *at, const char *what) {
    return oxr_fail(c, OX_EFORMAT, "malformed ONNX protobuf at byte %zu: %s", (size_t)(at - c->base), what);
}

static void drop(rctx *c, const char *what) {
    ox_read_info *in = c->info;
    if (!in) return;
    for (uint32_t i = 0; i < in->ndropped; i++)
        if (strcmp(in->dropped[i], what) == 0) return;
    if (in->ndropped < sizeof in->dropped / sizeof in->dropped[0]) in->dropped[in->ndropped++] = what;
}

/* ---- the wire ---- */

int oxr_next_field(rctx *c, span *s, field *f) {
    if (s->p >= s->end) return 0;
    const uint8_t *at = s->p;
    uint64_t tag;
    if (!ox_varint_decode(&s->p, s->end, &tag)) return malformed(c, at, "truncated or overlong tag"), -1;
    if (ox_wire_field(tag) == 0 || ox_wire_field(tag) > OX_FIELD_MAX) return malformed(c, at, "bad field number"), -1;
    f->num = (uint32_t)ox_wire_field(tag);
    f->wt = ox_wire_type(tag);
    f->v = 0;
    f->s = (span){NULL, NULL};
    size_t left;
    switch (f->wt) {
    case OX_WIRE_VARINT:
        if (!ox_varint_decode(&s->p, s->end, &f->v)) return malformed(c, at, "truncated or overlong varint"), -1;
        return 1;
    case OX_WIRE_I64:
    case OX_WIRE_I32: {
        unsigned k = f->wt == OX_WIRE_I64 ? 8 : 4;
        if ((size_t)(s->end - s->p) < k) return malformed(c, at, "truncated fixed-size field"), -1;
        f->v = ox_wire_le(s->p, k);
        s->p += k;
        return 1;
    }
    case OX_WIRE_LEN: {
        uint64_t len;
        if (!ox_varint_decode(&s->p, s->end, &len)) return malformed(c, at, "truncated length"), -1;
        left = (size_t)(s->end - s->p);
        if (len > left) return malformed(c, at, "length past the end of its message"), -1;
        f->s = (span){s->p, s->p + len};
        s->p += len;
        return 1;
    }
    case OX_WIRE_SGROUP:
    case OX_WIRE_EGROUP:
        return malformed(c, at, "group wire type (deprecated, never used by ONNX) is not supported"), -1;
    default: return malformed(c, at, "invalid wire type"), -1;
    }
}

bool oxr_want(rctx *c, const field *f, unsigned wt, const char *what) {
    if (f->wt == wt) return true;
    oxr_fail(c, OX_EFORMAT, "malformed ONNX protobuf: %s (field %u) has wire type %u, expected %u", what, f->num, f->wt,
             wt);
    return false;
}

static size_t slen(span s) { return (size_t)(s.end - s.p); }

const char *oxr_str_in(rctx *c, ox_arena *a, const field *f, const char *what) {
    if (!oxr_want(c, f, OX_WIRE_LEN, what)) return NULL;
    size_t n = slen(f->s);
    if (n && memchr(f->s.p, 0, n)) {
        oxr_fail(c, OX_EUNSUPPORTED, "%s holds a NUL byte: the IR keeps C strings", what);
        return NULL;
    }
    char *r = ox_arena_strndup(a, n ? (const char *)f->s.p : "", n);
    if (!r) oxr_oom(c);
    return r;
}

const char *oxr_str(rctx *c, const field *f, const char *what) { return oxr_str_in(c, c->a, f, what); }

static bool enter(rctx *c, const uint8_t *at) {
    if (++c->depth <= OX_READ_MAX_DEPTH) return true;
    malformed(c, at, "messages nested too deep");
    return false;
}

static void leave(rctx *c) { c->depth--; }

typedef enum scalar_kind { SC_VARINT, SC_F32, SC_F64 } scalar_kind;

/* The element(s) of a repeated scalar field, packed (one LEN field) or not (one field each).
 * Counted into *n; when dst is non-NULL also stored, `width` low bytes of each (little-endian
 * truncation: int32_data's float16 bits, bool, int8 ...), at most cap of them. */
static bool scalars(rctx *c, const field *f, scalar_kind k, uint8_t *dst, size_t width, size_t cap, size_t *n,
                    const char *what) {
    unsigned wt = k == SC_VARINT ? OX_WIRE_VARINT : k == SC_F32 ? OX_WIRE_I32 : OX_WIRE_I64;
    unsigned fixed = k == SC_F32 ? 4 : 8;
    if (f->wt == wt) {
        if (dst && *n < cap) memcpy(dst + *n * width, &f->v, width);
        (*n)++;
        return true;
    }
    if (f->wt != OX_WIRE_LEN) return oxr_want(c, f, wt, what);
    const uint8_t *p = f->s.p;
    if (k != SC_VARINT) {
        if (slen(f->s) % fixed) {
            oxr_fail(c, OX_EFORMAT, "malformed ONNX protobuf: packed %s is not a whole number of elements", what);
            return false;
        }
        for (; p < f->s.end; p += fixed) {
            uint64_t v = ox_wire_le(p, fixed);
            if (dst && *n < cap) memcpy(dst + *n * width, &v, width);
            (*n)++;
        }
        return true;
    }
    while (p < f->s.end) {
        uint64_t v;
        if (!ox_varint_decode(&p, f->s.end, &v)) {
            malformed(c, p, "truncated varint in a packed field");
            return false;
        }
        if (dst && *n < cap) memcpy(dst + *n * width, &v, width);
        (*n)++;
    }
    return true;
}

bool oxr_int_count(rctx *c, size_t n, const char *what) {
    if (n <= INT_MAX) return true;
    oxr_fail(c, OX_EFORMAT, "too many %s", what);
    return false;
}

/* ---- external data ---- */

static bool add_mapping(struct ox_read_priv *pv, mapping m) {
    if (pv->nmaps == pv->cap_maps) {
        size_t nc = pv->cap_maps ? pv->cap_maps * 2 : 4;
        mapping *nm = realloc(pv->maps, nc * sizeof *nm);
        if (!nm) return false;
        pv->maps = nm;
        pv->cap_maps = nc;
    }
    pv->maps[pv->nmaps++] = m;
    return true;
}

/* The entry of info->externals for the file st describes, added (named `loc`) when new. NULL on
 * OOM. Files are told apart by device and inode, so two spellings of one location are one file. */
static ox_read_external *note_external(rctx *c, const char *loc, const struct stat *st) {
    ox_read_info *in = c->info;
    struct ox_read_priv *pv = in->priv;
    for (uint32_t i = 0; i < in->nexternals; i++)
        if (pv->ext_ids[i].dev == st->st_dev && pv->ext_ids[i].ino == st->st_ino) return &in->externals[i];
    if (in->nexternals == pv->cap_ext) {
        if (pv->cap_ext > UINT32_MAX / 2) {
            oxr_oom(c);
            return NULL;
        }
        uint32_t nc = pv->cap_ext ? pv->cap_ext * 2 : 4;
        ox_read_external *ne = realloc(in->externals, nc * sizeof *ne);
        if (!ne) {
            oxr_oom(c);
            return NULL;
        }
        in->externals = ne;
        file_id *ni = realloc(pv->ext_ids, nc * sizeof *ni);
        if (!ni) {
            oxr_oom(c);
            return NULL;
        }
        pv->ext_ids = ni;
        pv->cap_ext = nc;
    }
    const char *name = ox_arena_strdup(c->ia, loc);
    if (!name) {
        oxr_oom(c);
        return NULL;
    }
    pv->ext_ids[in->nexternals] = (file_id){st->st_dev, st->st_ino};
    ox_read_external *e = &in->externals[in->nexternals++];
    *e = (ox_read_external){.location = name, .file_bytes = (uint64_t)st->st_size};
    return e;
}

/* The bytes [off, off + len) of external file `loc`, mapped; *ok false on error. NULL with *ok true
 * for an empty tensor in an empty file, and always with options.metadata_only (nothing is mapped:
 * the file is opened and stat'd after the same checks, and [off, off + len) checked against its
 * size). */
static const void *external_bytes(rctx *c, const char *tname, const char *loc, uint64_t off, bool has_len, uint64_t len,
                                  size_t nbytes, bool *ok) {
    *ok = false;
    struct ox_read_priv *pv = c->info ? c->info->priv : NULL;
    if (!pv || !c->o.allow_external_data) {
        oxr_fail(c, OX_EINVAL, "tensor '%s': external data ('%s') is not allowed%s", tname, loc,
                 pv ? " (set ox_read_options.allow_external_data)" : " here");
        return NULL;
    }
    if (!c->info_kept) {
        oxr_fail(c, OX_EINVAL,
                 "tensor '%s': external data ('%s') needs an ox_read_info to keep its "
                 "mapping alive",
                 tname, loc);
        return NULL;
    }
    if (!c->base_dir) {
        oxr_fail(c, OX_EINVAL,
                 "tensor '%s': external data ('%s') but no base folder "
                 "(ox_read_options.base_dir)",
                 tname, loc);
        return NULL;
    }
    const char *where = c->where[0] ? c->where : NULL;
    int fd;
    struct stat st;
    if (ox_extdata_open(&pv->dir, c->base_dir, loc, tname, c->err, where, &fd, &st) != OX_OK) return NULL;
    ox_read_external *ext = note_external(c, loc, &st);
    if (!ext) {
        close(fd);
        return NULL;
    }
    mapping *m = NULL, none = {NULL, (size_t)st.st_size, st.st_dev, st.st_ino};
    for (size_t i = 0; i < pv->nmaps; i++)
        if (pv->maps[i].dev == st.st_dev && pv->maps[i].ino == st.st_ino) m = &pv->maps[i];
    if (c->o.metadata_only) {
        if ((uint64_t)st.st_size > SIZE_MAX) {
            oxr_fail(c, OX_EINVAL, "tensor '%s': external data file '%s' is too large", tname, loc);
            close(fd);
            return NULL;
        }
        m = &none;
    }
    if (!m) {
        if ((uint64_t)st.st_size > SIZE_MAX) {
            oxr_fail(c, OX_EINVAL, "tensor '%s': external data file '%s' is too large to map", tname, loc);
            close(fd);
            return NULL;
        }
        mapping nm = {NULL, (size_t)st.st_size, st.st_dev, st.st_ino};
        int e = ox_extdata_map(fd, nm.len, &nm.addr);
        if (e) {
            oxr_fail(c, OX_EIO, "tensor '%s': cannot map external data file '%s': %s", tname, loc, strerror(e));
            close(fd);
            return NULL;
        }
        if (!add_mapping(pv, nm)) {
            ox_extdata_unmap(nm.addr, nm.len);
            close(fd);
            oxr_oom(c);
            return NULL;
        }
        m = &pv->maps[pv->nmaps - 1];
    }
    close(fd);
    if (ox_extdata_check_range(m->len, off, has_len, len, nbytes, &len, tname, loc, c->err, where) != OX_OK)
        return NULL;
    ext->referenced_bytes += len;
    ext->ntensors++;
    *ok = true;
    return m->addr ? (const uint8_t *)m->addr + off : NULL;
}

/* ---- TensorProto ---- */

/* ONNX's names of the data types the IR does not have, for messages. */
static const char *onnx_dtype_name(int64_t t) {
    static const char *names[] = {"FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4",
                                  "INT4",         "FLOAT4E2M1",     "FLOAT8E8M0", "UINT2",          "INT2"};
    if (t == OX_STRING) return "STRING";
    if (t >= 17 && t < 17 + (int64_t)(sizeof names / sizeof names[0])) return names[t - 17];
    return t <= 0 ? "UNDEFINED" : "unknown";
}

static size_t dtype_align(ox_dtype t) {
    if (t == OX_COMPLEX64) return 4;
    if (t == OX_COMPLEX128) return 8;
    return ox_dtype_size(t);
}

/* Which typed field holds elements of dtype t, and how many per element. */
static uint32_t typed_field(ox_dtype t, size_t *per) {
    *per = 1;
    switch (t) {
    case OX_FLOAT: return OX_TensorProto_float_data;
    case OX_COMPLEX64: *per = 2; return OX_TensorProto_float_data;
    case OX_DOUBLE: return OX_TensorProto_double_data;
    case OX_COMPLEX128: *per = 2; return OX_TensorProto_double_data;
    case OX_INT64: return OX_TensorProto_int64_data;
    case OX_UINT32:
    case OX_UINT64: return OX_TensorProto_uint64_data;
    default: return OX_TensorProto_int32_data; /* int32, (u)int16, (u)int8, bool, float16, bfloat16 */
    }
}

static const char *typed_field_name(uint32_t num) {
    switch (num) {
    case OX_TensorProto_float_data: return "float_data";
    case OX_TensorProto_int32_data: return "int32_data";
    case OX_TensorProto_int64_data: return "int64_data";
    case OX_TensorProto_double_data: return "double_data";
    case OX_TensorProto_uint64_data: return "uint64_data";
    default: return "?";
    }
}

/* How the elements of typed field num are encoded. */
static scalar_kind typed_kind(uint32_t num) {
    return num == OX_TensorProto_float_data ? SC_F32 : num == OX_TensorProto_double_data ? SC_F64 : SC_VARINT;
}

/* The first typed data field given (ntyped[num] > 0) other than `except`, in field-number order;
 * uint64_data, the last, when none before it is. */
static uint32_t typed_given(const size_t *ntyped, uint32_t except) {
    static const uint32_t order[] = {OX_TensorProto_float_data, OX_TensorProto_int32_data, OX_TensorProto_int64_data,
                                     OX_TensorProto_double_data};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (ntyped[order[i]] && order[i] != except) return order[i];
    return OX_TensorProto_uint64_data;
}

/* Parses a TensorProto in m into a new tensor in c->a. role names it in messages when it has no
 * name ("attribute 'value'"). *name_out (may be NULL) gets its name, or NULL when absent. */
static ox_tensor *read_tensor(rctx *c, span m, const char *role, const char **name_out) {
    if (!enter(c, m.p)) return NULL;
    ox_tensor *result = NULL;
    const char *name = NULL;
    int64_t dtype = 0, data_location = 0;
    size_t ndims = 0, ntyped[OX_TensorProto_uint64_data + 1] = {0}, nentries = 0;
    span raw = {NULL, NULL};
    bool has_raw = false;
    field f;
    int r;
    span s = m;
    while ((r = oxr_next_field(c, &s, &f)) > 0) {
        switch (f.num) {
        case OX_TensorProto_dims:
            if (!scalars(c, &f, SC_VARINT, NULL, 0, 0, &ndims, "TensorProto.dims")) goto out;
            break;
        case OX_TensorProto_data_type:
            if (!oxr_want(c, &f, OX_WIRE_VARINT, "TensorProto.data_type")) goto out;
            dtype = (int64_t)f.v;
            break;
        case OX_TensorProto_segment:
            oxr_fail(c, OX_EUNSUPPORTED, "tensor '%s': segmented tensors are not supported", name ? name : role);
            goto out;
        case OX_TensorProto_float_data:
        case OX_TensorProto_int32_data:
        case OX_TensorProto_int64_data:
        case OX_TensorProto_double_data:
        case OX_TensorProto_uint64_data:
            if (!scalars(c, &f, typed_kind(f.num), NULL, 0, 0, &ntyped[f.num], typed_field_name(f.num))) goto out;
            break;
        case OX_TensorProto_string_data:
            oxr_fail(c, OX_EUNSUPPORTED, "tensor '%s': string tensors are not supported", name ? name : role);
            goto out;
        case OX_TensorProto_name:
            if (!(name = oxr_str(c, &f, "TensorProto.name"))) goto out;
            break;
        case OX_TensorProto_raw_data:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "TensorProto.raw_data")) goto out;
            raw = f.s;
            has_raw = true;
            break;
        case OX_TensorProto_doc_string: drop(c, "TensorProto.doc_string"); break;
        case OX_TensorProto_external_data:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "TensorProto.external_data")) goto out;
            nentries++;
            break;
        case OX_TensorProto_data_location:
            if (!oxr_want(c, &f, OX_WIRE_VARINT, "TensorProto.data_location")) goto out;
            data_location = (int64_t)f.v;
            break;
        case OX_TensorProto_metadata_props: drop(c, "TensorProto.metadata_props"); break;
        default: break; /* unknown: skipped */
        }
    }
    if (r < 0) goto out;
    const char *tname = name ? name : role;
    if (dtype <= 0 || dtype >= OX_DTYPE_COUNT || dtype == OX_STRING) {
        oxr_fail(c, OX_EUNSUPPORTED, "tensor '%s': data type %s (%lld) is not supported by the IR", tname,
                 onnx_dtype_name(dtype), (long long)dtype);
        goto out;
    }
    if (!oxr_int_count(c, ndims, "tensor dims")) goto out;
    ox_tensor *t = ox_arena_alloc(c->a, sizeof *t);
    int64_t *dims = ndims ? ox_arena_array(c->a, ndims, sizeof *dims) : NULL;
    if (!t || (ndims && !dims)) {
        oxr_oom(c);
        goto out;
    }
    size_t nd = 0;
    for (s = m; (r = oxr_next_field(c, &s, &f)) > 0;)
        if (f.num == OX_TensorProto_dims &&
            !scalars(c, &f, SC_VARINT, (uint8_t *)dims, 8, ndims, &nd, "TensorProto.dims"))
            goto out;
    if (r < 0) goto out;
    for (size_t i = 0; i < ndims; i++)
        if (dims[i] < 0) {
            oxr_fail(c, OX_EFORMAT, "tensor '%s': dimension %zu is negative (%lld)", tname, i, (long long)dims[i]);
            goto out;
        }
    *t = (ox_tensor){.dtype = (ox_dtype)dtype, .rank = (int)ndims, .dims = dims};
    int64_t numel = ox_tensor_numel(t);
    size_t es = ox_dtype_size(t->dtype);
    if (numel < 0 || (uint64_t)numel > SIZE_MAX / es) {
        oxr_fail(c, OX_EFORMAT, "tensor '%s': its size overflows", tname);
        goto out;
    }
    t->nbytes = (size_t)numel * es;
    size_t per;
    uint32_t tf = typed_field(t->dtype, &per);
    size_t ntyped_total = ntyped[OX_TensorProto_float_data] + ntyped[OX_TensorProto_int32_data] +
        ntyped[OX_TensorProto_int64_data] + ntyped[OX_TensorProto_double_data] + ntyped[OX_TensorProto_uint64_data];
    bool external = data_location == OX_TensorProto_EXTERNAL;

    if (external) {
        if (has_raw || ntyped_total) {
            oxr_fail(c, OX_EFORMAT, "tensor '%s': external data and inline data both given", tname);
            goto out;
        }
        const char *loc = NULL, *offs = NULL, *lens = NULL;
        for (s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
            if (f.num != OX_TensorProto_external_data) continue;
            const char *key = NULL, *val = NULL;
            field e;
            span es_ = f.s;
            int r2;
            while ((r2 = oxr_next_field(c, &es_, &e)) > 0) {
                if (e.num == OX_StringStringEntryProto_key && !(key = oxr_str(c, &e, "external_data key"))) goto out;
                if (e.num == OX_StringStringEntryProto_value && !(val = oxr_str(c, &e, "external_data value")))
                    goto out;
            }
            if (r2 < 0) goto out;
            if (!key || !val) continue;
            if (strcmp(key, "location") == 0) loc = val;
            else if (strcmp(key, "offset") == 0) offs = val;
            else if (strcmp(key, "length") == 0) lens = val;
        }
        if (r < 0) goto out;
        if (!loc) {
            oxr_fail(c, OX_EFORMAT, "tensor '%s': external data without a location", tname);
            goto out;
        }
        uint64_t off = 0, len = 0;
        if ((offs && !ox_extdata_parse_u64(offs, &off)) || (lens && !ox_extdata_parse_u64(lens, &len))) {
            oxr_fail(c, OX_EFORMAT,
                     "tensor '%s': external data offset '%s' or length '%s' (location '%s') is "
                     "not a decimal number",
                     tname, offs ? offs : "", lens ? lens : "", loc);
            goto out;
        }
        if (c->copy_tensors) {
            oxr_fail(c, OX_EUNSUPPORTED, "tensor '%s': external data ('%s') in a function", tname, loc);
            goto out;
        }
        bool ok;
        const void *p = external_bytes(c, tname, loc, off, lens != NULL, len, t->nbytes, &ok);
        if (!ok) goto out;
        t->data = p;
        t->storage = c->o.metadata_only ? OX_DATA_ABSENT : OX_DATA_BORROWED;
        if (c->info) c->info->nexternal_tensors++;
        if (p && (uintptr_t)p % dtype_align(t->dtype) && !c->o.borrow_unaligned) {
            void *copy = ox_arena_alloc(c->a, t->nbytes);
            if (!copy) {
                oxr_oom(c);
                goto out;
            }
            memcpy(copy, p, t->nbytes);
            t->data = copy;
            t->storage = OX_DATA_OWNED;
            if (c->info) c->info->ncopied_tensors++;
        }
    } else if (has_raw) {
        if (ntyped_total) {
            oxr_fail(c, OX_EFORMAT, "tensor '%s': both raw_data and %s given", tname,
                     typed_field_name(typed_given(ntyped, 0)));
            goto out;
        }
        if (slen(raw) != t->nbytes) {
            oxr_fail(c, OX_EFORMAT, "tensor '%s': raw_data holds %zu bytes, its shape and dtype %s need %zu", tname,
                     slen(raw), ox_dtype_name(t->dtype), t->nbytes);
            goto out;
        }
        t->data = raw.p;
        t->storage = OX_DATA_BORROWED;
        bool misaligned = (uintptr_t)raw.p % dtype_align(t->dtype) != 0;
        if (c->o.metadata_only && !c->copy_tensors) {
            t->data = NULL; /* the bytes stay untouched in the file */
            t->storage = OX_DATA_ABSENT;
        } else if (c->copy_tensors || (misaligned && !c->o.borrow_unaligned)) {
            void *copy = ox_arena_alloc(c->a, t->nbytes);
            if (!copy) {
                oxr_oom(c);
                goto out;
            }
            if (t->nbytes) memcpy(copy, raw.p, t->nbytes);
            t->data = copy;
            t->storage = OX_DATA_OWNED;
            if (c->info && misaligned) c->info->ncopied_tensors++;
        }
    } else if (ntyped_total) {
        if (ntyped[tf] != ntyped_total) {
            uint32_t other = typed_given(ntyped, tf);
            oxr_fail(c, OX_EFORMAT, "tensor '%s': %s given for dtype %s (expected %s)", tname, typed_field_name(other),
                     ox_dtype_name(t->dtype), typed_field_name(tf));
            goto out;
        }
        if ((uint64_t)numel > SIZE_MAX / per || ntyped[tf] != (size_t)numel * per) {
            oxr_fail(c, OX_EFORMAT, "tensor '%s': %s holds %zu values, its shape needs %lld", tname,
                     typed_field_name(tf), ntyped[tf], (long long)numel * (long long)per);
            goto out;
        }
        if (c->o.metadata_only && !c->copy_tensors) { /* counted above; not decoded */
            t->storage = OX_DATA_ABSENT;
            if (name_out) *name_out = name;
            result = t;
            goto out;
        }
        uint8_t *d = ox_arena_alloc(c->a, t->nbytes);
        if (!d) {
            oxr_oom(c);
            goto out;
        }
        size_t width = t->nbytes / ((size_t)numel * per), n = 0;
        scalar_kind k = typed_kind(tf);
        for (s = m; (r = oxr_next_field(c, &s, &f)) > 0;)
            if (f.num == tf && !scalars(c, &f, k, d, width, (size_t)numel * per, &n, typed_field_name(tf))) goto out;
        if (r < 0) goto out;
        t->data = d;
        t->storage = OX_DATA_OWNED;
        if (c->info) c->info->ntyped_tensors++;
    } else if (t->nbytes == 0) {
        t->storage = OX_DATA_BORROWED; /* empty: all of its zero bytes are there */
    } else {
        oxr_fail(c, OX_EFORMAT, "tensor '%s' has no data (no raw_data, typed data or external data)", tname);
        goto out;
    }
    if (name_out) *name_out = name;
    result = t;
out:
    leave(c);
    return result;
}

/* ---- AttributeProto ---- */

static const char *attr_type_name(int64_t t) {
    static const char *names[] = {"UNDEFINED",      "FLOAT",      "INT",        "STRING",  "TENSOR", "GRAPH",
                                  "FLOATS",         "INTS",       "STRINGS",    "TENSORS", "GRAPHS", "SPARSE_TENSOR",
                                  "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS"};
    return t >= 0 && t < (int64_t)(sizeof names / sizeof names[0]) ? names[t] : "unknown";
}

/* See onnx/read_internal.h. */
ox_code oxr_read_attr(rctx *c, span m, ox_attr *a, const char **ref) {
    if (!enter(c, m.p)) return c->err->code;
    ox_code rc = OX_EFORMAT;
    const char *name = NULL, *refname = NULL;
    int64_t type = 0;
    bool has_type = false, has_f = false, has_i = false, has_s = false, has_t = false, has_other = false;
    int64_t other = 0, ival = 0;
    float fval = 0;
    size_t nfloats = 0, nints = 0, nstrings = 0;
    span tspan = {NULL, NULL};
    field f;
    int r;
    span s = m;
    memset(a, 0, sizeof *a);
    while ((r = oxr_next_field(c, &s, &f)) > 0) {
        switch (f.num) {
        case OX_AttributeProto_name:
            if (!(name = oxr_str(c, &f, "AttributeProto.name"))) goto out;
            break;
        case OX_AttributeProto_f: {
            if (!oxr_want(c, &f, OX_WIRE_I32, "AttributeProto.f")) goto out;
            uint32_t bits = (uint32_t)f.v;
            memcpy(&fval, &bits, sizeof bits);
            has_f = true;
            break;
        }
        case OX_AttributeProto_i:
            if (!oxr_want(c, &f, OX_WIRE_VARINT, "AttributeProto.i")) goto out;
            ival = (int64_t)f.v;
            has_i = true;
            break;
        case OX_AttributeProto_s:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "AttributeProto.s")) goto out;
            has_s = true;
            break;
        case OX_AttributeProto_t:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "AttributeProto.t")) goto out;
            tspan = f.s;
            has_t = true;
            break;
        case OX_AttributeProto_g:
            has_other = true;
            other = OX_AttributeProto_GRAPH;
            break;
        case OX_AttributeProto_floats:
            if (!scalars(c, &f, SC_F32, NULL, 0, 0, &nfloats, "AttributeProto.floats")) goto out;
            break;
        case OX_AttributeProto_ints:
            if (!scalars(c, &f, SC_VARINT, NULL, 0, 0, &nints, "AttributeProto.ints")) goto out;
            break;
        case OX_AttributeProto_strings:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "AttributeProto.strings")) goto out;
            nstrings++;
            break;
        case OX_AttributeProto_tensors:
            has_other = true;
            other = OX_AttributeProto_TENSORS;
            break;
        case OX_AttributeProto_graphs:
            has_other = true;
            other = OX_AttributeProto_GRAPHS;
            break;
        case OX_AttributeProto_doc_string: drop(c, "AttributeProto.doc_string"); break;
        case OX_AttributeProto_tp:
            has_other = true;
            other = OX_AttributeProto_TYPE_PROTO;
            break;
        case OX_AttributeProto_type_protos:
            has_other = true;
            other = OX_AttributeProto_TYPE_PROTOS;
            break;
        case OX_AttributeProto_type:
            if (!oxr_want(c, &f, OX_WIRE_VARINT, "AttributeProto.type")) goto out;
            type = (int64_t)f.v;
            has_type = true;
            break;
        case OX_AttributeProto_ref_attr_name:
            if (!(refname = oxr_str(c, &f, "AttributeProto.ref_attr_name"))) goto out;
            break;
        case OX_AttributeProto_sparse_tensor:
            has_other = true;
            other = OX_AttributeProto_SPARSE_TENSOR;
            break;
        case OX_AttributeProto_sparse_tensors:
            has_other = true;
            other = OX_AttributeProto_SPARSE_TENSORS;
            break;
        default: break;
        }
    }
    if (r < 0) goto out;
    const char *an = name ? name : "";
    if (!has_type) { /* IR version 1 had no type: infer it from the field present */
        type = has_f  ? OX_ATTR_FLOAT :
            has_i     ? OX_ATTR_INT :
            has_s     ? OX_ATTR_STRING :
            has_t     ? OX_ATTR_TENSOR :
            nfloats   ? OX_ATTR_FLOATS :
            nints     ? OX_ATTR_INTS :
            nstrings  ? OX_ATTR_STRINGS :
            has_other ? other :
                        OX_AttributeProto_UNDEFINED;
    }
    if (!name) {
        rc = oxr_fail(c, OX_EFORMAT, "%s: an attribute has no name", c->where);
        goto out;
    }
    switch (type) {
    case OX_ATTR_FLOAT:
    case OX_ATTR_INT:
    case OX_ATTR_STRING:
    case OX_ATTR_TENSOR:
    case OX_ATTR_FLOATS:
    case OX_ATTR_INTS:
    case OX_ATTR_STRINGS: break;
    default:
        rc = oxr_fail(c, type == OX_AttributeProto_UNDEFINED ? OX_EFORMAT : OX_EUNSUPPORTED,
                      "%s: attribute '%s' of type %s (%lld) is not supported%s", c->where, an, attr_type_name(type),
                      (long long)type,
                      type == OX_AttributeProto_GRAPH || type == OX_AttributeProto_GRAPHS ?
                          " (subgraphs cannot be held by the IR)" :
                          "");
        goto out;
    }
    if (refname && !ref) {
        rc = oxr_fail(c, OX_EUNSUPPORTED,
                      "%s: attribute '%s' refers to '%s' (ref_attr_name), which only a "
                      "function body may do",
                      c->where, an, refname);
        goto out;
    }
    a->name = name;
    a->type = (ox_attr_type)type;
    /* Only the union member of the type is set: a payload of another type is not kept. */
    if (type == OX_ATTR_FLOAT) a->u.f = fval;
    if (type == OX_ATTR_INT) a->u.i = ival;
    if (ref) *ref = refname;
    if (!oxr_int_count(c, nfloats, "floats") || !oxr_int_count(c, nints, "ints") ||
        !oxr_int_count(c, nstrings, "strings"))
        goto out;
    if (type == OX_ATTR_FLOATS && nfloats) {
        if (!(a->u.floats.v = ox_arena_array(c->a, nfloats, sizeof(float)))) {
            rc = oxr_oom(c);
            goto out;
        }
    } else if (type == OX_ATTR_INTS && nints) {
        if (!(a->u.ints.v = ox_arena_array(c->a, nints, sizeof(int64_t)))) {
            rc = oxr_oom(c);
            goto out;
        }
    } else if (type == OX_ATTR_STRINGS && nstrings) {
        if (!(a->u.strings.v = ox_arena_array(c->a, nstrings, sizeof(char *)))) {
            rc = oxr_oom(c);
            goto out;
        }
    }
    size_t nf = 0, ni = 0, ns = 0;
    for (s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        if (type == OX_ATTR_FLOATS && f.num == OX_AttributeProto_floats &&
            !scalars(c, &f, SC_F32, (uint8_t *)a->u.floats.v, 4, nfloats, &nf, "AttributeProto.floats"))
            goto out;
        if (type == OX_ATTR_INTS && f.num == OX_AttributeProto_ints &&
            !scalars(c, &f, SC_VARINT, (uint8_t *)a->u.ints.v, 8, nints, &ni, "AttributeProto.ints"))
            goto out;
        if (type == OX_ATTR_STRINGS && f.num == OX_AttributeProto_strings) {
            const char *v = oxr_str(c, &f, "AttributeProto.strings");
            if (!v) goto out;
            if (ns < nstrings) a->u.strings.v[ns++] = v;
        }
        if (type == OX_ATTR_STRING && f.num == OX_AttributeProto_s && !(a->u.s = oxr_str(c, &f, "AttributeProto.s")))
            goto out;
    }
    if (r < 0) goto out;
    if (type == OX_ATTR_FLOATS) a->u.floats.n = (int)nfloats;
    if (type == OX_ATTR_INTS) a->u.ints.n = (int)nints;
    if (type == OX_ATTR_STRINGS) a->u.strings.n = (int)nstrings;
    if (type == OX_ATTR_STRING && !a->u.s) a->u.s = "";
    if (type == OX_ATTR_TENSOR) {
        if (!has_t) {
            if (!refname) {
                rc = oxr_fail(c, OX_EFORMAT, "%s: tensor attribute '%s' has no tensor", c->where, an);
                goto out;
            }
        } else {
            char role[320];
            snprintf(role, sizeof role, "attribute '%s' of %s", an, c->where);
            const char *tn = NULL;
            if (!(a->u.t = read_tensor(c, tspan, role, &tn))) goto out;
            if (tn) drop(c, "name of a tensor attribute");
        }
    }
    if ((has_other && type != other) || (has_f && type != OX_ATTR_FLOAT) || (has_i && type != OX_ATTR_INT) ||
        (has_s && type != OX_ATTR_STRING) || (has_t && type != OX_ATTR_TENSOR) || (nfloats && type != OX_ATTR_FLOATS) ||
        (nints && type != OX_ATTR_INTS) || (nstrings && type != OX_ATTR_STRINGS))
        drop(c, "AttributeProto payload of another type than its type");
    rc = OX_OK;
out:
    leave(c);
    if (rc != OX_OK && c->err->code == OX_OK) rc = oxr_fail(c, rc, "%s: attribute could not be read", c->where);
    return rc == OX_OK ? OX_OK : c->err->code;
}

/* ---- value names ---- */

typedef struct vmap {
    ox_value **slots;
    uint32_t cap, count;
} vmap;

/* Keyed (ir/hash.h): the names are the file's, and an unkeyed hash let a model choose names that
 * all land in one run of slots, making the read quadratic. */
static uint64_t hash_bytes(const uint8_t *p, size_t n) { return ox_hash_bytes(p, n); }

static ox_value *vmap_get(const vmap *m, const uint8_t *p, size_t n) {
    if (!m->cap) return NULL;
    uint32_t mask = m->cap - 1;
    for (uint32_t i = (uint32_t)hash_bytes(p, n) & mask;; i = (i + 1) & mask) {
        ox_value *v = m->slots[i];
        if (!v) return NULL;
        if (strlen(v->name) == n && memcmp(v->name, p, n) == 0) return v;
    }
}

static bool vmap_put(rctx *c, vmap *m, ox_value *v) {
    if ((m->count + 1) * 2 > m->cap) {
        if (m->cap > UINT32_MAX / 4) {
            oxr_oom(c);
            return false;
        }
        uint32_t nc = m->cap ? m->cap * 2 : 64;
        ox_value **ns = ox_arena_array(c->a, nc, sizeof *ns);
        if (!ns) {
            oxr_oom(c);
            return false;
        }
        for (uint32_t j = 0; j < m->cap; j++) {
            ox_value *w = m->slots[j];
            if (!w) continue;
            uint32_t k = (uint32_t)hash_bytes((const uint8_t *)w->name, strlen(w->name)) & (nc - 1);
            while (ns[k]) k = (k + 1) & (nc - 1);
            ns[k] = w;
        }
        m->slots = ns;
        m->cap = nc;
    }
    uint32_t k = (uint32_t)hash_bytes((const uint8_t *)v->name, strlen(v->name)) & (m->cap - 1);
    while (m->slots[k]) k = (k + 1) & (m->cap - 1);
    m->slots[k] = v;
    m->count++;
    return true;
}

/* A value used before any node produces it: named, kind NODE, no producer yet. */
static bool is_placeholder(const ox_value *v) { return v->kind == OX_VALUE_NODE && !v->producer && v->name; }

/* ---- ValueInfoProto ---- */

typedef struct vinfo {
    const char *name;
    ox_dtype dtype;
    int rank; /* -1: no shape */
    ox_dim *dims;
    bool has_type;
} vinfo;

static ox_code read_shape(rctx *c, span m, vinfo *vi) {
    field f;
    int r;
    size_t n = 0;
    span s = m;
    while ((r = oxr_next_field(c, &s, &f)) > 0)
        if (f.num == OX_TensorShapeProto_dim) {
            if (!oxr_want(c, &f, OX_WIRE_LEN, "TensorShapeProto.dim")) return c->err->code;
            n++;
        }
    if (r < 0) return c->err->code;
    if (!oxr_int_count(c, n, "dimensions")) return c->err->code;
    vi->rank = (int)n;
    vi->dims = n ? ox_arena_array(c->a, n, sizeof *vi->dims) : NULL;
    if (n && !vi->dims) return oxr_oom(c);
    size_t i = 0;
    for (s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        if (f.num != OX_TensorShapeProto_dim || i >= n) continue;
        ox_dim *d = &vi->dims[i++];
        d->value = -1;
        field e;
        int r2;
        span ds = f.s;
        while ((r2 = oxr_next_field(c, &ds, &e)) > 0) {
            if (e.num == OX_TensorShapeProto_Dimension_dim_value) {
                if (!oxr_want(c, &e, OX_WIRE_VARINT, "Dimension.dim_value")) return c->err->code;
                d->value = (int64_t)e.v;
                d->param = NULL;
            } else if (e.num == OX_TensorShapeProto_Dimension_dim_param) {
                if (!(d->param = oxr_str(c, &e, "Dimension.dim_param"))) return c->err->code;
                d->value = -1;
            } else if (e.num == OX_TensorShapeProto_Dimension_denotation) {
                drop(c, "Dimension.denotation");
            }
        }
        if (r2 < 0) return c->err->code;
    }
    return r < 0 ? c->err->code : OX_OK;
}

static ox_code read_value_info(rctx *c, span m, vinfo *vi, const char *role) {
    memset(vi, 0, sizeof *vi);
    vi->rank = -1;
    if (!enter(c, m.p)) return c->err->code;
    ox_code rc = OX_OK;
    field f;
    int r;
    span s = m, type = {NULL, NULL};
    while ((r = oxr_next_field(c, &s, &f)) > 0) {
        if (f.num == OX_ValueInfoProto_name && !(vi->name = oxr_str(c, &f, "ValueInfoProto.name"))) goto fail;
        if (f.num == OX_ValueInfoProto_type) {
            if (!oxr_want(c, &f, OX_WIRE_LEN, "ValueInfoProto.type")) goto fail;
            type = f.s;
            vi->has_type = true;
        }
        if (f.num == OX_ValueInfoProto_doc_string) drop(c, "ValueInfoProto.doc_string");
        if (f.num == OX_ValueInfoProto_metadata_props) drop(c, "ValueInfoProto.metadata_props");
    }
    if (r < 0) goto fail;
    if (!vi->name) vi->name = "";
    if (vi->has_type) {
        span tensor = {NULL, NULL};
        bool has_tensor = false;
        for (s = type; (r = oxr_next_field(c, &s, &f)) > 0;) {
            if (f.num == OX_TypeProto_tensor_type) {
                if (!oxr_want(c, &f, OX_WIRE_LEN, "TypeProto.tensor_type")) goto fail;
                tensor = f.s;
                has_tensor = true;
            } else if (f.num == OX_TypeProto_sequence_type || f.num == OX_TypeProto_map_type ||
                       f.num == OX_TypeProto_sparse_tensor_type || f.num == OX_TypeProto_optional_type) {
                const char *kind = f.num == OX_TypeProto_sequence_type ? "a sequence" :
                    f.num == OX_TypeProto_map_type                     ? "a map" :
                    f.num == OX_TypeProto_sparse_tensor_type           ? "a sparse tensor" :
                                                                         "an optional";
                rc = oxr_fail(c, OX_EUNSUPPORTED, "%s '%s' has %s type: only tensor types are supported", role,
                              vi->name, kind);
                goto done;
            } else if (f.num == OX_TypeProto_denotation) {
                drop(c, "TypeProto.denotation");
            }
        }
        if (r < 0) goto fail;
        if (has_tensor) {
            for (s = tensor; (r = oxr_next_field(c, &s, &f)) > 0;) {
                if (f.num == OX_TypeProto_Tensor_elem_type) {
                    if (!oxr_want(c, &f, OX_WIRE_VARINT, "TypeProto.Tensor.elem_type")) goto fail;
                    if (f.v >= OX_DTYPE_COUNT) {
                        rc = oxr_fail(c, OX_EUNSUPPORTED,
                                      "%s '%s': element type %s (%llu) is not "
                                      "supported by the IR",
                                      role, vi->name, onnx_dtype_name(f.v > 1000 ? 1000 : (int64_t)f.v),
                                      (unsigned long long)f.v);
                        goto done;
                    }
                    vi->dtype = (ox_dtype)f.v;
                } else if (f.num == OX_TypeProto_Tensor_shape) {
                    if (!oxr_want(c, &f, OX_WIRE_LEN, "TypeProto.Tensor.shape")) goto fail;
                    if (read_shape(c, f.s, vi) != OX_OK) goto fail;
                }
            }
            if (r < 0) goto fail;
        } else {
            vi->has_type = false; /* an empty TypeProto */
        }
    }
    goto done;
fail:
    rc = c->err->code ? c->err->code : OX_EFORMAT;
done:
    leave(c);
    return rc;
}

static void apply_vinfo(ox_graph *g, ox_value *v, const vinfo *vi) {
    v->dtype = vi->dtype;
    ox_value_set_shape(g, v, vi->rank, vi->dims);
    v->has_meta = true;
}

/* ---- NodeProto in a graph ---- */

ox_code oxr_node_head_read(rctx *c, span m, uint32_t index, bool drops, oxr_node_head *h) {
    field f;
    int r;
    span s = m;
    *h = (oxr_node_head){0};
    c->where[0] = 0;
    while ((r = oxr_next_field(c, &s, &f)) > 0) {
        switch (f.num) {
        case OX_NodeProto_input:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "NodeProto.input")) return c->err->code;
            h->nin++;
            break;
        case OX_NodeProto_output:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "NodeProto.output")) return c->err->code;
            h->nout++;
            break;
        case OX_NodeProto_name:
            if (!(h->name = oxr_str(c, &f, "NodeProto.name"))) return c->err->code;
            break;
        case OX_NodeProto_op_type:
            if (!(h->op_type = oxr_str(c, &f, "NodeProto.op_type"))) return c->err->code;
            break;
        case OX_NodeProto_attribute:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "NodeProto.attribute")) return c->err->code;
            h->nattr++;
            break;
        case OX_NodeProto_domain:
            if (!(h->domain = oxr_str(c, &f, "NodeProto.domain"))) return c->err->code;
            break;
        case OX_NodeProto_doc_string:
            if (drops) drop(c, "NodeProto.doc_string");
            break;
        case OX_NodeProto_overload:
            if (drops) drop(c, "NodeProto.overload");
            break;
        case OX_NodeProto_metadata_props:
            if (drops) drop(c, "NodeProto.metadata_props");
            break;
        case OX_NodeProto_device_configurations:
            if (drops) drop(c, "NodeProto.device_configurations");
            break;
        default: break;
        }
    }
    if (r < 0) return c->err->code;
    if (!h->op_type) h->op_type = "";
    if (h->name && *h->name) snprintf(c->where, sizeof c->where, "node '%s' (%s)", h->name, h->op_type);
    else snprintf(c->where, sizeof c->where, "node #%u (%s)", index, h->op_type);
    if (!oxr_int_count(c, h->nin, "node inputs") || !oxr_int_count(c, h->nout, "node outputs") ||
        !oxr_int_count(c, h->nattr, "node attributes"))
        return c->err->code;
    return OX_OK;
}

static ox_code read_node(rctx *c, span m, uint32_t index, vmap *vm) {
    ox_graph *g = c->g;
    field f;
    int r;
    span s;
    oxr_node_head h;
    ox_code rc = oxr_node_head_read(c, m, index, true, &h);
    if (rc != OX_OK) return rc;
    const char *name = h.name, *op = h.op_type, *domain = h.domain;
    size_t nin = h.nin, nout = h.nout, nattr = h.nattr;
    if (domain && !*domain) drop(c, "empty NodeProto.domain (written as absent)");

    ox_value **ins = nin ? ox_arena_array(c->a, nin, sizeof *ins) : NULL;
    ox_attr *attrs = nattr ? ox_arena_array(c->a, nattr, sizeof *attrs) : NULL;
    if ((nin && !ins) || (nattr && !attrs)) return oxr_oom(c);
    size_t ki = 0, ka = 0;
    for (s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        if (f.num == OX_NodeProto_input && ki < nin) {
            if (!slen(f.s)) {
                ins[ki++] = NULL;
                continue;
            }
            ox_value *v = vmap_get(vm, f.s.p, slen(f.s));
            if (!v) {
                const char *vn = oxr_str(c, &f, "NodeProto.input");
                if (!vn) return c->err->code;
                if (!(v = ox_graph_add_value(g, vn, OX_UNDEFINED, -1, NULL))) return graph_fail(c);
                if (!vmap_put(c, vm, v)) return c->err->code;
            }
            ins[ki++] = v;
        } else if (f.num == OX_NodeProto_attribute && ka < nattr) {
            if (oxr_read_attr(c, f.s, &attrs[ka++], NULL) != OX_OK) return c->err->code;
        }
    }
    if (r < 0) return c->err->code;
    ox_node *n = ox_graph_add_node(g, op, domain, (int)nin, ins, (int)nout);
    if (!n) return graph_fail(c);
    n->attrs = attrs;
    n->nattrs = n->cap_attrs = (int)nattr;
    if (name) {
        if (ox_node_set_name(g, n, name) != OX_OK) return graph_fail(c);
        if (strcmp(n->name, name) != 0) n->name = name; /* keep a duplicate name as written */
    }
    size_t ko = 0;
    for (s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        if (f.num != OX_NodeProto_output || ko >= nout) continue;
        size_t i = ko++;
        if (!slen(f.s)) {
            n->outputs[i] = NULL;
            continue;
        }
        ox_value *v = vmap_get(vm, f.s.p, slen(f.s));
        if (v) {
            if (!is_placeholder(v))
                return oxr_fail(c, OX_EFORMAT, "%s: output '%s' is already %s", c->where, v->name,
                                v->kind == OX_VALUE_INPUT           ? "a graph input" :
                                    v->kind == OX_VALUE_INITIALIZER ? "an initializer" :
                                                                      "produced by another node");
            n->outputs[i]->producer = NULL; /* the fresh value stays unused */
            n->outputs[i] = v;
            v->producer = n;
        } else {
            const char *vn = oxr_str(c, &f, "NodeProto.output");
            if (!vn) return c->err->code;
            if (ox_value_set_name(g, n->outputs[i], vn) != OX_OK) return graph_fail(c);
            if (!vmap_put(c, vm, n->outputs[i])) return c->err->code;
        }
    }
    if (r < 0) return c->err->code;
    c->where[0] = 0;
    return OX_OK;
}

/* ---- GraphProto ---- */

static ox_code read_graph(rctx *c, span m) {
    ox_graph *g = c->g;
    if (!enter(c, m.p)) return c->err->code;
    vmap vm = {NULL, 0, 0};
    field f;
    int r;
    span s;
    const char *name = NULL;
    uint32_t nnodes = 0;
    ox_code rc = OX_OK;
#define CHECK_RC(x) \
    do { \
        if ((x) != OX_OK) goto fail; \
    } while (0)
    for (s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        switch (f.num) {
        case OX_GraphProto_node:
        case OX_GraphProto_initializer:
        case OX_GraphProto_input:
        case OX_GraphProto_output:
        case OX_GraphProto_value_info:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "GraphProto field")) goto fail;
            break;
        case OX_GraphProto_name:
            if (!(name = oxr_str(c, &f, "GraphProto.name"))) goto fail;
            break;
        case OX_GraphProto_doc_string: drop(c, "GraphProto.doc_string"); break;
        case OX_GraphProto_quantization_annotation: drop(c, "GraphProto.quantization_annotation"); break;
        case OX_GraphProto_sparse_initializer:
            rc = oxr_fail(c, OX_EUNSUPPORTED, "the graph has sparse initializers, which the IR cannot hold");
            goto fail;
        case OX_GraphProto_metadata_props: drop(c, "GraphProto.metadata_props"); break;
        default: break;
        }
    }
    if (r < 0) goto fail;
    g->name = name;

    /* Initializers. */
    for (s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        if (f.num != OX_GraphProto_initializer) continue;
        const char *tn = NULL;
        ox_tensor *t = read_tensor(c, f.s, "(unnamed initializer)", &tn);
        if (!t) goto fail;
        if (!tn) tn = "";
        if (vmap_get(&vm, (const uint8_t *)tn, strlen(tn))) {
            rc = oxr_fail(c, OX_EFORMAT, "initializer '%s' is given twice", tn);
            goto fail;
        }
        ox_value *v = ox_graph_adopt_tensor(g, tn, t);
        if (!v) {
            rc = graph_fail(c);
            goto fail;
        }
        if (!vmap_put(c, &vm, v)) goto fail;
    }
    if (r < 0) goto fail;

    /* Inputs; those that are initializers stay initializers. */
    bool init_inputs_in_order = true;
    for (s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        if (f.num != OX_GraphProto_input) continue;
        vinfo vi;
        CHECK_RC(read_value_info(c, f.s, &vi, "graph input"));
        ox_value *v = vmap_get(&vm, (const uint8_t *)vi.name, strlen(vi.name));
        if (v && v->kind == OX_VALUE_INITIALIZER) {
            uint32_t k = c->info->ninitializer_inputs++;
            if (k >= g->ninitializers || g->initializers[k] != v) init_inputs_in_order = false;
            continue;
        }
        if (v) {
            rc = oxr_fail(c, OX_EFORMAT, "graph input '%s' is given twice", vi.name);
            goto fail;
        }
        if (c->info->ninitializer_inputs) init_inputs_in_order = false; /* a real input after them */
        v = ox_graph_add_input(g, vi.name, vi.dtype, vi.rank, vi.dims);
        if (!v) {
            rc = graph_fail(c);
            goto fail;
        }
        if (!vi.has_type) v->dtype = OX_UNDEFINED;
        if (!vmap_put(c, &vm, v)) goto fail;
    }
    if (r < 0) goto fail;
    c->info->keep_initializers_as_inputs =
        init_inputs_in_order && c->info->ninitializer_inputs && c->info->ninitializer_inputs == g->ninitializers;

    /* Nodes. */
    for (s = m; (r = oxr_next_field(c, &s, &f)) > 0;)
        if (f.num == OX_GraphProto_node) CHECK_RC(read_node(c, f.s, nnodes++, &vm));
    if (r < 0) goto fail;
    for (uint32_t i = 0; i < g->nvalues; i++)
        if (is_placeholder(g->values[i])) {
            if (c->o.allow_undefined_values) {
                c->info->nundefined_values++;
                continue;
            }
            rc = oxr_fail(c, OX_EFORMAT,
                          "value '%s' is read by a node but is not a graph input, an initializer "
                          "or any node's output",
                          g->values[i]->name);
            goto fail;
        }

    /* Outputs. */
    for (s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        if (f.num != OX_GraphProto_output) continue;
        vinfo vi;
        CHECK_RC(read_value_info(c, f.s, &vi, "graph output"));
        ox_value *v = vmap_get(&vm, (const uint8_t *)vi.name, strlen(vi.name));
        if (!v) {
            rc =
                oxr_fail(c, OX_EFORMAT, "graph output '%s' is not produced by any node, input or initializer", vi.name);
            goto fail;
        }
        if (v->kind == OX_VALUE_NODE || v->dtype == OX_UNDEFINED) {
            if (vi.has_type) apply_vinfo(g, v, &vi);
            else {
                v->dtype = OX_UNDEFINED;
                v->rank = -1;
                v->dims = NULL;
            }
        }
        if (ox_graph_add_output(g, v) != OX_OK) {
            rc = graph_fail(c);
            goto fail;
        }
    }
    if (r < 0) goto fail;

    /* value_info: only node outputs hold it in the IR. */
    for (s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        if (f.num != OX_GraphProto_value_info) continue;
        vinfo vi;
        CHECK_RC(read_value_info(c, f.s, &vi, "value_info"));
        ox_value *v = vmap_get(&vm, (const uint8_t *)vi.name, strlen(vi.name));
        if (v && v->kind == OX_VALUE_NODE && v->producer && !v->is_output && vi.has_type && vi.dtype != OX_UNDEFINED) {
            apply_vinfo(g, v, &vi);
        } else {
            c->info->nvalue_info_dropped++;
            drop(c, "value_info not held by the IR (not a node output, or without a type)");
        }
    }
    if (r < 0) goto fail;
#undef CHECK_RC
    leave(c);
    return ox_graph_failed(g) ? graph_fail(c) : OX_OK;
fail:
    leave(c);
    if (c->err->code == OX_OK) {
        if (ox_graph_failed(g)) return graph_fail(c);
        return oxr_fail(c, rc != OX_OK ? rc : OX_EFORMAT, "the graph could not be read");
    }
    return c->err->code;
}

/* ---- ModelProto ---- */

ox_code oxr_read_opset(rctx *c, span m, ox_arena *a, ox_read_opset *op) {
    field f;
    int r;
    op->domain = "";
    op->version = 0;
    for (span s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        if (f.num == OX_OperatorSetIdProto_domain && !(op->domain = oxr_str_in(c, a, &f, "OperatorSetIdProto.domain")))
            return c->err->code;
        if (f.num == OX_OperatorSetIdProto_version) {
            if (!oxr_want(c, &f, OX_WIRE_VARINT, "OperatorSetIdProto.version")) return c->err->code;
            op->version = (int64_t)f.v;
        }
    }
    return r < 0 ? c->err->code : OX_OK;
}

static ox_code read_entry(rctx *c, span m, const char **k, const char **v) {
    field f;
    int r;
    *k = *v = "";
    for (span s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        if (f.num == OX_StringStringEntryProto_key && !(*k = oxr_str(c, &f, "StringStringEntryProto.key")))
            return c->err->code;
        if (f.num == OX_StringStringEntryProto_value && !(*v = oxr_str(c, &f, "StringStringEntryProto.value")))
            return c->err->code;
    }
    return r < 0 ? c->err->code : OX_OK;
}

static ox_code read_model(rctx *c, span m) {
    ox_graph *g = c->g;
    ox_read_info *in = c->info;
    field f;
    int r;
    span graph = {NULL, NULL};
    bool has_graph = false;
    size_t nopsets = 0, nfunctions = 0;
    for (span s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        switch (f.num) {
        case OX_ModelProto_ir_version:
            if (!oxr_want(c, &f, OX_WIRE_VARINT, "ModelProto.ir_version")) return c->err->code;
            g->ir_version = (int64_t)f.v;
            break;
        case OX_ModelProto_producer_name:
            in->producer_name = oxr_str_in(c, c->ia, &f, "ModelProto.producer_name");
            if (!in->producer_name) return c->err->code;
            break;
        case OX_ModelProto_producer_version:
            in->producer_version = oxr_str_in(c, c->ia, &f, "ModelProto.producer_version");
            if (!in->producer_version) return c->err->code;
            break;
        case OX_ModelProto_domain:
            if (!(in->domain = oxr_str_in(c, c->ia, &f, "ModelProto.domain"))) return c->err->code;
            break;
        case OX_ModelProto_model_version:
            if (!oxr_want(c, &f, OX_WIRE_VARINT, "ModelProto.model_version")) return c->err->code;
            in->model_version = (int64_t)f.v;
            in->has_model_version = true;
            break;
        case OX_ModelProto_doc_string: drop(c, "ModelProto.doc_string"); break;
        case OX_ModelProto_graph:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "ModelProto.graph")) return c->err->code;
            if (has_graph)
                return oxr_fail(c, OX_EUNSUPPORTED, "ModelProto holds two graph fields (protobuf would merge them)");
            graph = f.s;
            has_graph = true;
            break;
        case OX_ModelProto_opset_import:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "ModelProto.opset_import")) return c->err->code;
            nopsets++;
            break;
        case OX_ModelProto_metadata_props:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "ModelProto.metadata_props")) return c->err->code;
            break;
        case OX_ModelProto_training_info: drop(c, "ModelProto.training_info"); break;
        case OX_ModelProto_functions:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "ModelProto.functions")) return c->err->code;
            nfunctions++;
            break;
        case OX_ModelProto_configuration: drop(c, "ModelProto.configuration"); break;
        default: break;
        }
    }
    if (r < 0) return c->err->code;
    if (!has_graph) return oxr_fail(c, OX_EFORMAT, "malformed ONNX model: no graph (is this an ONNX file?)");
    if (nopsets > UINT32_MAX || nfunctions > UINT32_MAX) return oxr_fail(c, OX_EFORMAT, "too many opsets");
    in->opsets = nopsets ? ox_arena_array(c->ia, nopsets, sizeof *in->opsets) : NULL;
    in->functions = nfunctions ? ox_arena_array(c->ia, nfunctions, sizeof *in->functions) : NULL;
    if ((nopsets && !in->opsets) || (nfunctions && !in->functions)) return oxr_oom(c);
    g->opset = 0;
    for (span s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        if (f.num == OX_ModelProto_opset_import && in->nopsets < nopsets) {
            ox_read_opset *op = &in->opsets[in->nopsets++];
            if (oxr_read_opset(c, f.s, c->ia, op) != OX_OK) return c->err->code;
            if (!*op->domain || strcmp(op->domain, "ai.onnx") == 0) {
                if (op->version < 0 || op->version > INT_MAX)
                    return oxr_fail(c, OX_EUNSUPPORTED, "opset version %lld is out of range", (long long)op->version);
                g->opset = (int)op->version;
            }
        } else if (f.num == OX_ModelProto_functions && in->nfunctions < nfunctions) {
            in->functions[in->nfunctions++] = (ox_read_span){f.s.p, slen(f.s)};
        } else if (f.num == OX_ModelProto_metadata_props) {
            const char *k, *v;
            if (read_entry(c, f.s, &k, &v) != OX_OK) return c->err->code;
            if (ox_graph_add_metadata(g, k, v) != OX_OK) return graph_fail(c);
        }
    }
    if (r < 0) return c->err->code;
    return read_graph(c, graph);
}

/* ---- entry points ---- */

static ox_read_info *info_new(void) {
    ox_arena *a = ox_arena_new();
    if (!a) return NULL;
    ox_read_info *in = ox_arena_alloc(a, sizeof *in);
    struct ox_read_priv *pv = ox_arena_alloc(a, sizeof *pv);
    if (!in || !pv) {
        ox_arena_free(a);
        return NULL;
    }
    pv->arena = a;
    pv->dir = (ox_extdata_dir)OX_EXTDATA_DIR_INIT;
    in->priv = pv;
    return in;
}

void ox_read_info_free(ox_read_info *info) {
    if (!info) return;
    struct ox_read_priv *pv = info->priv;
    for (size_t i = 0; i < pv->nmaps; i++) ox_extdata_unmap(pv->maps[i].addr, pv->maps[i].len);
    free(pv->maps);
    free(pv->ext_ids);
    free(info->externals);
    ox_extdata_dir_close(&pv->dir);
    ox_arena_free(pv->arena); /* info and pv live in it */
}

/* Parses buf into a new graph with `in` (already made; freed on failure). */
static ox_code read_common(const void *buf, size_t n, const ox_read_options *o, const char *base_dir, ox_read_info *in,
                           ox_graph **out, ox_read_info **info, ox_error *err) {
    ox_graph *g = ox_graph_new(0);
    if (!g) {
        ox_read_info_free(in);
        return ox_error_set(err, OX_ENOMEM, NULL, "out of memory");
    }
    rctx c = {
        .err = err, .base = buf, .a = g->arena, .g = g, .info = in, .ia = in->priv->arena, .info_kept = info != NULL};
    if (o) c.o = *o;
    c.base_dir = c.o.base_dir ? c.o.base_dir : base_dir;
    const uint8_t *p = buf ? buf : (const uint8_t *)"";
    c.base = p;
    ox_code rc = read_model(&c, (span){p, p + n});
    if (rc == OX_OK && ox_graph_failed(g)) rc = graph_fail(&c);
    if (rc == OX_OK && ox_arena_oom(c.ia)) rc = oxr_oom(&c);
    ox_extdata_dir_close(&in->priv->dir); /* every external file is mapped: the folder is done */
    if (rc != OX_OK) {
        if (err && err->code == OX_OK) ox_error_set(err, rc, NULL, "the model could not be read");
        ox_graph_free(g);
        ox_read_info_free(in);
        return rc;
    }
    *out = g;
    if (info) *info = in;
    else ox_read_info_free(in); /* nothing in g points into it: no external data was allowed */
    return OX_OK;
}

ox_code ox_model_read(const void *buf, size_t n, const ox_read_options *o, ox_graph **out, ox_read_info **info,
                      ox_error *err) {
    ox_error local = {0};
    if (!err) err = &local;
    if (out) *out = NULL;
    if (info) *info = NULL;
    if (!out || (!buf && n)) return ox_error_set(err, OX_EINVAL, NULL, "ox_model_read: bad arguments");
    ox_read_info *in = info_new();
    if (!in) return ox_error_set(err, OX_ENOMEM, NULL, "out of memory");
    return read_common(buf, n, o, NULL, in, out, info, err);
}

ox_code ox_model_read_file(const char *path, const ox_read_options *o, ox_graph **out, ox_read_info **info,
                           ox_error *err) {
    ox_error local = {0};
    if (!err) err = &local;
    if (out) *out = NULL;
    if (info) *info = NULL;
    if (!path || !out || !info)
        return ox_error_set(err, OX_EINVAL, NULL, "ox_model_read_file: path, out and info are required");
    int fd;
    struct stat st;
    ox_code orc = ox_extdata_open_model(path, err, &fd, &st);
    if (orc != OX_OK) return orc;
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return ox_error_set(err, OX_EIO, path, "'%s' is too large to map", path);
    }
    ox_read_info *in = info_new();
    if (!in) {
        close(fd);
        return ox_error_set(err, OX_ENOMEM, NULL, "out of memory");
    }
    mapping m = {NULL, (size_t)st.st_size, st.st_dev, st.st_ino};
    int e = ox_extdata_map(fd, m.len, &m.addr);
    if (e) {
        close(fd);
        ox_read_info_free(in);
        return ox_error_set(err, OX_EIO, path, "cannot map '%s': %s", path, strerror(e));
    }
    close(fd);
    /* The model file is not an external data file: its identity is kept apart (dev 0, ino 0 cannot
     * match a real file's) so that a location naming the model itself is mapped on its own. */
    m.dev = 0;
    m.ino = 0;
    if (m.addr && !add_mapping(in->priv, m)) {
        ox_extdata_unmap(m.addr, m.len);
        ox_read_info_free(in);
        return ox_error_set(err, OX_ENOMEM, NULL, "out of memory");
    }
    const char *slash = strrchr(path, '/');
    const char *dir = ox_arena_strndup(in->priv->arena, slash ? path : ".", slash ? (size_t)(slash - path) : 1);
    if (dir && slash == path) dir = "/";
    if (!dir) {
        ox_read_info_free(in);
        return ox_error_set(err, OX_ENOMEM, NULL, "out of memory");
    }
    return read_common(m.addr, m.len, o, dir, in, out, info, err);
}
