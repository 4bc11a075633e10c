/* onnx/read_function.c — FunctionProto, for inlining (onnx/inline.c) and ModelProto.functions:
 * ox_function_read, whose contract is in onnx/read.h. A function body is kept by name, as
 * written; its attributes are read by the graph reader's oxr_read_attr (onnx/read_internal.h),
 * which also keeps ref_attr_name here, and its tensors are always copied (rctx.copy_tensors) so
 * that an ox_function owes nothing to the bytes it was read from. */
#include <stdio.h>
#include <string.h>

#include "onnx/read.h"
#include "onnx/read_internal.h"

static ox_code read_fn_node(rctx *c, span m, uint32_t index, ox_function_node *fn) {
    field f;
    int r;
    span s;
    oxr_node_head h;
    memset(fn, 0, sizeof *fn);
    ox_code rc = oxr_node_head_read(c, m, index, false, &h);
    if (rc != OX_OK) return rc;
    fn->name = h.name;
    fn->op_type = h.op_type;
    fn->domain = h.domain;
    size_t nin = h.nin, nout = h.nout, nattr = h.nattr;
    fn->inputs = nin ? ox_arena_array(c->a, nin, sizeof *fn->inputs) : NULL;
    fn->outputs = nout ? ox_arena_array(c->a, nout, sizeof *fn->outputs) : NULL;
    fn->attrs = nattr ? ox_arena_array(c->a, nattr, sizeof *fn->attrs) : NULL;
    fn->attr_refs = nattr ? ox_arena_array(c->a, nattr, sizeof *fn->attr_refs) : NULL;
    if ((nin && !fn->inputs) || (nout && !fn->outputs) || (nattr && (!fn->attrs || !fn->attr_refs))) return oxr_oom(c);
    for (s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        if (f.num == OX_NodeProto_input && (size_t)fn->ninputs < nin) {
            if (!(fn->inputs[fn->ninputs++] = oxr_str(c, &f, "NodeProto.input"))) return c->err->code;
        } else if (f.num == OX_NodeProto_output && (size_t)fn->noutputs < nout) {
            if (!(fn->outputs[fn->noutputs++] = oxr_str(c, &f, "NodeProto.output"))) return c->err->code;
        } else if (f.num == OX_NodeProto_attribute && (size_t)fn->nattrs < nattr) {
            int k = fn->nattrs++;
            if (oxr_read_attr(c, f.s, &fn->attrs[k], &fn->attr_refs[k]) != OX_OK) return c->err->code;
        }
    }
    if (r < 0) return c->err->code;
    c->where[0] = 0;
    return OX_OK;
}

void ox_function_free(ox_function *f) {
    if (f) ox_arena_free(f->arena);
}

