/*
 * simplify.c — no-op removal: nodes that compute one of their inputs are dropped and their readers
 * read that input (Identity, same-type Cast, Reshape/Expand to the same shape, x*1, x+0, Transpose
 * pairs, inference Dropout, ...). Two model patterns are no-ops too when their condition is known:
 * a negative-index wrap of a value that cannot be negative, and attention's guard for fully masked
 * rows under a constant mask that leaves every row something. Shape of a symbolic dim is pointed at
 * the first graph input that has it, so that dedup merges every size of one name.
 */
#include <math.h>
#include <string.h>

#include "opt/pass_internal.h"

/* The node computes its input `in` as output 0: its readers read `in` instead. */
static bool forward(ox_node *n, ox_value *in, ox_pass_stats *st) {
    for (int k = 1; k < n->noutputs; k++)
        if (n->outputs[k]->uses || n->outputs[k]->is_output) return false; /* e.g. a Dropout mask */
    if (!in || !oxp_replace(n->outputs[0], in, false)) return false;
    n->dead = true;
    if (st) st->noops_removed++;
    return true;
}

/* Reshape(x, shape) gives x's own shape. */
static bool reshape_is_noop(const ox_node *n) {
    const ox_value *x = n->inputs[0], *s = n->ninputs > 1 ? n->inputs[1] : NULL;
    if (!oxp_is_const(s) || s->tensor->dtype != OX_INT64 || s->tensor->rank != 1 || !ox_value_is_static(x))
        return false;
    int64_t r = s->tensor->dims[0];
    if (r != x->rank || r > 64) return false;
    bool allowzero = ox_node_attr_int(n, "allowzero", 0) != 0;
    int minus = -1;
    for (int i = 0; i < r; i++) {
        int64_t d = (int64_t)oxp_elem(s->tensor, i);
        if (d == 0 && !allowzero) continue; /* copies x's dim i */
        if (d == -1 && minus < 0) {
            minus = i;
            continue;
        }
        if (d != x->dims[i].value) return false;
    }
    return true; /* every other dim equal, so a single -1 can only be x's own size there */
}

/* Expand(x, shape) gives x's own shape: every shape entry is 1 or x's dim (right-aligned). */
static bool expand_is_noop(const ox_node *n) {
    const ox_value *x = n->inputs[0], *s = n->ninputs > 1 ? n->inputs[1] : NULL;
    if (!oxp_is_const(s) || s->tensor->rank != 1 || !ox_value_is_static(x)) return false;
    int64_t r = s->tensor->dims[0];
    if (r > x->rank) return false;
    for (int64_t i = 0; i < r; i++) {
        int64_t d = (int64_t)oxp_elem(s->tensor, i), xd = x->dims[x->rank - r + i].value;
        if (d != 1 && d != xd) return false;
    }
    return true;
}

/* c is a constant (or a ConstantOfShape of a constant shape) whose every element equals `e`, of
 * x's dtype, whose broadcast cannot change x's shape (a single element of rank at most x's). */
static bool is_neutral(const ox_value *c, const ox_value *x, double e) {
    if (!c || !x || x->dtype == OX_UNDEFINED || x->rank < 0) return false;
    ox_tensor t;
    int64_t dims[16];
    unsigned char value[16];
    const ox_tensor *ct = NULL;
    if (oxp_is_const(c)) {
        ct = c->tensor;
    } else if (oxp_constant_of_shape(c, &t, dims, value)) {
        t.data = value; /* one element at most is read: numel must be 1 */
        ct = &t;
    }
    if (!ct || ct->dtype != x->dtype || ox_tensor_numel(ct) != 1 || ct->rank > x->rank) return false;
    return oxp_elem(ct, 0) == e;
}

static bool transpose_perm(const ox_node *n, int rank, int64_t *perm) {
    const ox_attr *a = ox_node_attr(n, "perm");
    if (rank < 0 || rank > 16) return false;
    if (!a) {
        for (int i = 0; i < rank; i++) perm[i] = rank - 1 - i;
        return true;
    }
    if (a->type != OX_ATTR_INTS || a->u.ints.n != rank) return false;
    for (int i = 0; i < rank; i++) {
        perm[i] = a->u.ints.v[i];
        if (perm[i] < 0 || perm[i] >= rank) return false;
    }
    return true;
}

static int input_rank(const ox_node *n) {
    const ox_value *x = n->inputs[0];
    if (x && x->rank >= 0) return x->rank;
    return n->outputs[0]->rank;
}

