/* test_proto_read.c — the ONNX reader (onnx/read.h) over hand-built protobuf bytes: varint edge
 * cases, every truncation of a small model, packed and unpacked repeated fields, unknown fields of
 * every wire type, deep nesting, typed tensor data layouts, zero copy, the external data checks on
 * real files (../, absolute paths, symlinks out of the folder, ranges past the end), FunctionProto,
 * and read → write → read against the writer (onnx/write.h). Run by CTest under ASan/UBSan. */
#include "onnx/read.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "ir/hash.h"
#include "onnx/write.h"

/* ---- a protobuf builder ---- */

typedef struct pb {
    uint8_t *p;
    size_t n, cap;
} pb;

static void pb_raw(pb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 64) + n;
        uint8_t *np = realloc(b->p, nc);
        if (!np) {
            perror("realloc");
            exit(1);
        }
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void pb_varint(pb *b, uint64_t v) {
    uint8_t t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (uint8_t)v;
    pb_raw(b, t, n);
}

static void pb_tag(pb *b, unsigned f, unsigned wt) { pb_varint(b, (uint64_t)f << 3 | wt); }
static void pb_int(pb *b, unsigned f, int64_t v) {
    pb_tag(b, f, 0);
    pb_varint(b, (uint64_t)v);
}
static void pb_bytes(pb *b, unsigned f, const void *d, size_t n) {
    pb_tag(b, f, 2);
    pb_varint(b, n);
    pb_raw(b, d, n);
}
static void pb_str(pb *b, unsigned f, const char *s) { pb_bytes(b, f, s, strlen(s)); }
static void pb_f32(pb *b, unsigned f, float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint8_t t[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    pb_tag(b, f, 5);
    pb_raw(b, t, 4);
}
/* Appends sub as field f and frees it. */
static void pb_msg(pb *b, unsigned f, pb *sub) {
    pb_bytes(b, f, sub->p, sub->n);
    free(sub->p);
    *sub = (pb){0};
}
static void pb_free(pb *b) {
    free(b->p);
    *b = (pb){0};
}

/* ValueInfoProto: name, float tensor of the given dims (dims NULL: no shape). */
static void pb_vi(pb *b, unsigned f, const char *name, int elem, int rank, const int64_t *dims, const char *param0) {
    pb vi = {0}, type = {0}, tt = {0}, shape = {0};
    pb_str(&vi, 1, name);
    pb_int(&tt, 1, elem);
    if (rank >= 0) {
        for (int i = 0; i < rank; i++) {
            pb d = {0};
            if (i == 0 && param0) pb_str(&d, 2, param0);
            else pb_int(&d, 1, dims[i]);
            pb_msg(&shape, 1, &d);
        }
        pb_msg(&tt, 2, &shape);
    }
    pb_msg(&type, 1, &tt);
    pb_msg(&vi, 2, &type);
    pb_msg(b, f, &vi);
}

/* The small model: y = Relu(x) with x, y float[2]; ir 8; opset 17. top[] gets the offset after
 * each top-level field (the prefixes a reader may accept). */
static pb small_model(size_t *top, int *ntop) {
    pb m = {0}, g = {0}, node = {0}, op = {0};
    int64_t d2[1] = {2};
    pb_int(&m, 1, 8);
    if (top) top[(*ntop)++] = m.n;
    pb_str(&node, 1, "x");
    pb_str(&node, 2, "y");
    pb_str(&node, 3, "relu0");
    pb_str(&node, 4, "Relu");
    pb_msg(&g, 1, &node);
    pb_str(&g, 2, "g");
    pb_vi(&g, 11, "x", 1, 1, d2, NULL);
    pb_vi(&g, 12, "y", 1, 1, d2, NULL);
    pb_msg(&m, 7, &g);
    if (top) top[(*ntop)++] = m.n;
    pb_str(&op, 1, "");
    pb_int(&op, 2, 17);
    pb_msg(&m, 8, &op);
    if (top) top[(*ntop)++] = m.n;
    return m;
}

static ox_code read_buf(const pb *b, const ox_read_options *o, ox_graph **g, ox_read_info **info, ox_error *err) {
    ox_error_clear(err);
    return ox_model_read(b->p, b->n, o, g, info, err);
}

/* A model around one graph body (nodes, initializers ... already in gb), opset 17. */
static pb model_of(pb *gb) {
    pb m = {0}, op = {0};
    pb_int(&m, 1, 9);
    pb_msg(&m, 7, gb);
    pb_str(&op, 1, "");
    pb_int(&op, 2, 17);
    pb_msg(&m, 8, &op);
    return m;
}

/* ---- a flood of colliding names (issue 15, item 5) ---- */

#define FLOOD_N 120000
#define FLOOD_BITS 18 /* 120,000 names fill tables of up to 2^18 slots */
#define FNV_PRIME 1099511628211ull

/* Names whose unkeyed FNV-1a hashes (the reader's and the IR's hash before it was keyed) agree in
 * their low FLOOD_BITS bits, so they took one run of slots in every table: "c<i>_" then two
 * printable bytes searched for and a last byte solved for. NUL-separated in one malloc'd block;
 * *ptrs the n names. */
static char *colliding_names(uint32_t n, const char ***ptrs) {
    const uint64_t mask = (1ull << FLOOD_BITS) - 1, target = 0x2a5a5 & mask;
    uint64_t inv = FNV_PRIME; /* the prime's inverse mod 2^64, by Newton's iteration */
    for (int i = 0; i < 6; i++) inv *= 2 - FNV_PRIME * inv;
    const uint64_t want = (target * inv) & mask; /* (state ^ last) must equal this before the last multiply */
    char *buf = malloc((size_t)n * 16);
    const char **v = malloc(n * sizeof *v);
    if (!buf || !v) {
        perror("malloc");
        exit(1);
    }
    size_t used = 0;
    uint32_t got = 0;
    for (uint32_t i = 0; got < n; i++) {
        char pre[12];
        int pl = snprintf(pre, sizeof pre, "c%u_", i);
        uint64_t h = 1469598103934665603ull;
        for (int k = 0; k < pl; k++) h = (h ^ (unsigned char)pre[k]) * FNV_PRIME;
        int per_prefix = 0;
        for (unsigned a = 0x21; a < 0x7f && got < n && per_prefix < 8; a++) {
            uint64_t h1 = (h ^ a) * FNV_PRIME;
            for (unsigned b = 0x21; b < 0x7f && got < n && per_prefix < 8; b++) {
                uint64_t h2 = (h1 ^ b) * FNV_PRIME;
                if (((h2 ^ want) & mask & ~0xffull) != 0) continue;
                unsigned c = (unsigned)((h2 ^ want) & 0xff);
                if (c == 0) continue;
                char *name = buf + used;
                memcpy(name, pre, (size_t)pl);
                name[pl] = (char)a;
                name[pl + 1] = (char)b;
                name[pl + 2] = (char)c;
                name[pl + 3] = 0;
                used += (size_t)pl + 4;
                v[got++] = name;
                per_prefix++;
            }
        }
    }
    *ptrs = v;
    return buf;
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * FNV_PRIME;
    return h;
}

/* How many distinct slots of a 2^FLOOD_BITS table the names take under hash h. */
static uint32_t slots_taken(const char **names, uint32_t n, bool keyed) {
    uint8_t *seen = calloc((size_t)1 << FLOOD_BITS, 1);
    if (!seen) exit(1);
    uint32_t d = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t h = keyed ? ox_hash_bytes(names[i], strlen(names[i])) : fnv1a(names[i]);
        uint32_t k = (uint32_t)(h & ((1u << FLOOD_BITS) - 1));
        if (!seen[k]) d++;
        seen[k] = 1;
    }
    free(seen);
    return d;
}

