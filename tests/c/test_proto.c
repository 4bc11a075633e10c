/* test_proto.c — the ModelProto writer: the wire codec it shares with the reader (onnx/wire.h),
 * exact bytes of small models, a minimal protobuf reader that walks what was written (field order,
 * nesting), the initializer modes, external data files, and the failure paths of saving (fake
 * weights, missing folder, write errors, out of memory). The minimal reader below is this test's
 * own, not onnx/wire.h's: the writer is checked against an independent decoder.
 *
 * OX_PROTO_DUMP=<folder>: also save full.onnx (every attribute type, value_info with dim_param,
 * metadata) and ext.onnx + ext.onnx.data there, for a check against the onnx package:
 *     onnx.load_from_string(b).SerializeToString() == b; onnx.checker.check_model(m)          */
#include "onnx/write.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "onnx/wire.h"

/* ---- a minimal protobuf reader over what the writer produced ---- */

typedef struct msg {
    const uint8_t *p;
    size_t len;
} msg;
typedef struct field {
    unsigned num, wt;
    uint64_t v;
    msg m;
} field;

static bool rd_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*pos >= len) return false;
        uint8_t b = p[(*pos)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}

/* Next field at *pos; false at the end. *bad is set on malformed bytes. */
static bool next_field(msg m, size_t *pos, field *f, bool *bad) {
    if (*pos >= m.len) return false;
    uint64_t tag;
    if (!rd_varint(m.p, m.len, pos, &tag)) {
        *bad = true;
        return false;
    }
    f->num = (unsigned)(tag >> 3);
    f->wt = (unsigned)(tag & 7);
    f->m = (msg){NULL, 0};
    switch (f->wt) {
    case 0:
        if (!rd_varint(m.p, m.len, pos, &f->v)) {
            *bad = true;
            return false;
        }
        return true;
    case 2:
        if (!rd_varint(m.p, m.len, pos, &f->v) || f->v > m.len - *pos) {
            *bad = true;
            return false;
        }
        f->m = (msg){m.p + *pos, (size_t)f->v};
        *pos += (size_t)f->v;
        return true;
    case 5:
        if (m.len - *pos < 4) {
            *bad = true;
            return false;
        }
        f->m = (msg){m.p + *pos, 4};
        *pos += 4;
        return true;
    default: *bad = true; return false;
    }
}

static int count(msg m, unsigned num) {
    size_t pos = 0;
    field f;
    bool bad = false;
    int n = 0;
    while (next_field(m, &pos, &f, &bad)) n += f.num == num;
    return bad ? -1 : n;
}

/* The idx-th occurrence of field num; {NULL, 0} with found false when absent. */
static field get(msg m, unsigned num, int idx, bool *found) {
    size_t pos = 0;
    field f;
    bool bad = false;
    while (next_field(m, &pos, &f, &bad))
        if (f.num == num && idx-- == 0) {
            if (found) *found = true;
            return f;
        }
    if (found) *found = false;
    return (field){0};
}

static msg sub(msg m, unsigned num, int idx) { return get(m, num, idx, NULL).m; }
static uint64_t vint(msg m, unsigned num) { return get(m, num, 0, NULL).v; }
static bool has(msg m, unsigned num) {
    bool found;
    get(m, num, 0, &found);
    return found;
}

/* String field num (idx-th) into a static buffer, for CHECK_STR. */
static const char *str(msg m, unsigned num, int idx) {
    static char buf[8][256];
    static int k;
    bool found;
    field f = get(m, num, idx, &found);
    if (!found || f.wt != 2 || f.m.len >= sizeof buf[0]) return NULL;
    char *b = buf[k++ % 8];
    if (f.m.len) memcpy(b, f.m.p, f.m.len);
    b[f.m.len] = 0;
    return b;
}

/* Well-formed, fields in non-decreasing number order, recursively through ONNX's messages. */
enum kind {
    K_NONE,
    K_MODEL,
    K_GRAPH,
    K_NODE,
    K_ATTR,
    K_TENSOR,
    K_VI,
    K_TYPE,
    K_TTYPE,
    K_SHAPE,
    K_DIM,
    K_OPSET,
    K_ENTRY
};
static enum kind child_kind(enum kind k, unsigned num) {
    switch (k) {
    case K_MODEL: return num == 7 ? K_GRAPH : num == 8 ? K_OPSET : num == 14 ? K_ENTRY : K_NONE;
    case K_GRAPH: return num == 1 ? K_NODE : num == 5 ? K_TENSOR : num >= 11 && num <= 13 ? K_VI : K_NONE;
    case K_NODE: return num == 5 ? K_ATTR : K_NONE;
    case K_ATTR: return num == 5 ? K_TENSOR : K_NONE;
    case K_TENSOR: return num == 13 ? K_ENTRY : K_NONE;
    case K_VI: return num == 2 ? K_TYPE : K_NONE;
    case K_TYPE: return num == 1 ? K_TTYPE : K_NONE;
    case K_TTYPE: return num == 2 ? K_SHAPE : K_NONE;
    case K_SHAPE: return num == 1 ? K_DIM : K_NONE;
    default: return K_NONE;
    }
}

static bool ordered(msg m, enum kind k) {
    size_t pos = 0;
    field f;
    bool bad = false;
    unsigned last = 0;
    while (next_field(m, &pos, &f, &bad)) {
        if (f.num < last) return false;
        last = f.num;
        enum kind c = child_kind(k, f.num);
        if (c != K_NONE && (f.wt != 2 || !ordered(f.m, c))) return false;
    }
    return !bad;
}