static ox_code read_function(rctx *c, span m, ox_function *fn) {
    field f;
    int r;
    size_t nin = 0, nout = 0, nattr = 0, ndef = 0, nops = 0, nnodes = 0;
    for (span s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        switch (f.num) {
        case OX_FunctionProto_name:
            if (!(fn->name = oxr_str(c, &f, "FunctionProto.name"))) return c->err->code;
            break;
        case OX_FunctionProto_input:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "FunctionProto.input")) return c->err->code;
            nin++;
            break;
        case OX_FunctionProto_output:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "FunctionProto.output")) return c->err->code;
            nout++;
            break;
        case OX_FunctionProto_attribute:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "FunctionProto.attribute")) return c->err->code;
            nattr++;
            break;
        case OX_FunctionProto_node:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "FunctionProto.node")) return c->err->code;
            nnodes++;
            break;
        case OX_FunctionProto_opset_import:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "FunctionProto.opset_import")) return c->err->code;
            nops++;
            break;
        case OX_FunctionProto_domain:
            if (!(fn->domain = oxr_str(c, &f, "FunctionProto.domain"))) return c->err->code;
            break;
        case OX_FunctionProto_attribute_proto:
            if (!oxr_want(c, &f, OX_WIRE_LEN, "FunctionProto.attribute_proto")) return c->err->code;
            ndef++;
            break;
        case OX_FunctionProto_overload:
            if (!(fn->overload = oxr_str(c, &f, "FunctionProto.overload"))) return c->err->code;
            break;
        default: break;
        }
    }
    if (r < 0) return c->err->code;
    if (!fn->name) fn->name = "";
    if (!oxr_int_count(c, nin, "function inputs") || !oxr_int_count(c, nout, "function outputs") ||
        !oxr_int_count(c, nattr, "function attributes") || !oxr_int_count(c, ndef, "function attributes") ||
        !oxr_int_count(c, nnodes, "function nodes") || !oxr_int_count(c, nops, "opsets"))
        return c->err->code;
    fn->inputs = nin ? ox_arena_array(c->a, nin, sizeof *fn->inputs) : NULL;
    fn->outputs = nout ? ox_arena_array(c->a, nout, sizeof *fn->outputs) : NULL;
    fn->attributes = nattr ? ox_arena_array(c->a, nattr, sizeof *fn->attributes) : NULL;
    fn->attribute_defaults = ndef ? ox_arena_array(c->a, ndef, sizeof *fn->attribute_defaults) : NULL;
    fn->opsets = nops ? ox_arena_array(c->a, nops, sizeof *fn->opsets) : NULL;
    fn->nodes = nnodes ? ox_arena_array(c->a, nnodes, sizeof *fn->nodes) : NULL;
    if (ox_arena_oom(c->a)) return oxr_oom(c);
    for (span s = m; (r = oxr_next_field(c, &s, &f)) > 0;) {
        switch (f.num) {
        case OX_FunctionProto_input:
            if ((size_t)fn->ninputs < nin && !(fn->inputs[fn->ninputs++] = oxr_str(c, &f, "FunctionProto.input")))
                return c->err->code;
            break;
        case OX_FunctionProto_output:
            if ((size_t)fn->noutputs < nout && !(fn->outputs[fn->noutputs++] = oxr_str(c, &f, "FunctionProto.output")))
                return c->err->code;
            break;
        case OX_FunctionProto_attribute:
            if ((size_t)fn->nattributes < nattr &&
                !(fn->attributes[fn->nattributes++] = oxr_str(c, &f, "FunctionProto.attribute")))
                return c->err->code;
            break;
        case OX_FunctionProto_node:
            if ((size_t)fn->nnodes < nnodes) {
                int k = fn->nnodes++;
                if (read_fn_node(c, f.s, (uint32_t)k, &fn->nodes[k]) != OX_OK) return c->err->code;
            }
            break;
        case OX_FunctionProto_opset_import:
            if (fn->nopsets < nops && oxr_read_opset(c, f.s, c->a, &fn->opsets[fn->nopsets++]) != OX_OK)
                return c->err->code;
            break;
        case OX_FunctionProto_attribute_proto:
            if ((size_t)fn->nattribute_defaults < ndef) {
                const char *ref = NULL;
                snprintf(c->where, sizeof c->where, "function '%s'", fn->name);
                if (oxr_read_attr(c, f.s, &fn->attribute_defaults[fn->nattribute_defaults++], &ref) != OX_OK)
                    return c->err->code;
                c->where[0] = 0;
            }
            break;
        default: break;
        }
    }
    return r < 0 ? c->err->code : OX_OK;
}

ox_code ox_function_read(const void *buf, size_t n, ox_function **out, ox_error *err) {
    ox_error local = {0};
    if (!err) err = &local;
    if (out) *out = NULL;
    if (!out || (!buf && n)) return ox_error_set(err, OX_EINVAL, NULL, "ox_function_read: bad arguments");
    ox_arena *a = ox_arena_new();
    ox_function *fn = a ? ox_arena_alloc(a, sizeof *fn) : NULL;
    if (!fn) {
        ox_arena_free(a);
        return ox_error_set(err, OX_ENOMEM, NULL, "out of memory");
    }
    fn->arena = a;
    const uint8_t *p = buf ? buf : (const uint8_t *)"";
    rctx c = {.err = err, .base = p, .a = a, .copy_tensors = true};
    ox_code rc = read_function(&c, (span){p, p + n}, fn);
    if (rc == OX_OK && ox_arena_oom(a)) rc = oxr_oom(&c);
    if (rc != OX_OK) {
        if (err->code == OX_OK) ox_error_set(err, rc, NULL, "the function could not be read");
        ox_arena_free(a);
        return err->code;
    }
    *out = fn;
    return OX_OK;
}
