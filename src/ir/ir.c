#include "ir/ir.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ir/hash.h"

/* ---- dtypes ---- */

static const struct {
    size_t size;
    const char *name;
} dtype_info[OX_DTYPE_COUNT] = {
    [OX_UNDEFINED] = {0, "undefined"}, [OX_FLOAT] = {4, "float32"},
    [OX_UINT8] = {1, "uint8"},         [OX_INT8] = {1, "int8"},
    [OX_UINT16] = {2, "uint16"},       [OX_INT16] = {2, "int16"},
    [OX_INT32] = {4, "int32"},         [OX_INT64] = {8, "int64"},
    [OX_STRING] = {0, "string"},       [OX_BOOL] = {1, "bool"},
    [OX_FLOAT16] = {2, "float16"},     [OX_DOUBLE] = {8, "float64"},
    [OX_UINT32] = {4, "uint32"},       [OX_UINT64] = {8, "uint64"},
    [OX_COMPLEX64] = {8, "complex64"}, [OX_COMPLEX128] = {16, "complex128"},
    [OX_BFLOAT16] = {2, "bfloat16"},
};

size_t ox_dtype_size(ox_dtype t) { return (unsigned)t < OX_DTYPE_COUNT ? dtype_info[t].size : 0; }

const char *ox_dtype_name(ox_dtype t) { return (unsigned)t < OX_DTYPE_COUNT ? dtype_info[t].name : "unknown"; }

bool ox_dtype_is_float(ox_dtype t) { return t == OX_FLOAT || t == OX_FLOAT16 || t == OX_DOUBLE || t == OX_BFLOAT16; }

bool ox_dtype_is_int(ox_dtype t) {
    switch (t) {
    case OX_UINT8:
    case OX_INT8:
    case OX_UINT16:
    case OX_INT16:
    case OX_INT32:
    case OX_INT64:
    case OX_UINT32:
    case OX_UINT64: return true;
    default: return false;
    }
}

int64_t ox_tensor_numel(const ox_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] < 0) return -1;
        if (t->dims[i] && n > INT64_MAX / t->dims[i]) return -1;
        n *= t->dims[i];
    }
    return n;
}

bool ox_tensor_has_data(const ox_tensor *t) {
    if (!t) return false;
    if (ox_tensor_is_view(t)) return ox_tensor_has_data(t->base);
    return t->storage != OX_DATA_ABSENT && (t->data || t->nbytes == 0);
}

/* Element `e` of a permuted tensor lives at base element sum(idx[i] * base_stride[perm[i]]). The
 * walk keeps the output index as a counter, so each element costs an add, not a division. */
static void read_permuted(const ox_tensor *t, size_t first, size_t count, unsigned char *dst) {
    const ox_tensor *b = t->base;
    size_t es = ox_dtype_size(t->dtype);
    int r = t->rank;
    int64_t bstride[16], stride[16], idx[16];
    int64_t s = 1;
    for (int i = r - 1; i >= 0; i--) {
        bstride[i] = s;
        s *= b->dims[i];
    }
    for (int i = 0; i < r; i++) stride[i] = bstride[t->perm[i]];
    size_t rem = first;
    int64_t src = 0;
    for (int i = r - 1; i >= 0; i--) {
        idx[i] = (int64_t)(rem % (size_t)t->dims[i]);
        rem /= (size_t)t->dims[i];
        src += idx[i] * stride[i];
    }
    const unsigned char *base = b->data;
    for (size_t e = 0; e < count; e++) {
        memcpy(dst + e * es, base + (size_t)src * es, es);
        for (int i = r - 1; i >= 0; i--) { /* odometer step */
            src += stride[i];
            if (++idx[i] < t->dims[i]) break;
            src -= stride[i] * idx[i];
            idx[i] = 0;
        }
    }
}

/* Most views are a matrix transpose in disguise: a weight [A, B] read as [B, A], perhaps under
 * leading batch dims. Dims that stay adjacent and in order merge, unit dims drop out; when what
 * is left is perm [1, 0] or [0, 2, 1], the view is `batch` matrices of `rows` x `cols` (output
 * shape) whose element (j, i) is base element (i, j). */
typedef struct {
    size_t batch, rows, cols;
} transpose2d;

