/* config_schema: the generic half of the config loader (a seam inside daemon/, used by config.c).
 *
 * Error collection with file and position, table-driven conversion of YAML mappings into C structs
 * (one row per key: type, bounds, default, offsetof the field, extra check), YAML parsing with
 * optional wiping of every copy of the text, and bounded file reading. It knows nothing about
 * accounts or copy rules: config.c holds the tables and the checks that span keys or files. */
#ifndef CT_CONFIG_SCHEMA_H
#define CT_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "config.h"

#define CS_SHOW_MAX 60          /* longest value quoted back in a message */
#define CS_SHOW_BUF (CS_SHOW_MAX * 4 + 16)
#define CS_KEYS_MAX 32          /* keys per table (bits of the walker's result) */
#define CS_PATH_MAX 96          /* "copy_rules[12345].exclude_symbols[123]" */
#define CS_FILE_MAX (4u << 20)  /* a config file larger than this is a mistake */

/* ------------------------------------------------------------------------------------------------
 * Loading context and errors */

struct cs_err; /* one recorded message (private) */

/* Embed as the FIRST member of a loader's own context: parse callbacks get this pointer back. */
struct cs_ctx {
    size_t fidx;            /* index of the file being read: errors sort by it, then position */
    const char *file;       /* name used in messages: the config file, or a secret file */
    bool hide_keys;         /* reading a secret file: never echo a key name */
    bool in_secret;         /* errors sort at `anchor` (the secret_file key), not at their mark */
    yaml_mark_t anchor;
    yaml_document_t *doc;   /* document being walked */
    struct cs_err *errs;
    size_t n_errs, cap_errs, n_total;
    bool oom;               /* out of memory: stop, report once */
};

/* file:line:col: path: message, in the file being read. */
__attribute__((format(printf, 4, 5)))
void cs_err_at(struct cs_ctx *c, yaml_mark_t m, const char *path, const char *fmt, ...);
/* Same, at a position in another file (index fidx, named file) read earlier. */
__attribute__((format(printf, 6, 7)))
void cs_err_in(struct cs_ctx *c, size_t fidx, const char *file, yaml_mark_t m, const char *path,
               const char *fmt, ...);
/* file: message (no position: the file cannot be opened). */
__attribute__((format(printf, 2, 3)))
void cs_err_file(struct cs_ctx *c, const char *fmt, ...);
/* Sort the errors by file and position, hand at most CFG_ERRORS_MAX of them to errs (which may be
 * NULL), free the rest and the context's storage. Returns how many errors there were in all. */
size_t cs_errors_finish(struct cs_ctx *c, struct cfg_errors *errs);

/* ------------------------------------------------------------------------------------------------
 * Small helpers */

char *cs_path_join(char *buf, size_t n, const char *prefix, const char *key);
const char *cs_node_kind(const yaml_node_t *n); /* "a mapping", "a sequence", "a scalar" */
bool cs_scalar_is_null(const yaml_node_t *n);   /* plain "", "~", "null" */
/* The value quoted back in a message: escaped, shortened; buf of CS_SHOW_BUF bytes. */
const char *cs_show(const char *s, char *buf, size_t n);
/* Make room for element n of arr (capacity *cap, zero-filled growth). NULL and c->oom on failure,
 * arr untouched. */
void *cs_grow(struct cs_ctx *c, void *arr, size_t *cap, size_t n, size_t elem);

/* ------------------------------------------------------------------------------------------------
 * Key tables */

enum cs_ktype {
    CS_STR,  /* char *, non-empty */
    CS_INT,  /* int within min..max */
    CS_BOOL, /* bool: true/false (True, TRUE, ...) */
    CS_ENUM, /* int: one of choices */
    CS_DEC,  /* dec_t, parsed from the scalar's text (never through a double) */
    CS_ADDR, /* struct cfg_addr: host:port, [v6]:port, unix:/path (with CS_UNIX) */
    CS_LIST, /* struct cfg_list: a YAML sequence of distinct non-empty scalars; check per item */
};

#define CS_NOECHO 1u /* never quote the value back (secrets, conninfo with a password) */
#define CS_SECRET 2u /* zero the old value when it is replaced */
#define CS_UNIX 4u   /* CS_ADDR: unix:/path allowed */

struct cs_choice {
    const char *name;
    int value;
};

struct cs_key {
    const char *name;
    enum cs_ktype type;
    bool required;
    const char *def;        /* default as YAML text, converted like a value from the file */
    long long min, max;     /* CS_INT bounds */
    size_t off;             /* offsetof the field in the target struct */
    const struct cs_choice *choices; /* CS_ENUM, ends with {NULL} */
    const char *what;       /* "expected <what>"; derived from the type when NULL */
    const char *item_what;  /* CS_LIST: "expected <item_what>" for one item */
    /* Extra check after conversion (CS_LIST: per item, on a char **); may explain in why. */
    bool (*check)(const void *field, char *why, size_t n);
    unsigned flags;
};

/* Walk a mapping against a key table ending with {.name = NULL}: unknown keys (with "did you
 * mean"), duplicates, types, bounds, checks, required keys, defaults. found[i] (if found is not
 * NULL, CS_KEYS_MAX entries) receives the value node of keys[i] or stays NULL: callers use it for
 * positions and for keys required only in some cases. Returns a bit mask: bit i set when keys[i]
 * was given but rejected (an error is recorded; its field is then zero or partly filled, so checks
 * between keys should leave it alone). */
uint32_t cs_walk_map(struct cs_ctx *c, const yaml_node_t *map, const char *path,
                     const struct cs_key *keys, void *target, const yaml_node_t **found);
/* "path.key: unknown key (did you mean '...'?)" against the candidate names. */
void cs_unknown_key(struct cs_ctx *c, const yaml_node_t *kn, const char *path,
                    const char *const *cands, size_t n);
/* Name of the choice with this value, or "?". */
const char *cs_choice_name(const struct cs_choice *choices, int value);

/* The scalar items of a sequence node as (text, index, position), sorted by text then index (for
 * checks across lists without quadratic time). NULL with *n = 0 when there are none, or on
 * failure with c->oom set. The texts belong to the document; free() the array. */
struct cs_item {
    const char *s;
    size_t idx;
    yaml_mark_t mark;
};
struct cs_item *cs_seq_sorted(struct cs_ctx *c, const yaml_node_t *seq, size_t *n);

void cs_addr_free(struct cfg_addr *a);
void cs_list_free(struct cfg_list *l);

/* ------------------------------------------------------------------------------------------------
 * Files */

typedef void (*cs_root_fn)(struct cs_ctx *c, const yaml_node_t *root, void *arg);

/* Parse buf as one YAML document and hand its root (NULL when empty) to fn; a syntax error or a
 * second document is an error. With wipe, every copy of the text libyaml made is zeroed. */
void cs_parse_yaml(struct cs_ctx *c, const char *buf, size_t len, cs_root_fn fn, void *arg,
                   bool wipe);
/* A regular file of at most CS_FILE_MAX bytes, NUL-terminated; NULL with an error recorded.
 * Free it with secret_free(buf, *len) (it may hold a password). */
char *cs_read_file(struct cs_ctx *c, const char *path, size_t *len);

#endif