/* The model: FLOOD_N float scalar initializers with colliding names, the first one the output. */
static pb flood_model(const char **names) {
    pb g = {0};
    float one = 1;
    for (uint32_t i = 0; i < FLOOD_N; i++) {
        pb t = {0};
        pb_int(&t, 2, OX_FLOAT);
        pb_str(&t, 8, names[i]);
        pb_bytes(&t, 9, &one, sizeof one);
        pb_msg(&g, 5, &t);
    }
    pb_vi(&g, 12, names[0], 1, 0, NULL, NULL);
    return model_of(&g);
}

/* Work, not time, is what the fix bounds: the colliding names must spread over the table's
 * slots under the keyed hash (120,000 names into 2^18 slots take ~96,000 of them; unkeyed, they
 * took 1). Then the whole read, in a child held to 20 s of CPU by RLIMIT_CPU (a CPU limit, so a
 * loaded machine cannot make it flake): the unkeyed tables took ~151 s without sanitizers, the
 * keyed ones well under a second. */
static void test_colliding_names(void) {
    const char **names = NULL;
    char *buf = colliding_names(FLOOD_N, &names);
    CHECK_EQ_INT(slots_taken(names, FLOOD_N, false), 1); /* the names do collide, unkeyed */
    uint32_t keyed = slots_taken(names, FLOOD_N, true);
    if (keyed < 80000) fprintf(stderr, "colliding names take %u slots under the keyed hash\n", keyed);
    CHECK(keyed >= 80000);

    pb m = flood_model(names);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct rlimit lim = {20, 25};
        setrlimit(RLIMIT_CPU, &lim);
        clock_t t0 = clock();
        ox_graph *g = NULL;
        ox_read_info *info = NULL;
        ox_error err = {0};
        ox_code rc = read_buf(&m, &(ox_read_options){0}, &g, &info, &err);
        double cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
        bool ok = rc == OX_OK && g && g->ninitializers == FLOOD_N && g->noutputs == 1;
        fprintf(stderr, "read %d colliding names in %.2f s of CPU: %s %s\n", FLOOD_N, cpu, ox_code_name(rc), err.msg);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    if (pid > 0) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
        if (WIFSIGNALED(status))
            fprintf(stderr, "reading %d colliding names: killed by signal %d (past its 20 s CPU limit)\n", FLOOD_N,
                    WTERMSIG(status));
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    pb_free(&m);
    free(names);
    free(buf);
}

/* ---- tests ---- */

static void test_small_model(void) {
    pb m = small_model(NULL, NULL);
    ox_graph *g = NULL;
    ox_read_info *info = NULL;
    ox_error err = {0};
    CHECK_EQ_INT(read_buf(&m, NULL, &g, &info, &err), OX_OK);
    if (g) {
        CHECK_EQ_INT(g->ir_version, 8);
        CHECK_EQ_INT(g->opset, 17);
        CHECK_STR(g->name, "g");
        CHECK_EQ_INT(g->nnodes, 1);
        CHECK_STR(g->nodes[0]->op_type, "Relu");
        CHECK_STR(g->nodes[0]->name, "relu0");
        CHECK_EQ_INT(g->ninputs, 1);
        CHECK_EQ_INT(g->noutputs, 1);
        CHECK(g->nodes[0]->inputs[0] == g->inputs[0]);
        CHECK(g->nodes[0]->outputs[0] == g->outputs[0]);
        CHECK_EQ_INT(g->outputs[0]->dtype, OX_FLOAT);
        CHECK_EQ_INT(g->outputs[0]->rank, 1);
        CHECK_EQ_INT(g->outputs[0]->dims[0].value, 2);
        CHECK(info && info->producer_name == NULL);
        CHECK_EQ_INT(info ? info->nopsets : 0, 1);
        /* Written back: the same bytes but for producer_name, which the writer always writes. */
        ox_save_options so = {.include_initializers = true, .producer_name = ""};
        uint8_t out[512];
        size_t w = 0;
        CHECK_EQ_INT(ox_model_write_buffer(g, &so, out, sizeof out, &w, &err), OX_OK);
        CHECK_EQ_INT(w, m.n + 2); /* + an empty field 2 */
        CHECK(w >= 2 && memcmp(out, m.p, 2) == 0 && out[2] == 0x12 && out[3] == 0 &&
              memcmp(out + 4, m.p + 2, m.n - 2) == 0);
    }
    ox_graph_free(g);
    ox_read_info_free(info);
    pb_free(&m);
}

