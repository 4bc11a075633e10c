/*
 * onnx/write.h — writes an ox_graph as an ONNX ModelProto (onnx.proto, proto2), to memory or to a file
 * with an optional external data file.
 *
 *     ox_save_options o = {.include_initializers = true, .external_data = true,
 *                          .choose_data_location = true,       // atomic: see ox_model_save
 *                          .external_min_bytes = OX_EXTERNAL_MIN_BYTES_DEFAULT};
 *     ox_error err = {0};
 *     if (ox_model_save(g, &o, "out/model.onnx", &err) != OX_OK)   // also out/model.onnx[.<token>].data
 *         fprintf(stderr, "%s\n", err.msg);
 *
 *     ox_save_options m = {.include_initializers = true};
 *     size_t n = ox_model_size(g, &m), written;                  // 0: cannot be serialized
 *     void *buf = malloc(n);                                      // owned by the caller
 *     ox_model_write_buffer(g, &m, buf, n, &written, &err);
 *
 * Options may be NULL: initializers included, inline, producer "oxport".
 *
 * Others may call the three functions below; everything else in write.c is static. Field numbers
 * come from onnx/fields.def (through onnx/wire.h), the external data layout from onnx/extdata.h.
 *
 * Naming: every value written gets its name first through ox_value_name (anonymous values become
 * "_v<n>"); that allocates in the graph's arena, which is why the graph is not const. The order is
 * deterministic (nodes' inputs and outputs in node order, then initializers, inputs, outputs,
 * value_info), so two calls name the same way and ox_model_size always matches what is written.
 *
 * Bytes written (field names as in onnx/fields.def). Fields appear in increasing field-number order
 * and every optional field is written exactly when noted, i.e. as protobuf C++ serializes the
 * equivalent message, so onnx.load_from_string(b).SerializeToString() == b. Varints are unsigned
 * LEB128; an int64 < 0 is its two's complement (10 bytes). Nested messages are length-delimited with
 * the length computed first. Repeated scalars are NOT packed (proto2 without [packed=true]): one tag
 * per element.
 *
 *   ModelProto
 *     1  ir_version        varint     g->ir_version
 *     2  producer_name     string     options.producer_name, or "oxport" when NULL
 *     3  producer_version  string     options.producer_version, only when non-NULL and non-empty
 *     7  graph             GraphProto
 *     8  opset_import      repeated   {domain "" (written), version g->opset}, then one
 *                                     {domain d, version 1} per distinct non-empty node domain d in
 *                                     order of first use ("ai.onnx" is the default domain: no entry)
 *     14 metadata_props    repeated   StringStringEntryProto per g->metadata, in order
 *
 *   GraphProto
 *     1  node              repeated   NodeProto per live (!dead) node, in g->nodes order
 *     2  name              string     g->name, when non-NULL
 *     5  initializer       repeated   TensorProto per initializer, in g->initializers order (when
 *                                     include_initializers is false, only those that are not
 *                                     ox_tensor_is_weight)
 *     11 input             repeated   ValueInfoProto per g->inputs; then, when
 *                                     keep_initializers_as_inputs, one per initializer (whatever
 *                                     include_initializers says: torch.onnx's save semantics)
 *     12 output            repeated   ValueInfoProto per g->outputs
 *     13 value_info        repeated   ValueInfoProto per value with has_meta, kind NODE, !is_output,
 *                                     a live producer and a known dtype, in g->values order
 *
 *   NodeProto
 *     1  input             repeated   value names; an omitted optional input (NULL) is ""
 *     2  output            repeated   value names (a NULL output is "")
 *     3  name              string     when n->name is non-NULL
 *     4  op_type           string
 *     5  attribute         repeated   AttributeProto per n->attrs, in order
 *     7  domain            string     when n->domain is non-NULL and non-empty
 *
 *   AttributeProto
 *     1  name              string
 *     2  f                 fixed32    FLOAT
 *     3  i                 varint     INT
 *     4  s                 bytes      STRING
 *     5  t                 TensorProto TENSOR (no name; always inline, even with external_data)
 *     7  floats            fixed32    FLOATS, one tag per element
 *     8  ints              varint     INTS, one tag per element
 *     9  strings           bytes      STRINGS, one tag per element
 *     20 type              varint     the ox_attr_type code (= AttributeProto.AttributeType)
 *
 *   TensorProto
 *     1  dims              varint     one tag per dimension
 *     2  data_type         varint     the ox_dtype code (= TensorProto.DataType)
 *     8  name              string     initializers only
 *     9  raw_data          bytes      inline tensors, always (an empty tensor has empty raw_data)
 *     13 external_data     repeated   external tensors: {"location", data_location},
 *                                     {"offset", decimal}, {"length", decimal}, in that order
 *     14 data_location     varint     external tensors: 1 (EXTERNAL)
 *
 *   ValueInfoProto
 *     1  name              string
 *     2  type              TypeProto  only when the dtype is known
 *   TypeProto                1 tensor_type  TypeProto.Tensor
 *   TypeProto.Tensor         1 elem_type varint; 2 shape TensorShapeProto, only when rank >= 0
 *   TensorShapeProto         1 dim, repeated Dimension, one per axis
 *   TensorShapeProto.Dimension  2 dim_param string when the dim is named, else 1 dim_value varint
 *                            when >= 0, else empty (unknown)
 *   OperatorSetIdProto       1 domain string; 2 version varint
 *   StringStringEntryProto   1 key string; 2 value string
 *
 * External data (external_data = true): one file, <folder of path>/<data_location>, holding the bytes
 * of every initializer with nbytes >= external_min_bytes and nbytes > 0 (empty tensors stay inline:
 * there is nothing to point at), in initializer order. A tensor of 1 MiB or more starts at a multiple
 * of 64 KiB (so a reader can mmap it page-aligned); a smaller one at a multiple of 16 (so any dtype,
 * complex128 included, is aligned when mapped): ox_extdata_place, with the constants of
 * onnx/extdata.h, which the reader shares. Gaps are zeros; the file ends at the last tensor's last
 * byte. The data file is written even when no tensor goes to it (empty), so that a caller who asked
 * for external data always finds the file. data_location must be a bare file name (no '/', not "." or "..":
 * ox_extdata_bare_name); ox_model_save can choose it (choose_data_location).
 *
 * Weights are never copied to a temporary: in memory, raw_data is one memcpy into the caller's
 * buffer; in a file, tensor bytes of 256 KiB and more go straight from tensor->data to write(2),
 * smaller writes go through a 1 MiB buffer.
 *
 * Errors (in *err; g->err gets OX_ENOMEM when naming ran out of memory):
 *   OX_EINVAL  bad options; a graph that has already failed; an initializer (or tensor attribute)
 *              to be written whose bytes are absent (fake weights); external data in memory; buffer
 *              too small; a model whose size overflows size_t
 *   OX_ENOMEM  out of memory (the graph's error code is used when it had failed with OX_ENOMEM)
 *   OX_EIO     a file could not be created, written, synced or renamed (message: path, strerror)
 */
