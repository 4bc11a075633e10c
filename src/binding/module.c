/*
 * module.c — oxport._core. With testing.c (entry points only the tests call) it is the binding, the
 * only code that includes Python.h; what the two share is binding.h. It converts: every decision on
 * the graph is a core call (ox_lower_run, ox_optimize, ox_graph_rename_dim_params, ...).
 *
 * It turns the Python walk of the FX graph into one ox_aten_program, lowers it, and wraps the
 * resulting ox_graph in a Graph object that optimizes, serializes and saves. Weights travel as
 * (pointer, size, owner): the owner (a torch.Tensor) is kept in Graph.owners for the graph's life,
 * so the pointer stays valid and the bytes are never copied.
 *
 * Modelled on CPython's Modules/_json.c: multi-phase init, heap types with GC support, exceptions
 * in module state, PyObject locals released at one error label. Each function's comment says
 * whether it returns a new reference.
 */
#include "binding/binding.h"

#include <string.h>

#include "ir/ir.h"
#include "lower/lower.h"
#include "opt/pass.h"
#include "onnx/write.h"

typedef struct {
    PyObject *Error; /* oxport._core.Error */
    PyObject *UnsupportedError; /* ops without a lowering; .args[1] lists them */
    PyObject *LoweringError;
    PyTypeObject *GraphType;
    PyTypeObject *RefType;
} module_state;

static module_state *get_state(PyObject *module) { return (module_state *)PyModule_GetState(module); }

/* ---- Ref: a reference to an FX value by id, as the walker hands it over ---- */

typedef struct {
    PyObject_HEAD uint32_t id;
} RefObject;

static PyObject *ref_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    unsigned long id;
    static char *kwlist[] = {"id", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "k:Ref", kwlist, &id)) return NULL;
    if (id > UINT32_MAX - 1) {
        PyErr_SetString(PyExc_ValueError, "Ref id out of range");
        return NULL;
    }
    RefObject *self = (RefObject *)type->tp_alloc(type, 0);
    if (self) self->id = (uint32_t)id;
    return (PyObject *)self;
}

static PyObject *ref_repr(PyObject *self) { return PyUnicode_FromFormat("Ref(%u)", ((RefObject *)self)->id); }

static void ref_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *ref_get_id(PyObject *self, void *closure) { return PyLong_FromUnsignedLong(((RefObject *)self)->id); }

static PyGetSetDef ref_getset[] = {
    {"id", ref_get_id, NULL, "value id", NULL},
    {NULL},
};

static PyType_Slot ref_slots[] = {
    {Py_tp_new, ref_new},
    {Py_tp_repr, ref_repr},
    {Py_tp_dealloc, ref_dealloc},
    {Py_tp_getset, ref_getset},
    {Py_tp_doc, "Ref(id): an FX value handed to the lowering by id."},
    {0, NULL},
};

static PyType_Spec ref_spec = {
    .name = "oxport._core.Ref",
    .basicsize = sizeof(RefObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = ref_slots,
};

/* ---- Graph ---- */

typedef struct {
    PyObject_HEAD ox_graph *g;
    PyObject *owners; /* list: keeps every borrowed weight's owner alive */
    ox_value **weights; /* the weights as Python gave them, in order, even once passes drop them */
    uint32_t nweights;
} GraphObject;

static int graph_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(((GraphObject *)self)->owners);
    return 0;
}

static int graph_clear(PyObject *self) {
    Py_CLEAR(((GraphObject *)self)->owners);
    return 0;
}

static void graph_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    /* The graph goes first: it borrows from the owners. */
    ox_graph_free(((GraphObject *)self)->g);
    ((GraphObject *)self)->g = NULL;
    graph_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* Raises the module exception matching err; returns NULL. */
static PyObject *raise_error(module_state *st, const ox_error *err) {
    PyObject *type = st->Error;
    switch (err->code) {
    case OX_ENOMEM: return PyErr_NoMemory();
    case OX_EINVAL: type = PyExc_ValueError; break;
    case OX_EIO: type = PyExc_OSError; break;
    case OX_ELOWER: type = st->LoweringError; break;
    case OX_EUNSUPPORTED: type = st->UnsupportedError; break;
    default: break;
    }
    PyErr_SetString(type, err->msg[0] ? err->msg : ox_code_name(err->code));
    return NULL;
}

static GraphObject *graph_check(PyObject *self) {
    GraphObject *go = (GraphObject *)self;
    if (!go->g) {
        PyErr_SetString(PyExc_RuntimeError, "the graph was released");
        return NULL;
    }
    return go;
}

/* ---- conversion of the walker's lists ---- */

