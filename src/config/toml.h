/*
 * A TOML 1.0 parser producing a small document tree. The whole document is
 * parsed up front; errors carry the 1-based line and column where parsing
 * stopped. Keys and strings are UTF-8 with explicit lengths (strings may hold
 * NUL bytes from \u0000 escapes).
 */
#ifndef CONFIG_TOML_H
#define CONFIG_TOML_H

#include <stddef.h>
#include <stdint.h>

enum toml_type {
	TOML_TABLE,
	TOML_ARRAY,
	TOML_STRING,
	TOML_INTEGER,
	TOML_FLOAT,
	TOML_BOOL,
	TOML_DATETIME,       /* offset date-time */
	TOML_DATETIME_LOCAL, /* local date-time */
	TOML_DATE_LOCAL,
	TOML_TIME_LOCAL,
};

struct toml_value;

struct toml_keyval {
	char *key;
	size_t key_len;
	struct toml_value *value;
};

struct toml_value {
	enum toml_type type;
	int line, column; /* where the value was defined (for config errors) */
	union {
		struct {
			struct toml_keyval *items; /* in definition order */
			size_t len;
			void *index; /* private: the parser's key lookup index */
		} table;
		struct {
			struct toml_value **items;
			size_t len;
		} array;
		struct {
			char *ptr; /* NUL-terminated; len excludes the NUL */
			size_t len;
		} string;
		int64_t integer;
		double floating;
		int boolean;
		/* All date/time kinds keep their canonical text (RFC 3339 style,
		 * e.g. "1979-05-27T07:32:00Z"; a space separator is normalised to 'T'). */
		char *datetime;
	} u;
	/* private bookkeeping of the parser (explicit/implicit table, inline ...) */
	unsigned flags;
};

struct toml_error {
	int line;   /* 1-based */
	int column; /* 1-based */
	char message[256];
};

/*
 * Parses a whole document. On success returns 0 and *out is a TOML_TABLE the
 * caller frees with toml_free. On error returns -1, leaves *out untouched,
 * frees any partial tree and fills *err (columns count characters, not bytes;
 * err may be NULL). Input larger than 64 MiB, invalid UTF-8 and nesting deeper
 * than 128 tables/arrays are rejected. Floats are converted with strtod, so
 * the process must keep the "C" LC_NUMERIC locale.
 */
int toml_parse(const char *text, size_t len, struct toml_value **out, struct toml_error *err);

/* Frees a value and everything under it (NULL is ignored). */
void toml_free(struct toml_value *v);

/* Looks up key in a table (NULL if absent or t is not a table). Borrowed. */
struct toml_value *toml_table_get(const struct toml_value *t, const char *key);

#endif