static bool contains(const void *hay, size_t n, const void *needle, size_t m) {
    const uint8_t *h = hay;
    for (size_t i = 0; m <= n && i <= n - m; i++)
        if (memcmp(h + i, needle, m) == 0) return true;
    return false;
}
#define CONTAINS(buf, n, ...) \
    do { \
        static const uint8_t pat_[] = {__VA_ARGS__}; \
        CHECK(contains((buf), (n), pat_, sizeof pat_)); \
    } while (0)

/* ---- helpers ---- */

/* Serialize to a fresh malloc'd buffer, checking that the size is exact. */
static uint8_t *serialize(ox_graph *g, const ox_save_options *o, size_t *n) {
    size_t size = ox_model_size(g, o), written = 0;
    CHECK(size > 0);
    uint8_t *buf = malloc(size ? size : 1);
    ox_error err = {0};
    ox_code rc = ox_model_write_buffer(g, o, buf, size, &written, &err);
    if (rc != OX_OK) fprintf(stderr, "serialize: %s\n", err.msg);
    CHECK_EQ_INT(rc, OX_OK);
    CHECK_EQ_INT(written, size);
    *n = written;
    return buf;
}

static msg graph_of(msg model) { return sub(model, 7, 0); }

static char tmp_root[512];

static void make_tmp_root(void) { check_tmp_dir(tmp_root, sizeof tmp_root, "proto"); }

/* A path in the test folder, in a static buffer reused after 4 calls: copy what must last. */
static const char *tmp_path(const char *name) {
    static char buf[4][700];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", tmp_root, name);
    return b;
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

/* Entries of a folder whose name contains `part` (a leftover temporary file, say). */
static int count_entries(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strstr(e->d_name, part)) n++;
    closedir(d);
    return n;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1200];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static ox_value *set_meta(ox_value *v, ox_dtype dt, int rank, const ox_dim *dims, ox_graph *g) {
    v->dtype = dt;
    ox_value_set_shape(g, v, rank, dims);
    v->has_meta = true;
    return v;
}

/* ---- varints, through an INTS attribute ---- */

/* ---- onnx/wire.h: the varint codec both directions, at every length ---- */

static void test_wire_codec(void) {
    const uint64_t vals[] = {0,          1,
                             127,        128,
                             300,        16383,
                             16384,      (1ull << 21) - 1,
                             1ull << 21, (1ull << 32) - 1,
                             1ull << 35, (1ull << 56) - 1,
                             1ull << 56, (1ull << 63) - 1,
                             1ull << 63, UINT64_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        unsigned char b[OX_VARINT_MAX];
        size_t n = ox_varint_encode(b, vals[i]);
        CHECK_EQ_INT(n, ox_varint_len(vals[i]));
        size_t bits = 1;
        while (bits < 64 && vals[i] >> bits) bits++;
        CHECK_EQ_INT(n, (bits + 6) / 7);
        const uint8_t *p = b;
        uint64_t v = 0;
        CHECK(ox_varint_decode(&p, b + n, &v));
        CHECK(v == vals[i]);
        CHECK(p == b + n);
        p = b;
        CHECK(!ox_varint_decode(&p, b + n - 1, &v)); /* truncated: refused, p unmoved */
        CHECK(p == b);
    }
    CHECK_EQ_INT(ox_varint_len(UINT64_MAX), OX_VARINT_MAX);
    /* 300 = 0xac 0x02 (the protobuf documentation's example); a redundant 0x80 0x00 is accepted */
    const uint8_t doc[] = {0xac, 0x02}, padded[] = {0x80, 0x00};
    const uint8_t *p = doc;
    uint64_t v = 0;
    CHECK(ox_varint_decode(&p, doc + 2, &v) && v == 300);
    p = padded;
    CHECK(ox_varint_decode(&p, padded + 2, &v) && v == 0);
    /* past 64 bits: a 10th byte above 1, or an 11th byte */
    const uint8_t over[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    p = over;
    CHECK(!ox_varint_decode(&p, over + sizeof over, &v) && p == over);
    p = eleven;
    CHECK(!ox_varint_decode(&p, eleven + sizeof eleven, &v) && p == eleven);
    /* tags */
    CHECK_EQ_INT(ox_wire_tag(OX_TensorProto_dims, OX_WIRE_VARINT), 0x08);
    CHECK_EQ_INT(ox_wire_tag(OX_AttributeProto_type, OX_WIRE_VARINT), 0xa0);
    uint64_t tag = ox_wire_tag(OX_FIELD_MAX, OX_WIRE_I32);
    CHECK(ox_wire_field(tag) == OX_FIELD_MAX && ox_wire_type(tag) == OX_WIRE_I32);
    const uint8_t le[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x80};
    CHECK(ox_wire_le(le, 4) == 0x04030201u);
    CHECK(ox_wire_le(le, 8) == 0x8007060504030201ull);
}

static void test_varints(void) {
    ox_graph *g = ox_graph_new(20);
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 0, NULL);
    ox_node *n = ox_graph_add_node(g, "Custom", "com.example", 1, &x, 1);
    const int64_t v[] = {0, 127, 128, 300, -1, INT64_MIN, INT64_MAX, (int64_t)1 << 35};
    ox_node_set_ints(g, n, "v", v, 8);
    ox_node_set_int(g, n, "neg", -2);
    ox_graph_add_output(g, set_meta(n->outputs[0], OX_FLOAT, 0, NULL, g));
    CHECK(!ox_graph_failed(g));
    size_t len;
    uint8_t *b = serialize(g, NULL, &len);
    CONTAINS(b, len, 0x0a, 0x01, 'v', 0x40, 0x00, 0x40, 0x7f, 0x40, 0x80, 0x01, 0x40, 0xac, 0x02, 0x40, 0xff, 0xff,
             0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x40, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
             0x01, 0x40, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x40, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
             0xa0, 0x01, 0x07);
    CONTAINS(b, len, 0x0a, 0x03, 'n', 'e', 'g', 0x18, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0xa0,
             0x01, 0x02);
    free(b);
    ox_graph_free(g);
}