typedef struct {
    ox_graph *g;
    module_state *st;
    uint32_t nvalues;
    const char *where; /* for messages: which node's arguments are being read */
} conv;

static int dtype_from(PyObject *o, ox_dtype *out, const char *what) {
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v <= 0 || v >= OX_DTYPE_COUNT || v == OX_STRING) {
        PyErr_Format(PyExc_ValueError, "%s: unsupported dtype code %ld", what, v);
        return -1;
    }
    *out = (ox_dtype)v;
    return 0;
}

/* shape: a tuple of ints and str (symbols), or None for "not a tensor". */
static int shape_from(conv *c, PyObject *shape, int *rank, ox_dim **dims, const char *what) {
    if (shape == Py_None) {
        *rank = -1;
        *dims = NULL;
        return 0;
    }
    PyObject *seq = PySequence_Fast(shape, "shape must be a sequence");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > OX_MAX_RANK) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s: rank %zd is above %d", what, n, (int)OX_MAX_RANK);
        return -1;
    }
    ox_dim *d = n ? ox_arena_array(c->g->arena, (size_t)n, sizeof *d) : NULL;
    if (n && !d) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PySequence_Fast_GET_ITEM(seq, i);
        if (PyUnicode_Check(e)) {
            const char *s = PyUnicode_AsUTF8(e);
            if (!s || !(d[i].param = ox_arena_strdup(c->g->arena, s))) {
                Py_DECREF(seq);
                if (!PyErr_Occurred()) PyErr_NoMemory();
                return -1;
            }
            d[i].value = -1;
        } else {
            long long v = PyLong_AsLongLong(e);
            if (v == -1 && PyErr_Occurred()) {
                Py_DECREF(seq);
                return -1;
            }
            d[i].value = v;
        }
    }
    Py_DECREF(seq);
    *rank = (int)n;
    *dims = d;
    return 0;
}

static int arg_from(conv *c, PyObject *o, ox_arg *a, int depth) {
    if (depth > 8) {
        PyErr_Format(PyExc_ValueError, "%s: arguments nested too deeply", c->where);
        return -1;
    }
    if (o == Py_None) {
        a->kind = OX_ARG_NONE;
        return 0;
    }
    if (PyBool_Check(o)) {
        a->kind = OX_ARG_BOOL;
        a->u.i = o == Py_True;
        return 0;
    }
    if (PyLong_Check(o)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow) {
            PyErr_Format(PyExc_OverflowError, "%s: integer argument does not fit in int64", c->where);
            return -1;
        }
        if (v == -1 && PyErr_Occurred()) return -1;
        a->kind = OX_ARG_INT;
        a->u.i = v;
        return 0;
    }
    if (PyFloat_Check(o)) {
        a->kind = OX_ARG_FLOAT;
        a->u.f = PyFloat_AS_DOUBLE(o);
        return 0;
    }
    if (PyUnicode_Check(o)) {
        const char *s = PyUnicode_AsUTF8(o);
        if (!s) return -1;
        a->kind = OX_ARG_STRING;
        if (!(a->u.s = ox_arena_strdup(c->g->arena, s))) {
            PyErr_NoMemory();
            return -1;
        }
        return 0;
    }
    if (PyBytes_Check(o)) {
        Py_ssize_t n = PyBytes_GET_SIZE(o);
        void *copy = ox_arena_alloc(c->g->arena, (size_t)n);
        if (!copy) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(copy, PyBytes_AS_STRING(o), (size_t)n);
        a->kind = OX_ARG_BYTES;
        a->u.bytes.p = copy;
        a->u.bytes.n = (size_t)n;
        return 0;
    }
    if (Py_IS_TYPE(o, c->st->RefType)) {
        uint32_t id = ((RefObject *)o)->id;
        if (id >= c->nvalues) {
            PyErr_Format(PyExc_ValueError, "%s: value id %u out of range", c->where, id);
            return -1;
        }
        a->kind = OX_ARG_VALUE;
        a->u.ref = id;
        return 0;
    }
    if (PyList_Check(o) || PyTuple_Check(o)) {
        PyObject *seq = PySequence_Fast(o, "");
        if (!seq) return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        a->kind = OX_ARG_LIST;
        a->u.list.n = (int)n;
        a->u.list.items = n ? ox_arena_array(c->g->arena, (size_t)n, sizeof(ox_arg)) : NULL;
        if (n && !a->u.list.items) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if (arg_from(c, PySequence_Fast_GET_ITEM(seq, i), &a->u.list.items[i], depth + 1) < 0) {
                Py_DECREF(seq);
                return -1;
            }
        }
        Py_DECREF(seq);
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s: cannot hand an argument of type %.100s to the lowering", c->where,
                 Py_TYPE(o)->tp_name);
    return -1;
}

