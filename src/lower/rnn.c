/*
 * rnn.c — lstm.input and gru.input as ONNX LSTM and GRU, one node per layer.
 *
 * Each layer's weights for both directions are stacked into ONNX's [directions, gates * hidden,
 * ...] with the gate blocks reordered: torch keeps LSTM gates as (i, f, g, o) and GRU gates as
 * (r, z, n), ONNX as (i, o, f, c) and (z, r, h). When the weights have bytes the reordered tensor
 * is built here (a copy the size of the weights); fake weights get Slice and Concat nodes instead.
 * GRU uses linear_before_reset=1, which is torch's formula. Layers chain through Y laid out as
 * [seq, batch, directions * hidden]; batch_first inputs are transposed in and out, unbatched
 * inputs get a batch dim of 1. Training-mode dropout between layers and LSTM projections
 * (proj_size) are not lowered.
 */
#include "lower/lower.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_LAYERS = 64 };

/* Tensor item i of list argument a, or NULL. */
static ox_value *list_item(ox_lower *L, const ox_arg *a, int i) {
    if (!a || a->kind != OX_ARG_LIST || i >= a->u.list.n) return NULL;
    const ox_arg *e = &a->u.list.items[i];
    if (e->kind != OX_ARG_VALUE || e->u.ref >= L->prog->nvalues) return NULL;
    return L->prog->table[e->u.ref];
}

/* src[d] (each [gates * h, cols], or [gates * h] when cols is 0) stacked on a new leading axis
 * with the gate blocks in `order`. */
static ox_value *stack_gates(ox_lower *L, ox_value *const *src, int dirs, int gates, const int *order, int64_t h,
                             int64_t cols, ox_dtype t) {
    size_t es = ox_dtype_size(t), block = (size_t)h * (size_t)(cols ? cols : 1) * es;
    bool bytes = es > 0;
    for (int d = 0; d < dirs; d++) {
        const ox_value *v = src[d];
        bytes = bytes && v && v->kind == OX_VALUE_INITIALIZER && v->tensor && v->tensor->dtype == t &&
            !ox_tensor_is_view(v->tensor) && ox_tensor_has_data(v->tensor) &&
            v->tensor->nbytes == block * (size_t)gates;
    }
    int64_t dims[3] = {dirs, gates * h, cols};
    if (bytes) {
        unsigned char *buf = malloc(block * (size_t)gates * (size_t)dirs + 1);
        if (!buf) {
            ox_lower_fail(L, "no memory for %d RNN weights", dirs);
            return NULL;
        }
        for (int d = 0; d < dirs; d++)
            for (int g = 0; g < gates; g++)
                memcpy(buf + ((size_t)d * (size_t)gates + (size_t)g) * block,
                       (const unsigned char *)src[d]->tensor->data + (size_t)order[g] * block, block);
        ox_value *c = ox_const_tensor(L, t, cols ? 3 : 2, dims, buf);
        free(buf);
        if (c) c->tensor->weight = true; /* the weights, reordered */
        return c;
    }
    ox_value *per_dir[2];
    for (int d = 0; d < dirs; d++) {
        ox_value *parts[4];
        for (int g = 0; g < gates; g++)
            parts[g] = ox_op_typed(L, "Slice", t, 4, ox_cast(L, src[d], t), ox_const_i64_1d(L, order[g] * h),
                                   ox_const_i64_1d(L, (order[g] + 1) * h), ox_const_i64_1d(L, 0));
        ox_node *cat = ox_op_array(L, "Concat", 1, gates, parts);
        if (cat) ox_node_set_int(L->g, cat, "axis", 0);
        per_dir[d] = ox_binary(L, "Unsqueeze", ox_typed(ox_out(cat), t), ox_const_i64_1d(L, 0), t);
    }
    if (dirs == 1) return per_dir[0];
    ox_node *cat = ox_op_array(L, "Concat", 1, dirs, per_dir);
    if (cat) ox_node_set_int(L->g, cat, "axis", 0);
    return ox_typed(ox_out(cat), t);
}

