/* onnx/extdata.c — external data layout and the reader's file access; the rules are in
 * onnx/extdata.h. Every path a model names goes through ox_extdata_open, which opens nothing
 * outside the base folder: see there why realpath, then O_NOFOLLOW one component at a time. */
#include "onnx/extdata.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- layout ---- */

uint64_t ox_extdata_align(size_t nbytes) {
    return nbytes >= OX_EXTERNAL_BIG_BYTES ? OX_EXTERNAL_ALIGN_BIG : OX_EXTERNAL_ALIGN_SMALL;
}

bool ox_extdata_place(uint64_t end, size_t nbytes, uint64_t *off) {
    uint64_t align = ox_extdata_align(nbytes);
    if (end > UINT64_MAX - align || (end + align - 1) / align * align > UINT64_MAX - nbytes) return false;
    *off = (end + align - 1) / align * align;
    return true;
}

bool ox_extdata_bare_name(const char *s) {
    return s && *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* ---- locations, offsets and lengths ---- */

const char *ox_extdata_location_problem(const char *loc) {
    if (!*loc) return "it is empty";
    if (loc[0] == '/') return "it is an absolute path";
    if (strchr(loc, '\\')) return "it holds a backslash";
    for (const char *p = loc; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') return "it has a '..' component";
        p += n;
        if (*p == '/') p++;
    }
    return NULL;
}

bool ox_extdata_parse_u64(const char *s, uint64_t *v) {
    if (!*s) return false;
    uint64_t r = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        unsigned d = (unsigned)(*s - '0');
        if (r > (UINT64_MAX - d) / 10) return false;
        r = r * 10 + d;
    }
    *v = r;
    return true;
}

ox_code ox_extdata_check_range(size_t file_len, uint64_t off, bool has_len, uint64_t len, size_t nbytes,
                               uint64_t *len_out, const char *tname, const char *loc, ox_error *err,
                               const char *where) {
    if (off > file_len)
        return ox_error_set(err, OX_EFORMAT, where,
                            "tensor '%s': external data offset %llu is past the "
                            "end of '%s' (%zu bytes)",
                            tname, (unsigned long long)off, loc, file_len);
    if (!has_len) len = file_len - off;
    if (len > file_len - off)
        return ox_error_set(err, OX_EFORMAT, where,
                            "tensor '%s': external data [%llu, +%llu) is past "
                            "the end of '%s' (%zu bytes)",
                            tname, (unsigned long long)off, (unsigned long long)len, loc, file_len);
    if (len != nbytes)
        return ox_error_set(err, OX_EFORMAT, where,
                            "tensor '%s': external data length %llu in '%s', "
                            "its shape needs %zu bytes",
                            tname, (unsigned long long)len, loc, nbytes);
    *len_out = len;
    return OX_OK;
}

/* ---- files ---- */

/* What a file that is not regular is, for messages. */
static const char *file_kind(mode_t m) {
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISDIR(m)) return "a folder";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISLNK(m)) return "a symbolic link";
    return "not a regular file";
}

/* Opens for reading without blocking: O_NONBLOCK because open() of a FIFO (or of some devices)
 * waits for a writer forever, and the regular-file check can only come after open returns. It is
 * cleared again once fstat says the file is regular (it means nothing to a regular file's reads
 * or mmap, but the descriptor then behaves as any other). -1 with errno set. */
static int open_nonblock(int dirfd, const char *name, int flags) {
    return openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | flags);
}

/* fstat's fd into *st: 0 when it is a regular file (its O_NONBLOCK then cleared), 1 when it is
 * not (*st says what it is), -1 with errno set when fstat or fcntl failed. */
static int require_regular(int fd, struct stat *st) {
    if (fstat(fd, st) != 0) return -1;
    if (!S_ISREG(st->st_mode)) return 1;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) return -1;
    return 0;
}

/* Opens rel (no symlinks expected: it was realpath'd) one component at a time below dirfd with
 * O_NOFOLLOW, the last one without blocking (open_nonblock). -1 with errno set. */
static int open_below(int dirfd, const char *rel) {
    char comp[NAME_MAX + 1];
    int cur = dirfd;
    const char *p = rel;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || n > NAME_MAX) {
            if (cur != dirfd) close(cur);
            errno = n ? ENAMETOOLONG : ENOENT;
            return -1;
        }
        memcpy(comp, p, n);
        comp[n] = 0;
        int fd = e ? openat(cur, comp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_DIRECTORY) :
                     open_nonblock(cur, comp, O_NOFOLLOW);
        int saved = errno;
        if (cur != dirfd) close(cur);
        if (fd < 0) {
            errno = saved;
            return -1;
        }
        if (!e) return fd;
        cur = fd;
        p = e + 1;
    }
}

/* The base folder is realpath'd once and opened: every location is resolved against that real
 * path, then opened from that descriptor, so a folder renamed or replaced halfway through a read
 * cannot send later locations elsewhere. */