static const char *str_or_null(conv *c, PyObject *o) {
    if (o == Py_None) return NULL;
    const char *s = PyUnicode_AsUTF8(o);
    if (!s) return NULL;
    const char *copy = ox_arena_strdup(c->g->arena, s);
    if (!copy) PyErr_NoMemory();
    return copy;
}

/* One node: (target, name, where, args, output_ids, metas) where metas = [(dtype, shape)]. */
static int node_from(conv *c, PyObject *item, ox_aten_node *n) {
    PyObject *target, *name, *where, *args, *outs, *metas;
    if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "UUOOOO", &target, &name, &where, &args, &outs, &metas)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "node must be a tuple");
        return -1;
    }
    if (!(n->target = str_or_null(c, target)) || !(n->name = str_or_null(c, name))) return -1;
    n->where = str_or_null(c, where);
    if (!n->where && PyErr_Occurred()) return -1;
    c->where = n->name;

    PyObject *seq = PySequence_Fast(args, "node args must be a sequence");
    if (!seq) return -1;
    Py_ssize_t na = PySequence_Fast_GET_SIZE(seq);
    n->nargs = (int)na;
    n->args = na ? ox_arena_array(c->g->arena, (size_t)na, sizeof *n->args) : NULL;
    if (na && !n->args) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < na; i++)
        if (arg_from(c, PySequence_Fast_GET_ITEM(seq, i), &n->args[i], 0) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    Py_DECREF(seq);

    PyObject *oseq = PySequence_Fast(outs, "node outputs must be a sequence");
    PyObject *mseq = oseq ? PySequence_Fast(metas, "node metas must be a sequence") : NULL;
    if (!mseq) {
        Py_XDECREF(oseq);
        return -1;
    }
    Py_ssize_t no = PySequence_Fast_GET_SIZE(oseq);
    int rc = -1;
    if (PySequence_Fast_GET_SIZE(mseq) != no) {
        PyErr_Format(PyExc_ValueError, "%s: %zd outputs but %zd metas", n->name, no, PySequence_Fast_GET_SIZE(mseq));
        goto done;
    }
    n->noutputs = (int)no;
    n->outputs = no ? ox_arena_array(c->g->arena, (size_t)no, sizeof *n->outputs) : NULL;
    n->meta = no ? ox_arena_array(c->g->arena, (size_t)no, sizeof *n->meta) : NULL;
    if (no && (!n->outputs || !n->meta)) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < no; i++) {
        unsigned long id = PyLong_AsUnsignedLong(PySequence_Fast_GET_ITEM(oseq, i));
        if (PyErr_Occurred()) goto done;
        if (id >= c->nvalues) {
            PyErr_Format(PyExc_ValueError, "%s: output id %lu out of range", n->name, id);
            goto done;
        }
        n->outputs[i] = (uint32_t)id;
        PyObject *dt, *shape;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(mseq, i), "OO", &dt, &shape)) goto done;
        if (dt == Py_None) n->meta[i].dtype = OX_UNDEFINED;
        else if (dtype_from(dt, &n->meta[i].dtype, n->name) < 0) goto done;
        if (shape_from(c, shape, &n->meta[i].rank, &n->meta[i].dims, n->name) < 0) goto done;
    }
    rc = 0;
done:
    Py_DECREF(oseq);
    Py_DECREF(mseq);
    return rc;
}

/* Builds the unsupported-op list handed to Python: [dict(target, count, node, where, reason,
 * arg_dtypes)]. New reference. */
static PyObject *unsupported_list(const ox_lower_report *rep) {
    PyObject *list = PyList_New(rep->nunsupported);
    if (!list) return NULL;
    for (int i = 0; i < rep->nunsupported; i++) {
        const ox_unsupported *u = &rep->unsupported[i];
        PyObject *d = Py_BuildValue("{s:s,s:i,s:s,s:z,s:z,s:s}", "target", u->target, "count", u->count, "node",
                                    u->node, "where", u->where, "reason", u->reason, "arg_dtypes", u->arg_dtypes);
        if (!d) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, d);
    }
    return list;
}

/*
 * lower(opset, inputs, initializers, nodes, outputs, output_names, nvalues, metadata) -> Graph
 *   inputs:       [(id, name, dtype, shape)]
 *   initializers: [(id, name, dtype, dims, ptr, nbytes, owner)]    ptr 0: fake (no data)
 *   nodes:        [(target, name, where, args, output_ids, [(dtype, shape)])]
 *   outputs:      [id];  output_names: [str | None] or None;  metadata: {str: str}
 * New reference.
 */
