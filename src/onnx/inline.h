/*
 * onnx/inline.h — instantiates ONNX functions (FunctionProto, as ox_function_read gives them) in a graph:
 * how a custom translation written as an onnxscript function reaches the model.
 *
 *     ox_function *f = NULL;
 *     if (ox_function_read(bytes, n, &f, &err) != OX_OK) ...   // onnxscript's to_function_proto()
 *     ox_inline_call call = {.fn = f, .inputs = &x, .ninputs = 1, .attrs = alpha, .nattrs = 1,
 *                            .prefix = "scaled_relu", .source = "oxport_reg::scaled_relu.default"};
 *     ox_value *y;
 *     if (ox_function_inline(g, &call, (const ox_function *const *)&f, 1, &y, 1, &err) != OX_OK)
 *         ...                                                  // err.msg names function and node
 *     ox_function_free(f);                                     // g points into none of it
 *
 * What a call becomes, following ONNX's function semantics:
 *   - Every node of the body is appended to g, in order. Where the body reads a formal input it
 *     reads the call's value; a formal input the call omits (fewer inputs, or a NULL entry) reads
 *     as an omitted optional input.
 *   - Names: node "<prefix>/<node name, else op_type>", value "<prefix>/<value name>", made unique
 *     by g (so two calls, or a call and the model, never clash). The values the call returns are
 *     left unnamed: the caller names them (ox_bind gives them the FX name and torch's dtype/shape).
 *   - An attribute that refers to one of the function's (ref_attr_name) takes the call's value of
 *     it, else the function's default (FunctionProto.attribute_proto), else it is left out of the
 *     node. The value is converted to the declared type where that loses nothing (int to float,
 *     ints to floats); any other mismatch is an error.
 *   - A node that calls a function of `library` (same domain and name) is inlined in turn, with
 *     prefix "<prefix>/<node name>" and the node's resolved attributes as its call's. A node in a
 *     non-default domain that holds library functions but naming none of them is refused, as is a
 *     function that calls itself (directly or not) or calls nested deeper than OX_INLINE_MAX_DEPTH.
 *   - Opsets: the function must import every domain its nodes use. Its default domain ("" or
 *     "ai.onnx") may not be newer than the model's opset (g->opset); an older one is accepted, as
 *     torch.onnx accepts opset18 onnxscript functions in newer models: ONNX Runtime checks each
 *     node against the model's opset when it loads it. Other domains that reach the model (not
 *     inlined) must be version 1, the version the writer gives every non-default domain.
 *
 * Ownership: the nodes, values, names and attribute copies are in g's arena; nothing points into
 * the functions, which the caller may free right after. outputs[i] are g's values.
 *
 * Errors: OX_OK; OX_ELOWER with err filled, the message naming the function, the functions that
 * called it and the node ("function lib::inner (called from lib::outer), node 'n1' (Mul): ...");
 * OX_EINVAL for bad arguments; OX_ENOMEM (also recorded in g->err, where out of memory is sticky).
 * g->err is otherwise left alone, so that the caller can say where the call came from. A failed
 * call may leave nodes behind in g; they feed nothing the caller binds, and the export fails.
 *
 * Others may call ox_function_inline and ox_function_find; the rest of inline.c is static.
 */
#ifndef OX_ONNX_INLINE_H
#define OX_ONNX_INLINE_H

#include "ir/ir.h"
#include "onnx/read.h"

/* Nesting limit for functions calling functions: far above what onnxscript libraries do. */
#define OX_INLINE_MAX_DEPTH 32

typedef struct ox_inline_call {
    const ox_function *fn;
    ox_value *const *inputs; /* ninputs values; NULL entries are omitted optional inputs */
    int ninputs;
    const ox_attr *attrs; /* the call's attribute values, by name */
    int nattrs;
    const char *prefix; /* names of what is made; NULL: fn->name */
    const char *source; /* node->source of every node made (for messages); may be NULL */
} ox_inline_call;

/* Inlines call->fn into g. outputs[0, noutputs) receive the values of the function's first
 * noutputs formal outputs (noutputs may be smaller than the function's count, not larger).
 * library: the functions nested calls may name (it may include call->fn). */
ox_code ox_function_inline(ox_graph *g, const ox_inline_call *call, const ox_function *const *library, int nlibrary,
                           ox_value **outputs, int noutputs, ox_error *err);

/* The library function a node of (domain, op_type) calls, or NULL. "" and "ai.onnx" are one
 * domain; a NULL domain is "". */
const ox_function *ox_function_find(const ox_function *const *library, int nlibrary, const char *domain,
                                    const char *op_type);

#endif
