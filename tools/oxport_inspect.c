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
    printf("  %s  %s  ", v->name ? v->name : "", v->dtype == OX_UNDEFINED ? "?" : ox_dtype_name(v->dtype));
    if (v->rank < 0) {
        printf("?\n");
        return;
    }
    putchar('[');
    for (int i = 0; i < v->rank; i++) {
        const ox_dim *d = &v->dims[i];
        if (i) printf(", ");
        if (d->param) printf("%s", d->param);
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

/* The histogram of op types (domain and op), sorted by count. Returns the number of distinct ops,
 * -1 on OOM; *out is malloc'd. A linear scan per node would be quadratic only in the number of
 * distinct ops, which stays small (tens), so no hash table. */
static long histogram(const ox_graph *g, op_count **out) {
    size_t n = 0, cap = 16;
    op_count *h = malloc(cap * sizeof *h);
    if (!h) return -1;
    for (uint32_t i = 0; i < g->nnodes; i++) {
        const ox_node *node = g->nodes[i];
        const char *dom = node->domain ? node->domain : "";
        size_t k = 0;
        while (k < n && !(strcmp(h[k].op_type, node->op_type) == 0 && strcmp(h[k].domain, dom) == 0)) k++;
        if (k == n) {
            if (n == cap) {
                op_count *nh = realloc(h, 2 * cap * sizeof *nh);
                if (!nh) {
                    free(h);
                    return -1;
                }
                h = nh;
                cap *= 2;
            }
            h[n++] = (op_count){dom, node->op_type, 0};
        }
        h[k].n++;
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
        fprintf(stderr, "oxport-inspect: %s: %s: %s%s%s%s\n", path, ox_code_name(err.code), err.msg, at ? " (at " : "",
                at ? err.where : "", at ? ")" : "");
        return 1;
    }
    char b1[32];
    struct stat st;
    uint64_t file_bytes = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
    printf("model: %s (%s)\n", path, human(file_bytes, b1, sizeof b1));
    if (info->producer_name || info->producer_version)
        printf("producer: %s %s\n", info->producer_name ? info->producer_name : "",
               info->producer_version ? info->producer_version : "");
    printf("ir_version: %" PRId64 "\n", g->ir_version);
    printf("opset_import:");
    for (uint32_t i = 0; i < info->nopsets; i++)
        printf("%s %s %" PRId64, i ? "," : "", *info->opsets[i].domain ? info->opsets[i].domain : "ai.onnx",
               info->opsets[i].version);
    printf("\n");
    if (info->nfunctions) printf("functions: %u\n", info->nfunctions);
    printf("graph: %s\n", g->name ? g->name : "");

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
    for (long i = 0; i < nops; i++)
        printf("  %8" PRIu64 "  %s%s%s\n", h[i].n, h[i].domain, *h[i].domain ? ":" : "", h[i].op_type);
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
                printf("  %s\n", v->name);
                shown++;
            }
        }
        if (info->nundefined_values > shown) printf("  ...\n");
    }
    printf("external data: %u files\n", info->nexternals);
    for (uint32_t i = 0; i < info->nexternals; i++) {
        const ox_read_external *e = &info->externals[i];
        char b2[32];
        printf("  %s  %" PRIu64 " bytes referenced by %u tensors (%s), file %" PRIu64 " bytes (%s)\n", e->location,
               e->referenced_bytes, e->ntensors, human(e->referenced_bytes, b1, sizeof b1), e->file_bytes,
               human(e->file_bytes, b2, sizeof b2));
    }
done:
    ox_graph_free(g);
    ox_read_info_free(info);
    return rc;
}