static PyObject *core_lower(PyObject *module, PyObject *args) {
    module_state *st = get_state(module);
    int opset;
    unsigned long nvalues;
    PyObject *inputs, *inits, *nodes, *outputs, *output_names, *metadata;
    if (!PyArg_ParseTuple(args, "iO!O!O!O!OkO!:lower", &opset, &PyList_Type, &inputs, &PyList_Type, &inits,
                          &PyList_Type, &nodes, &PyList_Type, &outputs, &output_names, &nvalues, &PyDict_Type,
                          &metadata))
        return NULL;
    if (nvalues > UINT32_MAX - 1) return PyErr_Format(PyExc_ValueError, "too many values");

    GraphObject *self = NULL;
    PyObject *owners = NULL, *details = NULL;
    ox_graph *g = ox_graph_new(opset);
    if (!g) return PyErr_NoMemory();
    conv c = {.g = g, .st = st, .nvalues = (uint32_t)nvalues, .where = "graph"};
    ox_aten_program p = {.nvalues = (uint32_t)nvalues};
    p.table = nvalues ? ox_arena_array(g->arena, nvalues, sizeof *p.table) : NULL;
    if (nvalues && !p.table) {
        PyErr_NoMemory();
        goto error;
    }
    if (!(owners = PyList_New(0))) goto error;

    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(inputs); i++) {
        unsigned long id;
        const char *name;
        PyObject *dt, *shape;
        ox_dtype dtype;
        int rank;
        ox_dim *dims;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(inputs, i), "ksOO:input", &id, &name, &dt, &shape)) goto error;
        if (id >= nvalues) {
            PyErr_Format(PyExc_ValueError, "input %s: id out of range", name);
            goto error;
        }
        if (dtype_from(dt, &dtype, name) < 0 || shape_from(&c, shape, &rank, &dims, name) < 0) goto error;
        if (!(p.table[id] = ox_graph_add_input(g, name, dtype, rank, dims))) goto graph_error;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(inits); i++) {
        unsigned long id;
        const char *name;
        PyObject *dt, *shape, *owner;
        unsigned long long ptr;
        Py_ssize_t nbytes;
        ox_dtype dtype;
        int rank;
        ox_dim *dims;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(inits, i), "ksOOKnO:initializer", &id, &name, &dt, &shape, &ptr, &nbytes,
                              &owner))
            goto error;
        if (id >= nvalues) {
            PyErr_Format(PyExc_ValueError, "initializer %s: id out of range", name);
            goto error;
        }
        if (dtype_from(dt, &dtype, name) < 0 || shape_from(&c, shape, &rank, &dims, name) < 0) goto error;
        if (rank < 0) {
            PyErr_Format(PyExc_ValueError, "initializer %s: shape is required", name);
            goto error;
        }
        if (nbytes < 0) {
            PyErr_Format(PyExc_ValueError, "initializer %s: negative size", name);
            goto error;
        }
        int64_t idims[64];
        for (int k = 0; k < rank; k++) {
            if (dims[k].param) {
                PyErr_Format(PyExc_ValueError, "initializer %s: dim %d is symbolic", name, k);
                goto error;
            }
            idims[k] = dims[k].value;
        }
        ox_value *v =
            ox_graph_add_initializer(g, name, dtype, rank, idims, (const void *)(uintptr_t)ptr, (size_t)nbytes);
        if (!v) goto graph_error;
        p.table[id] = v;
        if (ptr && PyList_Append(owners, owner) < 0) goto error;
    }

    uint32_t nweights = (uint32_t)PyList_GET_SIZE(inits);
    ox_value **weights = nweights ? ox_arena_array(g->arena, nweights, sizeof *weights) : NULL;
    if (nweights && !weights) {
        PyErr_NoMemory();
        goto error;
    }
    for (uint32_t i = 0; i < nweights; i++) weights[i] = g->initializers[i];

    p.nnodes = (uint32_t)PyList_GET_SIZE(nodes);
    p.nodes = p.nnodes ? ox_arena_array(g->arena, p.nnodes, sizeof *p.nodes) : NULL;
    if (p.nnodes && !p.nodes) {
        PyErr_NoMemory();
        goto error;
    }
    for (uint32_t i = 0; i < p.nnodes; i++)
        if (node_from(&c, PyList_GET_ITEM(nodes, i), &p.nodes[i]) < 0) goto error;

    p.noutputs = (uint32_t)PyList_GET_SIZE(outputs);
    p.outputs = p.noutputs ? ox_arena_array(g->arena, p.noutputs, sizeof *p.outputs) : NULL;
    if (p.noutputs && !p.outputs) {
        PyErr_NoMemory();
        goto error;
    }
    for (uint32_t i = 0; i < p.noutputs; i++) {
        unsigned long id = PyLong_AsUnsignedLong(PyList_GET_ITEM(outputs, i));
        if (PyErr_Occurred()) goto error;
        if (id >= nvalues) {
            PyErr_Format(PyExc_ValueError, "output %u: id out of range", i);
            goto error;
        }
        p.outputs[i] = (uint32_t)id;
    }
    if (output_names != Py_None) {
        if (!PyList_Check(output_names) || (uint32_t)PyList_GET_SIZE(output_names) != p.noutputs) {
            PyErr_SetString(PyExc_ValueError, "output_names must be a list with one entry per output");
            goto error;
        }
        p.output_names = ox_arena_array(g->arena, p.noutputs, sizeof *p.output_names);
        if (p.noutputs && !p.output_names) {
            PyErr_NoMemory();
            goto error;
        }
        for (uint32_t i = 0; i < p.noutputs; i++) {
            p.output_names[i] = str_or_null(&c, PyList_GET_ITEM(output_names, i));
            if (!p.output_names[i] && PyErr_Occurred()) goto error;
        }
    }
    PyObject *key, *val;
    Py_ssize_t pos = 0;
    while (PyDict_Next(metadata, &pos, &key, &val)) {
        const char *k = PyUnicode_AsUTF8(key), *v = k ? PyUnicode_AsUTF8(val) : NULL;
        if (!v) goto error;
        if (ox_graph_add_metadata(g, k, v) != OX_OK) goto graph_error;
    }

    ox_lower_report rep;
    ox_code rc;
    Py_BEGIN_ALLOW_THREADS rc = ox_lower_run(g, &p, &rep);
    Py_END_ALLOW_THREADS if (rc == OX_EUNSUPPORTED && rep.nunsupported) {
        if (!(details = unsupported_list(&rep))) goto error;
        PyObject *exc_args = Py_BuildValue("(sO)", g->err.msg, details);
        if (exc_args) {
            PyErr_SetObject(st->UnsupportedError, exc_args);
            Py_DECREF(exc_args);
        }
        goto error;
    }
    if (rc != OX_OK) goto graph_error;

    self = PyObject_GC_New(GraphObject, st->GraphType);
    if (!self) goto error;
    self->g = g;
    self->owners = owners;
    self->weights = weights;
    self->nweights = nweights;
    PyObject_GC_Track((PyObject *)self);
    return (PyObject *)self;

