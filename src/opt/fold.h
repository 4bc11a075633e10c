/*
 * fold.h — constant-folding kernels: evaluate one ONNX node whose inputs are all known tensors.
 *
 *     const ox_tensor *in[2] = {a->tensor, b->tensor};
 *     ox_tensor *out[1];
 *     ox_code rc = ox_fold_eval(g, node, in, out);
 *     if (rc == OX_OK) ... out[0] is an OWNED tensor in g's arena ...
 *     else if (rc == OX_EUNSUPPORTED) ... no kernel for this op/dtype/attribute form: leave the node ...
 *     else ... g->err says what went wrong ...
 *
 * Kernels follow the ONNX operator specs (opset g->opset) and are checked against ONNX's backend
 * node tests (tests/python/test_fold_conformance.py). They never fold ops whose result is random
 * (RandomNormal, Bernoulli, ...), ConstantOfShape, or QuantizeLinear/DequantizeLinear: the caller
 * asks ox_fold_has_kernel first. (ConstantOfShape's result would only make files bigger; the fold
 * pass computes it as a temporary input for a node that reads it, and that node may fold.)
 */
#ifndef OX_FOLD_H
#define OX_FOLD_H

#include "ir/tensor.h"

/* Whether op_type (default domain) has a kernel at all. */
bool ox_fold_has_kernel(const char *op_type);

/* in[i] is NULL for an omitted optional input; out has n->noutputs slots. Returns OX_OK,
 * OX_EUNSUPPORTED without recording an error (cannot fold this form), or another code with
 * g->err set (the inputs break the op's rules: the message names the node). */
ox_code ox_fold_eval(ox_graph *g, const ox_node *n, const ox_tensor *const *in, ox_tensor **out);

#endif
