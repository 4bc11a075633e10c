/*
 * testing.c — entry points of oxport._core that only the tests call: fold_node, the conformance
 * tests' door to the folding kernels (tests/python/test_fold_conformance.py runs every ONNX backend
 * node test of a folded op through it). Registered by module.c through OXB_TESTING_METHODS.
 */
#include "binding/binding.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "ir/ir.h"
#include "opt/fold.h"

/* A tensor as Python hands it over: (dtype_code, dims, bytes-like). view holds the bytes until
 * PyBuffer_Release. */
typedef struct {
    ox_dtype dtype;
    int rank;
    int64_t *dims;
    Py_buffer view;
} fold_tensor;

/* Parses o into t (dims in g's arena). 0, or -1 with TypeError/ValueError set. */
static int fold_tensor_parse(ox_graph *g, PyObject *o, const char *what, fold_tensor *t) {
    if (!PyTuple_Check(o) || PyTuple_GET_SIZE(o) != 3) {
        PyErr_Format(PyExc_TypeError, "%s must be a tuple (dtype_code, dims, bytes)", what);
        return -1;
    }
    PyObject *dt = PyTuple_GET_ITEM(o, 0), *dims = PyTuple_GET_ITEM(o, 1), *data = PyTuple_GET_ITEM(o, 2);
    if (!PyLong_Check(dt)) {
        PyErr_Format(PyExc_TypeError, "%s: dtype code must be an int", what);
        return -1;
    }
    long code = PyLong_AsLong(dt);
    if (code == -1 && PyErr_Occurred()) return -1;
    if (code <= 0 || code >= OX_DTYPE_COUNT || !ox_dtype_size((ox_dtype)code)) {
        PyErr_Format(PyExc_ValueError, "%s: dtype code %ld is not a fixed-size dtype oxport holds", what, code);
        return -1;
    }
    PyObject *seq = PySequence_Fast(dims, "dims must be a sequence of ints");
    if (!seq) return -1;
    Py_ssize_t rank = PySequence_Fast_GET_SIZE(seq);
    if (rank > OX_MAX_RANK) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s: rank %zd is above %d", what, rank, (int)OX_MAX_RANK);
        return -1;
    }
    int64_t *d = rank ? ox_arena_array(g->arena, (size_t)rank, sizeof *d) : NULL;
    if (rank && !d) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    size_t es = ox_dtype_size((ox_dtype)code), nbytes = es;
    for (Py_ssize_t i = 0; i < rank; i++) {
        PyObject *e = PySequence_Fast_GET_ITEM(seq, i);
        long long v = PyLong_Check(e) ? PyLong_AsLongLong(e) : -1;
        if (!PyLong_Check(e) || (v == -1 && PyErr_Occurred()) || v < 0) {
            Py_DECREF(seq);
            if (!PyLong_Check(e)) PyErr_Format(PyExc_TypeError, "%s: dims must be ints", what);
            else PyErr_Format(PyExc_ValueError, "%s: dim %zd is negative or too large", what, i);
            return -1;
        }
        d[i] = v;
        if (v && nbytes > SIZE_MAX / (size_t)v) nbytes = SIZE_MAX; /* refused below */
        else nbytes *= (size_t)v;
    }
    Py_DECREF(seq);
    if (PyObject_GetBuffer(data, &t->view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: data must be contiguous bytes", what);
        return -1;
    }
    if ((size_t)t->view.len != nbytes) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes given, its %s shape needs %zu", what, t->view.len,
                     ox_dtype_name((ox_dtype)code), nbytes);
        PyBuffer_Release(&t->view);
        return -1;
    }
    t->dtype = (ox_dtype)code;
    t->rank = (int)rank;
    t->dims = d;
    return 0;
}

/* An int attribute value; an int beyond int64 is a ValueError, not an OverflowError. 0 or -1. */
static int fold_int(PyObject *o, const char *name, long long *v) {
    *v = PyLong_AsLongLong(o);
    if (*v != -1 || !PyErr_Occurred()) return 0;
    if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "attribute %s: an int does not fit in int64", name);
    }
    return -1;
}