/* ---- the smallest model, byte for byte ---- */

static void test_exact_bytes(void) {
    ox_graph *g = ox_graph_new(20);
    ox_dim d3 = {.value = 3};
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 1, &d3);
    ox_node *n = ox_graph_add_node(g, "Identity", NULL, 1, &x, 1);
    ox_value *y = set_meta(n->outputs[0], OX_FLOAT, 1, &d3, g);
    ox_value_set_name(g, y, "y");
    ox_graph_add_output(g, y);
    static const uint8_t
        want[] =
            {
                0x08, 0x0a, /* ir_version 10 */
                0x12, 0x06, 'o',  'x',  'p',  'o',  'r',  't', /* producer_name */
                0x3a, 0x40, /* graph, 64 bytes */
                0x0a, 0x10, 0x0a, 0x01, 'x',  0x12, 0x01, 'y', /* node: input, output */
                0x22, 0x08, 'I',  'd',  'e',  'n',  't',  'i',  't',  'y',  0x12, 0x0a, 'm',  'a',  'i',
                'n',  '_',  'g',  'r',  'a',  'p',  'h',  0x5a, 0x0f, 0x0a, 0x01, 'x',  0x12, 0x0a, /* input x: type */
                0x0a, 0x08, 0x08, 0x01, 0x12, 0x04, 0x0a, 0x02, 0x08, 0x03, 0x62, 0x0f, 0x0a, 0x01, 'y',
                0x12, 0x0a, /* output y */
                0x0a, 0x08, 0x08, 0x01, 0x12, 0x04, 0x0a, 0x02, 0x08, 0x03, 0x42, 0x04, 0x0a, 0x00, 0x10,
                0x14, /* opset_import {"" 20} */
            };
    size_t len;
    uint8_t *b = serialize(g, NULL, &len);
    CHECK_EQ_INT(len, sizeof want);
    CHECK(len == sizeof want && memcmp(b, want, len) == 0);
    free(b);

    /* producer_version appears when non-empty, producer_name as given */
    ox_save_options o = {.include_initializers = true, .producer_name = "p", .producer_version = "1.2"};
    b = serialize(g, &o, &len);
    CHECK(len >= 9 && memcmp(b, (const uint8_t[]){0x08, 0x0a, 0x12, 0x01, 'p', 0x1a, 0x03, '1', '.'}, 9) == 0);
    free(b);
    o.producer_version = "";
    b = serialize(g, &o, &len);
    CHECK(!has((msg){b, len}, 3));
    free(b);
    ox_graph_free(g);
}

/* ---- a small graph with every attribute type ---- */

static const float fc0_weight[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static ox_graph *small_graph(void) {
    ox_graph *g = ox_graph_new(20);
    ox_graph_add_metadata(g, "producer.note", "hello");
    ox_dim xd[2] = {{.param = "batch"}, {.value = 4}};
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 2, xd);
    int64_t wd[2] = {4, 4};
    ox_value *w = ox_graph_add_initializer(g, "fc0.weight", OX_FLOAT, 2, wd, fc0_weight, sizeof fc0_weight);
    ox_value *in0[2] = {x, w};
    ox_node *n0 = ox_graph_add_node(g, "MatMul", NULL, 2, in0, 1);
    ox_node_set_name(g, n0, "node_MatMul_0");
    set_meta(n0->outputs[0], OX_FLOAT, 2, xd, g);

    ox_value *in1[2] = {n0->outputs[0], NULL};
    ox_node *n1 = ox_graph_add_node(g, "Custom", "com.example", 2, in1, 1);
    ox_node_set_name(g, n1, "node_Custom_1");
    ox_node_set_float(g, n1, "alpha", 0.5f);
    ox_node_set_int(g, n1, "axis", -1);
    ox_node_set_ints(g, n1, "perm", (const int64_t[]){1, 0}, 2);
    ox_node_set_floats(g, n1, "scales", (const float[]){1.5f, -2.0f}, 2);
    ox_node_set_string(g, n1, "mode", "linear");
    ox_node_set_ints(g, n1, "empty", NULL, 0);
    int64_t tv[2] = {7, -7}, td = 2;
    ox_node_set_tensor(g, n1, "value", OX_INT64, 1, &td, tv);
    /* STRINGS has no setter in ir.h: fill the slot by hand through a string attribute */
    ox_node_set_string(g, n1, "names", "");
    static const char *names[2] = {"a", ""};
    ox_attr *a = &n1->attrs[n1->nattrs - 1];
    a->type = OX_ATTR_STRINGS;
    a->u.strings.v = names;
    a->u.strings.n = 2;

    /* same custom domain again: one opset_import entry */
    ox_node *n2 = ox_graph_add_node(g, "Other", "com.example", 1, &n1->outputs[0], 1);
    set_meta(n2->outputs[0], OX_FLOAT, 2, xd, g);
    ox_value_set_name(g, n2->outputs[0], "y");
    ox_graph_add_output(g, n2->outputs[0]);

    /* a dead node and its output are not written; neither is a value of unknown dtype */
    ox_node *dead = ox_graph_add_node(g, "Relu", NULL, 1, &x, 1);
    set_meta(dead->outputs[0], OX_FLOAT, 2, xd, g);
    dead->dead = true;
    n1->outputs[0]->has_meta = true; /* dtype UNDEFINED */
    CHECK(!ox_graph_failed(g));
    return g;
}