static void simplify_transpose(ox_graph *g, ox_node *n, ox_pass_stats *st) {
    int64_t p2[16], p1[16], both[16];
    int rank = input_rank(n);
    if (!transpose_perm(n, rank, p2)) return;
    bool identity = true;
    for (int i = 0; i < rank; i++) identity &= p2[i] == i;
    if (identity) {
        forward(n, n->inputs[0], st);
        return;
    }
    ox_node *prev = n->inputs[0] ? n->inputs[0]->producer : NULL;
    if (!prev || prev->dead || !oxp_op_is(prev, "Transpose") || !transpose_perm(prev, rank, p1)) return;
    /* y = T(T(x, p1), p2): y dim i is x dim p1[p2[i]]. */
    identity = true;
    for (int i = 0; i < rank; i++) {
        both[i] = p1[p2[i]];
        identity &= both[i] == i;
    }
    if (identity) {
        forward(n, prev->inputs[0], st);
        return;
    }
    n->inputs[0] = prev->inputs[0];
    ox_node_set_ints(g, n, "perm", both, rank);
    if (st) st->noops_removed++; /* prev is read by one node fewer; DCE drops it if unused */
}

/* Whether every element of v is >= 0, as far as a short walk up its producers can tell: a
 * non-negative constant, Shape, Size, a Range from a non-negative start with a positive step, and
 * what moves, gathers or adds such values. NaN is not >= 0: only integer tensors qualify. */
static bool nonneg(const ox_value *v, int depth) {
    if (!v || depth > 16 || !ox_dtype_is_int(v->dtype)) return false;
    if (v->kind == OX_VALUE_INITIALIZER) {
        int64_t n = oxp_is_const(v) ? ox_tensor_numel(v->tensor) : -1;
        if (n < 0 || n > 4096) return false;
        for (int64_t i = 0; i < n; i++)
            if (!(oxp_elem(v->tensor, i) >= 0)) return false;
        return true;
    }
    const ox_node *p = v->producer;
    if (!p || p->dead || p->domain || p->ninputs < 1) return false;
    const char *op = p->op_type;
    if (!strcmp(op, "Shape") || !strcmp(op, "Size")) return true;
    if (!strcmp(op, "Range"))
        return p->ninputs == 3 && nonneg(p->inputs[0], depth + 1) && oxp_is_const(p->inputs[2]) &&
            ox_tensor_numel(p->inputs[2]->tensor) == 1 && oxp_elem(p->inputs[2]->tensor, 0) > 0;
    static const char *const moves[] = {"Unsqueeze",      "Squeeze", "Reshape", "Expand", "Transpose",
                                        "Identity",       "Flatten", "Slice",   "Gather", "GatherND",
                                        "GatherElements", "Tile",    "CumSum",  "Abs",    "Relu"};
    for (size_t k = 0; k < sizeof moves / sizeof *moves; k++)
        if (!strcmp(op, moves[k])) return !strcmp(op, "Abs") || nonneg(p->inputs[0], depth + 1);
    if (!strcmp(op, "Cast")) { /* a wider or equal integer type keeps the sign */
        int64_t to = ox_node_attr_int(p, "to", -1);
        return (to == OX_INT64 || (to == OX_INT32 && p->inputs[0]->dtype == OX_INT32)) &&
            nonneg(p->inputs[0], depth + 1);
    }
    bool all =
        !strcmp(op, "Add") || !strcmp(op, "Mul") || !strcmp(op, "Concat") || !strcmp(op, "Max") || !strcmp(op, "Min");
    if (!strcmp(op, "Where")) all = p->ninputs == 3;
    if (!all) return false;
    for (int k = !strcmp(op, "Where") ? 1 : 0; k < p->ninputs; k++)
        if (!nonneg(p->inputs[k], depth + 1)) return false;
    return true;
}

/* Shape(x, k, k + 1) of a symbolic dim named p reads the first graph input dim named p instead:
 * every size of that name then comes from one node, which dedup merges, and x's producer may die. */
static void canonical_shape(ox_graph *g, ox_node *n) {
    const ox_value *x;
    int64_t start, end;
    if (n->ninputs != 1 || !oxp_shape_range(n, &x, &start, &end) || end - start != 1) return;
    const char *p = x->dims[start].param;
    if (!p) return;
    for (uint32_t i = 0; i < g->ninputs; i++) {
        ox_value *in = g->inputs[i];
        for (int k = 0; in->dims && k < in->rank; k++) {
            if (!in->dims[k].param || strcmp(in->dims[k].param, p) != 0) continue;
            if (in == x && k == start) return;
            n->inputs[0]->uses--;
            n->inputs[0] = in;
            in->uses++;
            ox_node_set_int(g, n, "start", k);
            ox_node_set_int(g, n, "end", k + 1);
            return;
        }
    }
}

/* Where(Less(i, 0), ..., i) with i never negative (a negative-index wrap around an arange): i. */
static void simplify_where(ox_node *n, ox_pass_stats *st) {
    if (n->ninputs != 3) return;
    const ox_node *c = n->inputs[0] ? n->inputs[0]->producer : NULL;
    if (!c || c->dead || !oxp_op_is(c, "Less") || c->ninputs != 2 || c->inputs[0] != n->inputs[2]) return;
    const ox_value *zero = c->inputs[1];
    if (!oxp_is_const(zero) || ox_tensor_numel(zero->tensor) != 1 || oxp_elem(zero->tensor, 0) != 0) return;
    if (nonneg(n->inputs[2], 0) && n->inputs[2]->dtype == n->outputs[0]->dtype) forward(n, n->inputs[2], st);
}