/* One (name, kind, value) attribute set on n. 0, or -1 with an exception set. */
static int fold_attr_set(ox_graph *g, ox_node *n, PyObject *item) {
    PyObject *pname, *pkind, *value;
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3 || !PyUnicode_Check(pname = PyTuple_GET_ITEM(item, 0)) ||
        !PyUnicode_Check(pkind = PyTuple_GET_ITEM(item, 1))) {
        PyErr_SetString(PyExc_TypeError, "an attribute must be a tuple (name: str, kind: str, value)");
        return -1;
    }
    value = PyTuple_GET_ITEM(item, 2);
    const char *name = PyUnicode_AsUTF8(pname), *kind = name ? PyUnicode_AsUTF8(pkind) : NULL;
    if (!kind) return -1;
    if (strcmp(kind, "int") == 0) {
        long long v;
        if (fold_int(value, name, &v) < 0) return -1;
        ox_node_set_int(g, n, name, v);
    } else if (strcmp(kind, "float") == 0) {
        double v = PyFloat_AsDouble(value);
        if (v == -1.0 && PyErr_Occurred()) return -1;
        if (isfinite(v) && fabs(v) > FLT_MAX) {
            PyErr_Format(PyExc_ValueError, "attribute %s: %g does not fit in float32", name, v);
            return -1;
        }
        ox_node_set_float(g, n, name, (float)v);
    } else if (strcmp(kind, "string") == 0) {
        const char *s = PyUnicode_Check(value) ? PyUnicode_AsUTF8(value) :
            PyBytes_Check(value)               ? PyBytes_AS_STRING(value) :
                                                 NULL;
        if (!s) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "attribute %s: a string must be str or bytes", name);
            return -1;
        }
        ox_node_set_string(g, n, name, s);
    } else if (strcmp(kind, "ints") == 0 || strcmp(kind, "floats") == 0) {
        bool ints = kind[0] == 'i';
        PyObject *seq = PySequence_Fast(value, "a list attribute must be a sequence");
        if (!seq) return -1;
        Py_ssize_t cnt = PySequence_Fast_GET_SIZE(seq);
        if (cnt > INT_MAX) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "attribute list too long");
            return -1;
        }
        void *arr = cnt ? ox_arena_array(g->arena, (size_t)cnt, ints ? sizeof(int64_t) : sizeof(float)) : NULL;
        if (cnt && !arr) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < cnt; i++) {
            PyObject *e = PySequence_Fast_GET_ITEM(seq, i);
            if (ints) {
                long long v;
                if (fold_int(e, name, &v) < 0) {
                    Py_DECREF(seq);
                    return -1;
                }
                ((int64_t *)arr)[i] = v;
            } else {
                double v = PyFloat_AsDouble(e);
                if (v == -1.0 && PyErr_Occurred()) {
                    Py_DECREF(seq);
                    return -1;
                }
                if (isfinite(v) && fabs(v) > FLT_MAX) {
                    Py_DECREF(seq);
                    PyErr_Format(PyExc_ValueError, "attribute %s: %g does not fit in float32", name, v);
                    return -1;
                }
                ((float *)arr)[i] = (float)v;
            }
        }
        Py_DECREF(seq);
        if (ints) ox_node_set_ints(g, n, name, arr, (int)cnt);
        else ox_node_set_floats(g, n, name, arr, (int)cnt);
    } else if (strcmp(kind, "tensor") == 0) {
        fold_tensor t;
        if (fold_tensor_parse(g, value, name, &t) < 0) return -1;
        ox_node_set_tensor(g, n, name, t.dtype, t.rank, t.dims, t.view.buf);
        PyBuffer_Release(&t.view);
    } else {
        PyErr_Format(PyExc_ValueError,
                     "attribute %s: unknown kind '%s' (int, float, string, ints, "
                     "floats or tensor)",
                     name, kind);
        return -1;
    }
    if (ox_graph_failed(g)) {
        if (ox_graph_status(g) == OX_ENOMEM) PyErr_NoMemory();
        else PyErr_SetString(PyExc_ValueError, g->err.msg);
        return -1;
    }
    return 0;
}

/*
 * fold_node(op_type, attrs, inputs, noutputs, opset=20) -> [(dtype_code, dims, bytes)]
 *   attrs:  [(name, kind, value)], kind in int, float, string, ints, floats, tensor
 *           (a tensor value is (dtype_code, dims, bytes))
 *   inputs: [(dtype_code, dims, bytes) | None]   None: an omitted optional input
 * Evaluates one node with the folding kernels. NotImplementedError where they do not fold it
 * (OX_EUNSUPPORTED), ValueError with the kernel's message where the node breaks its op's rules.
 * New reference.
 */
