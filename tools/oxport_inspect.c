/* oxport_inspect.c — `oxport-inspect model.onnx`: what an ONNX model holds, at a glance, read with
 * the core's reader (onnx/read.h).
 *
 *     $ oxport-inspect llama.onnx
 *     model: llama.onnx (1.2 MB)
 *     ir_version: 10
 *     opset_import: ai.onnx 20
 *     ...
 *
 * Prints the producer, ir_version and opset imports; the inputs and outputs with their dtypes and
 * shapes (a dim_param shown by name, an unknown dim as '?'); the op histogram, most frequent first;
 * the parameter count and bytes by dtype; the external data files with the bytes the model refers
 * to in each. Every figure is a plain decimal number (a human-readable size may follow in
 * parentheses) so that tests and scripts can read them.
 *
 * It is instant on a multi-GB model because it reads only what it prints: the model file is mapped
 * and the reader runs with metadata_only, so tensor bytes are never paged in and external data
 * files are only opened and stat'd (after the reader's location checks: nothing outside the
 * model's folder is touched).
 *
 * A model saved without its weights and without listing them as inputs (include_initializers=False,
 * keep_initializers_as_inputs=False) is still described: the values its nodes read but nothing
 * defines are counted and the first few named.
 *
 * Every string that comes from the file (names, domains, producer, locations, and the reader's
 * messages, which quote them) is printed escaped: a control byte, a byte that is not valid UTF-8,
 * and a C1 or bidirectional-override code point come out as \xNN or \uNNNN, a backslash as \\, so a
 * crafted model cannot move the cursor, retitle or clear the terminal, or hide text.
 *
 * Exit status: 0; 1 when the model cannot be read (the reason on stderr, never a crash); 64 for a
 * usage error. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx/read.h"

typedef struct op_count {
    const char *domain, *op_type;
    uint64_t n;
} op_count;

typedef struct dtype_total {
    uint64_t tensors, elements, bytes;
} dtype_total;

/* ---- printing what the file says ---- */

/* The length of the well-formed UTF-8 sequence at s (1 to 4; no overlong forms, surrogates or code
 * points past U+10FFFF) and its code point in *cp; 0 when s does not start one. */
static int utf8_seq(const unsigned char *s, uint32_t *cp) {
    unsigned char c = s[0];
    int n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) n = 2, v = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) n = 3, v = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0; /* also stops at the terminating NUL */
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return n;
}

/* Code points a terminal acts on rather than shows: C0, DEL, C1 (0x9b is CSI to some terminals),
 * and the bidirectional controls that reorder what follows them. */
static bool must_escape(uint32_t cp) {
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
        (cp >= 0x2066 && cp <= 0x2069);
}

/* Writes s to f with what must not reach a terminal escaped (see the top of the file). */
static void put_text(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        uint32_t cp;
        int n = utf8_seq(p, &cp);
        if (n == 0) {
            fprintf(f, "\\x%02X", (unsigned)*p);
            n = 1;
        } else if (cp == '\\') {
            fputs("\\\\", f);
        } else if (!must_escape(cp)) {
            fwrite(p, 1, (size_t)n, f);
        } else {
            fprintf(f, cp < 0x80 ? "\\x%02X" : "\\u%04X", (unsigned)cp);
        }
        p += n;
    }
}

static void print_text(const char *s) { put_text(stdout, s); }

/* A byte count for people: "2.40 GiB". */
static const char *human(uint64_t n, char *buf, size_t cap) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0) snprintf(buf, cap, "%" PRIu64 " B", n);
    else snprintf(buf, cap, "%.2f %s", v, units[u]);
    return buf;
}

static void print_value(const ox_value *v) {
    printf("  ");
    print_text(v->name);
    printf("  %s  ", v->dtype == OX_UNDEFINED ? "?" : ox_dtype_name(v->dtype));
    if (v->rank < 0) {
        printf("?\n");
        return;
    }
    putchar('[');
    for (int i = 0; i < v->rank; i++) {
        const ox_dim *d = &v->dims[i];
        if (i) printf(", ");
        if (d->param) print_text(d->param);
        else if (d->value < 0) putchar('?');
        else printf("%" PRId64, d->value);
    }
    printf("]\n");
}

static int by_count(const void *a, const void *b) {
    const op_count *x = a, *y = b;
    if (x->n != y->n) return x->n < y->n ? 1 : -1;
    int d = strcmp(x->domain, y->domain);
    return d ? d : strcmp(x->op_type, y->op_type);
}

static int by_name(const void *a, const void *b) {
    const op_count *x = a, *y = b;
    int d = strcmp(x->domain, y->domain);
    return d ? d : strcmp(x->op_type, y->op_type);
}

/* The histogram of op types (domain and op), sorted by count. Returns the number of distinct ops,
 * -1 on OOM; *out is malloc'd. Every node's op is listed, the list sorted by name and equal runs
 * counted: O(n log n) whatever the model holds (a linear scan per node was quadratic in the
 * number of distinct ops, which a crafted model makes as large as the number of nodes). */
static long histogram(const ox_graph *g, op_count **out) {
    op_count *h = malloc((g->nnodes ? g->nnodes : 1) * sizeof *h);
    if (!h) return -1;
    for (uint32_t i = 0; i < g->nnodes; i++) {
        const ox_node *node = g->nodes[i];
        h[i] = (op_count){node->domain ? node->domain : "", node->op_type ? node->op_type : "", 1};
    }
    qsort(h, g->nnodes, sizeof *h, by_name);
    size_t n = 0;
    for (uint32_t i = 0; i < g->nnodes; i++) {
        if (n && by_name(&h[n - 1], &h[i]) == 0) h[n - 1].n++;
        else h[n++] = h[i];
    }
    qsort(h, n, sizeof *h, by_count);
    *out = h;
    return (long)n;
}

