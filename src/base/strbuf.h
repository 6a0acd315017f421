/*
 * Growable byte buffers with a hard cap. Every buffer fed from outside gets a
 * cap at init; appends beyond it fail instead of growing without bound.
 * The contents are always NUL-terminated (the NUL is not counted in len).
 */
#ifndef BASE_STRBUF_H
#define BASE_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	char *buf;
	size_t len;
	size_t alloc;
	size_t cap; /* maximum len; 0 means STRBUF_DEFAULT_CAP */
};

#define STRBUF_DEFAULT_CAP ((size_t)64 << 20)
#define STRBUF_INIT { NULL, 0, 0, 0 }

void strbuf_init(struct strbuf *sb, size_t cap);

/* Each append returns 0, or -1 when the cap would be exceeded or memory ran out
 * (the buffer is then unchanged). */
int strbuf_add(struct strbuf *sb, const void *data, size_t len);
int strbuf_adds(struct strbuf *sb, const char *s);
int strbuf_addch(struct strbuf *sb, char c);
int strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap);

/* Makes room for at least extra more bytes. */
int strbuf_grow(struct strbuf *sb, size_t extra);

void strbuf_reset(struct strbuf *sb);
/* Removes trailing whitespace. */
void strbuf_rtrim(struct strbuf *sb);

/* Hands the buffer to the caller (never NULL on success) and resets sb. */
char *strbuf_detach(struct strbuf *sb, size_t *len);
void strbuf_release(struct strbuf *sb);

#endif
