/* The numbered migrations in sql/, embedded at build time (see sql/CMakeLists.txt). */
#ifndef CT_SQL_MIGRATIONS_H
#define CT_SQL_MIGRATIONS_H

struct sql_migration {
    int version;      /* the NNN prefix of the file name */
    const char *name; /* file name without .sql */
    const char *sql;  /* whole file text, applied in one transaction */
};

extern const struct sql_migration sql_migrations[];
extern const unsigned sql_migrations_count;

#endif