int main(int argc, char **argv) {
    if (argc != 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr, "usage: %s model.onnx\n", argc ? argv[0] : "oxport-inspect");
        return 64;
    }
    const char *path = argv[1];
    ox_read_options o = {.allow_external_data = true, .metadata_only = true, .allow_undefined_values = true};
    ox_graph *g = NULL;
    ox_read_info *info = NULL;
    ox_error err = {0};
    if (ox_model_read_file(path, &o, &g, &info, &err) != OX_OK) {
        bool at = err.where[0] && strcmp(err.where, path) != 0; /* file errors name the file */
        fputs("oxport-inspect: ", stderr);
        put_text(stderr, path);
        fprintf(stderr, ": %s: ", ox_code_name(err.code));
        put_text(stderr, err.msg); /* it quotes names from the file */
        if (at) {
            fputs(" (at ", stderr);
            put_text(stderr, err.where);
            fputs(")", stderr);
        }
        fputs("\n", stderr);
        return 1;
    }
    char b1[32];
    struct stat st;
    uint64_t file_bytes = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
    printf("model: ");
    print_text(path);
    printf(" (%s)\n", human(file_bytes, b1, sizeof b1));
    if (info->producer_name || info->producer_version) {
        printf("producer: ");
        print_text(info->producer_name);
        putchar(' ');
        print_text(info->producer_version);
        putchar('\n');
    }
    printf("ir_version: %" PRId64 "\n", g->ir_version);
    printf("opset_import:");
    for (uint32_t i = 0; i < info->nopsets; i++) {
        printf("%s ", i ? "," : "");
        print_text(*info->opsets[i].domain ? info->opsets[i].domain : "ai.onnx");
        printf(" %" PRId64, info->opsets[i].version);
    }
    printf("\n");
    if (info->nfunctions) printf("functions: %u\n", info->nfunctions);
    printf("graph: ");
    print_text(g->name);
    putchar('\n');

    printf("inputs: %u", g->ninputs);
    if (info->ninitializer_inputs) printf(" (and %u initializers listed as inputs)", info->ninitializer_inputs);
    printf("\n");
    for (uint32_t i = 0; i < g->ninputs; i++) print_value(g->inputs[i]);
    printf("outputs: %u\n", g->noutputs);
    for (uint32_t i = 0; i < g->noutputs; i++) print_value(g->outputs[i]);

    op_count *h = NULL;
    long nops = histogram(g, &h);
    int rc = 0;
    if (nops < 0) {
        fprintf(stderr, "oxport-inspect: out of memory\n");
        rc = 1;
        goto done;
    }
    printf("nodes: %u (%ld op types)\n", g->nnodes, nops);
    for (long i = 0; i < nops; i++) {
        printf("  %8" PRIu64 "  ", h[i].n);
        if (*h[i].domain) {
            print_text(h[i].domain);
            putchar(':');
        }
        print_text(h[i].op_type);
        putchar('\n');
    }
    free(h);

    dtype_total by[OX_DTYPE_COUNT] = {{0}};
    uint64_t elements = 0, bytes = 0;
    for (uint32_t i = 0; i < g->ninitializers; i++) {
        const ox_tensor *t = g->initializers[i]->tensor;
        int64_t n = ox_tensor_numel(t);
        dtype_total *d = &by[t->dtype];
        d->tensors++;
        d->elements += n > 0 ? (uint64_t)n : 0;
        d->bytes += t->nbytes;
        elements += n > 0 ? (uint64_t)n : 0;
        bytes += t->nbytes;
    }
    printf("parameters: %" PRIu64 " elements, %" PRIu64 " bytes (%s) in %u initializers\n", elements, bytes,
           human(bytes, b1, sizeof b1), g->ninitializers);
    for (int t = 0; t < OX_DTYPE_COUNT; t++)
        if (by[t].tensors)
            printf("  %-9s %" PRIu64 " elements, %" PRIu64 " bytes (%s) in %" PRIu64 " initializers\n",
                   ox_dtype_name((ox_dtype)t), by[t].elements, by[t].bytes, human(by[t].bytes, b1, sizeof b1),
                   by[t].tensors);

    if (info->nundefined_values) {
        /* Weights saved with include_initializers=False, keep_initializers_as_inputs=False: the
         * model names them but holds neither their data nor their types. */
        printf("undefined values: %u (read by nodes, defined nowhere: weights to be attached?)\n",
               info->nundefined_values);
        uint32_t shown = 0;
        for (uint32_t i = 0; i < g->nvalues && shown < 5; i++) {
            const ox_value *v = g->values[i];
            if (v->kind == OX_VALUE_NODE && !v->producer && v->name && !v->dead) {
                printf("  ");
                print_text(v->name);
                putchar('\n');
                shown++;
            }
        }
        if (info->nundefined_values > shown) printf("  ...\n");
    }
    printf("external data: %u files\n", info->nexternals);
    for (uint32_t i = 0; i < info->nexternals; i++) {
        const ox_read_external *e = &info->externals[i];
        char b2[32];
        printf("  ");
        print_text(e->location);
        printf("  %" PRIu64 " bytes referenced by %u tensors (%s), file %" PRIu64 " bytes (%s)\n", e->referenced_bytes,
               e->ntensors, human(e->referenced_bytes, b1, sizeof b1), e->file_bytes,
               human(e->file_bytes, b2, sizeof b2));
    }
done:
    ox_graph_free(g);
    ox_read_info_free(info);
    return rc;
}
