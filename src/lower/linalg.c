/*
 * linalg.c — matrix products: linear, mm/bmm/matmul, addmm, baddbmm, addmv, addbmm; and einsum.
 * linear and addmm of 2-D float32/float64 become Gemm; everything else MatMul, the bias scaled and
 * added by one helper (scaled_sum) for the four add* overloads, so that torch's beta == 0 rule
 * holds for each of them.
 */
#include "lower/lower.h"

#include <string.h>

/* ---- matrix products ---- */

static bool gemm_dtype(ox_dtype t) { return t == OX_FLOAT || t == OX_DOUBLE; }

/* linear(input, weight, bias?): Gemm for 2-D float input, else MatMul with the weight transposed. */
int lower_linear(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0), *w = ox_arg_value(L, 1), *b = ox_arg_value_opt(L, 2);
    if (!x || !w) return ox_bind(L, 0, NULL);
    ox_dtype t = x->dtype;
    if (x->rank == 2 && w->rank == 2 && (!b || b->rank <= 2) && gemm_dtype(t)) {
        ox_node *n = ox_op(L, "Gemm", b ? 3 : 2, x, w, b);
        if (n) ox_node_set_int(L->g, n, "transB", 1);
        return ox_bind(L, 0, ox_typed(ox_out(n), t));
    }
    /* Transpose without perm reverses the dims: a 2-D weight is transposed, a 1-D one kept. */
    ox_value *wt = w->rank == 1 ? w : ox_unary(L, "Transpose", w, w->dtype);
    ox_value *y = ox_binary(L, "MatMul", x, wt, t);
    if (b) y = ox_binary(L, "Add", y, b, t);
    return ox_bind(L, 0, y);
}

/* beta * self + alpha * product in dtype t, the bias of addmm, baddbmm, addmv and addbmm, with
 * torch's rules: beta == 0 ignores self entirely (NaN and inf in it do not reach the result, and it
 * is not read), and a factor of 1 is no Mul. self is cast to t when its dtype differs. */
static ox_value *scaled_sum(ox_lower *L, ox_value *self, ox_value *product, double beta, double alpha, ox_dtype t) {
    ox_value *y = product;
    if (alpha != 1.0) y = ox_binary(L, "Mul", y, ox_const_scalar(L, t, alpha), t);
    if (beta == 0.0) return y;
    if (t != OX_UNDEFINED) self = ox_cast(L, self, t);
    if (beta != 1.0) self = ox_binary(L, "Mul", self, ox_const_scalar(L, t, beta), t);
    return ox_binary(L, "Add", y, self, t);
}

/* addmm(self, mat1, mat2, *, beta, alpha) */
int lower_addmm(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *self = ox_arg_value(L, 0), *a = ox_arg_value(L, 1), *b = ox_arg_value(L, 2);
    double beta = ox_arg_float(L, 3, 1.0), alpha = ox_arg_float(L, 4, 1.0);
    if (!self || !a || !b) return ox_bind(L, 0, NULL);
    if (gemm_dtype(t) && a->rank == 2 && b->rank == 2 && self->rank <= 2) {
        ox_node *n = beta == 0.0 ? ox_op(L, "Gemm", 2, a, b) : ox_op(L, "Gemm", 3, a, b, self);
        if (n && alpha != 1.0) ox_node_set_float(L->g, n, "alpha", (float)alpha);
        if (n && beta != 1.0 && beta != 0.0) ox_node_set_float(L->g, n, "beta", (float)beta);
        return ox_bind(L, 0, ox_typed(ox_out(n), t));
    }
    return ox_bind(L, 0, scaled_sum(L, self, ox_binary(L, "MatMul", a, b, t), beta, alpha, t));
}

/* baddbmm(self, batch1, batch2, *, beta, alpha) */
int lower_baddbmm(ox_lower *L) {
    ox_value *self = ox_arg_value(L, 0), *a = ox_arg_value(L, 1), *b = ox_arg_value(L, 2);
    double beta = ox_arg_float(L, 3, 1.0), alpha = ox_arg_float(L, 4, 1.0);
    ox_dtype t = ox_out_dtype(L, 0);
    return ox_bind(L, 0, scaled_sum(L, self, ox_binary(L, "MatMul", a, b, t), beta, alpha, t));
}

