/* SPDX-License-Identifier: MIT */
/*
 * object.c - the objects the library hands out: bytes with a type tag,
 * malloc'd and NUL-terminated one byte past their length.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"

void jobq_obj_free(jobq_obj_t *obj)
{
	if (!obj)
		return;
	/* A borrowed payload lives in the caller's buffer
	 * (jobq_get_many_into()). */
	if (!(obj->flags & JOBQ_OBJ_BORROWED))
		free(obj->data);
	memset(obj, 0, sizeof(*obj));
}

int jobq__obj_set(jobq_obj_t *o, uint32_t type, const void *data, size_t len)
{
	char *p = malloc(len + 1);

	if (!p)
		return -ENOMEM;
	if (len)
		memcpy(p, data, len);
	p[len] = '\0';
	*o = (jobq_obj_t){.type = type, .len = len, .data = p};
	return 0;
}

int jobq_obj_json(const jobq_obj_t *obj, struct json_t **out)
{
	json_error_t jerr;
	json_t *v;

	if (!obj || !out || (obj->len && !obj->data))
		return -EINVAL;
	/* Any JSON value is accepted, not only arrays and objects: a queue
	 * may carry a bare number or string. */
	v = json_loadb(obj->data ? obj->data : "", obj->len,
		       JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!v)
		return -EINVAL;
	*out = v;
	return 0;
}