graph_error:
    ox_graph_status(g);
    raise_error(st, &g->err);
error:
    Py_XDECREF(details);
    Py_XDECREF(owners);
    ox_graph_free(g);
    return NULL;
}

/* optimize() -> dict of pass statistics, one key per row of opt/stats.def, in its order. New
 * reference. */
static PyObject *graph_optimize(PyObject *self, PyObject *unused) {
    GraphObject *go = graph_check(self);
    if (!go) return NULL;
    ox_pass_stats st = {0};
    ox_code rc;
    Py_BEGIN_ALLOW_THREADS rc = ox_optimize(go->g, &st);
    Py_END_ALLOW_THREADS if (rc != OX_OK) return raise_error(get_state(PyType_GetModule(Py_TYPE(self))), &go->g->err);
    PyObject *dict = PyDict_New();
    if (!dict) return NULL;
    for (int i = 0; i < OX_PASS_STAT_COUNT; i++) {
        PyObject *v = PyLong_FromUnsignedLong(ox_pass_stat_get(&st, i));
        if (!v || PyDict_SetItemString(dict, ox_pass_stat_table[i].name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(dict);
            return NULL;
        }
        Py_DECREF(v);
    }
    return dict;
}

static int save_options(PyObject *kwds, ox_save_options *o, const char **path, int want_path) {
    static char *kw_path[] = {"path",          "include_initializers", "keep_initializers_as_inputs",
                              "external_data", "data_location",        NULL};
    static char *kw_buf[] = {"include_initializers", "keep_initializers_as_inputs", NULL};
    int inc = 1, keep = 0, ext = 0;
    const char *loc = NULL;
    PyObject *empty = PyTuple_New(0);
    if (!empty) return -1;
    int ok = want_path ?
        PyArg_ParseTupleAndKeywords(empty, kwds, "s|pppz:save", kw_path, path, &inc, &keep, &ext, &loc) :
        PyArg_ParseTupleAndKeywords(empty, kwds, "|pp:serialize", kw_buf, &inc, &keep);
    Py_DECREF(empty);
    if (!ok) return -1;
    memset(o, 0, sizeof *o);
    o->include_initializers = inc;
    o->keep_initializers_as_inputs = keep;
    o->external_data = ext;
    o->data_location = loc;
    o->choose_data_location = loc == NULL; /* the writer names the data file (atomic saves) */
    /* Small tensors (shapes, axes, scalars) stay inline, as onnx's own external-data conversion
     * does: shape inference and readers then see them without opening the data file. */
    o->external_min_bytes = OX_EXTERNAL_MIN_BYTES_DEFAULT;
    return 0;
}

/* serialize(*, include_initializers=True, keep_initializers_as_inputs=False) -> bytes. New ref. */
static PyObject *graph_serialize(PyObject *self, PyObject *args, PyObject *kwds) {
    GraphObject *go = graph_check(self);
    ox_save_options o;
    if (!go || save_options(kwds, &o, NULL, 0) < 0) return NULL;
    if (PyTuple_GET_SIZE(args)) return PyErr_Format(PyExc_TypeError, "serialize takes keyword arguments only");
    module_state *st = get_state(PyType_GetModule(Py_TYPE(self)));
    size_t size = ox_model_size(go->g, &o);
    if (ox_graph_failed(go->g)) return raise_error(st, &go->g->err);
    if (size > (size_t)PY_SSIZE_T_MAX) return PyErr_NoMemory();
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (!bytes) return NULL;
    ox_error err = {0};
    size_t written = 0;
    ox_code rc;
    Py_BEGIN_ALLOW_THREADS rc = ox_model_write_buffer(go->g, &o, PyBytes_AS_STRING(bytes), size, &written, &err);
    Py_END_ALLOW_THREADS if (rc != OX_OK) {
        Py_DECREF(bytes);
        return raise_error(st, &err);
    }
    if (written != size) {
        Py_DECREF(bytes);
        return PyErr_Format(PyExc_SystemError, "serializer wrote %zu bytes, expected %zu", written, size);
    }
    return bytes;
}

/* save(path, *, include_initializers, keep_initializers_as_inputs, external_data, data_location).
 * data_location None: the writer names the data file (ox_model_save). Returns None (new reference). */
static PyObject *graph_save(PyObject *self, PyObject *args, PyObject *kwds) {
    GraphObject *go = graph_check(self);
    ox_save_options o;
    const char *path = NULL;
    if (!go) return NULL;
    if (PyTuple_GET_SIZE(args)) return PyErr_Format(PyExc_TypeError, "save takes keyword arguments only");
    if (save_options(kwds, &o, &path, 1) < 0) return NULL;
    ox_error err = {0};
    ox_code rc;
    Py_BEGIN_ALLOW_THREADS rc = ox_model_save(go->g, &o, path, &err);
    Py_END_ALLOW_THREADS if (rc != OX_OK) return raise_error(get_state(PyType_GetModule(Py_TYPE(self))), &err);
    Py_RETURN_NONE;
}

/* stats() -> dict: nodes, initializers, initializer_bytes, op_counts {op_type: n}. New ref. */
static PyObject *graph_stats(PyObject *self, PyObject *unused) {
    GraphObject *go = graph_check(self);
    if (!go) return NULL;
    ox_graph *g = go->g;
    PyObject *ops = PyDict_New(), *result = NULL;
    if (!ops) return NULL;
    unsigned long long init_bytes = 0;
    for (uint32_t i = 0; i < g->ninitializers; i++) init_bytes += g->initializers[i]->tensor->nbytes;
    for (uint32_t i = 0; i < g->nnodes; i++) {
        PyObject *key = PyUnicode_FromString(g->nodes[i]->op_type);
        if (!key) goto error;
        PyObject *cur = PyDict_GetItemWithError(ops, key);
        long n = cur ? PyLong_AsLong(cur) : 0;
        PyObject *nv = PyErr_Occurred() ? NULL : PyLong_FromLong(n + 1);
        int bad = !nv || PyDict_SetItem(ops, key, nv) < 0;
        Py_DECREF(key);
        Py_XDECREF(nv);
        if (bad) goto error;
    }
    result = Py_BuildValue("{s:I,s:I,s:K,s:O,s:i}", "nodes", g->nnodes, "initializers", g->ninitializers,
                           "initializer_bytes", init_bytes, "op_counts", ops, "opset", g->opset);
error:
    Py_DECREF(ops);
    return result;
}

/* initializer_names() -> list[str]. New reference. */
static PyObject *graph_initializer_names(PyObject *self, PyObject *unused) {
    GraphObject *go = graph_check(self);
    if (!go) return NULL;
    PyObject *list = PyList_New(go->g->ninitializers);
    if (!list) return NULL;
    for (uint32_t i = 0; i < go->g->ninitializers; i++) {
        const char *name = ox_value_name(go->g, go->g->initializers[i]);
        PyObject *s = name ? PyUnicode_FromString(name) : PyErr_NoMemory();
        if (!s) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, s);
    }
    return list;
}

