/* Checking what a server sent, for every C program that reads replies (client, load generator). */
#ifndef PTS_REPLY_H
#define PTS_REPLY_H

#include <stddef.h>

#include "points_protocol.h"

/* Does line (its text only: no "\n", no "\r") have the shape of PTS_REPLY_FORMAT? Literal text
 * must match exactly; the user is 1 or more bytes without "\r", "\n" or ","; points an integer
 * (optional "-", digits); the last update "YYYY-MM-DD HH:MM:SS" in digits. The same rules as
 * the Python programs' reply pattern (pointsmesh.spec.REPLY_FIELD_RE). The buffer must hold a
 * NUL at or after line[len]: regexec reads line[0..len) only (REG_STARTEND), but the
 * sanitizers' regexec interceptor reads up to the NUL (every caller keeps one after the bytes
 * received; fuzz/c/reply.c found this). */
int pts_reply_shape_ok(const char *line, size_t len);

/* The error code of an "ERROR <code> ..." line: its index in pts_error_code, PTS_ERR_COUNT for
 * an error line with a code this program does not know, -1 when line is no error line. */
int pts_reply_error(const char *line, size_t len);

#endif
