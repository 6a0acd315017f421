/*
 * Private plumbing shared by the config_*.c files: the schema table that maps
 * TOML keys and config_command JSON keys onto struct config fields, Go-style
 * string quoting, and the pieces of the load pipeline.
 */
#ifndef CONFIG_CONFIG_INTERNAL_H
#define CONFIG_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "config/config.h"

enum cfield_kind {
	CF_STR,      /* char * */
	CF_BOOL,     /* int */
	CF_INT,      /* int64_t (Go int / int64) */
	CF_UINT,     /* uint64_t (Go uint / uint64) */
	CF_UINT32,   /* unsigned (Go uint, small) */
	CF_FLOAT,    /* double */
	CF_DUR,      /* int64_t milliseconds from a Go duration string */
	CF_STRARR,   /* char ** + size_t count */
	CF_FLOATARR, /* double * + size_t count */
	CF_TABLE,    /* nested table; sub-schema offsets share the same base */
	CF_TABARR,   /* array of tables; sub-schema offsets relative to an element */
};

struct cschema;

struct cfield {
	const char *toml;   /* TOML key; NULL when the field has no TOML key */
	const char *json;   /* config_command JSON key; NULL when not settable */
	const char *goname; /* Go field name (for upstream-style type errors) */
	const char *gotype; /* Go type name (for upstream-style type errors) */
	enum cfield_kind kind;
	size_t off;   /* offset of the value or of the array pointer */
	size_t n_off; /* arrays: offset of the element count */
	const struct cschema *sub;
};

struct cschema {
	const char *goname; /* Go struct type, e.g. "config.Cfg" */
	size_t elem_size;   /* CF_TABARR element size */
	const struct cfield *fields;
	size_t n;
};

/* The root schema (struct config). */
extern const struct cschema config_schema_root;

/* Where a TOML decode error happened (upstream prints these specially). */
struct config_decode_error {
	int set;
	/* go-toml reports some failures as plain errors without a position;
	 * upstream's validate command then exits 1 instead of printing JSON. */
	int plain;
	int line, column;
	char message[512]; /* "toml: ..." as go-toml's DecodeError.Error() */
};

/* TOML -> struct. Fills derr (and err) on a syntax or type error. */
int config_load_toml(struct config *cfg, const char *toml, size_t len,
		     struct config_decode_error *derr, struct error *err);

/* Merges JSON text over cfg with Go encoding/json semantics. */
int config_merge_json(struct config *cfg, const char *json, size_t len, struct error *err);

/* Runs path with no args and no shell; returns its stdout (caller frees). */
int config_run_command(const char *path, char **out, size_t *out_len, struct error *err);

/* Values seeded before decoding (upstream's pre-filled Cfg). */
int config_seed_defaults(struct config *cfg);

/* SetDefaults plus our extra defaults and storage path cleaning. */
int config_apply_defaults(struct config *cfg, struct error *err);

/* Full pipeline used by config_load and the validate subcommand. */
int config_load_ex(struct config *cfg, const char *toml, size_t len,
		   struct config_decode_error *derr, struct error *err);

/* Appends s quoted like Go's strconv.Quote (%q). */
int config_go_quote(struct strbuf *sb, const char *s, size_t len);

/* Appends a float formatted like Go's %v. */
int config_go_float(struct strbuf *sb, double v);


/* Frees what one schema-described struct owns (strings, arrays). */
void config_release_elem(const struct cschema *s, char *base);

/* Helpers to free owned arrays. */
void config_free_strarr(char ***arr, size_t *n);

#endif