/* has_fake_weights() -> bool. New reference. */
static PyObject *graph_has_fake_weights(PyObject *self, PyObject *unused) {
    GraphObject *go = graph_check(self);
    if (!go) return NULL;
    for (uint32_t i = 0; i < go->g->ninitializers; i++)
        if (go->g->initializers[i]->tensor->storage == OX_DATA_ABSENT) Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}

/* rename_dim_params(mapping) -> list[str]. New reference. Renames every dim_param equal to a key of
 * `mapping` (a dict str -> str, exact names) to its value, on every value of the graph: inputs,
 * outputs and what is written as value_info. Returns the distinct dim_params found before renaming,
 * in order of first appearance; ONNXProgram.rename_axes calls it first with {} to learn them, then
 * with the mapping it derived (expressions such as "2*s0" included). ox_graph_rename_dim_params
 * does the work. */
static PyObject *graph_rename_dim_params(PyObject *self, PyObject *mapping) {
    GraphObject *go = graph_check(self);
    if (!go) return NULL;
    if (!PyDict_Check(mapping)) return PyErr_Format(PyExc_TypeError, "rename_dim_params takes a dict");
    Py_ssize_t n = PyDict_GET_SIZE(mapping), pos = 0, k = 0;
    if ((size_t)n > UINT32_MAX) return PyErr_Format(PyExc_ValueError, "rename_dim_params: too many names");
    const char **olds = PyMem_Calloc(n ? (size_t)n : 1, sizeof *olds);
    const char **news = PyMem_Calloc(n ? (size_t)n : 1, sizeof *news);
    PyObject *found = NULL, *key, *val;
    const char **names;
    uint32_t nnames;
    ox_error err = {0};
    if (!olds || !news) {
        PyErr_NoMemory();
        goto done;
    }
    while (PyDict_Next(mapping, &pos, &key, &val)) {
        if (!PyUnicode_Check(key) || !PyUnicode_Check(val)) {
            PyErr_SetString(PyExc_TypeError, "rename_dim_params: names must be strings");
            goto done;
        }
        /* valid while the dict holds them; the core copies what it keeps */
        news[k] = PyUnicode_AsUTF8(val);
        if (!(olds[k] = PyUnicode_AsUTF8(key)) || !news[k]) goto done;
        k++;
    }
    if (ox_graph_rename_dim_params(go->g, (uint32_t)n, olds, news, &names, &nnames, &err) != OX_OK) {
        raise_error(get_state(PyType_GetModule(Py_TYPE(self))), &err);
        goto done;
    }
    if (!(found = PyList_New(nnames))) goto done;
    for (uint32_t i = 0; i < nnames; i++) {
        PyObject *name = PyUnicode_FromString(names[i]);
        if (!name) {
            Py_CLEAR(found);
            goto done;
        }
        PyList_SET_ITEM(found, i, name);
    }
done:
    PyMem_Free(olds);
    PyMem_Free(news);
    return found;
}

