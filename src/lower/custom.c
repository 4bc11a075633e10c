/*
 * custom.c — the oxport::custom_nodes row: the ONNX nodes a Python translation recorded
 * (custom_translation_table, OnnxRegistry.register_op), emitted as they are, and onnxscript
 * functions they call, inlined (onnx/inline.h).
 */
#include "lower/lower.h"
#include "ir/tensor.h"
#include "onnx/inline.h"
#include "onnx/read.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * Nodes a Python translation built (custom_translation_table, OnnxRegistry.register_op). The walker
 * ran the translation and sends what it recorded:
 *   arg 0: [[op_type, domain, inputs, attrs, noutputs], ...]   in order; an input is a tensor
 *          (a graph value), an int k (output k of the nodes so far, counted across nodes), or None
 *   arg 1: [result, ...]   one per ATen output, a tensor or an int k as above
 *   arg 2: [FunctionProto bytes, ...], optional: functions the nodes may call (an onnxscript
 *          translation records one call of its function, plus the functions that one calls).
 *          A node whose (domain, op_type) names one of them is inlined (inline.h), its attrs
 *          being the call's attributes.
 *   arg 3: the torch op translated ("mylib::op.default"), optional: messages and node sources
 *          name it rather than this row.
 * attrs: [[name, kind, value], ...] with kind "int", "float", "string", "ints", "floats", or
 * "tensor" (value [dtype, dims, bytes]).
 */
static int custom_attr(ox_lower *L, ox_node *n, const ox_arg *a) {
    if (a->kind != OX_ARG_LIST || a->u.list.n != 3 || a->u.list.items[0].kind != OX_ARG_STRING ||
        a->u.list.items[1].kind != OX_ARG_STRING)
        return ox_lower_fail(L, "custom translation: malformed attribute");
    const char *name = a->u.list.items[0].u.s, *kind = a->u.list.items[1].u.s;
    const ox_arg *v = &a->u.list.items[2];
    ox_graph *g = L->g;
    if (!strcmp(kind, "int") && (v->kind == OX_ARG_INT || v->kind == OX_ARG_BOOL))
        return ox_node_set_int(g, n, name, v->u.i);
    if (!strcmp(kind, "float") && (v->kind == OX_ARG_FLOAT || v->kind == OX_ARG_INT))
        return ox_node_set_float(g, n, name, v->kind == OX_ARG_FLOAT ? (float)v->u.f : (float)v->u.i);
    if (!strcmp(kind, "string") && v->kind == OX_ARG_STRING) return ox_node_set_string(g, n, name, v->u.s);
    if ((!strcmp(kind, "ints") || !strcmp(kind, "floats")) && v->kind == OX_ARG_LIST) {
        int cnt = v->u.list.n;
        int64_t *iv = ox_arena_array(g->arena, cnt ? (size_t)cnt : 1, sizeof *iv);
        float *fv = ox_arena_array(g->arena, cnt ? (size_t)cnt : 1, sizeof *fv);
        if (!iv || !fv) return ox_graph_status(g);
        for (int k = 0; k < cnt; k++) {
            const ox_arg *e = &v->u.list.items[k];
            if (e->kind == OX_ARG_INT || e->kind == OX_ARG_BOOL) {
                iv[k] = e->u.i;
                fv[k] = (float)e->u.i;
            } else if (e->kind == OX_ARG_FLOAT && kind[0] == 'f') fv[k] = (float)e->u.f;
            else return ox_lower_fail(L, "custom translation: attribute %s item %d is not a number", name, k);
        }
        return kind[0] == 'i' ? ox_node_set_ints(g, n, name, iv, cnt) : ox_node_set_floats(g, n, name, fv, cnt);
    }
    if (!strcmp(kind, "tensor") && v->kind == OX_ARG_LIST && v->u.list.n == 3 &&
        v->u.list.items[0].kind == OX_ARG_INT && v->u.list.items[2].kind == OX_ARG_BYTES) {
        int64_t dims[OX_MAX_RANK];
        const ox_arg *d = &v->u.list.items[1];
        int rank = d->kind == OX_ARG_LIST ? d->u.list.n : -1;
        if (rank < 0 || rank > OX_MAX_RANK)
            return ox_lower_fail(L, "custom translation: tensor %s has a bad shape", name);
        for (int k = 0; k < rank; k++) dims[k] = d->u.list.items[k].u.i;
        ox_tensor probe = {.dtype = (ox_dtype)v->u.list.items[0].u.i, .rank = rank, .dims = dims};
        int64_t numel = ox_tensor_numel(&probe);
        size_t es = ox_dtype_size(probe.dtype);
        if (numel < 0 || !es || (size_t)numel * es != v->u.list.items[2].u.bytes.n)
            return ox_lower_fail(L, "custom translation: tensor %s: bytes do not match its shape", name);
        return ox_node_set_tensor(g, n, name, probe.dtype, rank, dims, v->u.list.items[2].u.bytes.p);
    }
    return ox_lower_fail(L, "custom translation: attribute %s of kind %s has a value of the wrong type", name, kind);
}