/* Where(IsNaN(p), 0, p) with p = Softmax(x + c) over the last axis, c a constant with a value
 * above -inf in every row: attention's guard for fully masked rows, which cannot fire when the
 * mask is known to leave each row something. (Every row of c, broadcast or not, then gives each
 * row of x + c a finite-or-larger score for finite x.) */
static bool guard_is_noop(const ox_node *n) {
    ox_value *c = n->inputs[0], *zero = n->inputs[1], *p = n->inputs[2];
    const ox_node *isnan = c ? c->producer : NULL, *sm = p ? p->producer : NULL;
    if (!isnan || !oxp_op_is(isnan, "IsNaN") || isnan->inputs[0] != p || !sm || !oxp_op_is(sm, "Softmax")) return false;
    if (!oxp_is_const(zero) || ox_tensor_numel(zero->tensor) != 1 || oxp_elem(zero->tensor, 0) != 0) return false;
    int64_t axis = ox_node_attr_int(sm, "axis", -1);
    if (axis != -1 && !(p->rank > 0 && axis == p->rank - 1)) return false;
    const ox_node *add = sm->inputs[0] ? sm->inputs[0]->producer : NULL;
    if (!add || !oxp_op_is(add, "Add") || add->ninputs != 2) return false;
    const ox_value *mask = oxp_is_const(add->inputs[1]) ? add->inputs[1] :
        oxp_is_const(add->inputs[0])                    ? add->inputs[0] :
                                                          NULL;
    if (!mask || !ox_dtype_is_float(mask->tensor->dtype)) return false;
    const ox_tensor *t = mask->tensor;
    int64_t numel = ox_tensor_numel(t), row = t->rank > 0 ? t->dims[t->rank - 1] : 1;
    if (numel <= 0 || row <= 0 || numel > (1 << 22)) return false;
    for (int64_t r = 0; r < numel; r += row) {
        bool some = false;
        for (int64_t j = 0; j < row && !some; j++) some = oxp_elem(t, r + j) > -INFINITY;
        if (!some) return false;
    }
    return true;
}

ox_code ox_pass_simplify(ox_graph *g, ox_pass_stats *st) {
    ox_graph_count_uses(g);
    for (uint32_t i = 0; i < g->nnodes && !ox_graph_failed(g); i++) {
        ox_node *n = g->nodes[i];
        if (n->dead || n->domain || n->ninputs < 1 || n->noutputs < 1) continue;
        oxp_resolve_inputs(n);
        ox_value *x = n->inputs[0], *y = n->ninputs > 1 ? n->inputs[1] : NULL;
        const char *op = n->op_type;
        if (!strcmp(op, "Identity")) forward(n, x, st);
        else if (!strcmp(op, "Cast")) {
            if (x && x->dtype != OX_UNDEFINED && ox_node_attr_int(n, "to", -1) == x->dtype) forward(n, x, st);
        } else if (!strcmp(op, "Reshape")) {
            if (reshape_is_noop(n)) forward(n, x, st);
        } else if (!strcmp(op, "Expand")) {
            if (expand_is_noop(n)) forward(n, x, st);
        } else if (!strcmp(op, "Concat")) {
            if (n->ninputs == 1) forward(n, x, st);

        } else if (!strcmp(op, "Dropout")) {
            /* inference unless training_mode is given and not a constant false */
            ox_value *train = n->ninputs > 2 ? n->inputs[2] : NULL;
            if (!train || (oxp_is_const(train) && oxp_elem(train->tensor, 0) == 0)) forward(n, x, st);
        } else if (!strcmp(op, "Mul")) {
            if (is_neutral(y, x, 1)) forward(n, x, st);
            else if (is_neutral(x, y, 1)) forward(n, y, st);
        } else if (!strcmp(op, "Add")) {
            if (is_neutral(y, x, 0)) forward(n, x, st);
            else if (is_neutral(x, y, 0)) forward(n, y, st);
        } else if (!strcmp(op, "Sub")) {
            if (is_neutral(y, x, 0)) forward(n, x, st);
        } else if (!strcmp(op, "Div")) {
            if (is_neutral(y, x, 1)) forward(n, x, st);
        } else if (!strcmp(op, "And")) {
            if (is_neutral(y, x, 1)) forward(n, x, st);
            else if (is_neutral(x, y, 1)) forward(n, y, st);
        } else if (!strcmp(op, "Or")) {
            if (is_neutral(y, x, 0)) forward(n, x, st);
            else if (is_neutral(x, y, 0)) forward(n, y, st);
        } else if (!strcmp(op, "Transpose")) {
            simplify_transpose(g, n, st);
        } else if (!strcmp(op, "Where")) {
            if (n->ninputs == 3 && guard_is_noop(n)) forward(n, n->inputs[2], st);
            else simplify_where(n, st);
        } else if (!strcmp(op, "Shape")) {
            canonical_shape(g, n);
        }
    }
    oxp_resolve_all(g);
    ox_graph_compact(g);
    return ox_graph_status(g);
}
