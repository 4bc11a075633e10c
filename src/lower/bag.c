/*
 * bag.c — embedding_bag: the rows of a table that each bag of indices names, summed,
 * averaged or maxed per bag.
 *
 * Bags are runs of the 1-D indices that start at the offsets. Each index's bag is the number of
 * offsets at or before its position, less one (a [B, N] comparison, which copes with empty bags);
 * the gathered rows are then reduced into [B, D] by ScatterElements with reduction add or max.
 */
#include <math.h>
#include <stdint.h>

#include "lower/lower.h"

static ox_value *unsqueeze(ox_lower *L, ox_value *x, int64_t axis, ox_dtype t) {
    return ox_binary(L, "Unsqueeze", x, ox_const_i64_1d(L, axis), t);
}

/* A tensor of `shape` (an int64 value) filled with v. */
static ox_value *full(ox_lower *L, ox_value *shape, ox_dtype t, double v) {
    return ox_binary(L, "Expand", ox_const_scalar(L, t, v), shape, t);
}

/* ScatterElements(data, index, upd, axis 0, reduction) */
static ox_value *scatter_rows(ox_lower *L, ox_value *data, ox_value *index, ox_value *upd, const char *reduction,
                              ox_dtype t) {
    ox_node *n = ox_op(L, "ScatterElements", 3, data, index, upd);
    if (n) {
        ox_node_set_int(L->g, n, "axis", 0);
        ox_node_set_string(L->g, n, "reduction", reduction);
    }
    return ox_typed(ox_out(n), t);
}

/* embedding_bag / .padding_idx / _embedding_bag / _embedding_bag_forward_only (weight, indices,
 * offsets, scale_grad_by_freq, mode, sparse, per_sample_weights?, include_last_offset,
 * padding_idx?) -> (output, offset2bag, bag_size, max_indices); only output 0 is lowered. */
static int embedding_bag(ox_lower *L, bool wrap_padding);

int lower_embedding_bag(ox_lower *L) { return embedding_bag(L, false); }

/* embedding_bag.padding_idx takes the user's padding_idx, where -1 is the last row; the other
 * overloads get it normalized, with -1 meaning none. */
int lower_embedding_bag_padding_idx(ox_lower *L) { return embedding_bag(L, true); }