/* set_weight(index, ptr, nbytes, owner): weight `index` (in the order lower() was given them) now
 * borrows nbytes at ptr, kept alive through owner. Python has checked dtype and shape; the core
 * checks the size again and refuses a weight optimize() has read (ox_graph_set_weight). Returns
 * None (new reference). */
static PyObject *graph_set_weight(PyObject *self, PyObject *args) {
    GraphObject *go = graph_check(self);
    unsigned long index;
    unsigned long long ptr;
    Py_ssize_t nbytes;
    PyObject *owner;
    if (!go || !PyArg_ParseTuple(args, "kKnO:set_weight", &index, &ptr, &nbytes, &owner)) return NULL;
    if (index >= go->nweights) return PyErr_Format(PyExc_IndexError, "weight index %lu out of range", index);
    /* The owner first: once the weight points at its bytes, they must not go away. */
    if (PyList_Append(go->owners, owner) < 0) return NULL;
    ox_error err = {0};
    if (ox_graph_set_weight(go->g, go->weights[index], (const void *)(uintptr_t)ptr, (int64_t)nbytes, &err) != OX_OK) {
        /* refused: the weight kept its bytes, so the new owner need not stay */
        Py_ssize_t len = PyList_GET_SIZE(go->owners);
        if (PyList_SetSlice(go->owners, len - 1, len, NULL) < 0) return NULL;
        return raise_error(get_state(PyType_GetModule(Py_TYPE(self))), &err);
    }
    Py_RETURN_NONE;
}