PyObject *oxb_fold_node(PyObject *module, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"op_type", "attrs", "inputs", "noutputs", "opset", NULL};
    const char *op_type;
    PyObject *attrs, *inputs, *aseq = NULL, *iseq = NULL, *result = NULL;
    int noutputs, opset = 20;
    ox_value **vals = NULL;
    const ox_tensor **in = NULL;
    ox_tensor **out = NULL;
    ox_node *n = NULL;
    ox_code rc = OX_OK;
    Py_ssize_t nin;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "sOOi|i:fold_node", kwlist, &op_type, &attrs, &inputs, &noutputs,
                                     &opset))
        return NULL;
    if (noutputs < 0 || noutputs > 64) return PyErr_Format(PyExc_ValueError, "noutputs %d out of range", noutputs);
    ox_graph *g = ox_graph_new(opset);
    if (!g) return PyErr_NoMemory();
    if (!(aseq = PySequence_Fast(attrs, "attrs must be a sequence")) ||
        !(iseq = PySequence_Fast(inputs, "inputs must be a sequence")))
        goto error;
    nin = PySequence_Fast_GET_SIZE(iseq);
    if (nin > 1024) {
        PyErr_SetString(PyExc_ValueError, "too many inputs");
        goto error;
    }
    vals = nin ? ox_arena_array(g->arena, (size_t)nin, sizeof *vals) : NULL;
    in = nin ? ox_arena_array(g->arena, (size_t)nin, sizeof *in) : NULL;
    out = ox_arena_array(g->arena, (size_t)noutputs + 1, sizeof *out);
    if ((nin && (!vals || !in)) || !out) {
        PyErr_NoMemory();
        goto error;
    }
    for (Py_ssize_t i = 0; i < nin; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(iseq, i);
        if (item == Py_None) continue;
        char what[32];
        snprintf(what, sizeof what, "input %zd", i);
        fold_tensor t;
        if (fold_tensor_parse(g, item, what, &t) < 0) goto error;
        vals[i] = ox_graph_add_constant(g, NULL, t.dtype, t.rank, t.dims, t.view.buf);
        PyBuffer_Release(&t.view);
        if (!vals[i]) goto graph_error;
        in[i] = vals[i]->tensor;
    }
    n = ox_graph_add_node(g, op_type, NULL, (int)nin, vals, noutputs);
    if (!n || ox_node_set_name(g, n, "fold_node") != OX_OK) goto graph_error;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(aseq); i++)
        if (fold_attr_set(g, n, PySequence_Fast_GET_ITEM(aseq, i)) < 0) goto error;

    Py_BEGIN_ALLOW_THREADS rc = ox_fold_eval(g, n, in, out);
    Py_END_ALLOW_THREADS if (rc == OX_EUNSUPPORTED) {
        PyErr_Format(PyExc_NotImplementedError,
                     "%s: the folding kernels do not fold this op, dtype "
                     "or form",
                     op_type);
        goto error;
    }
    if (rc != OX_OK) goto graph_error;
    if (!(result = PyList_New(noutputs))) goto error;
    for (int k = 0; k < noutputs; k++) {
        const ox_tensor *t = out[k];
        if (!t) {
            PyErr_Format(PyExc_SystemError, "%s: kernel left output %d unset", op_type, k);
            goto error;
        }
        PyObject *dims = PyTuple_New(t->rank), *tuple = NULL;
        for (int i = 0; dims && i < t->rank; i++) {
            PyObject *d = PyLong_FromLongLong(t->dims[i]);
            if (!d) {
                Py_CLEAR(dims);
                break;
            }
            PyTuple_SET_ITEM(dims, i, d);
        }
        if (dims)
            tuple = Py_BuildValue("(iOy#)", (int)t->dtype, dims, t->data ? (const char *)t->data : "",
                                  (Py_ssize_t)t->nbytes);
        Py_XDECREF(dims);
        if (!tuple) goto error;
        PyList_SET_ITEM(result, k, tuple);
    }
    Py_DECREF(aseq);
    Py_DECREF(iseq);
    ox_graph_free(g);
    return result;

graph_error:
    if (ox_graph_status(g) == OX_ENOMEM || rc == OX_ENOMEM) PyErr_NoMemory();
    else PyErr_SetString(PyExc_ValueError, g->err.msg[0] ? g->err.msg : ox_code_name(rc));
error:
    Py_XDECREF(result);
    Py_XDECREF(aseq);
    Py_XDECREF(iseq);
    ox_graph_free(g);
    return NULL;
}
