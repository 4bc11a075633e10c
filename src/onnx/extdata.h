/*
 * onnx/extdata.h — external data: where the writer puts tensor bytes outside the model file, and
 * the only code through which the reader opens files a model names. Kept small and alone (SQLite's
 * os_unix.c) because the reader runs it on untrusted `location` strings. For src/onnx (write.c,
 * read.c); other modules see only OX_EXTERNAL_MIN_BYTES_DEFAULT, through onnx/write.h.
 *
 * Writer, laying out the data file (one file, initializers in order):
 *
 *     uint64_t end = 0, off;
 *     for each tensor t going to the file:
 *         if (!ox_extdata_place(end, t->nbytes, &off)) -> too large
 *         t goes at [off, off + t->nbytes); end = off + t->nbytes;   // gaps are zeros
 *
 * Reader, for a TensorProto with data_location EXTERNAL:
 *
 *     ox_extdata_dir dir = OX_EXTDATA_DIR_INIT;    // one per model read
 *     int fd; struct stat st; void *addr;
 *     if (ox_extdata_open(&dir, base_dir, loc, tname, err, where, &fd, &st) == OX_OK) {
 *         size_t size = (size_t)st.st_size;
 *         int e = ox_extdata_map(fd, size, &addr);          // 0 or an errno
 *         close(fd);
 *         ox_extdata_check_range(size, off, has_len, len, nbytes, &len, tname, loc, err, where);
 *     }
 *     ox_extdata_dir_close(&dir);                  // when the model is read
 *     ... ox_extdata_unmap(addr, size);            // when the graph is freed
 *
 * The rules (DESIGN.md, "Weights are never copied"):
 *   - tensors below options.external_min_bytes (default OX_EXTERNAL_MIN_BYTES_DEFAULT) stay inline;
 *   - a tensor of OX_EXTERNAL_BIG_BYTES or more starts at a multiple of OX_EXTERNAL_ALIGN_BIG, so a
 *     reader can map it page-aligned; a smaller one at a multiple of OX_EXTERNAL_ALIGN_SMALL, so any
 *     dtype (complex128 included) is aligned when the file is mapped;
 *   - the writer's `location` is a bare file name (ox_extdata_bare_name);
 *   - the reader refuses a location that is empty, absolute, has a ".." component or a backslash
 *     (ox_extdata_location_problem), resolves outside the base folder, passes through a symbolic
 *     link when opened, or is not a regular file (ox_extdata_open).
 *
 * Errors are set in an ox_error with `where` (may be NULL) and the messages name the tensor and
 * the location. Nothing here keeps state beyond the ox_extdata_dir the caller passes.
 */
#ifndef OX_ONNX_EXTDATA_H
#define OX_ONNX_EXTDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "ir/error.h"

/* Tensors smaller than this many bytes stay inline when saving with external data: the default of
 * ox_save_options.external_min_bytes, as onnx's own convert_model_to_external_data. Shapes, axes
 * and scalars then stay where shape inference and readers see them without opening the data file. */
#define OX_EXTERNAL_MIN_BYTES_DEFAULT ((size_t)1024)

/* Tensors of OX_EXTERNAL_BIG_BYTES or more start at OX_EXTERNAL_ALIGN_BIG, others at
 * OX_EXTERNAL_ALIGN_SMALL (both powers of two). */
#define OX_EXTERNAL_BIG_BYTES ((size_t)1 << 20)
#define OX_EXTERNAL_ALIGN_BIG ((uint64_t)64 << 10)
#define OX_EXTERNAL_ALIGN_SMALL ((uint64_t)16)

/* ---- layout (writer) ---- */

/* The alignment of a tensor of nbytes in the data file. */
uint64_t ox_extdata_align(size_t nbytes);

/* Where a tensor of nbytes goes when the file so far ends at `end`: *off = end rounded up to
 * ox_extdata_align(nbytes). False, *off untouched, when off + nbytes would not fit in 64 bits. */
bool ox_extdata_place(uint64_t end, size_t nbytes, uint64_t *off);

/* The writer's rule for ox_save_options.data_location: non-empty, no '/', not "." or "..". */
bool ox_extdata_bare_name(const char *s);

/* ---- locations, offsets and lengths (reader) ---- */

/* Checks that need no file system: NULL when loc may be looked up, else why not ("it is an
 * absolute path", ...). A location that fails them is refused before any path is built. */
const char *ox_extdata_location_problem(const char *loc);

/* A TensorProto.external_data "offset" or "length": decimal digits only, at most UINT64_MAX. */
bool ox_extdata_parse_u64(const char *s, uint64_t *v);

/* [off, off + len) must lie in a file of file_len bytes and hold exactly nbytes; without a length
 * (has_len false) the range runs to the end of the file. OX_OK and *len_out set, else
 * OX_EFORMAT. tname and loc name the tensor and the file in the message. */
ox_code ox_extdata_check_range(size_t file_len, uint64_t off, bool has_len, uint64_t len, size_t nbytes,
                               uint64_t *len_out, const char *tname, const char *loc, ox_error *err, const char *where);

/* ---- files (reader) ---- */

/* The base folder, resolved and opened on the first ox_extdata_open. */
typedef struct ox_extdata_dir {
    int fd; /* -1 until opened */
    char *real; /* realpath of the folder, malloc'd; NULL until resolved */
} ox_extdata_dir;

#define OX_EXTDATA_DIR_INIT {-1, NULL}

/* Opens location loc of tensor tname below base_dir for reading. In order: the checks of
 * ox_extdata_location_problem (OX_EINVAL); base_dir realpath'd and opened once into *d (OX_EIO);
 * base/loc realpath'd and required to lie strictly inside the folder (OX_EINVAL; OX_EIO when it
 * does not exist); the resolved path opened one component at a time from the folder's descriptor
 * with O_NOFOLLOW (a symbolic link met then means the tree changed under us: OX_EINVAL), the file
 * itself with O_NONBLOCK, so that a FIFO or a device cannot block the read; the file fstat'd and
 * required to be regular (OX_EINVAL, naming what it is instead). On OX_OK, *fd is the caller's to
 * close (O_NONBLOCK cleared) and *st describes it. */
ox_code ox_extdata_open(ox_extdata_dir *d, const char *base_dir, const char *loc, const char *tname, ox_error *err,
                        const char *where, int *fd, struct stat *st);

/* Opens the model file itself, path as the caller gave it (symbolic links followed), the same way:
 * without blocking, and refused unless regular. OX_EIO, the message naming path, when it cannot be
 * opened or is not a regular file. On OX_OK, *fd is the caller's to close and *st describes it. */
ox_code ox_extdata_open_model(const char *path, ox_error *err, int *fd, struct stat *st);

/* Closes and frees what *d holds; it may be opened again. */
void ox_extdata_dir_close(ox_extdata_dir *d);

/* Maps len bytes of fd read-only (MAP_PRIVATE) at *addr: 0, or an errno with *addr NULL. len 0
 * maps nothing (*addr NULL, 0). The mapping outlives fd. A file truncated by someone else while
 * mapped raises SIGBUS on access: no reader can prevent that. */
int ox_extdata_map(int fd, size_t len, void **addr);
void ox_extdata_unmap(void *addr, size_t len); /* addr NULL is a no-op */

#endif