static void test_small_graph(void) {
    ox_graph *g = small_graph();
    size_t len;
    uint8_t *b = serialize(g, NULL, &len);
    msg m = {b, len};
    CHECK(ordered(m, K_MODEL));
    CHECK(len > 12 &&
          memcmp(b, (const uint8_t[]){0x08, 0x0a, 0x12, 0x06, 'o', 'x', 'p', 'o', 'r', 't', 0x3a}, 11) == 0);
    CHECK_EQ_INT(vint(m, 1), 10);
    CHECK(!has(m, 3));

    msg gr = graph_of(m);
    CHECK_EQ_INT(count(gr, 1), 3); /* nodes: dead one dropped */
    CHECK_STR(str(gr, 2, 0), "main_graph");
    CHECK_EQ_INT(count(gr, 5), 1);
    CHECK_EQ_INT(count(gr, 11), 1);
    CHECK_EQ_INT(count(gr, 12), 1);
    CHECK_EQ_INT(count(gr, 13), 1); /* only MatMul's output */

    msg n0 = sub(gr, 1, 0), n1 = sub(gr, 1, 1);
    CHECK_STR(str(n0, 1, 0), "x");
    CHECK_STR(str(n0, 1, 1), "fc0.weight");
    CHECK_STR(str(n0, 3, 0), "node_MatMul_0");
    CHECK_STR(str(n0, 4, 0), "MatMul");
    CHECK(!has(n0, 7));
    const char *mm_out = str(n0, 2, 0);
    CHECK(mm_out && *mm_out);
    CHECK_STR(str(n1, 1, 0), mm_out);
    CHECK_STR(str(n1, 1, 1), ""); /* omitted optional input */
    CHECK_STR(str(n1, 7, 0), "com.example");
    CHECK_EQ_INT(count(n1, 5), 8);
    CHECK_STR(str(sub(gr, 13, 0), 1, 0), mm_out);
    CHECK_STR(str(sub(gr, 12, 0), 1, 0), "y");

    /* attributes, byte for byte */
    CONTAINS(b, len, 0x0a, 0x05, 'a', 'l', 'p', 'h', 'a', 0x15, 0x00, 0x00, 0x00, 0x3f, 0xa0, 0x01, 0x01);
    CONTAINS(b, len, 0x0a, 0x04, 'a', 'x', 'i', 's', 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
             0xa0, 0x01, 0x02);
    CONTAINS(b, len, 0x0a, 0x04, 'p', 'e', 'r', 'm', 0x40, 0x01, 0x40, 0x00, 0xa0, 0x01, 0x07);
    CONTAINS(b, len, 0x0a, 0x06, 's', 'c', 'a', 'l', 'e', 's', 0x3d, 0x00, 0x00, 0xc0, 0x3f, 0x3d, 0x00, 0x00, 0x00,
             0xc0, 0xa0, 0x01, 0x06);
    CONTAINS(b, len, 0x0a, 0x04, 'm', 'o', 'd', 'e', 0x22, 0x06, 'l', 'i', 'n', 'e', 'a', 'r', 0xa0, 0x01, 0x03);
    CONTAINS(b, len, 0x2a, 0x0a, 0x0a, 0x05, 'e', 'm', 'p', 't', 'y', 0xa0, 0x01, 0x07);
    CONTAINS(b, len, 0x0a, 0x05, 'n', 'a', 'm', 'e', 's', 0x4a, 0x01, 'a', 0x4a, 0x00, 0xa0, 0x01, 0x08);
    CONTAINS(b, len, 0x0a, 0x05, 'v', 'a', 'l', 'u', 'e', 0x2a, 0x16, 0x08, 0x02, 0x10, 0x07, 0x4a, 0x10, 0x07, 0, 0, 0,
             0, 0, 0, 0, 0xf9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xa0, 0x01, 0x04);
    /* the initializer: dims, data_type, name, raw_data */
    msg t = sub(gr, 5, 0);
    CHECK(t.len >= 18 &&
          memcmp(t.p, (const uint8_t[]){0x08, 0x04, 0x08, 0x04, 0x10, 0x01, 0x42, 0x0a, 'f',  'c',
                                        '0',  '.',  'w',  'e',  'i',  'g',  'h',  't',  0x4a, 0x40},
                 20) == 0);
    msg raw = sub(t, 9, 0);
    CHECK(raw.len == sizeof fc0_weight && memcmp(raw.p, fc0_weight, raw.len) == 0);
    CHECK(!has(t, 13) && !has(t, 14));
    /* input x with a named dim */
    CONTAINS(b, len, 0x5a, 0x18, 0x0a, 0x01, 'x', 0x12, 0x13, 0x0a, 0x11, 0x08, 0x01, 0x12, 0x0d, 0x0a, 0x07, 0x12,
             0x05, 'b', 'a', 't', 'c', 'h', 0x0a, 0x02, 0x08, 0x04);
    /* opsets and metadata */
    CHECK_EQ_INT(count(m, 8), 2);
    CONTAINS(b, len, 0x42, 0x04, 0x0a, 0x00, 0x10, 0x14, 0x42, 0x0f, 0x0a, 0x0b, 'c', 'o', 'm', '.', 'e', 'x', 'a', 'm',
             'p', 'l', 'e', 0x10, 0x01, 0x72, 0x16, 0x0a, 0x0d, 'p', 'r', 'o', 'd', 'u', 'c', 'e', 'r', '.', 'n', 'o',
             't', 'e', 0x12, 0x05, 'h', 'e', 'l', 'l', 'o');
    free(b);

    /* serializing twice gives the same bytes (names are given once) */
    size_t len2;
    uint8_t *b2 = serialize(g, NULL, &len2);
    b = serialize(g, NULL, &len);
    CHECK(len == len2 && memcmp(b, b2, len) == 0);
    free(b);
    free(b2);

    /* a buffer one byte short */
    size_t need = ox_model_size(g, NULL), written = 0;
    uint8_t *small = malloc(need);
    ox_error err = {0};
    CHECK_EQ_INT(ox_model_write_buffer(g, NULL, small, need - 1, &written, &err), OX_EINVAL);
    CHECK_EQ_INT(written, need);
    CHECK(strstr(err.msg, "too small") != NULL);
    free(small);
    ox_graph_free(g);
}

