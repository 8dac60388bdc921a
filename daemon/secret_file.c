/* secret_file: see secret_file.h. */
#include "secret_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int secret_file_read(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    char *b = NULL;
    size_t got = 0;
    int rc;

    *buf = NULL;
    *len = 0;
    /* O_NONBLOCK: a FIFO planted at the path must not hang the daemon in open(); the regular-file
     * check below happens on the descriptor we opened, so the file cannot be swapped in between. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open secret file %s: %s", path, strerror(errno));
        return rc;
    }
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot stat secret file %s: %s", path, strerror(errno));
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        snprintf(err, errlen, "secret file %s is not a regular file", path);
        goto out_close;
    }
    if (st.st_mode & 077) {
        rc = -EPERM;
        snprintf(err, errlen,
                 "secret file %s has mode %04o: group or others can access it; "
                 "run 'chmod 600 %s'", path, (unsigned)(st.st_mode & 07777), path);
        goto out_close;
    }
    /* Whoever owns the file can change the keys we trade with: only ourselves or root. */
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        rc = -EPERM;
        snprintf(err, errlen,
                 "secret file %s is owned by uid %u; it must be owned by the user copytraderd "
                 "runs as (uid %u) or root: run 'chown %u %s'", path, (unsigned)st.st_uid,
                 (unsigned)geteuid(), (unsigned)geteuid(), path);
        goto out_close;
    }
    if (st.st_size > SECRET_FILE_MAX) {
        rc = -EFBIG;
        snprintf(err, errlen, "secret file %s is larger than %d bytes", path, SECRET_FILE_MAX);
        goto out_close;
    }
    /* One byte more than the limit so that a file growing behind fstat's back is noticed. */
    b = malloc(SECRET_FILE_MAX + 2);
    if (!b) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory reading secret file %s", path);
        goto out_close;
    }
    for (;;) {
        ssize_t n = read(fd, b + got, SECRET_FILE_MAX + 1 - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot read secret file %s: %s", path, strerror(errno));
            goto out_free;
        }
        if (n == 0) break;
        got += (size_t)n;
        if (got > SECRET_FILE_MAX) {
            rc = -EFBIG;
            snprintf(err, errlen, "secret file %s is larger than %d bytes", path, SECRET_FILE_MAX);
            goto out_free;
        }
    }
    b[got] = '\0';
    close(fd);
    *buf = b;
    *len = got;
    return 0;

out_free:
    secret_free(b, SECRET_FILE_MAX + 2);
out_close:
    close(fd);
    return rc;
}

void secret_free(char *buf, size_t len)
{
    if (!buf) return;
    explicit_bzero(buf, len);
    free(buf);
}

void secret_free_str(char *s)
{
    if (!s) return;
    secret_free(s, strlen(s));
}

void secret_yaml_wipe(yaml_parser_t *parser, yaml_document_t *doc)
{
    if (doc) {
        for (yaml_node_t *n = doc->nodes.start; n && n < doc->nodes.top; n++) {
            if (n->type == YAML_SCALAR_NODE && n->data.scalar.value)
                explicit_bzero(n->data.scalar.value, n->data.scalar.length);
        }
    }
    if (parser) {
        /* The decoded and the raw input buffers keep the last chunk read, i.e. the whole file. */
        if (parser->buffer.start)
            explicit_bzero(parser->buffer.start, (size_t)(parser->buffer.end - parser->buffer.start));
        if (parser->raw_buffer.start)
            explicit_bzero(parser->raw_buffer.start,
                           (size_t)(parser->raw_buffer.end - parser->raw_buffer.start));
    }
}
