/*
 * onnx/read.h — a bounds-checked reader of ONNX ModelProto and FunctionProto bytes (onnx.proto,
 * proto2), the mirror of the writer in onnx/write.h. It reads untrusted bytes: every varint, tag and
 * length is checked against the end of its message, sizes are checked for overflow, and it never
 * aborts, never reads out of bounds and never leaks (a fuzz target in fuzz/ replays the ONNX backend
 * node tests under ASan/UBSan in `make test`).
 *
 *     ox_read_options o = {.allow_external_data = true};      // base_dir: the model's folder
 *     ox_graph *g = NULL;
 *     ox_read_info *info = NULL;
 *     ox_error err = {0};
 *     if (ox_model_read_file("m/model.onnx", &o, &g, &info, &err) != OX_OK)
 *         fprintf(stderr, "%s (at %s)\n", err.msg, err.where);
 *     ...                                  // g's tensors borrow from mappings that info keeps
 *     ox_graph_free(g);                    // first the graph,
 *     ox_read_info_free(info);             // then the mappings its tensors point into
 *
 *     ox_model_read(buf, n, NULL, &g, &info, &err);            // bytes in memory: the caller
 *                                                              // keeps buf alive as long as g
 *
 * Ownership.
 *   *out (ox_graph)   new graph, the caller's (ox_graph_free). Its names, nodes, values, attributes
 *                     and OWNED tensor bytes are in its arena. BORROWED tensor bytes point INTO buf
 *                     (inline raw_data: zero copy) or into a read-only mmap of an external data file
 *                     or of the model file, which *info keeps: free the graph before the info.
 *   *info             new side struct, the caller's (ox_read_info_free, NULL is a no-op): what the
 *                     graph cannot hold (producer, opsets, local functions, ...) and the mappings.
 *                     Its strings live in its own arena; `functions` point into buf / the mapping.
 *   ox_function       ox_function_read's result, the caller's (ox_function_free); self-contained:
 *                     strings and tensor bytes are copied into its arena.
 *   On failure *out and *info are left NULL and nothing is leaked or mapped.
 *
 * Tensor bytes. raw_data is borrowed where it lies when it is aligned for its element type (passes
 * may read a float tensor through a float pointer); an unaligned one is copied into the arena
 * (OWNED) unless options.borrow_unaligned. Typed fields (float_data, int32_data, int64_data,
 * double_data, uint64_data) are decoded into OWNED bytes laid out as raw_data would be: float16,
 * bfloat16, bool, (u)int8 and (u)int16 from the low bytes of int32_data; complex from pairs.
 * The host is assumed little-endian, as the IR's tensors are.
 *
 * Accepted wire forms: packed and unpacked repeated scalars (both, even mixed in one field); fields
 * in any order; unknown fields of every wire type but groups are skipped. A singular scalar given
 * twice keeps the last value (protobuf's rule); a singular message given twice (two graphs) is
 * refused rather than merged.
 *
 * Rejected, with a message naming the tensor, node or attribute (err->where):
 *   OX_EFORMAT       malformed bytes (truncated, overlong varint, length past the end, group wire
 *                    types, wrong wire type for a known field), a value produced twice or used but
 *                    never defined, a tensor whose data does not match its shape, a bad external
 *                    data offset/length, more than OX_READ_MAX_DEPTH nested messages
 *   OX_EUNSUPPORTED  what the IR cannot hold: attributes of type GRAPH, TENSORS, GRAPHS,
 *                    SPARSE_TENSOR(S), TYPE_PROTO(S) (subgraphs: If, Loop, Scan); ref_attr_name in a
 *                    graph; sparse initializers; string tensors and dtypes newer than bfloat16
 *                    (float8, int4, ...); non-tensor value types (sequence, map, optional); names or
 *                    strings holding a NUL byte (the IR's strings are C strings); tensor segments
 *   OX_EINVAL        external data when options.allow_external_data is false or no base folder is
 *                    known; a `location` that is empty, absolute, has a ".." component or a
 *                    backslash, resolves (through symlinks) outside the base folder, or is not a
 *                    regular file — and nothing outside the folder is opened (see below)
 *   OX_EIO           a file that cannot be opened, stat'd or mapped
 *   OX_ENOMEM        out of memory
 *
 * External data. The base folder is realpath'd once. A location is first checked as a string (no
 * absolute path, no "..", no NUL, no backslash), then realpath'd and required to lie inside the
 * folder, then opened one component at a time from the folder's descriptor with O_NOFOLLOW: the
 * resolved path has no symlinks left, so a symlink met then means the tree changed under us and is
 * refused (no time-of-check/time-of-use window lets a read escape the folder). The file must be
 * regular and [offset, offset + length) inside it; length must equal the tensor's byte size. Each
 * file is mmap'd read-only once (MAP_PRIVATE) and its tensors borrow from the mapping. A data file
 * truncated by someone else while mapped raises SIGBUS on access: the reader cannot prevent that.
 *
 * What the graph keeps and what round trips through ox_model_write_buffer: see ox_read_info.dropped
 * for what was read but not kept (doc strings, value_info of non-node values, ...).
 *
 * Others may call ox_model_read, ox_model_read_file, ox_read_info_free, ox_function_read and
 * ox_function_free. The implementation is read.c (models), read_function.c (FunctionProto) and
 * extdata.c (every file a model names); what those share is onnx/read_internal.h, not for others.
 */