/* ---- include_initializers x keep_initializers_as_inputs ---- */

static void test_initializer_modes(void) {
    ox_graph *g = small_graph();
    /* a fake weight: fine as long as no bytes are written */
    int64_t fd = 8;
    ox_graph_add_initializer(g, "fake.bias", OX_FLOAT, 1, &fd, NULL, 0);
    static const struct {
        bool inc, keep;
        int ninit, ninputs;
        ox_code rc;
    } modes[] = {
        {true, false, 2, 1, OX_EINVAL},
        {true, true, 2, 3, OX_EINVAL},
        {false, false, 0, 1, OX_OK},
        {false, true, 0, 3, OX_OK},
    };
    for (int i = 0; i < 4; i++) {
        ox_save_options o = {.include_initializers = modes[i].inc, .keep_initializers_as_inputs = modes[i].keep};
        size_t size = ox_model_size(g, &o);
        uint8_t *buf = malloc(size ? size : 1);
        size_t written = 0;
        ox_error err = {0};
        ox_code rc = ox_model_write_buffer(g, &o, buf, size, &written, &err);
        CHECK_EQ_INT(rc, modes[i].rc);
        if (rc != OX_OK) {
            CHECK_EQ_INT(size, 0);
            CHECK_STR(err.msg,
                      "initializer 'fake.bias' has no data (fake weights): supply them with "
                      "ONNXProgram.apply_weights() or save with include_initializers=False");
            CHECK_STR(err.where, "fake.bias");
            free(buf);
            continue;
        }
        CHECK_EQ_INT(written, size);
        msg gr = graph_of((msg){buf, written});
        CHECK_EQ_INT(count(gr, 5), modes[i].ninit);
        CHECK_EQ_INT(count(gr, 11), modes[i].ninputs);
        CHECK_STR(str(sub(gr, 11, 0), 1, 0), "x");
        if (modes[i].keep) {
            msg wi = sub(gr, 11, 1);
            CHECK_STR(str(wi, 1, 0), "fc0.weight");
            CONTAINS(wi.p, wi.len, 0x08, 0x01, 0x12, 0x08, 0x0a, 0x02, 0x08, 0x04, 0x0a, 0x02, 0x08, 0x04);
            CHECK_STR(str(sub(gr, 11, 2), 1, 0), "fake.bias");
        }
        CHECK(ordered((msg){buf, written}, K_MODEL));
        free(buf);
    }

    /* with real bytes, both modes that include initializers work */
    g->initializers[1]->tensor->data = fc0_weight;
    g->initializers[1]->tensor->nbytes = 32;
    g->initializers[1]->tensor->storage = OX_DATA_BORROWED;
    for (int keep = 0; keep < 2; keep++) {
        ox_save_options o = {.include_initializers = true, .keep_initializers_as_inputs = keep};
        size_t len;
        uint8_t *b = serialize(g, &o, &len);
        msg gr = graph_of((msg){b, len});
        CHECK_EQ_INT(count(gr, 5), 2);
        CHECK_STR(str(sub(gr, 5, 1), 8, 0), "fake.bias");
        CHECK_EQ_INT(count(gr, 11), keep ? 3 : 1);
        free(b);
    }
    ox_graph_free(g);
}

/* ---- shapes: unknown dims, unknown rank, scalars; empty tensors; the "ai.onnx" domain ---- */