#ifndef OX_ONNX_WRITE_H
#define OX_ONNX_WRITE_H

#include <stdbool.h>
#include <stddef.h>

#include "ir/error.h"
#include "ir/ir.h"
#include "onnx/extdata.h" /* OX_EXTERNAL_MIN_BYTES_DEFAULT */

typedef struct ox_save_options {
    bool include_initializers; /* false: the weights and what was computed from them
                                * (ox_tensor_is_weight) are left out; other constants stay */
    bool keep_initializers_as_inputs; /* true: every initializer also appears in graph.input (with its
                                         ValueInfo), after the real inputs */
    bool external_data; /* true: tensor bytes go to one external data file */
    const char *data_location; /* bare file name written in TensorProto.external_data
                                         "location", e.g. "model.onnx.data"; required when
                                         external_data, unless choose_data_location */
    bool choose_data_location; /* ox_model_save with data_location NULL: the writer names the
                                  data file so that the save is atomic (see ox_model_save) */
    size_t external_min_bytes; /* tensors smaller than this stay inline even with
                                         external_data (0 = all external; the binding's default
                                         is OX_EXTERNAL_MIN_BYTES_DEFAULT) */
    const char *producer_name, *producer_version; /* NULL: "oxport", "" */
} ox_save_options;

/* Exact size in bytes of the serialized ModelProto (with external_data: of the model file). 0 when
 * the model cannot be serialized; ox_model_write_buffer / ox_model_save then say why. */
size_t ox_model_size(ox_graph *g, const ox_save_options *o);

/* Serialize into buf (cap bytes); returns OX_OK and sets *written. External data is not allowed here
 * (OX_EINVAL). When cap is too small, fails with OX_EINVAL and sets *written to the size needed. */
ox_code ox_model_write_buffer(ox_graph *g, const ox_save_options *o, void *buf, size_t cap, size_t *written,
                              ox_error *err);

/* Write the model to `path`; with external_data, also a data file beside it. Atomic, external data
 * included: at every instant the folder holds the old model with the old data it references, or
 * the new model with its new data, whatever fails and wherever the process is killed.
 *
 * The data file's name: data_location when given (kept exactly, as asked: then the save is atomic
 * only when the model in place does not use that name); with choose_data_location and
 * data_location NULL, "<base>.data" (torch.onnx's name) unless the model in place may reference
 * it (or it is not a regular file), else "<base>.<8 hex digits>.data", a name no file has. The
 * old model's locations are read from it first; a model that cannot be parsed is assumed to use
 * every file.
 *
 * Order: the path refused when it is a folder (OX_EIO, EISDIR) before any file is touched; the
 * folder opened and flock'd (one oxport save at a time per folder; best effort); data written to
 * ".<base>.oxport-tmp-<pid>-<n>", fsync'd, renamed to its name; the model the same way, renamed
 * over `path` last: the commit point; the folder fsync'd (best effort). Only then are removed: the
 * data files the old model referenced that are named after the model ("<base>." ...) and that the
 * new one does not use, and this model's leftovers: temporary files of earlier saves (any but
 * ours while the lock is held, else those whose writer pid is dead) and, with the lock,
 * "<base>.data" / "<base>.<8 hex>.data" files the new model does not reference. A data file not
 * named after the model (shared with another, say) is never removed.
 *
 * On any failure before the commit point, what this save created is removed and the old files are
 * untouched. A new file gets mode 0666 & ~umask; a replaced model keeps its mode, and its data file
 * gets the same. */
ox_code ox_model_save(ox_graph *g, const ox_save_options *o, const char *path, ox_error *err);

#endif