static bool as_transpose2d(const ox_tensor *t, transpose2d *m) {
    int64_t sz[16], p[16];
    int r = 0;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] == 1) continue;
        if (r && t->perm[i] == p[r - 1] + 1) {
            p[r - 1] = t->perm[i];
            sz[r - 1] *= t->dims[i];
            continue;
        }
        p[r] = t->perm[i];
        sz[r++] = t->dims[i];
    }
    /* p holds the last base dim of each group; rank the groups by it */
    if (r == 2 && p[0] > p[1]) {
        *m = (transpose2d){1, (size_t)sz[0], (size_t)sz[1]};
        return true;
    }
    if (r == 3 && p[0] < p[2] && p[2] < p[1]) {
        *m = (transpose2d){(size_t)sz[0], (size_t)sz[1], (size_t)sz[2]};
        return true;
    }
    return false;
}

/* Output rows [row, row + nrows) of the matrix at src, copied in 32 x 32 tiles so that both sides
 * stay in cache. Either side may be unaligned: the fixed-size memcpy compiles to one move. */
#define TILE 32
#define TRANSPOSE_TILES(ES) \
    do { \
        for (size_t j0 = 0; j0 < nrows; j0 += TILE) { \
            size_t j1 = j0 + TILE < nrows ? j0 + TILE : nrows; \
            for (size_t i0 = 0; i0 < m->cols; i0 += TILE) { \
                size_t i1 = i0 + TILE < m->cols ? i0 + TILE : m->cols; \
                for (size_t j = j0; j < j1; j++) \
                    for (size_t i = i0; i < i1; i++) \
                        memcpy(dst + (j * m->cols + i) * (ES), src + (i * m->rows + row + j) * (ES), (ES)); \
            } \
        } \
    } while (0)

static void transpose_rows(const transpose2d *m, size_t es, const unsigned char *src, size_t row, size_t nrows,
                           unsigned char *dst) {
    switch (es) {
    case 1: TRANSPOSE_TILES(1); break;
    case 2: TRANSPOSE_TILES(2); break;
    case 4: TRANSPOSE_TILES(4); break;
    case 8: TRANSPOSE_TILES(8); break;
    default: TRANSPOSE_TILES(es);
    }
}
#undef TRANSPOSE_TILES
#undef TILE

/* Elements [first, first + count) of a view that as_transpose2d recognised: whole output rows go
 * through the tiled copy, a partial row at either end through the general walk. */
static void read_transposed(const ox_tensor *t, const transpose2d *m, size_t first, size_t count, unsigned char *dst) {
    size_t es = ox_dtype_size(t->dtype);
    size_t cols = m->cols, mat = m->rows * m->cols;
    while (count) {
        size_t in_row = first % cols;
        if (in_row || count < cols) {
            size_t k = cols - in_row < count ? cols - in_row : count;
            read_permuted(t, first, k, dst);
            first += k;
            count -= k;
            dst += k * es;
            continue;
        }
        size_t b = first / mat, row = (first % mat) / cols;
        size_t nrows = count / cols;
        if (nrows > m->rows - row) nrows = m->rows - row;
        const unsigned char *src = (const unsigned char *)t->base->data + b * mat * es;
        transpose_rows(m, es, src, row, nrows, dst);
        first += nrows * cols;
        count -= nrows * cols;
        dst += nrows * cols * es;
    }
}

size_t ox_tensor_read_chunk(const ox_tensor *t) {
    size_t chunk = 64 << 10;
    transpose2d m;
    if (t->storage == OX_DATA_PERMUTED && t->rank <= 16 && as_transpose2d(t, &m)) {
        size_t rows = 64 * m.cols * ox_dtype_size(t->dtype); /* 64 output rows at a time */
        if (rows > chunk) chunk = rows;
    }
    return chunk < t->nbytes ? chunk : t->nbytes;
}

/* Elements [first, first + count) of a SCALED view, a run of equal factors at a time. */
static void read_scaled(const ox_tensor *t, size_t first, size_t count, unsigned char *dst) {
    const float *b = t->base->data;
    size_t run = (size_t)t->run;
    while (count) {
        size_t r = first / run, k = run - first % run < count ? run - first % run : count;
        double f = t->scale[r];
        for (size_t e = 0; e < k; e++) {
            float v = (float)(b[first + e] * f);
            memcpy(dst + e * sizeof v, &v, sizeof v);
        }
        first += k;
        count -= k;
        dst += k * sizeof(float);
    }
}

/* Whole elements [first, first + count) of a view. */
static void read_view(const ox_tensor *t, size_t first, size_t count, unsigned char *dst) {
    transpose2d m;
    if (t->storage == OX_DATA_SCALED) read_scaled(t, first, count, dst);
    else if (as_transpose2d(t, &m)) read_transposed(t, &m, first, count, dst);
    else read_permuted(t, first, count, dst);
}