static void test_shapes_and_empty(void) {
    ox_graph *g = ox_graph_new(18);
    ox_dim xd[2] = {{.value = -1}, {.value = 0}};
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 2, xd);
    int64_t zero = 0;
    ox_value *e = ox_graph_add_initializer(g, "e", OX_FLOAT, 1, &zero, NULL, 0); /* 0 bytes */
    ox_node *n = ox_graph_add_node(g, "Concat", "ai.onnx", 2, (ox_value *[]){x, e}, 1);
    ox_node_set_int(g, n, "axis", 1);
    ox_value *r = n->outputs[0]; /* unknown rank: no shape */
    r->dtype = OX_FLOAT;
    r->has_meta = true;
    ox_node *s = ox_graph_add_node(g, "Size", NULL, 1, &r, 1);
    ox_value *sv = set_meta(s->outputs[0], OX_INT64, 0, NULL, g); /* scalar: empty shape */
    ox_value_set_name(g, sv, "n");
    ox_graph_add_output(g, sv);
    CHECK(!ox_graph_failed(g));
    size_t len;
    uint8_t *b = serialize(g, NULL, &len);
    msg m = {b, len};
    CHECK(ordered(m, K_MODEL));
    CHECK_EQ_INT(count(m, 8), 1); /* "ai.onnx" is the default domain */
    msg gr = graph_of(m);
    CHECK_STR(str(sub(gr, 1, 0), 7, 0), "ai.onnx");
    /* x: an empty Dimension for -1, dim_value 0 for 0 */
    CONTAINS(b, len, 0x0a, 0x01, 'x', 0x12, 0x0c, 0x0a, 0x0a, 0x08, 0x01, 0x12, 0x06, 0x0a, 0x00, 0x0a, 0x02, 0x08,
             0x00);
    msg vi = sub(gr, 13, 0);
    CHECK_EQ_INT(vi.len, 5 + 2 + 4); /* name "_v0", type { tensor_type { elem_type } } */
    CONTAINS(vi.p, vi.len, 0x12, 0x04, 0x0a, 0x02, 0x08, 0x01);
    CONTAINS(b, len, 0x62, 0x0b, 0x0a, 0x01, 'n', 0x12, 0x06, 0x0a, 0x04, 0x08, 0x07, 0x12, 0x00);
    /* the empty initializer (no bytes, data NULL) has an empty raw_data */
    msg t = sub(gr, 5, 0);
    CHECK(t.len == 9 && memcmp(t.p, (const uint8_t[]){0x08, 0x00, 0x10, 0x01, 0x42, 0x01, 'e', 0x4a, 0x00}, 9) == 0);
    free(b);

    /* with external data it stays inline: nothing to point at */
    ox_save_options o = {.include_initializers = true, .external_data = true, .data_location = "shapes.onnx.data"};
    char path[700];
    snprintf(path, sizeof path, "%s", tmp_path("shapes.onnx"));
    ox_error err = {0};
    CHECK_EQ_INT(ox_model_save(g, &o, path, &err), OX_OK);
    size_t n0;
    b = read_file(path, &n0);
    if (b) {
        t = sub(graph_of((msg){b, n0}), 5, 0);
        CHECK(has(t, 9) && !has(t, 13) && !has(t, 14));
    }
    free(b);
    unlink(path);
    unlink(tmp_path("shapes.onnx.data"));
    ox_graph_free(g);
}

/* ---- bad arguments ---- */

static void test_bad_arguments(void) {
    ox_graph *g = small_graph();
    ox_error err = {0};
    uint8_t buf[16];
    size_t w;
    ox_save_options o = {.include_initializers = true, .external_data = true, .data_location = "m.data"};
    CHECK_EQ_INT(ox_model_write_buffer(g, &o, buf, sizeof buf, &w, &err), OX_EINVAL);
    CHECK(strstr(err.msg, "external data") != NULL);
    const char *bad[] = {NULL, "", "..", ".", "../m.data", "/abs/m.data", "sub/m.data"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o.data_location = bad[i];
        ox_error_clear(&err);
        CHECK_EQ_INT(ox_model_save(g, &o, tmp_path("bad.onnx"), &err), OX_EINVAL);
        CHECK(strstr(err.msg, "bare file name") != NULL);
        CHECK_EQ_INT(ox_model_size(g, &o), 0);
    }
    o.data_location = "bad.onnx"; /* the model itself */
    ox_error_clear(&err);
    CHECK_EQ_INT(ox_model_save(g, &o, tmp_path("bad.onnx"), &err), OX_EINVAL);
    ox_error_clear(&err);
    CHECK_EQ_INT(ox_model_save(g, NULL, "", &err), OX_EINVAL);
    ox_error_clear(&err);
    CHECK_EQ_INT(ox_model_save(g, NULL, tmp_path(""), &err), OX_EINVAL); /* ends in '/' */
    CHECK_EQ_INT(count_entries(tmp_root, ""), 0);

    /* a tensor attribute without bytes */
    ox_node *n = g->nodes[1];
    ox_attr *a = (ox_attr *)ox_node_attr(n, "value");
    const void *keep = a->u.t->data;
    a->u.t->data = NULL;
    ox_error_clear(&err);
    CHECK_EQ_INT(ox_model_write_buffer(g, NULL, buf, sizeof buf, &w, &err), OX_EINVAL);
    CHECK(strstr(err.msg, "node_Custom_1") && strstr(err.msg, "'value'"));
    CHECK_EQ_INT(ox_model_write_buffer(g, NULL, buf, sizeof buf, &w, NULL), OX_EINVAL); /* err NULL */
    CHECK_EQ_INT(ox_model_size(g, NULL), 0);
    a->u.t->data = keep;

    /* a graph that has failed is refused */
    ox_graph_add_node(g, NULL, NULL, 0, NULL, 0);
    CHECK(ox_graph_failed(g));
    ox_error_clear(&err);
    CHECK_EQ_INT(ox_model_write_buffer(g, NULL, buf, sizeof buf, &w, &err), OX_EINVAL);
    CHECK(strstr(err.msg, "has failed") != NULL);
    CHECK_EQ_INT(ox_model_size(g, NULL), 0);
    ox_graph_free(g);
}

/* ---- external data ---- */

enum { SMALL_N = 10, BIG_N = 262147, TAIL_N = 3 }; /* BIG: 1 MiB + 12 bytes */

static ox_graph *external_graph(float **big_out) {
    ox_graph *g = ox_graph_new(20);
    ox_dim d3 = {.value = 3};
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 1, &d3);
    static float small[SMALL_N], tail[TAIL_N], tiny[1] = {42};
    for (int i = 0; i < SMALL_N; i++) small[i] = (float)i + 0.25f;
    for (int i = 0; i < TAIL_N; i++) tail[i] = -(float)i;
    float *big = malloc(BIG_N * sizeof *big);
    for (int i = 0; i < BIG_N; i++) big[i] = (float)(i % 1000) + 1;
    int64_t ds = SMALL_N, db = BIG_N, dt = TAIL_N, d1 = 1;
    ox_graph_add_initializer(g, "small", OX_FLOAT, 1, &ds, small, sizeof small);
    ox_graph_add_initializer(g, "big", OX_FLOAT, 1, &db, big, BIG_N * sizeof *big);
    ox_graph_add_initializer(g, "tiny", OX_FLOAT, 1, &d1, tiny, sizeof tiny);
    ox_graph_add_initializer(g, "tail", OX_FLOAT, 1, &dt, tail, sizeof tail);
    ox_node *n = ox_graph_add_node(g, "Add", NULL, 2, (ox_value *[]){x, g->initializers[3]}, 1);
    ox_value *y = set_meta(n->outputs[0], OX_FLOAT, 1, &d3, g);
    ox_value_set_name(g, y, "y");
    ox_graph_add_output(g, y);
    CHECK(!ox_graph_failed(g));
    *big_out = big;
    return g;
}