#ifndef OX_ONNX_READ_H
#define OX_ONNX_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/error.h"
#include "ir/ir.h"

/* Message nesting never goes deeper than the schema (ModelProto > GraphProto > NodeProto >
 * AttributeProto > TensorProto > StringStringEntryProto ...: at most 8); the limit guards the one
 * recursive reader, TypeProto, and any future one. */
#define OX_READ_MAX_DEPTH 32

typedef struct ox_read_options {
    bool allow_external_data; /* false: a tensor with external data is refused (OX_EINVAL) */
    const char *base_dir; /* folder external `location`s are relative to; NULL: none for
                                   ox_model_read, the model file's folder for ox_model_read_file */
    bool borrow_unaligned; /* true: borrow raw_data even when misaligned for its dtype (zero
                                   copy always; readers of the bytes must then memcpy) */
    bool metadata_only; /* true: tensors get dtype and shape but no bytes (OX_DATA_ABSENT):
                                   raw_data is neither borrowed nor copied, typed fields are counted
                                   but not decoded, external data files are checked (location rules,
                                   offset and length against the file size: open + fstat) but never
                                   mapped or read. For tools that describe a model (oxport-inspect):
                                   the tensor bytes of a multi-GB model are never paged in. */
    bool allow_undefined_values; /* true: a value read by a node but defined nowhere (a model saved
                                   with include_initializers=False and keep_initializers_as_inputs=
                                   False, its weights to be attached later) is kept as a named value
                                   of kind NODE with no producer and no type, and counted in
                                   info->nundefined_values, instead of being OX_EFORMAT */
} ox_read_options;

typedef struct ox_read_opset {
    const char *domain; /* as written ("" or "ai.onnx" for the default domain) */
    int64_t version;
} ox_read_opset;

typedef struct ox_read_external {
    const char *location; /* as the first tensor stored in it spells it */
    uint64_t file_bytes; /* the file's size when it was opened */
    uint64_t referenced_bytes; /* sum of the lengths of the tensors stored in it */
    uint32_t ntensors;
} ox_read_external;

typedef struct ox_read_span {
    const void *p; /* into the bytes read (buf or the model mapping) */
    size_t n;
} ox_read_span;