bool ox_tensor_read(const ox_tensor *t, size_t off, size_t n, void *dst) {
    if (!ox_tensor_has_data(t) || off > t->nbytes || n > t->nbytes - off) return false;
    if (!n) return true;
    if (!ox_tensor_is_view(t)) {
        memcpy(dst, (const unsigned char *)t->data + off, n);
        return true;
    }
    if (ox_tensor_is_view(t->base) || t->rank > 16) return false;
    if (t->storage == OX_DATA_SCALED && (t->dtype != OX_FLOAT || t->base->dtype != OX_FLOAT || t->run < 1))
        return false;
    size_t es = ox_dtype_size(t->dtype);
    unsigned char *out = dst;
    size_t first = off / es, head = off % es;
    if (head) { /* a partial first element */
        unsigned char tmp[16];
        read_view(t, first, 1, tmp);
        size_t k = es - head < n ? es - head : n;
        memcpy(out, tmp + head, k);
        out += k;
        n -= k;
        first++;
    }
    size_t whole = n / es;
    if (whole) read_view(t, first, whole, out);
    out += whole * es;
    n -= whole * es;
    first += whole;
    if (n) {
        unsigned char tmp[16];
        read_view(t, first, 1, tmp);
        memcpy(out, tmp, n);
    }
    return true;
}

const void *ox_tensor_bytes(ox_graph *g, ox_tensor *t) {
    if (!ox_tensor_has_data(t)) return NULL;
    t->consumed = true;
    if (!ox_tensor_is_view(t)) return t->data;
    ((ox_tensor *)t->base)->consumed = true;
    void *p = ox_arena_alloc(g->arena, t->nbytes);
    if (!p) {
        ox_graph_status(g);
        return NULL;
    }
    if (!ox_tensor_read(t, 0, t->nbytes, p)) return NULL;
    t->weight = ox_tensor_is_weight(t);
    t->data = p;
    t->storage = OX_DATA_OWNED;
    t->base = NULL;
    t->perm = NULL;
    t->scale = NULL;
    return p;
}

/* ---- growable arrays in the arena: the old array is abandoned, at most doubling the cost ---- */

static bool grow(ox_graph *g, void *arrp, uint32_t *cap, uint32_t n, size_t elem) {
    if (n < *cap) return true;
    uint32_t ncap = *cap ? *cap * 2 : 16;
    if (ncap <= *cap) {
        ox_error_set(&g->err, OX_ENOMEM, NULL, "graph too large");
        return false;
    }
    void **arr = arrp;
    void *p = ox_arena_array(g->arena, ncap, elem);
    if (!p) {
        ox_graph_status(g);
        return false;
    }
    if (*arr) memcpy(p, *arr, (size_t)n * elem);
    *arr = p;
    *cap = ncap;
    return true;
}

#define PUSH(g, arr, n, cap, item) \
    (grow((g), &(arr), &(cap), (n), sizeof *(arr)) ? ((arr)[(n)++] = (item), true) : false)

/* ---- the keyed hash (ir/hash.h): SipHash-1-3 ---- */

static uint64_t hash_key[2];
static atomic_int hash_state; /* 0: no key yet, 1: being drawn, 2: ready */

static uint64_t mix64(uint64_t x) { /* splitmix64's finalizer: spreads the fallback's weak bits */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Draws the key once; a thread that loses the race waits for the winner's key, so that every
 * table in the process hashes alike. */
static void hash_seed(void) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&hash_state, &expected, 1)) {
        while (atomic_load_explicit(&hash_state, memory_order_acquire) != 2) sched_yield();
        return;
    }
    uint64_t k[2] = {0, 0};
    size_t got = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        while (got < sizeof k) {
            ssize_t r = read(fd, (unsigned char *)k + got, sizeof k - got);
            if (r > 0) got += (size_t)r;
            else if (r < 0 && errno == EINTR) continue;
            else break;
        }
        close(fd);
    }
    if (got < sizeof k) {
        struct timespec ts = {0, 0};
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] = mix64((uint64_t)ts.tv_sec ^ ((uint64_t)ts.tv_nsec << 20) ^ ((uint64_t)getpid() << 44));
        k[1] = mix64(k[0] ^ (uint64_t)(uintptr_t)&fd ^ ((uint64_t)(uintptr_t)&hash_state << 13));
    }
    hash_key[0] = k[0];
    hash_key[1] = k[1];
    atomic_store_explicit(&hash_state, 2, memory_order_release);
}

#define SIP_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND() \
    do { \
        v0 += v1; \
        v1 = SIP_ROTL(v1, 13); \
        v1 ^= v0; \
        v0 = SIP_ROTL(v0, 32); \
        v2 += v3; \
        v3 = SIP_ROTL(v3, 16); \
        v3 ^= v2; \
        v0 += v3; \
        v3 = SIP_ROTL(v3, 21); \
        v3 ^= v0; \
        v2 += v1; \
        v1 = SIP_ROTL(v1, 17); \
        v1 ^= v2; \
        v2 = SIP_ROTL(v2, 32); \
    } while (0)