static int embedding_bag(ox_lower *L, bool wrap_padding) {
    ox_value *w = ox_arg_value(L, 0), *indices = ox_arg_value(L, 1), *offsets = ox_arg_value_opt(L, 2);
    int64_t mode = ox_arg_int(L, 4, 0);
    ox_value *psw = ox_nargs(L) > 6 ? ox_arg_value_opt(L, 6) : NULL;
    bool last = ox_arg_bool(L, 7, false);
    int64_t pad = ox_nargs(L) > 8 && !ox_arg_is_none(L, 8) ? ox_arg_int(L, 8, -1) : -1;
    if (!w || !indices) return ox_bind(L, 0, NULL);
    if (w->rank != 2) return ox_lower_fail(L, "weight of rank %d, expected [num_embeddings, dim]", w->rank);
    if (mode < 0 || mode > 2) return ox_lower_fail(L, "mode %lld (0 sum, 1 mean, 2 max)", (long long)mode);
    if (psw && mode != 0)
        return ox_lower_fail(L, "per_sample_weights with mode %s (only sum takes them)", mode == 1 ? "mean" : "max");
    if (wrap_padding && pad < 0 && !ox_arg_is_none(L, 8)) {
        if (!w->dims || w->dims[0].param)
            return ox_lower_unsupported(L, "a negative padding_idx with a symbolic table size");
        pad += w->dims[0].value;
    }
    ox_dtype t = ox_out_dtype(L, 0) ? ox_out_dtype(L, 0) : w->dtype;
    ox_dtype ct = t == OX_FLOAT16 || t == OX_BFLOAT16 ? OX_FLOAT : t; /* ScatterElements' reductions */
    ox_value *idx = ox_cast(L, indices, OX_INT64);
    if (indices->rank == 2) { /* [B, L]: B bags of L, offsets ignored as in torch */
        int64_t n = indices->dims && !indices->dims[1].param ? indices->dims[1].value : -1;
        if (n < 0) return ox_lower_unsupported(L, "2-D indices with a symbolic bag length");
        int64_t flat = -1, zero = 0, one = 1;
        ox_value *shape = ox_unary(L, "Shape", idx, OX_INT64);
        ox_node *g0 = ox_op(L, "Gather", 2, shape, ox_const_scalar(L, OX_INT64, 0));
        ox_value *total =
            ox_binary(L, "Mul", ox_typed(ox_out(g0), OX_INT64), ox_const_scalar(L, OX_INT64, (double)n), OX_INT64);
        offsets = ox_op_typed(L, "Range", OX_INT64, 3, ox_const_scalar(L, OX_INT64, (double)zero), total,
                              ox_const_scalar(L, OX_INT64, (double)(n ? n : one)));
        idx = ox_typed(ox_reshape(L, idx, 1, &flat), OX_INT64);
        last = false;
        if (psw) psw = ox_typed(ox_reshape(L, psw, 1, &flat), psw->dtype);
    } else if (indices->rank != 1) {
        return ox_lower_fail(L, "indices of rank %d, expected 1 or 2", indices->rank);
    } else if (!offsets) {
        return ox_lower_fail(L, "1-D indices need offsets");
    }
    ox_value *off = ox_cast(L, offsets, OX_INT64), *end = NULL;
    if (last) { /* the last offset ends the last bag: indices from it on are not summed, but
                 * torch's kernel counts them in the last bag's size and, in max mode, takes
                 * them in that bag's max */
        int64_t s = 0, e = -1, a = 0;
        ox_node *g = ox_op(L, "Gather", 2, off, ox_const_scalar(L, OX_INT64, -1));
        end = ox_typed(ox_out(g), OX_INT64);
        off = ox_op_typed(L, "Slice", OX_INT64, 4, off, ox_const_i64_1d(L, s), ox_const_i64_1d(L, e),
                          ox_const_i64_1d(L, a));
    }
    /* bag[j] = count(off <= j) - 1 */
    ox_value *nidx = ox_unary(L, "Shape", idx, OX_INT64);
    ox_node *sq = ox_op(L, "Squeeze", 1, nidx);
    ox_value *pos = ox_op_typed(L, "Range", OX_INT64, 3, ox_const_scalar(L, OX_INT64, 0),
                                ox_typed(ox_out(sq), OX_INT64), ox_const_scalar(L, OX_INT64, 1));
    ox_value *starts =
        ox_binary(L, "LessOrEqual", unsqueeze(L, off, 1, OX_INT64), unsqueeze(L, pos, 0, OX_INT64), OX_BOOL);
    int64_t axis0 = 0;
    ox_node *cnt = ox_op(L, "ReduceSum", 2, ox_cast(L, starts, OX_INT64), ox_const_i64_1d(L, axis0));
    if (cnt) ox_node_set_int(L->g, cnt, "keepdims", 0);
    ox_value *bag = ox_binary(L, "Sub", ox_typed(ox_out(cnt), OX_INT64), ox_const_scalar(L, OX_INT64, 1), OX_INT64);
    /* the rows, weighted, with padding_idx entries taken out */
    ox_node *gr = ox_op(L, "Gather", 2, ox_cast(L, w, ct), idx);
    ox_value *rows = ox_typed(ox_out(gr), ct);
    if (psw) rows = ox_binary(L, "Mul", rows, unsqueeze(L, ox_cast(L, psw, ct), 1, ct), ct);
    ox_value *keep = NULL;
    if (pad >= 0) {
        keep = ox_binary(L, "Equal", idx, ox_const_scalar(L, OX_INT64, (double)pad), OX_BOOL);
        keep = ox_unary(L, "Not", keep, OX_BOOL);
    }
    ox_value *counted = keep; /* torch's bag sizes run the last bag to the end of the indices */
    if (end && mode != 2) {
        ox_value *in = ox_binary(L, "Less", pos, end, OX_BOOL);
        keep = keep ? ox_binary(L, "And", keep, in, OX_BOOL) : in;
    }
    if (keep) {
        rows = ox_op_typed(L, "Where", ct, 3, unsqueeze(L, keep, 1, OX_BOOL), rows,
                           ox_const_scalar(L, ct, mode == 2 ? -INFINITY : 0));
    }
    /* [B, D] results */
    ox_value *nbag = ox_unary(L, "Shape", off, OX_INT64);
    ox_value *dim = ox_op_typed(L, "Slice", OX_INT64, 3, ox_unary(L, "Shape", w, OX_INT64), ox_const_i64_1d(L, 1),
                                ox_const_i64_1d(L, 2));
    ox_node *cat = ox_op(L, "Concat", 2, nbag, dim);
    if (cat) ox_node_set_int(L->g, cat, "axis", 0);
    ox_value *out_shape = ox_typed(ox_out(cat), OX_INT64);
    ox_value *where =
        ox_binary(L, "Expand", unsqueeze(L, bag, 1, OX_INT64), ox_unary(L, "Shape", rows, OX_INT64), OX_INT64);
    ox_value *r =
        scatter_rows(L, full(L, out_shape, ct, mode == 2 ? -INFINITY : 0), where, rows, mode == 2 ? "max" : "add", ct);
    if (mode != 0) { /* bag sizes, padding excluded; an empty bag gives zeros */
        ox_value *one = counted ? ox_cast(L, counted, ct) : full(L, nidx, ct, 1);
        ox_value *size = scatter_rows(L, full(L, nbag, ct, 0), bag, one, "add", ct);
        size = unsqueeze(L, size, 1, ct);
        if (mode == 1) {
            r = ox_binary(L, "Div", r, ox_binary(L, "Max", size, ox_const_scalar(L, ct, 1), ct), ct);
        } else {
            ox_value *empty = ox_binary(L, "Equal", size, ox_const_scalar(L, ct, 0), OX_BOOL);
            r = ox_op_typed(L, "Where", ct, 3, empty, ox_const_scalar(L, ct, 0), r);
        }
    }
    return ox_bind(L, 0, ox_cast(L, r, t));
}