/* mm, bmm, matmul (self, other) */
int lower_matmul(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *a = ox_cast(L, ox_arg_value(L, 0), t), *b = ox_cast(L, ox_arg_value(L, 1), t);
    return ox_bind(L, 0, ox_binary(L, "MatMul", a, b, t));
}

/* addmv(self, mat, vec, *, beta=1, alpha=1) = beta * self + alpha * (mat @ vec) */
int lower_addmv(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *s = ox_arg_value(L, 0), *m = ox_arg_value(L, 1), *v = ox_arg_value(L, 2);
    if (!s || !m || !v) return ox_bind(L, 0, NULL);
    if (t == OX_UNDEFINED) t = s->dtype;
    ox_value *mv = ox_binary(L, "MatMul", ox_cast(L, m, t), ox_cast(L, v, t), t);
    double beta = ox_arg_float(L, 3, 1), alpha = ox_arg_float(L, 4, 1);
    return ox_bind(L, 0, scaled_sum(L, s, mv, beta, alpha, t));
}

/* addbmm(self, batch1, batch2, *, beta=1, alpha=1) = beta * self + alpha * sum over b of
 * batch1[b] @ batch2[b] */
int lower_addbmm(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *s = ox_arg_value(L, 0), *b1 = ox_arg_value(L, 1), *b2 = ox_arg_value(L, 2);
    if (!s || !b1 || !b2) return ox_bind(L, 0, NULL);
    if (t == OX_UNDEFINED) t = s->dtype;
    ox_value *mm = ox_binary(L, "MatMul", ox_cast(L, b1, t), ox_cast(L, b2, t), t);
    ox_node *sum = ox_op(L, "ReduceSum", 2, mm, ox_const_i64_1d(L, 0));
    if (sum) ox_node_set_int(L->g, sum, "keepdims", 0);
    ox_value *r = ox_typed(ox_out(sum), t);
    double beta = ox_arg_float(L, 3, 1), alpha = ox_arg_float(L, 4, 1);
    return ox_bind(L, 0, scaled_sum(L, s, r, beta, alpha, t));
}

/* ---- einsum ---- */

enum { MAX_INPUTS = 64 };

/* einsum(equation, tensors[], *, path=None): the equation as torch takes it; spaces dropped. */
int lower_einsum(ox_lower *L) {
    const char *eq = ox_arg_string(L, 0, NULL);
    const ox_arg *list = ox_arg_at(L, 1);
    if (!eq) return ox_lower_fail(L, "argument 0 (equation) must be a string");
    if (!list || list->kind != OX_ARG_LIST || list->u.list.n < 1 || list->u.list.n > MAX_INPUTS)
        return ox_lower_fail(L, "argument 1 (operands) must be a list of 1 to %d tensors", MAX_INPUTS);
    size_t len = strlen(eq);
    char *clean = ox_arena_alloc(L->g->arena, len + 1);
    if (!clean) return ox_bind(L, 0, NULL);
    size_t w = 0;
    for (size_t i = 0; i < len; i++)
        if (eq[i] != ' ') clean[w++] = eq[i];
    clean[w] = 0;
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *in[MAX_INPUTS];
    int n = list->u.list.n;
    for (int k = 0; k < n; k++) {
        const ox_arg *e = &list->u.list.items[k];
        if (e->kind != OX_ARG_VALUE || e->u.ref >= L->prog->nvalues || !L->prog->table[e->u.ref])
            return ox_lower_fail(L, "operand %d is not a tensor", k);
        in[k] = L->prog->table[e->u.ref];
        if (t != OX_UNDEFINED) in[k] = ox_cast(L, in[k], t);
    }
    if (t == OX_BOOL) return ox_lower_unsupported(L, "einsum over bool");
    ox_node *e = ox_op_array(L, "Einsum", 1, n, in);
    if (e) ox_node_set_string(L->g, e, "equation", clean);
    return ox_bind(L, 0, ox_typed(ox_out(e), t != OX_UNDEFINED ? t : in[0]->dtype));
}