static ox_value *custom_ref(ox_lower *L, const ox_arg *a, ox_value **locals, int nlocals) {
    if (a->kind == OX_ARG_VALUE) return ox_arg_ref(L, a);
    if (a->kind == OX_ARG_INT && a->u.i >= 0 && a->u.i < nlocals) return locals[a->u.i];
    ox_lower_fail(L, "custom translation: a node input or result refers to nothing");
    return NULL;
}

/* A node calling function f: its attrs, decoded by custom_attr onto a node that never joins the
 * graph, are the call's attributes. */
static int custom_call(ox_lower *L, const ox_function *f, ox_function **lib, int nlib, const ox_arg *attrs,
                       ox_value **in, int nin, ox_value **out, int nout) {
    ox_node site = {0};
    for (int k = 0; k < attrs->u.list.n; k++) {
        int rc = custom_attr(L, &site, &attrs->u.list.items[k]);
        if (rc != OX_OK) return rc;
    }
    ox_inline_call call = {.fn = f,
                           .inputs = in,
                           .ninputs = nin,
                           .attrs = site.attrs,
                           .nattrs = site.nattrs,
                           .prefix = L->node->name,
                           .source = L->node->target};
    ox_error err = {0};
    if (ox_function_inline(L->g, &call, (const ox_function *const *)lib, nlib, out, nout, &err) == OX_OK) return OX_OK;
    if (err.code == OX_ENOMEM) return ox_graph_status(L->g);
    return ox_lower_fail(L, "%s", err.msg);
}

