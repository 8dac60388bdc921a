/* secret_file: read API key files safely and wipe every copy we can reach.
 *
 * A secret file must be a regular file owned by the user we run as (or root) that group and others
 * cannot access at all (mode & 077 == 0), like ssh's StrictModes. Error messages name the file, its
 * mode or owner and the fix, never a byte of its content. */
#ifndef CT_SECRET_FILE_H
#define CT_SECRET_FILE_H

#include <stddef.h>
#include <yaml.h>

#define SECRET_FILE_MAX 65536 /* bytes; a key file is a few hundred */

/* Read `path` whole into *buf (NUL-terminated, *len bytes). Returns 0, or a negative errno with a
 * one-line message in err: -ENOENT/-EACCES/... (cannot open), -EPERM (mode or owner unsafe),
 * -EINVAL (not a regular file), -EFBIG (too large), -ENOMEM. Free *buf with secret_free. */
int secret_file_read(const char *path, char **buf, size_t *len, char *err, size_t errlen);

/* Zero `len` bytes then free. Takes NULL. */
void secret_free(char *buf, size_t len);
/* Zero a NUL-terminated string then free it. Takes NULL. */
void secret_free_str(char *s);

/* Zero the text libyaml still holds after parsing a secret: every scalar of `doc` and the parser's
 * input buffers. Call before yaml_document_delete / yaml_parser_delete. Either may be NULL.
 * Best effort: libyaml's scanner frees some short-lived copies without zeroing them. */
void secret_yaml_wipe(yaml_parser_t *parser, yaml_document_t *doc);

#endif
