/*
 * binding.h — what the binding's two files share: module.c (the module, Ref and Graph) and
 * testing.c (entry points only the tests call). Include it first: it includes Python.h, which must
 * come before the standard headers, with PY_SSIZE_T_CLEAN.
 */
#ifndef OX_BINDING_H
#define OX_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* fold_node(op_type, attrs, inputs, noutputs, opset=20) -> [(dtype_code, dims, bytes)]; testing.c
 * says more. New reference. */
PyObject *oxb_fold_node(PyObject *module, PyObject *args, PyObject *kwds);

/* testing.c's rows of the module's method table. */
#define OXB_TESTING_METHODS \
    {"fold_node", (PyCFunction)(void (*)(void))oxb_fold_node, METH_VARARGS | METH_KEYWORDS, \
     "Evaluate one ONNX node with the folding kernels (conformance tests)."},

#endif