static int rnn(ox_lower *L, bool lstm) {
    ox_value *x = ox_arg_value(L, 0);
    const ox_arg *hx = ox_arg_at(L, 1), *params = ox_arg_at(L, 2);
    bool biases = ox_arg_bool(L, 3, true), train = ox_arg_bool(L, 6, false);
    bool bidir = ox_arg_bool(L, 7, false), batch_first = ox_arg_bool(L, 8, false);
    int64_t layers = ox_arg_int(L, 4, 1);
    double dropout = ox_arg_float(L, 5, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (layers < 1 || layers > MAX_LAYERS) return ox_lower_fail(L, "num_layers %lld", (long long)layers);
    if (train && dropout > 0 && layers > 1) return ox_lower_unsupported(L, "dropout between layers in training mode");
    if (x->rank != 2 && x->rank != 3) return ox_lower_fail(L, "input of rank %d (2 or 3 expected)", x->rank);
    if (!params || params->kind != OX_ARG_LIST) return ox_lower_fail(L, "argument 2 (params) must be a list");
    int dirs = bidir ? 2 : 1, per = biases ? 4 : 2, gates = lstm ? 4 : 3;
    if (params->u.list.n != per * dirs * (int)layers)
        return ox_lower_unsupported(L, "%d RNN parameters for %lld layers (projections are not lowered)",
                                    params->u.list.n, (long long)layers);
    ox_dtype t = x->dtype;
    static const int lstm_order[4] = {0, 3, 1, 2}, gru_order[3] = {1, 0, 2};
    const int *order = lstm ? lstm_order : gru_order;

    bool unbatched = x->rank == 2;
    ox_value *y = x;
    if (unbatched) y = ox_binary(L, "Unsqueeze", x, ox_const_i64_1d(L, 1), t);
    else if (batch_first) {
        ox_node *tr = ox_op(L, "Transpose", 1, x);
        if (tr) ox_node_set_ints(L->g, tr, "perm", (const int64_t[]){1, 0, 2}, 3);
        y = ox_typed(ox_out(tr), t);
    }
    /* initial states: [layers * dirs, batch, hidden] (unbatched: no batch dim) */
    ox_value *h0 = lstm ? list_item(L, hx, 0) : ox_arg_value_opt(L, 1);
    ox_value *c0 = lstm ? list_item(L, hx, 1) : NULL;
    if (lstm && (!h0 || !c0)) return ox_lower_fail(L, "argument 1 (hx) must hold h0 and c0");
    if (unbatched) {
        if (h0) h0 = ox_binary(L, "Unsqueeze", h0, ox_const_i64_1d(L, 1), t);
        if (c0) c0 = ox_binary(L, "Unsqueeze", c0, ox_const_i64_1d(L, 1), t);
    }
    ox_value *hn[MAX_LAYERS], *cn[MAX_LAYERS];
    for (int l = 0; l < layers; l++) {
        ox_value *wi[2], *wh[2], *bi[2] = {0}, *bh[2] = {0};
        for (int d = 0; d < dirs; d++) {
            int base = (l * dirs + d) * per;
            wi[d] = list_item(L, params, base);
            wh[d] = list_item(L, params, base + 1);
            if (biases) bi[d] = list_item(L, params, base + 2), bh[d] = list_item(L, params, base + 3);
            if (!wi[d] || !wh[d] || (biases && (!bi[d] || !bh[d])) || wi[d]->rank != 2 || wh[d]->rank != 2 ||
                !wi[d]->dims || !wh[d]->dims)
                return ox_lower_fail(L, "layer %d: malformed weights", l);
        }
        int64_t hidden = wh[0]->dims[1].value, in = wi[0]->dims[1].value;
        if (wh[0]->dims[1].param || wi[0]->dims[1].param || hidden < 1 || wh[0]->dims[0].value != gates * hidden)
            return ox_lower_fail(L, "layer %d: weights of unexpected shape", l);
        ox_value *W = stack_gates(L, wi, dirs, gates, order, hidden, in, t);
        ox_value *R = stack_gates(L, wh, dirs, gates, order, hidden, hidden, t);
        ox_value *B = NULL;
        if (biases) {
            ox_value *Bi = stack_gates(L, bi, dirs, gates, order, hidden, 0, t);
            ox_value *Bh = stack_gates(L, bh, dirs, gates, order, hidden, 0, t);
            ox_node *cat = ox_op(L, "Concat", 2, Bi, Bh);
            if (cat) ox_node_set_int(L->g, cat, "axis", 1);
            B = ox_typed(ox_out(cat), t);
        }
        ox_value *ih = h0 ? ox_op_typed(L, "Slice", t, 4, h0, ox_const_i64_1d(L, l * dirs),
                                        ox_const_i64_1d(L, (l + 1) * dirs), ox_const_i64_1d(L, 0)) :
                            NULL;
        ox_value *ic = c0 ? ox_op_typed(L, "Slice", t, 4, c0, ox_const_i64_1d(L, l * dirs),
                                        ox_const_i64_1d(L, (l + 1) * dirs), ox_const_i64_1d(L, 0)) :
                            NULL;
        ox_node *n =
            lstm ? ox_opn(L, "LSTM", 3, 7, y, W, R, B, NULL, ih, ic) : ox_opn(L, "GRU", 2, 6, y, W, R, B, NULL, ih);
        if (!n) return ox_bind(L, 0, NULL);
        ox_node_set_int(L->g, n, "hidden_size", hidden);
        if (bidir) ox_node_set_string(L->g, n, "direction", "bidirectional");
        if (!lstm) ox_node_set_int(L->g, n, "linear_before_reset", 1);
        /* Y [seq, dirs, batch, hidden] -> [seq, batch, dirs * hidden] */
        ox_node *tr = ox_op(L, "Transpose", 1, ox_typed(n->outputs[0], t));
        if (tr) ox_node_set_ints(L->g, tr, "perm", (const int64_t[]){0, 2, 1, 3}, 4);
        y = ox_typed(ox_reshape(L, ox_typed(ox_out(tr), t), 3, (const int64_t[]){0, 0, -1}), t);
        hn[l] = ox_typed(n->outputs[1], t);
        cn[l] = lstm ? ox_typed(n->outputs[2], t) : NULL;
    }
    if (unbatched) y = ox_binary(L, "Squeeze", y, ox_const_i64_1d(L, 1), t);
    else if (batch_first) {
        ox_node *tr = ox_op(L, "Transpose", 1, y);
        if (tr) ox_node_set_ints(L->g, tr, "perm", (const int64_t[]){1, 0, 2}, 3);
        y = ox_typed(ox_out(tr), t);
    }
    int rc = ox_bind(L, 0, y);
    for (int o = 1; rc == OX_OK && o < L->node->noutputs && o <= (lstm ? 2 : 1); o++) {
        ox_value **states = o == 1 ? hn : cn;
        ox_value *s = states[0];
        if (layers > 1) {
            ox_node *cat = ox_op_array(L, "Concat", 1, (int)layers, states);
            if (cat) ox_node_set_int(L->g, cat, "axis", 0);
            s = ox_typed(ox_out(cat), t);
        }
        if (unbatched) s = ox_binary(L, "Squeeze", s, ox_const_i64_1d(L, 1), t);
        rc = ox_bind(L, o, s);
    }
    return rc;
}

/* lstm.input(input, hx[h0, c0], params[], has_biases, num_layers, dropout, train, bidirectional,
 * batch_first) -> (output, h_n, c_n) */
int lower_lstm(ox_lower *L) { return rnn(L, true); }

/* gru.input(input, hx, params[], has_biases, num_layers, dropout, train, bidirectional,
 * batch_first) -> (output, h_n) */
int lower_gru(ox_lower *L) { return rnn(L, false); }