uint64_t ox_hash_bytes(const void *p, size_t n) {
    if (atomic_load_explicit(&hash_state, memory_order_acquire) != 2) hash_seed();
    const unsigned char *s = p;
    uint64_t v0 = 0x736f6d6570736575ull ^ hash_key[0], v1 = 0x646f72616e646f6dull ^ hash_key[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ hash_key[0], v3 = 0x7465646279746573ull ^ hash_key[1];
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t m = 0;
        for (int j = 0; j < 8; j++) m |= (uint64_t)s[i + j] << (8 * j);
        v3 ^= m;
        SIP_ROUND();
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    for (int j = 0; i + (size_t)j < n; j++) b |= (uint64_t)s[i + (size_t)j] << (8 * j);
    v3 ^= b;
    SIP_ROUND();
    v0 ^= b;
    v2 ^= 0xff;
    SIP_ROUND();
    SIP_ROUND();
    SIP_ROUND();
    return v0 ^ v1 ^ v2 ^ v3;
}

#undef SIP_ROUND
#undef SIP_ROTL

/* ---- name table: open addressing over interned strings ----
 * Each entry remembers the next suffix to try for names derived from it, so that a thousand
 * values all hinted "_const" cost a thousand probes, not half a million. The hash is keyed
 * (ir/hash.h): names come from files, and an unkeyed one let a model choose colliding names. */

struct ox_name_entry {
    const char *name;
    uint32_t next_suffix;
};

static uint64_t hash_str(const char *s) { return ox_hash_bytes(s, strlen(s)); }

static struct ox_name_entry *names_find(const ox_name_table *t, const char *s) {
    if (!t->cap) return NULL;
    uint32_t mask = t->cap - 1;
    for (uint32_t i = (uint32_t)hash_str(s) & mask;; i = (i + 1) & mask) {
        if (!t->entries[i].name) return NULL;
        if (strcmp(t->entries[i].name, s) == 0) return &t->entries[i];
    }
}

static struct ox_name_entry *names_insert(ox_graph *g, ox_name_table *t, const char *s) {
    if ((t->count + 1) * 2 > t->cap) {
        uint32_t ncap = t->cap ? t->cap * 2 : 256;
        struct ox_name_entry *nt = ox_arena_array(g->arena, ncap, sizeof *nt);
        if (!nt) {
            ox_graph_status(g);
            return NULL;
        }
        for (uint32_t j = 0; j < t->cap; j++) {
            if (!t->entries[j].name) continue;
            uint32_t k = (uint32_t)hash_str(t->entries[j].name) & (ncap - 1);
            while (nt[k].name) k = (k + 1) & (ncap - 1);
            nt[k] = t->entries[j];
        }
        t->entries = nt;
        t->cap = ncap;
    }
    uint32_t mask = t->cap - 1;
    uint32_t i = (uint32_t)hash_str(s) & mask;
    while (t->entries[i].name) i = (i + 1) & mask;
    t->entries[i].name = s;
    t->entries[i].next_suffix = 1;
    t->count++;
    return &t->entries[i];
}

/* Interns in t a unique name derived from `hint`: the hint itself, else hint_1, hint_2, ... */
static const char *unique_in(ox_graph *g, ox_name_table *t, const char *hint) {
    struct ox_name_entry *base = names_find(t, hint);
    const char *name;
    if (!base) {
        name = ox_arena_strdup(g->arena, hint);
    } else {
        uint32_t k = base->next_suffix;
        for (;; k++) {
            char *buf = ox_arena_printf(g->arena, "%s_%u", hint, k);
            if (!buf) {
                ox_graph_status(g);
                return NULL;
            }
            if (!names_find(t, buf)) {
                name = buf;
                break;
            }
        }
        base->next_suffix = k + 1; /* base stays valid: no insert happened since the find */
    }
    if (!name || !names_insert(g, t, name)) {
        ox_graph_status(g);
        return NULL;
    }
    return name;
}

static const char *unique_name(ox_graph *g, const char *hint) { return unique_in(g, &g->value_names, hint); }

/* ---- graph ---- */

ox_graph *ox_graph_new(int opset) {
    ox_arena *a = ox_arena_new();
    if (!a) return NULL;
    ox_graph *g = ox_arena_alloc(a, sizeof *g);
    if (!g) {
        ox_arena_free(a);
        return NULL;
    }
    g->arena = a;
    g->opset = opset;
    g->ir_version = 10;
    g->name = "main_graph";
    return g;
}

void ox_graph_free(ox_graph *g) {
    if (g) ox_arena_free(g->arena);
}

ox_code ox_graph_status(ox_graph *g) {
    if (ox_arena_oom(g->arena)) ox_error_set(&g->err, OX_ENOMEM, NULL, "out of memory while building the graph");
    return g->err.code;
}

bool ox_graph_failed(const ox_graph *g) { return g->err.code != OX_OK || ox_arena_oom(g->arena); }

static ox_dim *copy_dims(ox_graph *g, int rank, const ox_dim *dims) {
    if (rank <= 0) return NULL;
    ox_dim *d = ox_arena_array(g->arena, (size_t)rank, sizeof *d);
    if (!d) {
        ox_graph_status(g);
        return NULL;
    }
    for (int i = 0; i < rank; i++) {
        if (!dims) {
            d[i].value = -1;
            continue;
        } /* rank known, sizes not */
        d[i].value = dims[i].param ? -1 : dims[i].value;
        d[i].param = dims[i].param ? ox_arena_strdup(g->arena, dims[i].param) : NULL;
    }
    return d;
}

ox_value *ox_graph_add_value(ox_graph *g, const char *name, ox_dtype dtype, int rank, const ox_dim *dims) {
    if (ox_graph_failed(g)) return NULL;
    ox_value *v = ox_arena_alloc(g->arena, sizeof *v);
    if (!v) {
        ox_graph_status(g);
        return NULL;
    }
    v->dtype = dtype;
    v->rank = rank;
    v->dims = copy_dims(g, rank, dims);
    if (name && !(v->name = unique_name(g, name))) return NULL;
    v->id = g->nvalues;
    if (!PUSH(g, g->values, g->nvalues, g->cap_values, v)) return NULL;
    return ox_graph_failed(g) ? NULL : v;
}

ox_value *ox_graph_add_input(ox_graph *g, const char *name, ox_dtype dtype, int rank, const ox_dim *dims) {
    ox_value *v = ox_graph_add_value(g, name ? name : "input", dtype, rank, dims);
    if (!v) return NULL;
    v->kind = OX_VALUE_INPUT;
    v->has_meta = true;
    return PUSH(g, g->inputs, g->ninputs, g->cap_inputs, v) ? v : NULL;
}

static ox_value *add_tensor_value(ox_graph *g, const char *name, ox_dtype dtype, int rank, const int64_t *dims) {
    if (rank < 0 || (rank > 0 && !dims)) {
        ox_error_set(&g->err, OX_EINVAL, name, "initializer %s: bad rank %d", name ? name : "", rank);
        return NULL;
    }
    ox_dim *d = rank ? ox_arena_array(g->arena, (size_t)rank, sizeof *d) : NULL;
    if (rank && !d) {
        ox_graph_status(g);
        return NULL;
    }
    for (int i = 0; i < rank; i++) d[i].value = dims[i];
    ox_value *v = ox_graph_add_value(g, name, dtype, rank, d);
    if (!v) return NULL;
    ox_tensor *t = ox_arena_alloc(g->arena, sizeof *t);
    int64_t *tdims = rank ? ox_arena_array(g->arena, (size_t)rank, sizeof *tdims) : NULL;
    if (!t || (rank && !tdims)) {
        ox_graph_status(g);
        return NULL;
    }
    if (rank) memcpy(tdims, dims, (size_t)rank * sizeof *tdims);
    t->dtype = dtype;
    t->rank = rank;
    t->dims = tdims;
    v->kind = OX_VALUE_INITIALIZER;
    v->tensor = t;
    v->has_meta = true;
    if (!PUSH(g, g->initializers, g->ninitializers, g->cap_initializers, v)) return NULL;
    return v;
}

static bool tensor_size(ox_graph *g, const char *name, ox_dtype dtype, int rank, const int64_t *dims, size_t *out) {
    ox_tensor probe = {.dtype = dtype, .rank = rank, .dims = dims};
    int64_t n = ox_tensor_numel(&probe);
    size_t es = ox_dtype_size(dtype);
    if (n < 0 || es == 0 || (uint64_t)n > SIZE_MAX / es) {
        ox_error_set(&g->err, OX_EINVAL, name, "tensor %s: bad shape or dtype %s", name ? name : "(constant)",
                     ox_dtype_name(dtype));
        return false;
    }
    *out = (size_t)n * es;
    return true;
}

ox_value *ox_graph_add_initializer(ox_graph *g, const char *name, ox_dtype dtype, int rank, const int64_t *dims,
                                   const void *data, size_t nbytes) {
    if (ox_graph_failed(g)) return NULL;
    size_t want;
    if (!tensor_size(g, name, dtype, rank, dims, &want)) return NULL;
    if (data && nbytes != want) {
        ox_error_set(&g->err, OX_EINVAL, name, "initializer %s: %zu bytes given, its shape needs %zu", name ? name : "",
                     nbytes, want);
        return NULL;
    }
    ox_value *v = add_tensor_value(g, name, dtype, rank, dims);
    if (!v) return NULL;
    v->tensor->data = data;
    v->tensor->nbytes = want;
    /* An empty tensor has all its (zero) bytes even when PyTorch gives it no pointer. */
    v->tensor->storage = data || want == 0 ? OX_DATA_BORROWED : OX_DATA_ABSENT;
    v->tensor->weight = true;
    return v;
}

ox_value *ox_graph_adopt_tensor(ox_graph *g, const char *name, ox_tensor *t) {
    if (ox_graph_failed(g)) return NULL;
    /* Anonymous unless named: a pass that replaces a named value hands its name over. */
    ox_value *v = add_tensor_value(g, name, t->dtype, t->rank, t->dims);
    if (!v) return NULL;
    v->tensor = t; /* the fresh tensor add_tensor_value made stays unused in the arena */
    return v;
}

ox_value *ox_graph_add_constant(ox_graph *g, const char *name, ox_dtype dtype, int rank, const int64_t *dims,
                                const void *data) {
    if (ox_graph_failed(g)) return NULL;
    size_t nbytes;
    if (!tensor_size(g, name, dtype, rank, dims, &nbytes)) return NULL;
    void *copy = ox_arena_alloc(g->arena, nbytes);
    if (!copy) {
        ox_graph_status(g);
        return NULL;
    }
    if (data) memcpy(copy, data, nbytes);
    ox_value *v = add_tensor_value(g, name ? name : "_const", dtype, rank, dims);
    if (!v) return NULL;
    v->tensor->data = copy;
    v->tensor->nbytes = nbytes;
    v->tensor->storage = OX_DATA_OWNED;
    return v;
}

int ox_graph_add_output(ox_graph *g, ox_value *v) {
    if (ox_graph_failed(g)) return ox_graph_status(g);
    if (!v) return ox_error_set(&g->err, OX_EINVAL, NULL, "graph output is NULL");
    v->is_output = true;
    return PUSH(g, g->outputs, g->noutputs, g->cap_outputs, v) ? OX_OK : ox_graph_status(g);
}

int ox_graph_add_metadata(ox_graph *g, const char *key, const char *value) {
    if (ox_graph_failed(g)) return ox_graph_status(g);
    ox_metadata_prop p = {ox_arena_strdup(g->arena, key), ox_arena_strdup(g->arena, value)};
    if (!p.key || !p.value) return ox_graph_status(g);
    return PUSH(g, g->metadata, g->nmetadata, g->cap_metadata, p) ? OX_OK : ox_graph_status(g);
}

int ox_value_set_name(ox_graph *g, ox_value *v, const char *name) {
    const char *n = unique_name(g, name);
    if (!n) return ox_graph_status(g);
    v->name = n;
    return OX_OK;
}

const char *ox_value_name(ox_graph *g, ox_value *v) {
    if (v->name) return v->name;
    char hint[32];
    snprintf(hint, sizeof hint, "_v%u", g->anon_counter++);
    v->name = unique_name(g, hint);
    return v->name;
}

void ox_value_set_shape(ox_graph *g, ox_value *v, int rank, const ox_dim *dims) {
    v->rank = rank;
    v->dims = copy_dims(g, rank, dims);
}

bool ox_value_is_static(const ox_value *v) {
    if (v->rank < 0) return false;
    for (int i = 0; i < v->rank; i++)
        if (v->dims[i].param || v->dims[i].value < 0) return false;
    return true;
}

int64_t ox_value_numel(const ox_value *v) {
    if (!ox_value_is_static(v)) return -1;
    int64_t n = 1;
    for (int i = 0; i < v->rank; i++) {
        if (v->dims[i].value && n > INT64_MAX / v->dims[i].value) return -1;
        n *= v->dims[i].value;
    }
    return n;
}

/* ---- nodes ---- */

ox_node *ox_graph_add_node(ox_graph *g, const char *op_type, const char *domain, int ninputs, ox_value *const *inputs,
                           int noutputs) {
    if (ox_graph_failed(g)) return NULL;
    if (ninputs < 0 || noutputs < 0 || !op_type) {
        ox_error_set(&g->err, OX_EINVAL, op_type, "bad node arguments");
        return NULL;
    }
    ox_node *n = ox_arena_alloc(g->arena, sizeof *n);
    if (!n) {
        ox_graph_status(g);
        return NULL;
    }
    n->op_type = ox_arena_strdup(g->arena, op_type);
    n->domain = domain && *domain ? ox_arena_strdup(g->arena, domain) : NULL;
    n->inputs = ninputs ? ox_arena_array(g->arena, (size_t)ninputs, sizeof *n->inputs) : NULL;
    n->outputs = noutputs ? ox_arena_array(g->arena, (size_t)noutputs, sizeof *n->outputs) : NULL;
    if (ox_arena_oom(g->arena)) {
        ox_graph_status(g);
        return NULL;
    }
    n->ninputs = ninputs;
    n->noutputs = noutputs;
    if (ninputs) memcpy(n->inputs, inputs, (size_t)ninputs * sizeof *inputs);
    for (int i = 0; i < noutputs; i++) {
        ox_value *v = ox_graph_add_value(g, NULL, OX_UNDEFINED, -1, NULL);
        if (!v) return NULL;
        v->producer = n;
        n->outputs[i] = v;
    }
    n->id = g->nnodes;
    return PUSH(g, g->nodes, g->nnodes, g->cap_nodes, n) ? n : NULL;
}

int ox_node_set_name(ox_graph *g, ox_node *n, const char *name) {
    if (!n || !name) return ox_graph_status(g);
    n->name = unique_in(g, &g->node_names, name);
    return ox_graph_status(g);
}

/* A new attribute slot, or the existing one of that name (set twice = replaced). */
static ox_attr *attr_slot(ox_graph *g, ox_node *n, const char *name, ox_attr_type type) {
    if (!n || ox_graph_failed(g)) return NULL;
    for (int i = 0; i < n->nattrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) {
            n->attrs[i].type = type;
            return &n->attrs[i];
        }
    uint32_t cnt = (uint32_t)n->nattrs, cap = (uint32_t)n->cap_attrs;
    if (!grow(g, &n->attrs, &cap, cnt, sizeof *n->attrs)) return NULL;
    n->cap_attrs = (int)cap;
    ox_attr *a = &n->attrs[n->nattrs++];
    memset(a, 0, sizeof *a);
    a->name = ox_arena_strdup(g->arena, name);
    a->type = type;
    return a->name ? a : NULL;
}

int ox_node_set_int(ox_graph *g, ox_node *n, const char *name, int64_t v) {
    ox_attr *a = attr_slot(g, n, name, OX_ATTR_INT);
    if (a) a->u.i = v;
    return ox_graph_status(g);
}

int ox_node_set_float(ox_graph *g, ox_node *n, const char *name, float v) {
    ox_attr *a = attr_slot(g, n, name, OX_ATTR_FLOAT);
    if (a) a->u.f = v;
    return ox_graph_status(g);
}

int ox_node_set_string(ox_graph *g, ox_node *n, const char *name, const char *v) {
    ox_attr *a = attr_slot(g, n, name, OX_ATTR_STRING);
    if (a) a->u.s = ox_arena_strdup(g->arena, v);
    return ox_graph_status(g);
}

int ox_node_set_ints(ox_graph *g, ox_node *n, const char *name, const int64_t *v, int count) {
    ox_attr *a = attr_slot(g, n, name, OX_ATTR_INTS);
    if (a && count > 0) {
        a->u.ints.v = ox_arena_array(g->arena, (size_t)count, sizeof *v);
        if (a->u.ints.v) memcpy(a->u.ints.v, v, (size_t)count * sizeof *v);
    }
    if (a) a->u.ints.n = count > 0 ? count : 0;
    return ox_graph_status(g);
}

int ox_node_set_floats(ox_graph *g, ox_node *n, const char *name, const float *v, int count) {
    ox_attr *a = attr_slot(g, n, name, OX_ATTR_FLOATS);
    if (a && count > 0) {
        a->u.floats.v = ox_arena_array(g->arena, (size_t)count, sizeof *v);
        if (a->u.floats.v) memcpy(a->u.floats.v, v, (size_t)count * sizeof *v);
    }
    if (a) a->u.floats.n = count > 0 ? count : 0;
    return ox_graph_status(g);
}

int ox_node_set_tensor(ox_graph *g, ox_node *n, const char *name, ox_dtype dtype, int rank, const int64_t *dims,
                       const void *data) {
    size_t nbytes;
    if (!n || !tensor_size(g, name, dtype, rank, dims, &nbytes)) return ox_graph_status(g);
    ox_attr *a = attr_slot(g, n, name, OX_ATTR_TENSOR);
    ox_tensor *t = ox_arena_alloc(g->arena, sizeof *t);
    int64_t *d = rank ? ox_arena_array(g->arena, (size_t)rank, sizeof *d) : NULL;
    void *bytes = ox_arena_alloc(g->arena, nbytes);
    if (!a || !t || (rank && !d) || !bytes) return ox_graph_status(g);
    if (rank) memcpy(d, dims, (size_t)rank * sizeof *d);
    if (nbytes) memcpy(bytes, data, nbytes);
    *t =
        (ox_tensor){.dtype = dtype, .rank = rank, .dims = d, .data = bytes, .nbytes = nbytes, .storage = OX_DATA_OWNED};
    a->u.t = t;
    return OX_OK;
}

const ox_attr *ox_node_attr(const ox_node *n, const char *name) {
    for (int i = 0; i < n->nattrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

int64_t ox_node_attr_int(const ox_node *n, const char *name, int64_t dflt) {
    const ox_attr *a = ox_node_attr(n, name);
    return a && a->type == OX_ATTR_INT ? a->u.i : dflt;
}

/* ---- pass helpers ---- */

void ox_graph_count_uses(ox_graph *g) {
    for (uint32_t i = 0; i < g->nvalues; i++) g->values[i]->uses = 0;
    for (uint32_t i = 0; i < g->nnodes; i++) {
        ox_node *n = g->nodes[i];
        if (n->dead) continue;
        for (int k = 0; k < n->ninputs; k++)
            if (n->inputs[k]) n->inputs[k]->uses++;
    }
}

void ox_graph_compact(ox_graph *g) {
    uint32_t w = 0;
    for (uint32_t i = 0; i < g->nnodes; i++) {
        if (g->nodes[i]->dead) continue;
        g->nodes[i]->id = w;
        g->nodes[w++] = g->nodes[i];
    }
    g->nnodes = w;
    w = 0;
    for (uint32_t i = 0; i < g->ninitializers; i++) {
        ox_value *v = g->initializers[i];
        if (!v->dead) g->initializers[w++] = v;
    }
    g->ninitializers = w;
}

ox_code ox_graph_toposort(ox_graph *g) {
    ox_graph_compact(g);
    uint32_t n = g->nnodes;
    if (n == 0) return ox_graph_status(g);
    struct frame {
        ox_node *node;
        int next;
    } *stack = malloc((size_t)n * sizeof *stack);
    unsigned char *state = calloc(n, 1); /* 0 unseen, 1 on the stack, 2 placed */
    ox_node **order = malloc((size_t)n * sizeof *order);
    if (!stack || !state || !order) {
        free(stack);
        free(state);
        free(order);
        return ox_error_set(&g->err, OX_ENOMEM, NULL, "no memory to order %u nodes", n);
    }
    uint32_t placed = 0;
    ox_code rc = OX_OK;
    for (uint32_t i = 0; i < n && rc == OX_OK; i++) {
        if (state[i]) continue;
        uint32_t top = 0;
        stack[top++] = (struct frame){g->nodes[i], 0};
        state[i] = 1;
        while (top && rc == OX_OK) { /* producers first, depth first, without recursion */
            struct frame *f = &stack[top - 1];
            if (f->next < f->node->ninputs) {
                const ox_value *v = f->node->inputs[f->next++];
                ox_node *p = v ? v->producer : NULL;
                if (!p || p->id >= n || g->nodes[p->id] != p || state[p->id] == 2) continue;
                if (state[p->id] == 1) {
                    rc = ox_error_set(&g->err, OX_EINVAL, f->node->name, "the graph has a cycle through %s",
                                      f->node->op_type);
                    break;
                }
                state[p->id] = 1;
                stack[top++] = (struct frame){p, 0};
            } else {
                state[f->node->id] = 2;
                order[placed++] = f->node;
                top--;
            }
        }
    }
    if (rc == OX_OK) {
        for (uint32_t i = 0; i < n; i++) {
            g->nodes[i] = order[i];
            order[i]->id = i;
        }
    }
    free(stack);
    free(state);
    free(order);
    return rc;
}

void ox_graph_replace_uses(ox_graph *g, ox_value *from, ox_value *to) {
    for (uint32_t i = 0; i < g->nnodes; i++) {
        ox_node *n = g->nodes[i];
        for (int k = 0; k < n->ninputs; k++)
            if (n->inputs[k] == from) n->inputs[k] = to;
    }
    for (uint32_t i = 0; i < g->noutputs; i++)
        if (g->outputs[i] == from) {
            g->outputs[i] = to;
            to->is_output = true;
        }
}