static void test_varints(void) {
    static const struct {
        uint8_t bytes[12];
        size_t n;
        ox_code code;
        int64_t value;
    } cases[] = {
        {{0x08, 0x00}, 2, OX_OK, 0},
        {{0x08, 0x7f}, 2, OX_OK, 127},
        {{0x08, 0x80, 0x01}, 3, OX_OK, 128},
        {{0x08, 0x80, 0x00}, 3, OX_OK, 0}, /* non-canonical but valid */
        {{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 11, OX_OK, -1},
        {{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, 11, OX_EFORMAT, 0}, /* > 64 bits */
        {{0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 12, OX_EFORMAT, 0}, /* 11 bytes */
        {{0x08, 0x80}, 2, OX_EFORMAT, 0}, /* truncated */
        {{0x08}, 1, OX_EFORMAT, 0},
        {{0x80}, 1, OX_EFORMAT, 0}, /* truncated tag */
        {{0x00, 0x00}, 2, OX_EFORMAT, 0}, /* field number 0 */
        {{0x80, 0x80, 0x80, 0x80, 0x10, 0x00}, 6, OX_EFORMAT, 0}, /* field number 2^29 */
        {{0x0b, 0x0c}, 2, OX_EFORMAT, 0}, /* group wire type */
        {{0x0e, 0x00}, 2, OX_EFORMAT, 0}, /* wire type 6 */
        {{0x3a, 0x05, 0x00}, 3, OX_EFORMAT, 0}, /* graph length past the end */
        {{0x3a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 11, OX_EFORMAT, 0}, /* huge length */
    };
    pb rest = {0}, g = {0};
    pb_str(&g, 2, "g");
    pb_msg(&rest, 7, &g);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pb m = {0};
        pb_raw(&m, cases[i].bytes, cases[i].n);
        if (cases[i].code == OX_OK) pb_raw(&m, rest.p, rest.n);
        ox_graph *gr = NULL;
        ox_read_info *info = NULL;
        ox_error err = {0};
        ox_code rc = read_buf(&m, NULL, &gr, &info, &err);
        if (rc != cases[i].code) fprintf(stderr, "varint case %zu: %s\n", i, err.msg);
        CHECK_EQ_INT(rc, cases[i].code);
        if (rc == OX_OK) CHECK_EQ_INT(gr->ir_version, cases[i].value);
        else CHECK(gr == NULL && info == NULL && err.msg[0]);
        ox_graph_free(gr);
        ox_read_info_free(info);
        pb_free(&m);
    }
    pb_free(&rest);
}

/* Every prefix of a valid model either fails with a message or ends at a top-level field boundary
 * (where the prefix is itself a valid model). Under ASan, any out-of-bounds read would abort here. */
static void test_truncation(void) {
    size_t top[8];
    int ntop = 0;
    pb m = small_model(top, &ntop);
    int failed = 0;
    for (size_t n = 0; n <= m.n; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees a read past them */
        memcpy(copy, m.p, n);
        ox_graph *g = NULL;
        ox_read_info *info = NULL;
        ox_error err = {0};
        ox_code rc = ox_model_read(copy, n, NULL, &g, &info, &err);
        bool boundary = false;
        for (int k = 0; k < ntop; k++) boundary |= top[k] == n;
        if (rc == OX_OK) {
            CHECK(boundary && n >= top[1]); /* a model needs its graph */
        } else {
            failed++;
            CHECK(g == NULL && info == NULL);
            CHECK(err.msg[0] != 0);
            CHECK(err.code == OX_EFORMAT);
        }
        ox_graph_free(g);
        ox_read_info_free(info);
        free(copy);
    }
    CHECK(failed >= (int)m.n - 2);
    pb_free(&m);
}

static void test_packed_unpacked(void) {
    /* An INTS attribute and a tensor's dims and int64_data, unpacked, packed and mixed. */
    for (int form = 0; form < 3; form++) {
        pb g = {0}, node = {0}, attr = {0}, t = {0};
        pb_str(&node, 1, "x");
        pb_str(&node, 2, "y");
        pb_str(&node, 4, "Foo");
        pb_str(&attr, 1, "axes");
        int64_t vals[3] = {1, -2, 300};
        if (form == 0) {
            for (int i = 0; i < 3; i++) pb_int(&attr, 8, vals[i]);
        } else {
            pb packed = {0};
            for (int i = form == 2 ? 1 : 0; i < 3; i++) pb_varint(&packed, (uint64_t)vals[i]);
            if (form == 2) pb_int(&attr, 8, vals[0]); /* one unpacked, then the rest packed */
            pb_msg(&attr, 8, &packed);
        }
        pb_int(&attr, 20, OX_ATTR_INTS);
        pb_msg(&node, 5, &attr);
        pb_msg(&g, 1, &node);
        /* initializer "w": int64 [3] = {5, -6, 7} */
        if (form == 0) {
            pb_int(&t, 1, 3);
        } else {
            pb d = {0};
            pb_varint(&d, 3);
            pb_msg(&t, 1, &d);
        }
        pb_int(&t, 2, OX_INT64);
        int64_t w[3] = {5, -6, 7};
        if (form == 0) {
            for (int i = 0; i < 3; i++) pb_int(&t, 7, w[i]);
        } else {
            pb packed = {0};
            for (int i = 0; i < 3; i++) pb_varint(&packed, (uint64_t)w[i]);
            pb_msg(&t, 7, &packed);
        }
        pb_str(&t, 8, "w");
        pb_msg(&g, 5, &t);
        pb_vi(&g, 11, "x", 1, -1, NULL, NULL);
        pb_vi(&g, 12, "y", 1, -1, NULL, NULL);
        pb m = model_of(&g);
        ox_graph *gr = NULL;
        ox_read_info *info = NULL;
        ox_error err = {0};
        CHECK_EQ_INT(read_buf(&m, NULL, &gr, &info, &err), OX_OK);
        if (gr) {
            const ox_attr *a = ox_node_attr(gr->nodes[0], "axes");
            CHECK(a && a->type == OX_ATTR_INTS && a->u.ints.n == 3);
            if (a && a->u.ints.n == 3)
                for (int i = 0; i < 3; i++) CHECK_EQ_INT(a->u.ints.v[i], vals[i]);
            CHECK_EQ_INT(gr->ninitializers, 1);
            const ox_tensor *tt = gr->initializers[0]->tensor;
            CHECK_EQ_INT(tt->rank, 1);
            CHECK_EQ_INT(tt->dims[0], 3);
            CHECK_EQ_INT(tt->storage, OX_DATA_OWNED);
            int64_t got[3];
            memcpy(got, tt->data, sizeof got);
            for (int i = 0; i < 3; i++) CHECK_EQ_INT(got[i], w[i]);
            CHECK_EQ_INT(info->ntyped_tensors, 1);
        } else {
            fprintf(stderr, "form %d: %s\n", form, err.msg);
        }
        ox_graph_free(gr);
        ox_read_info_free(info);
        pb_free(&m);
    }
}

/* Unknown fields of each wire type, at every level: skipped. A group: refused cleanly. */
static void add_unknown(pb *b) {
    pb_int(b, 1000, 12345); /* varint */
    pb_tag(b, 1001, 1);
    pb_raw(b, "\1\2\3\4\5\6\7\10", 8); /* fixed64 */
    pb_str(b, 1002, "opaque"); /* length-delimited */
    pb_tag(b, 1003, 5);
    pb_raw(b, "\1\2\3\4", 4); /* fixed32 */
}

static void test_unknown_fields(void) {
    pb g = {0}, node = {0}, attr = {0}, t = {0};
    float one = 1.0f;
    pb_str(&node, 1, "x");
    pb_str(&node, 2, "y");
    add_unknown(&node);
    pb_str(&node, 4, "Foo");
    pb_str(&attr, 1, "alpha");
    add_unknown(&attr);
    pb_f32(&attr, 2, 0.5f);
    pb_int(&attr, 20, OX_ATTR_FLOAT);
    pb_msg(&node, 5, &attr);
    pb_msg(&g, 1, &node);
    pb_int(&t, 2, OX_FLOAT);
    add_unknown(&t);
    pb_bytes(&t, 9, &one, 4);
    pb_str(&t, 8, "c");
    pb_msg(&g, 5, &t);
    add_unknown(&g);
    pb_vi(&g, 11, "x", 1, -1, NULL, NULL);
    pb_vi(&g, 12, "y", 1, -1, NULL, NULL);
    pb m = model_of(&g);
    add_unknown(&m);
    ox_graph *gr = NULL;
    ox_read_info *info = NULL;
    ox_error err = {0};
    CHECK_EQ_INT(read_buf(&m, NULL, &gr, &info, &err), OX_OK);
    if (gr) {
        const ox_attr *a = ox_node_attr(gr->nodes[0], "alpha");
        CHECK(a && a->type == OX_ATTR_FLOAT && a->u.f == 0.5f);
        CHECK_EQ_INT(gr->ninitializers, 1);
        CHECK_EQ_INT(gr->initializers[0]->tensor->rank, 0);
    } else {
        fprintf(stderr, "unknown fields: %s\n", err.msg);
    }
    ox_graph_free(gr);
    ox_read_info_free(info);
    /* The same with a group (start + end) in the graph. */
    uint8_t grp[] = {0xa3, 0x3e, 0xa4, 0x3e}; /* field 1000, wire types 3 and 4 */
    pb m2 = {0}, g2 = {0};
    pb_raw(&g2, grp, sizeof grp);
    pb_msg(&m2, 7, &g2);
    CHECK_EQ_INT(read_buf(&m2, NULL, &gr, &info, &err), OX_EFORMAT);
    CHECK(strstr(err.msg, "group") != NULL);
    pb_free(&m);
    pb_free(&m2);
}

/* Deep nesting: a node attribute holding a graph holding a node ... 2000 levels down, and a
 * TypeProto of sequences 2000 deep. Refused at the first level, without recursion. */
static void test_deep_nesting(void) {
    pb inner = {0};
    for (int i = 0; i < 2000; i++) {
        pb attr = {0}, node = {0}, graph = {0};
        pb_str(&attr, 1, "body");
        pb_int(&attr, 20, 5);
        if (inner.n) pb_msg(&attr, 6, &inner);
        pb_str(&node, 4, "Loop");
        pb_msg(&node, 5, &attr);
        pb_msg(&graph, 1, &node);
        inner = graph;
    }
    pb m = model_of(&inner);
    ox_graph *g = NULL;
    ox_read_info *info = NULL;
    ox_error err = {0};
    CHECK_EQ_INT(read_buf(&m, NULL, &g, &info, &err), OX_EUNSUPPORTED);
    CHECK(strstr(err.msg, "'body'") && strstr(err.msg, "GRAPH") && strstr(err.msg, "Loop"));
    pb_free(&m);

    pb type = {0}, t0 = {0};
    pb_int(&t0, 1, 1);
    pb_msg(&type, 1, &t0); /* tensor_type float */
    for (int i = 0; i < 2000; i++) {
        pb seq = {0}, outer = {0};
        pb_msg(&seq, 1, &type);
        pb_msg(&outer, 4, &seq);
        type = outer;
    }
    pb vi = {0}, gb = {0};
    pb_str(&vi, 1, "s");
    pb_msg(&vi, 2, &type);
    pb_msg(&gb, 11, &vi);
    pb m2 = model_of(&gb);
    CHECK_EQ_INT(read_buf(&m2, NULL, &g, &info, &err), OX_EUNSUPPORTED);
    CHECK(strstr(err.msg, "sequence") != NULL);
    pb_free(&m2);
}

/* A model with one float initializer "w" of n floats whose raw bytes start at a chosen alignment. */
static pb raw_model(const float *vals, int n, size_t misalign, size_t *data_off) {
    pb g = {0}, t = {0};
    pb_int(&t, 1, n);
    pb_int(&t, 2, OX_FLOAT);
    pb_str(&t, 8, "w");
    pb_bytes(&t, 9, vals, (size_t)n * 4);
    pb_msg(&g, 5, &t);
    pb_vi(&g, 12, "w", 1, -1, NULL, NULL);
    pb m = model_of(&g);
    /* Find the bytes, then put an unknown field of 0..7 bytes in front so that they land at the
     * alignment asked for (realloc'd buffers are 16-byte aligned). */
    size_t off = 0;
    while (off + (size_t)n * 4 <= m.n && memcmp(m.p + off, vals, (size_t)n * 4) != 0) off++;
    pb padded = {0};
    for (size_t k = 0; k < 8; k++) {
        if ((3 + k + off) % 8 != misalign) continue;
        pb_tag(&padded, 1000, 2);
        pb_varint(&padded, k);
        for (size_t i = 0; i < k; i++) pb_raw(&padded, "", 1);
        *data_off = padded.n + off;
        pb_raw(&padded, m.p, m.n);
        break;
    }
    pb_free(&m);
    return padded;
}

static void test_zero_copy(void) {
    float vals[4] = {1, 2, 3, 4};
    for (size_t mis = 0; mis < 2; mis++) {
        size_t off = 0;
        pb m = raw_model(vals, 4, mis ? 1 : 0, &off);
        /* realloc'd buffers are 16-byte aligned: m.p + off has the alignment asked for */
        for (int borrow = 0; borrow < 2; borrow++) {
            ox_read_options o = {.borrow_unaligned = borrow};
            ox_graph *g = NULL;
            ox_read_info *info = NULL;
            ox_error err = {0};
            CHECK_EQ_INT(read_buf(&m, &o, &g, &info, &err), OX_OK);
            if (!g) {
                fprintf(stderr, "zero copy: %s\n", err.msg);
                pb_free(&m);
                return;
            }
            const ox_tensor *t = g->initializers[0]->tensor;
            bool inside = (const uint8_t *)t->data >= m.p && (const uint8_t *)t->data + 16 <= m.p + m.n;
            if (!mis || borrow) {
                CHECK(inside && (const uint8_t *)t->data == m.p + off);
                CHECK_EQ_INT(t->storage, OX_DATA_BORROWED);
                CHECK_EQ_INT(info->ncopied_tensors, 0);
            } else {
                CHECK(!inside);
                CHECK_EQ_INT(t->storage, OX_DATA_OWNED);
                CHECK_EQ_INT(info->ncopied_tensors, 1);
            }
            CHECK(memcmp(t->data, vals, 16) == 0);
            CHECK_EQ_INT(g->noutputs, 1);
            CHECK(g->outputs[0] == g->initializers[0]);
            ox_graph_free(g);
            ox_read_info_free(info);
        }
        pb_free(&m);
    }
}

/* Typed data fields decoded to raw layouts. */
static void test_typed_layouts(void) {
    struct {
        ox_dtype dt;
        unsigned field;
        int kind; /* 0: varints, 1: doubles, 2: floats */
        int64_t ivals[2];
        double dvals[2];
        uint8_t want[16];
        size_t nwant;
        int count;
    } cases[] = {
        {OX_FLOAT16, 5, 0, {0x3c00, 0xc000}, {0}, {0x00, 0x3c, 0x00, 0xc0}, 4, 2},
        {OX_BFLOAT16, 5, 0, {0x3f80, 0x4000}, {0}, {0x80, 0x3f, 0x00, 0x40}, 4, 2},
        {OX_BOOL, 5, 0, {1, 0}, {0}, {1, 0}, 2, 2},
        {OX_INT8, 5, 0, {-1, 5}, {0}, {0xff, 5}, 2, 2},
        {OX_UINT16, 5, 0, {65535, 1}, {0}, {0xff, 0xff, 1, 0}, 4, 2},
        {OX_INT32, 5, 0, {-2, 7}, {0}, {0xfe, 0xff, 0xff, 0xff, 7, 0, 0, 0}, 8, 2},
        {OX_UINT32, 11, 0, {4000000000, 1}, {0}, {0x00, 0x28, 0x6b, 0xee, 1, 0, 0, 0}, 8, 2},
        {OX_UINT64, 11, 0, {1, 2}, {0}, {1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}, 16, 2},
        {OX_DOUBLE, 10, 1, {0}, {1.0, -2.0}, {0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0xc0}, 16, 2},
        {OX_COMPLEX64, 4, 2, {0}, {1.0, 2.0}, {0, 0, 0x80, 0x3f, 0, 0, 0, 0x40}, 8, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pb g = {0}, t = {0};
        pb_int(&t, 1, cases[i].count);
        pb_int(&t, 2, cases[i].dt);
        for (int k = 0; k < 2; k++) {
            if (cases[i].kind == 0) pb_int(&t, cases[i].field, cases[i].ivals[k]);
            else if (cases[i].kind == 1) {
                pb_tag(&t, 10, 1);
                pb_raw(&t, &cases[i].dvals[k], 8);
            } else {
                pb_f32(&t, 4, (float)cases[i].dvals[k]);
            }
        }
        pb_str(&t, 8, "w");
        pb_msg(&g, 5, &t);
        pb_vi(&g, 12, "w", cases[i].dt, -1, NULL, NULL);
        pb m = model_of(&g);
        ox_graph *gr = NULL;
        ox_read_info *info = NULL;
        ox_error err = {0};
        CHECK_EQ_INT(read_buf(&m, NULL, &gr, &info, &err), OX_OK);
        if (gr) {
            const ox_tensor *tt = gr->initializers[0]->tensor;
            CHECK_EQ_INT(tt->nbytes, cases[i].nwant);
            if (tt->nbytes == cases[i].nwant && memcmp(tt->data, cases[i].want, cases[i].nwant) != 0) {
                fprintf(stderr, "typed layout of %s differs\n", ox_dtype_name(cases[i].dt));
                CHECK(0);
            }
        } else {
            fprintf(stderr, "typed %s: %s\n", ox_dtype_name(cases[i].dt), err.msg);
        }
        ox_graph_free(gr);
        ox_read_info_free(info);
        pb_free(&m);
    }
    /* Wrong counts and wrong fields are refused. */
    pb g = {0}, t = {0};
    pb_int(&t, 1, 3);
    pb_int(&t, 2, OX_FLOAT);
    pb_f32(&t, 4, 1.0f);
    pb_str(&t, 8, "w");
    pb_msg(&g, 5, &t);
    pb m = model_of(&g);
    ox_graph *gr = NULL;
    ox_read_info *info = NULL;
    ox_error err = {0};
    CHECK_EQ_INT(read_buf(&m, NULL, &gr, &info, &err), OX_EFORMAT);
    CHECK(strstr(err.msg, "'w'") != NULL);
    pb_free(&m);
    g = (pb){0};
    t = (pb){0};
    pb_int(&t, 2, OX_INT64);
    pb_f32(&t, 4, 1.0f);
    pb_str(&t, 8, "w");
    pb_msg(&g, 5, &t);
    m = model_of(&g);
    CHECK_EQ_INT(read_buf(&m, NULL, &gr, &info, &err), OX_EFORMAT);
    CHECK(strstr(err.msg, "float_data") != NULL);
    pb_free(&m);
}

/* Graph-level errors, each with a message naming what is wrong. */
static void test_graph_errors(void) {
    struct {
        const char *what;
        int kind;
        ox_code code;
        const char *needle;
    } cases[] = {
        {"undefined input", 0, OX_EFORMAT, "'nowhere'"},
        {"output produced twice", 1, OX_EFORMAT, "'y'"},
        {"graph attribute", 2, OX_EUNSUPPORTED, "'then_branch'"},
        {"ref_attr_name in a graph", 3, OX_EUNSUPPORTED, "ref_attr_name"},
        {"undefined graph output", 4, OX_EFORMAT, "'zz'"},
        {"float8 initializer", 5, OX_EUNSUPPORTED, "FLOAT8E4M3FN"},
        {"NUL in a name", 6, OX_EUNSUPPORTED, "NUL"},
        {"no graph", 7, OX_EFORMAT, "no graph"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pb g = {0}, node = {0}, attr = {0};
        pb_str(&node, 1, cases[i].kind == 0 ? "nowhere" : "x");
        pb_str(&node, 2, "y");
        pb_str(&node, 3, "n0");
        pb_str(&node, 4, cases[i].kind == 2 ? "If" : "Foo");
        if (cases[i].kind == 2) {
            pb_str(&attr, 1, "then_branch");
            pb_int(&attr, 20, 5);
            pb_msg(&node, 5, &attr);
        } else if (cases[i].kind == 3) {
            pb_str(&attr, 1, "alpha");
            pb_str(&attr, 21, "beta");
            pb_int(&attr, 20, OX_ATTR_FLOAT);
            pb_msg(&node, 5, &attr);
        }
        pb_msg(&g, 1, &node);
        if (cases[i].kind == 1) {
            pb n2 = {0};
            pb_str(&n2, 1, "x");
            pb_str(&n2, 2, "y");
            pb_str(&n2, 4, "Bar");
            pb_msg(&g, 1, &n2);
        }
        if (cases[i].kind == 5) {
            pb t = {0};
            pb_int(&t, 2, 17);
            pb_str(&t, 8, "f8");
            pb_bytes(&t, 9, "\1", 1);
            pb_msg(&g, 5, &t);
        }
        if (cases[i].kind == 6)
            pb_bytes(&g, 11,
                     "\x0a\x03"
                     "a\0b",
                     5);
        pb_vi(&g, 11, "x", 1, -1, NULL, NULL);
        pb_vi(&g, 12, cases[i].kind == 4 ? "zz" : "y", 1, -1, NULL, NULL);
        pb m = {0};
        if (cases[i].kind == 7) {
            pb_int(&m, 1, 8);
            pb_free(&g);
        } else m = model_of(&g);
        ox_graph *gr = NULL;
        ox_read_info *info = NULL;
        ox_error err = {0};
        ox_code rc = read_buf(&m, NULL, &gr, &info, &err);
        if (rc != cases[i].code || !strstr(err.msg, cases[i].needle))
            fprintf(stderr, "%s: %s: %s\n", cases[i].what, ox_code_name(rc), err.msg);
        CHECK_EQ_INT(rc, cases[i].code);
        CHECK(strstr(err.msg, cases[i].needle) != NULL);
        if (cases[i].kind == 0) { /* allowed on request: kept as a named value with no producer */
            ox_read_options o = {.allow_undefined_values = true};
            ox_error_clear(&err);
            CHECK_EQ_INT(read_buf(&m, &o, &gr, &info, &err), OX_OK);
            if (gr && info) {
                CHECK_EQ_INT(info->nundefined_values, 1);
                const ox_value *v = gr->nodes[0]->inputs[0];
                CHECK_STR(v->name, "nowhere");
                CHECK(v->kind == OX_VALUE_NODE && v->producer == NULL);
            }
            ox_graph_free(gr);
            ox_read_info_free(info);
            gr = NULL;
            info = NULL;
        }
        CHECK(gr == NULL && info == NULL);
        pb_free(&m);
    }
}

/* ---- external data on real files ---- */

static char tmp_root[512];

static void make_tmp_root(void) { check_tmp_dir(tmp_root, sizeof tmp_root, "proto_read"); }

static const char *tmp_path(const char *name) {
    static char buf[4][700];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", tmp_root, name);
    return b;
}

static void write_file(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(d, 1, n, f) != n) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

/* A model whose float[4] initializer "w" lives at (location, offset, length). */
static pb ext_model(const char *loc, const char *off, const char *len) {
    pb g = {0}, t = {0};
    pb_int(&t, 1, 4);
    pb_int(&t, 2, OX_FLOAT);
    pb_str(&t, 8, "w");
    const char *kv[3][2] = {{"location", loc}, {"offset", off}, {"length", len}};
    for (int i = 0; i < 3; i++) {
        if (!kv[i][1]) continue;
        pb e = {0};
        pb_str(&e, 1, kv[i][0]);
        pb_str(&e, 2, kv[i][1]);
        pb_msg(&t, 13, &e);
    }
    pb_int(&t, 14, 1);
    pb_msg(&g, 5, &t);
    pb_vi(&g, 12, "w", 1, -1, NULL, NULL);
    return model_of(&g);
}

static ox_code read_ext(const char *loc, const char *off, const char *len, bool allow, ox_error *err,
                        const float **data) {
    pb m = ext_model(loc, off, len);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/model", tmp_root);
    ox_read_options o = {.allow_external_data = allow, .base_dir = dir};
    ox_graph *g = NULL;
    ox_read_info *info = NULL;
    ox_code rc = read_buf(&m, &o, &g, &info, err);
    if (rc == OX_OK && data) {
        static float copy[4];
        memcpy(copy, g->initializers[0]->tensor->data, sizeof copy);
        *data = copy;
        CHECK_EQ_INT(g->initializers[0]->tensor->storage, OX_DATA_BORROWED);
        CHECK_EQ_INT(info->nexternal_tensors, 1);
    }
    ox_graph_free(g);
    ox_read_info_free(info);
    pb_free(&m);
    return rc;
}

static void test_external_data(void) {
    make_tmp_root();
    mkdir(tmp_path("model"), 0777);
    mkdir(tmp_path("model/sub"), 0777);
    mkdir(tmp_path("outside"), 0777);
    float vals[8] = {0, 0, 0, 0, 1, 2, 3, 4};
    write_file(tmp_path("model/w.bin"), vals, sizeof vals);
    write_file(tmp_path("model/sub/w.bin"), vals, sizeof vals);
    write_file(tmp_path("outside/secret.bin"), vals, sizeof vals);
    write_file(tmp_path("secret.bin"), vals, sizeof vals);
    CHECK(symlink("../outside/secret.bin", tmp_path("model/link_out.bin")) == 0);
    CHECK(symlink("/etc/passwd", tmp_path("model/passwd")) == 0);
    CHECK(symlink("w.bin", tmp_path("model/link_in.bin")) == 0);
    CHECK(symlink("../outside", tmp_path("model/dir_out")) == 0);

    ox_error err = {0};
    const float *d = NULL;
    CHECK_EQ_INT(read_ext("w.bin", "16", "16", true, &err, &d), OX_OK);
    if (d) CHECK(d[0] == 1 && d[3] == 4);
    CHECK_EQ_INT(read_ext("sub/w.bin", "16", NULL, true, &err, &d), OX_OK); /* length: to the end */
    CHECK_EQ_INT(read_ext("./w.bin", "16", "16", true, &err, NULL), OX_OK);
    CHECK_EQ_INT(read_ext("link_in.bin", "16", "16", true, &err, NULL), OX_OK); /* a link inside */

    struct {
        const char *loc, *off, *len;
        bool allow;
        ox_code code;
        const char *needle;
    } bad[] = {
        {"w.bin", "16", "16", false, OX_EINVAL, "not allowed"},
        {"../secret.bin", "0", "16", true, OX_EINVAL, ".."},
        {"/etc/passwd", "0", "16", true, OX_EINVAL, "absolute"},
        {"a/../../secret.bin", "0", "16", true, OX_EINVAL, ".."},
        {"sub/..", "0", "16", true, OX_EINVAL, ".."},
        {"..", "0", "16", true, OX_EINVAL, ".."},
        {"", "0", "16", true, OX_EINVAL, "empty"},
        {"..\\secret.bin", "0", "16", true, OX_EINVAL, "backslash"},
        {"link_out.bin", "0", "16", true, OX_EINVAL, "outside"},
        {"passwd", "0", "16", true, OX_EINVAL, "outside"},
        {"dir_out/secret.bin", "0", "16", true, OX_EINVAL, "outside"},
        {"sub", "0", "16", true, OX_EINVAL, "regular"},
        {"missing.bin", "0", "16", true, OX_EIO, "missing.bin"},
        {"w.bin", "24", "16", true, OX_EFORMAT, "past the end"},
        {"w.bin", "33", NULL, true, OX_EFORMAT, "past the end"},
        {"w.bin", "18446744073709551615", "16", true, OX_EFORMAT, "past the end"},
        {"w.bin", "99999999999999999999999", "16", true, OX_EFORMAT, "decimal"},
        {"w.bin", "-1", "16", true, OX_EFORMAT, "decimal"},
        {"w.bin", "0", "8", true, OX_EFORMAT, "length"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ox_code rc = read_ext(bad[i].loc, bad[i].off, bad[i].len, bad[i].allow, &err, NULL);
        bool named = strstr(err.msg, "'w'") != NULL && strstr(err.msg, bad[i].needle) != NULL;
        if (rc != bad[i].code || !named)
            fprintf(stderr, "location '%s' [%s, %s]: %s: %s\n", bad[i].loc, bad[i].off, bad[i].len ? bad[i].len : "-",
                    ox_code_name(rc), err.msg);
        CHECK_EQ_INT(rc, bad[i].code);
        CHECK(named);
    }
    /* Without an info to keep the mapping alive, external data is refused. */
    pb m = ext_model("w.bin", "16", "16");
    ox_read_options o = {.allow_external_data = true, .base_dir = tmp_path("model")};
    ox_graph *g = NULL;
    ox_error_clear(&err);
    CHECK_EQ_INT(ox_model_read(m.p, m.n, &o, &g, NULL, &err), OX_EINVAL);
    CHECK(strstr(err.msg, "ox_read_info") != NULL);
    ox_error_clear(&err);
    /* ... and with no base folder either. */
    ox_read_info *info = NULL;
    o.base_dir = NULL;
    CHECK_EQ_INT(ox_model_read(m.p, m.n, &o, &g, &info, &err), OX_EINVAL);
    CHECK(strstr(err.msg, "base folder") != NULL);

    /* ox_model_read_file: the model's folder is the base; the model bytes are mapped. */
    write_file(tmp_path("model/m.onnx"), m.p, m.n);
    ox_error_clear(&err);
    o = (ox_read_options){.allow_external_data = true};
    CHECK_EQ_INT(ox_model_read_file(tmp_path("model/m.onnx"), &o, &g, &info, &err), OX_OK);
    if (g) {
        const float *w = g->initializers[0]->tensor->data;
        CHECK(w[0] == 1 && w[3] == 4);
    }
    ox_graph_free(g);
    ox_read_info_free(info);
    CHECK_EQ_INT(ox_model_read_file(tmp_path("model/none.onnx"), &o, &g, &info, &err), OX_EIO);

    /* A FIFO, as external data and as the model (issue 15, item 7): refused at once; a blocking
     * open() waited for a writer forever, and the alarm makes that a failure, not a stuck suite. */
    CHECK(mkfifo(tmp_path("model/fifo.bin"), 0600) == 0);
    CHECK(mkfifo(tmp_path("model/fifo.onnx"), 0600) == 0);
    alarm(30);
    CHECK_EQ_INT(read_ext("fifo.bin", "0", "16", true, &err, NULL), OX_EINVAL);
    CHECK(strstr(err.msg, "'w'") && strstr(err.msg, "'fifo.bin' is not a regular file (a FIFO)"));
    ox_error_clear(&err);
    CHECK_EQ_INT(ox_model_read_file(tmp_path("model/fifo.onnx"), &o, &g, &info, &err), OX_EIO);
    CHECK(strstr(err.msg, "fifo.onnx' is not a regular file (a FIFO)") != NULL);
    CHECK(g == NULL && info == NULL);
    alarm(0);
    pb_free(&m);
}

/* metadata_only (oxport-inspect): shapes and dtypes, no bytes; external files checked as usual but
 * not mapped, and listed in info->externals with the bytes referenced. Uses test_external_data's
 * files. */
static void test_metadata_only(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/model", tmp_root);
    ox_error err = {0};
    ox_graph *g = NULL;
    ox_read_info *info = NULL;
    for (int meta = 0; meta < 2; meta++) {
        pb m = ext_model("w.bin", "16", "16");
        ox_read_options o = {.allow_external_data = true, .base_dir = dir, .metadata_only = meta};
        CHECK_EQ_INT(read_buf(&m, &o, &g, &info, &err), OX_OK);
        if (g && info) {
            const ox_tensor *t = g->initializers[0]->tensor;
            CHECK_EQ_INT(t->storage, meta ? OX_DATA_ABSENT : OX_DATA_BORROWED);
            CHECK(meta ? t->data == NULL : t->data != NULL);
            CHECK_EQ_INT(t->nbytes, 16);
            CHECK_EQ_INT(info->nexternals, 1);
            CHECK_STR(info->externals[0].location, "w.bin");
            CHECK_EQ_INT(info->externals[0].referenced_bytes, 16);
            CHECK_EQ_INT(info->externals[0].file_bytes, 32);
            CHECK_EQ_INT(info->externals[0].ntensors, 1);
        }
        ox_graph_free(g);
        ox_read_info_free(info);
        pb_free(&m);
        /* the same checks refuse the same locations */
        const char *bad[][3] = {{"../secret.bin", "0", "16"}, {"w.bin", "24", "16"}, {"link_out.bin", "0", "16"}};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            m = ext_model(bad[i][0], bad[i][1], bad[i][2]);
            ox_error_clear(&err);
            CHECK(read_buf(&m, &o, &g, &info, &err) != OX_OK);
            CHECK(g == NULL && info == NULL && strstr(err.msg, "'w'") != NULL);
            pb_free(&m);
        }
    }
    /* inline raw_data, misaligned or not, is neither borrowed nor copied */
    float vals[3] = {1, 2, 3};
    for (size_t mis = 0; mis < 2; mis++) {
        size_t off;
        pb m = raw_model(vals, 3, mis, &off);
        ox_read_options o = {.metadata_only = true};
        ox_error_clear(&err);
        CHECK_EQ_INT(read_buf(&m, &o, &g, &info, &err), OX_OK);
        if (g) {
            CHECK_EQ_INT(g->initializers[0]->tensor->storage, OX_DATA_ABSENT);
            CHECK_EQ_INT(g->initializers[0]->tensor->nbytes, 12);
            CHECK_EQ_INT(info->ncopied_tensors, 0);
        }
        ox_graph_free(g);
        ox_read_info_free(info);
        pb_free(&m);
    }
}

/* Writer → reader → writer: a graph with every attribute type, dim_param, value_info, metadata,
 * initializers as inputs and a custom domain comes back byte for byte. */
static void test_writer_round_trip(void) {
    ox_graph *g = ox_graph_new(20);
    ox_dim d[2] = {{.param = "batch"}, {.value = 4}};
    ox_value *x = ox_graph_add_input(g, "x", OX_FLOAT, 2, d);
    int64_t wd[1] = {4};
    float wv[4] = {1, 2, 3, 4};
    ox_value *w = ox_graph_add_initializer(g, "w", OX_FLOAT, 1, wd, wv, sizeof wv);
    ox_value *ins[2] = {x, w};
    ox_node *n = ox_graph_add_node(g, "Add", NULL, 2, ins, 1);
    ox_node_set_name(g, n, "add0");
    ox_node_set_int(g, n, "i", -5);
    ox_node_set_float(g, n, "f", 0.25f);
    ox_node_set_string(g, n, "s", "hello");
    int64_t iv[3] = {1, -1, 1LL << 40};
    ox_node_set_ints(g, n, "is", iv, 3);
    ox_node_set_floats(g, n, "fs", wv, 4);
    ox_node_set_tensor(g, n, "t", OX_INT64, 1, (int64_t[]){3}, iv);
    ox_value_set_name(g, n->outputs[0], "sum");
    n->outputs[0]->dtype = OX_FLOAT;
    ox_value_set_shape(g, n->outputs[0], 2, d);
    n->outputs[0]->has_meta = true;
    ox_value *ins2[3] = {n->outputs[0], NULL, x};
    ox_node *n2 = ox_graph_add_node(g, "Custom", "com.example", 3, ins2, 2);
    ox_value_set_name(g, n2->outputs[0], "out");
    n2->outputs[1] = NULL; /* an omitted optional output, written as "" */
    ox_graph_add_output(g, n2->outputs[0]);
    ox_graph_add_metadata(g, "k", "v");
    CHECK(!ox_graph_failed(g));

    ox_save_options so = {.include_initializers = true,
                          .keep_initializers_as_inputs = true,
                          .producer_name = "test",
                          .producer_version = "1"};
    ox_error err = {0};
    size_t n1 = ox_model_size(g, &so), w1 = 0;
    uint8_t *b1 = malloc(n1);
    CHECK_EQ_INT(ox_model_write_buffer(g, &so, b1, n1, &w1, &err), OX_OK);

    ox_graph *r = NULL;
    ox_read_info *info = NULL;
    CHECK_EQ_INT(ox_model_read(b1, w1, NULL, &r, &info, &err), OX_OK);
    if (r) {
        CHECK(info->keep_initializers_as_inputs);
        CHECK_STR(info->producer_name, "test");
        CHECK_EQ_INT(r->ninputs, 1);
        CHECK_STR(r->inputs[0]->dims[0].param, "batch");
        CHECK(r->nodes[1]->inputs[1] == NULL);
        CHECK(r->nodes[1]->outputs[1] == NULL);
        const ox_attr *t = ox_node_attr(r->nodes[0], "t");
        CHECK(t && t->type == OX_ATTR_TENSOR && t->u.t->nbytes == 24);
        ox_save_options so2 = {.include_initializers = true,
                               .keep_initializers_as_inputs = info->keep_initializers_as_inputs,
                               .producer_name = info->producer_name,
                               .producer_version = info->producer_version};
        size_t n2b = ox_model_size(r, &so2), w2 = 0;
        uint8_t *b2 = malloc(n2b ? n2b : 1);
        CHECK_EQ_INT(ox_model_write_buffer(r, &so2, b2, n2b, &w2, &err), OX_OK);
        CHECK_EQ_INT(w2, w1);
        CHECK(w2 == w1 && memcmp(b1, b2, w1) == 0);
        free(b2);
    } else {
        fprintf(stderr, "round trip: %s\n", err.msg);
    }
    ox_graph_free(r);
    ox_read_info_free(info);
    free(b1);
    ox_graph_free(g);
}

static void test_function(void) {
    pb f = {0}, node = {0}, a1 = {0}, a2 = {0}, def = {0}, op = {0};
    pb_str(&f, 1, "MyGelu");
    pb_str(&f, 4, "X");
    pb_str(&f, 5, "Y");
    pb_str(&f, 6, "approximate");
    pb_str(&node, 1, "X");
    pb_str(&node, 1, "");
    pb_str(&node, 2, "Y");
    pb_str(&node, 4, "Gelu");
    pb_str(&a1, 1, "approximate");
    pb_str(&a1, 21, "approximate");
    pb_int(&a1, 20, OX_ATTR_STRING);
    pb_msg(&node, 5, &a1);
    pb_str(&a2, 1, "k");
    pb_int(&a2, 3, 3);
    pb_int(&a2, 20, OX_ATTR_INT);
    pb_msg(&node, 5, &a2);
    pb_msg(&f, 7, &node);
    pb_str(&op, 1, "");
    pb_int(&op, 2, 20);
    pb_msg(&f, 9, &op);
    pb_str(&f, 10, "custom");
    pb_str(&def, 1, "alpha");
    pb_f32(&def, 2, 1.5f);
    pb_int(&def, 20, OX_ATTR_FLOAT);
    pb_msg(&f, 11, &def);
    ox_function *fn = NULL;
    ox_error err = {0};
    CHECK_EQ_INT(ox_function_read(f.p, f.n, &fn, &err), OX_OK);
    if (fn) {
        CHECK_STR(fn->name, "MyGelu");
        CHECK_STR(fn->domain, "custom");
        CHECK_EQ_INT(fn->ninputs, 1);
        CHECK_STR(fn->inputs[0], "X");
        CHECK_STR(fn->outputs[0], "Y");
        CHECK_EQ_INT(fn->nattributes, 1);
        CHECK_STR(fn->attributes[0], "approximate");
        CHECK_EQ_INT(fn->nattribute_defaults, 1);
        CHECK(fn->attribute_defaults[0].type == OX_ATTR_FLOAT && fn->attribute_defaults[0].u.f == 1.5f);
        CHECK_EQ_INT(fn->nopsets, 1);
        CHECK_EQ_INT(fn->opsets[0].version, 20);
        CHECK_EQ_INT(fn->nnodes, 1);
        const ox_function_node *fnode = &fn->nodes[0];
        CHECK_STR(fnode->op_type, "Gelu");
        CHECK_EQ_INT(fnode->ninputs, 2);
        CHECK_STR(fnode->inputs[1], "");
        CHECK_EQ_INT(fnode->nattrs, 2);
        CHECK_STR(fnode->attr_refs[0], "approximate");
        CHECK(fnode->attrs[0].type == OX_ATTR_STRING);
        CHECK(fnode->attr_refs[1] == NULL && fnode->attrs[1].u.i == 3);
    } else {
        fprintf(stderr, "function: %s\n", err.msg);
    }
    ox_function_free(fn);
    /* Every truncation fails cleanly or reads (FunctionProto has no required field). */
    for (size_t n = 0; n < f.n; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, f.p, n);
        ox_function *t = NULL;
        ox_error e = {0};
        if (ox_function_read(copy, n, &t, &e) != OX_OK) CHECK(t == NULL && e.msg[0]);
        ox_function_free(t);
        free(copy);
    }
    pb_free(&f);
}

/* An attribute whose payload is of another type than its `type` (found by the fuzzer: a STRING
 * attribute carrying only `i` once left the integer in the union and the writer read it as a
 * pointer). Only the member of the declared type is set. */
static void test_mismatched_attr_payload(void) {
    pb g = {0}, node = {0}, attr = {0};
    pb_str(&node, 1, "x");
    pb_str(&node, 2, "y");
    pb_str(&node, 4, "Foo");
    pb_str(&attr, 1, "mode");
    pb_int(&attr, 3, 2);
    pb_int(&attr, 20, OX_ATTR_STRING);
    pb_msg(&node, 5, &attr);
    pb_msg(&g, 1, &node);
    pb_vi(&g, 11, "x", 1, -1, NULL, NULL);
    pb_vi(&g, 12, "y", 1, -1, NULL, NULL);
    pb m = model_of(&g);
    ox_graph *gr = NULL;
    ox_read_info *info = NULL;
    ox_error err = {0};
    CHECK_EQ_INT(read_buf(&m, NULL, &gr, &info, &err), OX_OK);
    if (gr) {
        const ox_attr *a = ox_node_attr(gr->nodes[0], "mode");
        CHECK(a && a->type == OX_ATTR_STRING);
        if (a) CHECK_STR(a->u.s, "");
        uint8_t out[256];
        size_t w = 0;
        CHECK_EQ_INT(ox_model_write_buffer(gr, NULL, out, sizeof out, &w, &err), OX_OK);
    }
    ox_graph_free(gr);
    ox_read_info_free(info);
    pb_free(&m);
}

int main(void) {
    test_mismatched_attr_payload();
    test_small_model();
    test_varints();
    test_truncation();
    test_packed_unpacked();
    test_unknown_fields();
    test_deep_nesting();
    test_zero_copy();
    test_typed_layouts();
    test_graph_errors();
    test_external_data();
    test_metadata_only();
    test_writer_round_trip();
    test_function();
    test_colliding_names();
    return CHECK_DONE();
}