static int emit_custom_nodes(ox_lower *L, ox_function **lib, int nlib) {
    const ox_arg *nodes = ox_arg_at(L, 0), *results = ox_arg_at(L, 1);
    if (!nodes || nodes->kind != OX_ARG_LIST || !results || results->kind != OX_ARG_LIST)
        return ox_lower_fail(L, "custom translation: malformed node list");
    int nlocals = 0;
    for (int i = 0; i < nodes->u.list.n; i++) {
        const ox_arg *spec = &nodes->u.list.items[i];
        if (spec->kind != OX_ARG_LIST || spec->u.list.n != 5 || spec->u.list.items[4].kind != OX_ARG_INT)
            return ox_lower_fail(L, "custom translation: node %d is malformed", i);
        int64_t nout = spec->u.list.items[4].u.i;
        if (nout < 0 || nout > 64 || nlocals > INT32_MAX - 64)
            return ox_lower_fail(L, "custom translation: node %d has %lld outputs", i, (long long)nout);
        nlocals += (int)nout;
    }
    ox_value **locals = ox_arena_array(L->g->arena, nlocals ? (size_t)nlocals : 1, sizeof *locals);
    if (!locals) return ox_graph_status(L->g);
    int made = 0;
    for (int i = 0; i < nodes->u.list.n; i++) {
        const ox_arg *item = nodes->u.list.items;
        const ox_arg *spec = &item[i];
        const ox_arg *op = &spec->u.list.items[0], *dom = &spec->u.list.items[1];
        const ox_arg *ins = &spec->u.list.items[2], *attrs = &spec->u.list.items[3];
        if (op->kind != OX_ARG_STRING || (dom->kind != OX_ARG_STRING && dom->kind != OX_ARG_NONE) ||
            ins->kind != OX_ARG_LIST || attrs->kind != OX_ARG_LIST)
            return ox_lower_fail(L, "custom translation: node %d is malformed", i);
        ox_value **in = ox_arena_array(L->g->arena, ins->u.list.n ? (size_t)ins->u.list.n : 1, sizeof *in);
        if (!in) return ox_graph_status(L->g);
        for (int k = 0; k < ins->u.list.n; k++) {
            const ox_arg *r = &ins->u.list.items[k];
            in[k] = r->kind == OX_ARG_NONE ? NULL : custom_ref(L, r, locals, made);
            if (r->kind != OX_ARG_NONE && !in[k]) return ox_graph_status(L->g) ? ox_graph_status(L->g) : OX_ELOWER;
        }
        int nout = (int)spec->u.list.items[4].u.i;
        const ox_function *f = ox_function_find((const ox_function *const *)lib, nlib,
                                                dom->kind == OX_ARG_STRING ? dom->u.s : NULL, op->u.s);
        if (f) {
            int rc = custom_call(L, f, lib, nlib, attrs, in, ins->u.list.n, locals + made, nout);
            if (rc != OX_OK) return rc;
            made += nout;
            continue;
        }
        ox_node *n = ox_op_array(L, op->u.s, nout, ins->u.list.n, in);
        if (!n) return ox_bind(L, 0, NULL);
        if (dom->kind == OX_ARG_STRING && *dom->u.s) n->domain = ox_arena_strdup(L->g->arena, dom->u.s);
        for (int k = 0; k < attrs->u.list.n; k++) {
            int rc = custom_attr(L, n, &attrs->u.list.items[k]);
            if (rc != OX_OK) return rc;
        }
        for (int k = 0; k < nout; k++) locals[made++] = n->outputs[k];
    }
    if (results->u.list.n != L->node->noutputs)
        return ox_lower_fail(L, "custom translation returned %d values, the op has %d outputs", results->u.list.n,
                             L->node->noutputs);
    for (int i = 0; i < results->u.list.n; i++) {
        int rc = ox_bind(L, i, custom_ref(L, &results->u.list.items[i], locals, made));
        if (rc != OX_OK) return rc;
    }
    return OX_OK;
}

int lower_custom_nodes(ox_lower *L) {
    const ox_aten_node *row_node = L->node;
    ox_aten_node named = *row_node;
    if ((named.target = ox_arg_string(L, 3, NULL))) L->node = &named;
    int rc = OX_OK;
    const ox_arg *fns = ox_arg_at(L, 2);
    if (fns && fns->kind != OX_ARG_LIST && fns->kind != OX_ARG_NONE)
        rc = ox_lower_fail(L, "custom translation: malformed function list");
    int nlib = fns && fns->kind == OX_ARG_LIST ? fns->u.list.n : 0;
    ox_function **lib = nlib ? calloc((size_t)nlib, sizeof *lib) : NULL;
    if (nlib && !lib) rc = ox_error_set(&L->g->err, OX_ENOMEM, NULL, "out of memory reading functions");
    for (int i = 0; i < nlib && rc == OX_OK; i++) {
        const ox_arg *b = &fns->u.list.items[i];
        ox_error err = {0};
        if (b->kind != OX_ARG_BYTES)
            rc = ox_lower_fail(L, "custom translation: function %d is not FunctionProto bytes", i);
        else if (ox_function_read(b->u.bytes.p, b->u.bytes.n, &lib[i], &err) != OX_OK)
            rc = ox_lower_fail(L, "custom translation: function %d cannot be read: %s", i, err.msg);
    }
    if (rc == OX_OK) rc = emit_custom_nodes(L, lib, nlib);
    for (int i = 0; lib && i < nlib; i++) ox_function_free(lib[i]);
    free(lib);
    L->node = row_node;
    return rc;
}