static bool all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

static void check_external(msg t, const char *offset, const char *length) {
    CHECK(!has(t, 9));
    CHECK_EQ_INT(count(t, 13), 3);
    CHECK_STR(str(sub(t, 13, 0), 1, 0), "location");
    CHECK_STR(str(sub(t, 13, 0), 2, 0), "ext.onnx.data");
    CHECK_STR(str(sub(t, 13, 1), 1, 0), "offset");
    CHECK_STR(str(sub(t, 13, 1), 2, 0), offset);
    CHECK_STR(str(sub(t, 13, 2), 1, 0), "length");
    CHECK_STR(str(sub(t, 13, 2), 2, 0), length);
    CHECK_EQ_INT(vint(t, 14), 1);
}

static void test_external_data(const char *dump) {
    float *big;
    ox_graph *g = external_graph(&big);
    ox_save_options o = {
        .include_initializers = true, .external_data = true, .data_location = "ext.onnx.data", .external_min_bytes = 8};
    ox_error err = {0};
    char path[700];
    snprintf(path, sizeof path, "%s", tmp_path("ext.onnx"));
    ox_code rc = ox_model_save(g, &o, path, &err);
    if (rc) fprintf(stderr, "save: %s\n", err.msg);
    CHECK_EQ_INT(rc, OX_OK);
    CHECK_EQ_INT(count_entries(tmp_root, ".oxport-tmp-"), 0);

    size_t mlen = 0, dlen = 0;
    uint8_t *mb = read_file(path, &mlen), *db = read_file(tmp_path("ext.onnx.data"), &dlen);
    CHECK(mb && db);
    if (!mb || !db) {
        free(mb);
        free(db);
        free(big);
        ox_graph_free(g);
        return;
    }
    CHECK_EQ_INT(mlen, ox_model_size(g, &o));
    msg m = {mb, mlen};
    CHECK(ordered(m, K_MODEL));
    msg gr = graph_of(m);
    CHECK_EQ_INT(count(gr, 5), 4);
    /* small at 0; big (>= 1 MiB) at 64 KiB; tiny (< external_min_bytes) inline; tail 16-aligned */
    size_t big_off = 65536, big_len = BIG_N * sizeof(float);
    size_t tail_off = (big_off + big_len + 15) / 16 * 16;
    check_external(sub(gr, 5, 0), "0", "40");
    check_external(sub(gr, 5, 1), "65536", "1048588");
    char off[32];
    snprintf(off, sizeof off, "%zu", tail_off);
    check_external(sub(gr, 5, 3), off, "12");
    msg tiny = sub(gr, 5, 2);
    CHECK(has(tiny, 9) && !has(tiny, 13) && !has(tiny, 14));
    CHECK_EQ_INT(sub(tiny, 9, 0).len, 4);

    CHECK_EQ_INT(dlen, tail_off + 12);
    if (dlen == tail_off + 12) {
        CHECK(memcmp(db, g->initializers[0]->tensor->data, 40) == 0);
        CHECK(all_zero(db + 40, big_off - 40));
        CHECK(big_off % 65536 == 0 && memcmp(db + big_off, big, big_len) == 0);
        CHECK(all_zero(db + big_off + big_len, tail_off - big_off - big_len));
        CHECK(memcmp(db + tail_off, g->initializers[3]->tensor->data, 12) == 0);
    }
    free(mb);
    free(db);

    /* a new file gets 0666 & ~umask, not mkstemp's 0600 */
    struct stat st;
    mode_t um = umask(022);
    umask(um);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == (0666 & ~um));

    /* external_min_bytes 0: every non-empty tensor goes out; the model shrinks */
    o.external_min_bytes = 0;
    CHECK_EQ_INT(ox_model_save(g, &o, path, &err), OX_OK);
    mb = read_file(path, &mlen);
    if (mb) {
        gr = graph_of((msg){mb, mlen});
        check_external(sub(gr, 5, 2), "1114128", "4"); /* tiny packed after big, 16-aligned */
        check_external(sub(gr, 5, 3), "1114144", "12");
    }
    free(mb);

    /* the data file is written (empty) even when no tensor goes to it */
    o.include_initializers = false;
    CHECK_EQ_INT(ox_model_save(g, &o, path, &err), OX_OK);
    CHECK(stat(tmp_path("ext.onnx.data"), &st) == 0 && st.st_size == 0);

    if (dump) {
        char p[700];
        o.include_initializers = true;
        o.external_min_bytes = 8;
        snprintf(p, sizeof p, "%s/ext.onnx", dump);
        CHECK_EQ_INT(ox_model_save(g, &o, p, &err), OX_OK);
        ox_graph *s = small_graph();
        snprintf(p, sizeof p, "%s/full.onnx", dump);
        CHECK_EQ_INT(ox_model_save(s, NULL, p, &err), OX_OK);
        ox_graph_free(s);
    }
    unlink(path);
    unlink(tmp_path("ext.onnx.data"));
    free(big);
    ox_graph_free(g);
}