static ox_code dir_open(ox_extdata_dir *d, const char *base_dir, const char *tname, ox_error *err, const char *where) {
    if (d->real) return OX_OK;
    d->real = realpath(base_dir, NULL);
    if (!d->real)
        return ox_error_set(err, OX_EIO, where, "tensor '%s': cannot resolve the model folder '%s': %s", tname,
                            base_dir, strerror(errno));
    d->fd = open(d->real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->fd < 0)
        return ox_error_set(err, OX_EIO, where, "tensor '%s': cannot open the model folder '%s': %s", tname, d->real,
                            strerror(errno));
    return OX_OK;
}

ox_code ox_extdata_open(ox_extdata_dir *d, const char *base_dir, const char *loc, const char *tname, ox_error *err,
                        const char *where, int *fd_out, struct stat *st) {
    *fd_out = -1;
    const char *why = ox_extdata_location_problem(loc);
    if (why)
        return ox_error_set(err, OX_EINVAL, where,
                            "tensor '%s': external data location '%s' is "
                            "refused: %s",
                            tname, loc, why);
    ox_code rc = dir_open(d, base_dir, tname, err, where);
    if (rc != OX_OK) return rc;
    size_t bl = strlen(d->real), ll = strlen(loc);
    char *joined = malloc(bl + ll + 2);
    if (!joined) return ox_error_set(err, OX_ENOMEM, where, "out of memory while reading the model");
    memcpy(joined, d->real, bl);
    joined[bl] = '/';
    memcpy(joined + bl + 1, loc, ll + 1);
    char *resolved = realpath(joined, NULL);
    int rerr = errno;
    free(joined);
    if (!resolved)
        return ox_error_set(err, rerr == ENOENT ? OX_EIO : OX_EINVAL, where,
                            "tensor '%s': external "
                            "data location '%s' cannot be resolved: %s",
                            tname, loc, strerror(rerr));
    /* Strictly inside: the folder itself is not a file of it. */
    const char *rel = NULL;
    if (bl == 1 && d->real[0] == '/') rel = resolved + 1;
    else if (strncmp(resolved, d->real, bl) == 0 && resolved[bl] == '/') rel = resolved + bl + 1;
    if (!rel || !*rel) {
        rc = ox_error_set(err, OX_EINVAL, where,
                          "tensor '%s': external data location '%s' resolves "
                          "outside the model folder '%s' (to '%s')",
                          tname, loc, d->real, resolved);
        free(resolved);
        return rc;
    }
    int fd = open_below(d->fd, rel);
    int oerr = errno;
    free(resolved);
    if (fd < 0)
        return ox_error_set(err, oerr == ELOOP || oerr == ENOTDIR ? OX_EINVAL : OX_EIO, where,
                            "tensor '%s': cannot open external data location '%s' inside the model "
                            "folder: %s%s",
                            tname, loc, strerror(oerr),
                            oerr == ELOOP ? " (a symbolic link appeared while reading)" : "");
    int reg = require_regular(fd, st);
    if (reg != 0) {
        int serr = errno;
        close(fd);
        if (reg < 0)
            return ox_error_set(err, OX_EIO, where, "tensor '%s': cannot check external data location '%s': %s", tname,
                                loc, strerror(serr));
        return ox_error_set(err, OX_EINVAL, where,
                            "tensor '%s': external data location '%s' is not a "
                            "regular file (%s)",
                            tname, loc, file_kind(st->st_mode));
    }
    *fd_out = fd;
    return OX_OK;
}

ox_code ox_extdata_open_model(const char *path, ox_error *err, int *fd_out, struct stat *st) {
    *fd_out = -1;
    /* No O_NOFOLLOW: the model path is the caller's own, and a symlinked model is ordinary. */
    int fd = open_nonblock(AT_FDCWD, path, 0);
    if (fd < 0) return ox_error_set(err, OX_EIO, path, "cannot open '%s': %s", path, strerror(errno));
    int reg = require_regular(fd, st);
    if (reg != 0) {
        int serr = errno;
        close(fd);
        if (reg < 0) return ox_error_set(err, OX_EIO, path, "cannot check '%s': %s", path, strerror(serr));
        return ox_error_set(err, OX_EIO, path, "'%s' is not a regular file (%s)", path, file_kind(st->st_mode));
    }
    *fd_out = fd;
    return OX_OK;
}

void ox_extdata_dir_close(ox_extdata_dir *d) {
    if (d->fd >= 0) close(d->fd);
    free(d->real);
    d->fd = -1;
    d->real = NULL;
}

int ox_extdata_map(int fd, size_t len, void **addr) {
    *addr = NULL;
    if (!len) return 0;
    void *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) return errno ? errno : EIO;
    *addr = p;
    return 0;
}

void ox_extdata_unmap(void *addr, size_t len) {
    if (addr) munmap(addr, len);
}