typedef struct ox_read_info {
    const char *producer_name, *producer_version; /* NULL when absent */
    const char *domain; /* ModelProto.domain, NULL when absent */
    int64_t model_version;
    bool has_model_version;
    ox_read_opset *opsets; /* every opset_import, in file order */
    uint32_t nopsets;
    ox_read_span *functions; /* ModelProto.functions (local functions): raw FunctionProto bytes
                                   for ox_function_read; the graph does not hold them */
    uint32_t nfunctions;

    /* Graph inputs that are initializers: not in g->inputs (the IR keeps them as initializers).
     * keep_initializers_as_inputs is true when they are exactly every initializer, listed after the
     * real inputs in initializer order — what ox_save_options.keep_initializers_as_inputs writes. */
    uint32_t ninitializer_inputs;
    bool keep_initializers_as_inputs;

    uint32_t ntyped_tensors; /* tensors decoded from typed fields (written back as raw_data) */
    uint32_t ncopied_tensors; /* unaligned raw_data copied into the arena */
    uint32_t nexternal_tensors; /* tensors borrowed from external data files */
    ox_read_external *externals; /* each external data file once (by device and inode), in the
                                   order first referenced */
    uint32_t nexternals;
    uint32_t nvalue_info_dropped; /* value_info entries the IR cannot hold (not a node output) */
    uint32_t nundefined_values; /* with options.allow_undefined_values: values read, never defined */

    /* Distinct names of fields that were read but not kept ("doc_string", "training_info", ...),
     * static strings. */
    const char *dropped[24];
    uint32_t ndropped;

    struct ox_read_priv *priv; /* arena and mappings */
} ox_read_info;

/* Parses the ModelProto in buf[0, n) into a new graph. o may be NULL (no external data, copy
 * unaligned). info may be NULL only when nothing must outlive the call besides buf: a model with
 * external data then fails with OX_EINVAL. */
ox_code ox_model_read(const void *buf, size_t n, const ox_read_options *o, ox_graph **out, ox_read_info **info,
                      ox_error *err);

/* mmaps `path` read-only and parses it; the mapping lives in *info (required), so tensors borrow
 * from it and a multi-GB model is never copied. base_dir defaults to the folder of path. */
ox_code ox_model_read_file(const char *path, const ox_read_options *o, ox_graph **out, ox_read_info **info,
                           ox_error *err);

/* Unmaps every mapping and frees the info. Call after ox_graph_free of the graph read with it. */
void ox_read_info_free(ox_read_info *info);

/* ---- FunctionProto, for inlining ----
 *
 * A function body is kept by name, as written: its nodes read and write value names (strings),
 * not ox_values, since the body is instantiated once per call site. */

typedef struct ox_function_node {
    const char *op_type;
    const char *domain; /* NULL when absent */
    const char *name; /* NULL when absent */
    const char **inputs; /* "" = omitted optional input */
    int ninputs;
    const char **outputs; /* "" = omitted optional output */
    int noutputs;
    ox_attr *attrs; /* nattrs entries; a reference attribute has its declared type and
                                    a zero value */
    const char **attr_refs; /* parallel to attrs: AttributeProto.ref_attr_name (field 21), the
                                    caller's attribute this one takes its value from; NULL when the
                                    value is given here */
    int nattrs;
} ox_function_node;

typedef struct ox_function {
    const char *name, *domain, *overload; /* domain, overload: NULL when absent */
    const char **inputs, **outputs; /* formal parameter names */
    int ninputs, noutputs;
    const char **attributes; /* FunctionProto.attribute: attribute names without default */
    int nattributes;
    ox_attr *attribute_defaults; /* FunctionProto.attribute_proto: attributes with a default */
    int nattribute_defaults;
    ox_read_opset *opsets;
    uint32_t nopsets;
    ox_function_node *nodes; /* in order */
    int nnodes;
    ox_arena *arena; /* owns everything above */
} ox_function;

/* Parses a FunctionProto. *out is new and the caller's (ox_function_free); nothing in it points
 * into buf. Attribute types are those of ox_attr; others are OX_EUNSUPPORTED. */
ox_code ox_function_read(const void *buf, size_t n, ox_function **out, ox_error *err);
void ox_function_free(ox_function *f); /* NULL is a no-op */

#endif