/* ---- failed saves leave nothing behind and existing files as they were ---- */

static void test_failed_saves(void) {
    ox_graph *g = small_graph();
    ox_error err = {0};

    /* a folder that does not exist */
    char missing[700];
    snprintf(missing, sizeof missing, "%s/no/such/dir/m.onnx", tmp_root);
    CHECK_EQ_INT(ox_model_save(g, NULL, missing, &err), OX_EIO);
    CHECK(strstr(err.msg, missing) != NULL);
    CHECK(strstr(err.msg, strerror(ENOENT)) != NULL);
    CHECK_EQ_INT(count_entries(tmp_root, ""), 0);

    /* a good save, then a save that fails on a fake weight: the old bytes stay */
    char path[700];
    snprintf(path, sizeof path, "%s", tmp_path("keep.onnx"));
    CHECK_EQ_INT(ox_model_save(g, NULL, path, &err), OX_OK);
    size_t n0 = 0, n1 = 0;
    uint8_t *before = read_file(path, &n0);
    int64_t d = 2;
    ox_graph_add_initializer(g, "fc1.weight", OX_FLOAT, 1, &d, NULL, 0);
    ox_error_clear(&err);
    CHECK_EQ_INT(ox_model_save(g, NULL, path, &err), OX_EINVAL);
    CHECK(strstr(err.msg, "'fc1.weight' has no data (fake weights)") != NULL);
    uint8_t *after = read_file(path, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
    free(after);
    CHECK_EQ_INT(count_entries(tmp_root, ""), 1);

    /* include_initializers=false saves the fake one */
    ox_save_options no_init = {.include_initializers = false};
    CHECK_EQ_INT(ox_model_save(g, &no_init, tmp_path("noinit.onnx"), &err), OX_OK);
    unlink(tmp_path("noinit.onnx"));

    /* a rename that fails (the data file's name is taken by a folder): both temporaries go */
    ox_graph *e = small_graph();
    mkdir(tmp_path("keep.onnx.data"), 0777);
    ox_save_options ext = {.include_initializers = true, .external_data = true, .data_location = "keep.onnx.data"};
    ox_error_clear(&err);
    CHECK_EQ_INT(ox_model_save(e, &ext, path, &err), OX_EIO);
    CHECK(strstr(err.msg, "cannot rename") && strstr(err.msg, "keep.onnx.data"));
    after = read_file(path, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
    free(after);
    CHECK_EQ_INT(count_entries(tmp_root, ".oxport-tmp-"), 0);
    rmdir(tmp_path("keep.onnx.data"));

    /* a write that fails (file size limit): EIO naming the path, old file intact */
    struct rlimit old;
    if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
        void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = old;
        lim.rlim_cur = 64;
        if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
            ox_error_clear(&err);
            CHECK_EQ_INT(ox_model_save(e, NULL, path, &err), OX_EIO);
            CHECK(strstr(err.msg, path) && strstr(err.msg, strerror(EFBIG)));
            setrlimit(RLIMIT_FSIZE, &old);
            after = read_file(path, &n1);
            CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
            free(after);
            CHECK_EQ_INT(count_entries(tmp_root, ".oxport-tmp-"), 0);
        } else {
            fprintf(stderr, "skipped: the write-error case (setrlimit: %s)\n", strerror(errno));
        }
        signal(SIGXFSZ, prev);
    }

    /* an existing file keeps its mode */
    chmod(path, 0640);
    CHECK_EQ_INT(ox_model_save(e, NULL, path, &err), OX_OK);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);

    free(before);
    unlink(path);
    ox_graph_free(e);
    ox_graph_free(g);
}

/* ---- out of memory while naming values ---- */

static void test_oom(void) {
    bool succeeded = false;
    for (long budget = 0; budget < 200 && !succeeded; budget++) {
        ox_graph *g = small_graph();
        ox_graph *h = small_graph();
        ox_arena_fail_after(g->arena, budget);
        ox_arena_fail_after(h->arena, budget);
        ox_error err = {0};
        size_t size = ox_model_size(h, NULL);
        CHECK(size > 0 || ox_graph_failed(h));
        uint8_t buf[4096];
        size_t w = 0;
        ox_code rc = ox_model_write_buffer(g, NULL, buf, sizeof buf, &w, &err);
        CHECK(rc == OX_OK || rc == OX_ENOMEM);
        if (rc == OX_ENOMEM) {
            CHECK(strstr(err.msg, "out of memory") != NULL);
            ox_error_clear(&err);
            CHECK_EQ_INT(ox_model_write_buffer(g, NULL, buf, sizeof buf, &w, &err), OX_ENOMEM);
            CHECK_EQ_INT(ox_model_save(g, NULL, tmp_path("oom.onnx"), &err), OX_ENOMEM);
        } else {
            succeeded = true;
            CHECK_EQ_INT(w, ox_model_size(g, NULL));
        }
        ox_graph_free(g);
        ox_graph_free(h);
    }
    CHECK(succeeded);
    CHECK_EQ_INT(count_entries(tmp_root, ""), 0);
}

int main(void) {
    make_tmp_root();
    const char *dump = getenv("OX_PROTO_DUMP");
    test_wire_codec();
    test_varints();
    test_exact_bytes();
    test_small_graph();
    test_initializer_modes();
    test_shapes_and_empty();
    test_bad_arguments();
    test_external_data(dump && *dump ? dump : NULL);
    test_failed_saves();
    test_oom();
    remove_tree(tmp_root);
    return CHECK_DONE();
}