static PyMethodDef graph_methods[] = {
    {"set_weight", graph_set_weight, METH_VARARGS, "Point a weight at new bytes."},
    {"optimize", graph_optimize, METH_NOARGS, "Run the C passes in place; returns their statistics."},
    {"serialize", (PyCFunction)(void (*)(void))graph_serialize, METH_VARARGS | METH_KEYWORDS, "ModelProto bytes."},
    {"save", (PyCFunction)(void (*)(void))graph_save, METH_VARARGS | METH_KEYWORDS,
     "Write the model (and external data) atomically."},
    {"stats", graph_stats, METH_NOARGS, "Node and initializer counts."},
    {"initializer_names", graph_initializer_names, METH_NOARGS, "Initializer names in order."},
    {"has_fake_weights", graph_has_fake_weights, METH_NOARGS, "Whether any initializer has no data."},
    {"rename_dim_params", graph_rename_dim_params, METH_O, "Rename dim_params by exact name; the names before."},
    {NULL},
};

static PyType_Slot graph_slots[] = {
    {Py_tp_dealloc, graph_dealloc},
    {Py_tp_traverse, graph_traverse},
    {Py_tp_clear, graph_clear},
    {Py_tp_methods, graph_methods},
    {Py_tp_doc, "An ONNX graph held by the C core; made by oxport._core.lower."},
    {0, NULL},
};

static PyType_Spec graph_spec = {
    .name = "oxport._core.Graph",
    .basicsize = sizeof(GraphObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = graph_slots,
};

/* supported_targets(opset) -> frozenset[str]: the overloads lowered natively at this opset. */
static PyObject *core_supported_targets(PyObject *module, PyObject *arg) {
    long opset = PyLong_AsLong(arg);
    if (opset == -1 && PyErr_Occurred()) return NULL;
    PyObject *set = PySet_New(NULL);
    if (!set) return NULL;
    int lo, hi;
    const char *t;
    for (int i = 0; (t = ox_lower_target(i, &lo, &hi)); i++) {
        if (opset < lo || opset > hi) continue;
        PyObject *s = PyUnicode_FromString(t);
        if (!s || PySet_Add(set, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(set);
            return NULL;
        }
        Py_DECREF(s);
    }
    PyObject *frozen = PyFrozenSet_New(set);
    Py_DECREF(set);
    return frozen;
}

static PyMethodDef module_methods[] = {
    {"lower", core_lower, METH_VARARGS, "Lower the walked FX graph to an ONNX Graph in one call."},
    {"supported_targets", core_supported_targets, METH_O, "ATen overloads lowered natively."},
    OXB_TESTING_METHODS{NULL},
};

static int module_exec(PyObject *m) {
    module_state *st = get_state(m);
    st->Error = PyErr_NewException("oxport._core.Error", PyExc_RuntimeError, NULL);
    if (!st->Error || PyModule_AddObjectRef(m, "Error", st->Error) < 0) return -1;
    st->UnsupportedError = PyErr_NewException("oxport._core.UnsupportedError", st->Error, NULL);
    if (!st->UnsupportedError || PyModule_AddObjectRef(m, "UnsupportedError", st->UnsupportedError) < 0) return -1;
    st->LoweringError = PyErr_NewException("oxport._core.LoweringError", st->Error, NULL);
    if (!st->LoweringError || PyModule_AddObjectRef(m, "LoweringError", st->LoweringError) < 0) return -1;
    st->GraphType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &graph_spec, NULL);
    if (!st->GraphType || PyModule_AddType(m, st->GraphType) < 0) return -1;
    st->RefType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &ref_spec, NULL);
    if (!st->RefType || PyModule_AddType(m, st->RefType) < 0) return -1;
    return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
    module_state *st = get_state(m);
    Py_VISIT(st->Error);
    Py_VISIT(st->UnsupportedError);
    Py_VISIT(st->LoweringError);
    Py_VISIT(st->GraphType);
    Py_VISIT(st->RefType);
    return 0;
}

static int module_clear(PyObject *m) {
    module_state *st = get_state(m);
    Py_CLEAR(st->Error);
    Py_CLEAR(st->UnsupportedError);
    Py_CLEAR(st->LoweringError);
    Py_CLEAR(st->GraphType);
    Py_CLEAR(st->RefType);
    return 0;
}

static void module_free(void *m) { module_clear((PyObject *)m); }

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "oxport._core",
    .m_doc = "The C core of oxport: lowering, passes and ONNX serialization.",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__core(void); /* the one exported symbol */
PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&core_module); }
