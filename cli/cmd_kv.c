/* SPDX-License-Identifier: MIT */
/*
 * cmd_kv.c - jobq kv set, get, del, incr and ls.
 *
 * Values set from the command line are stored as bytes, the same type
 * `jobq put` uses, so a value means the same whichever tool wrote it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int kv_fail(const struct cli *c, const char *key, int err)
{
	char what[300];

	snprintf(what, sizeof(what), "key \"%s\"", key);
	switch (err) {
	case -E2BIG: {
		char b[32];

		jobq__format_size(jobq_max_object(c->q), b, sizeof(b));
		return cli_error("%s: value exceeds max-object %s (jobqd "
				 "--max-object)",
				 what, b);
	}
	case JOBQ_EFULL:
		return cli_error("%s: the store is full (jobqd --memory SIZE "
				 "makes a larger store)",
				 what);
	case JOBQ_ELIMIT:
		return cli_error("%s: the key table of the manager is full",
				 what);
	case -ENOENT:
		return cli_error("%s: no such key", what);
	default:
		return cli_fail(c, what, err);
	}
}

int cmd_kv_set(struct cli *c)
{
	const char *key = c->args[0];
	char *buf = NULL;
	const void *data;
	size_t len;
	int rc;

	if ((rc = cli_check_key(c, key)))
		return rc;
	if ((rc = cli_connect(c)))
		return rc;
	if (c->nargs > 1) {
		data = c->args[1];
		len = strlen(c->args[1]);
	} else {
		rc = cli_read_all(STDIN_FILENO, &buf, &len);
		if (rc)
			return cli_error("key \"%s\": reading stdin: %s", key,
					 strerror(-rc));
		data = buf;
	}
	rc = jobq_kv_set(c->q, key, JOBQ_T_BYTES, data, len);
	free(buf);
	return rc ? kv_fail(c, key, rc) : EXIT_OK;
}

int cmd_kv_get(struct cli *c)
{
	const char *key = c->args[0];
	jobq_obj_t obj = {0};
	char tbuf[16];
	json_t *doc;
	int rc;

	if ((rc = cli_check_key(c, key)))
		return rc;
	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_kv_get(c->q, key, &obj);
	if (rc == -ENOENT)
		return cli_timeout_msg(c, "key \"%s\": no such key", key);
	if (rc)
		return kv_fail(c, key, rc);
	if (!c->json) {
		rc = cli_write_all(STDOUT_FILENO, obj.data, obj.len);
		/* A terminal gets a line end; pipes get the bare value. */
		if (!rc && isatty(STDOUT_FILENO) && obj.len &&
		    ((char *)obj.data)[obj.len - 1] != '\n')
			rc = cli_write_all(STDOUT_FILENO, "\n", 1);
		jobq_obj_free(&obj);
		if (rc)
			return cli_error("writing to stdout: %s",
					 strerror(-rc));
		return EXIT_OK;
	}
	doc = json_pack("{s:s,s:s,s:I}", "key", key, "type",
			cli_type_name(obj.type, tbuf, sizeof(tbuf)), "size",
			(json_int_t)obj.len);
	if (doc && cli_json_data(doc, "value", obj.data, obj.len)) {
		json_decref(doc);
		doc = NULL;
	}
	jobq_obj_free(&obj);
	return cli_print_json(doc);
}

int cmd_kv_del(struct cli *c)
{
	const char *key = c->args[0];
	int rc;

	if ((rc = cli_check_key(c, key)))
		return rc;
	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_kv_del(c->q, key);
	return rc ? kv_fail(c, key, rc) : EXIT_OK;
}

int cmd_kv_incr(struct cli *c)
{
	const char *key = c->args[0];
	int64_t by = 1, val = 0;
	int rc;

	if ((rc = cli_check_key(c, key)))
		return rc;
	if (c->nargs > 1 && cli_parse_i64(c->args[1], &by))
		return cli_usage(c, "BY \"%s\": not a whole number",
				 c->args[1]);
	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_kv_incr(c->q, key, by, &val);
	if (rc == JOBQ_ENOTNUM)
		return cli_error("key \"%s\": the value is not a decimal "
				 "integer",
				 key);
	if (rc == -ERANGE)
		return cli_error("key \"%s\": adding %" PRId64 " overflows",
				 key, by);
	if (rc)
		return kv_fail(c, key, rc);
	if (c->json)
		return cli_print_json(json_pack("{s:s,s:I}", "key", key,
						"value", (json_int_t)val));
	printf("%" PRId64 "\n", val);
	return cli_flush();
}

struct kv_entry {
	char *key;
	size_t size;
	uint32_t type;
};

struct kv_list {
	struct kv_entry *v;
	size_t n, cap;
};

/* Copies what it needs: the key and value are valid during the call only. */
static int kv_collect(const char *key, const jobq_obj_t *value, void *arg)
{
	struct kv_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct kv_entry *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].key = strdup(key);
	if (!l->v[l->n].key)
		return -ENOMEM;
	l->v[l->n].size = value->len;
	l->v[l->n].type = value->type;
	l->n++;
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct kv_entry *)a)->key,
		      ((const struct kv_entry *)b)->key);
}

int cmd_kv_ls(struct cli *c)
{
	const char *prefix = c->nargs ? c->args[0] : NULL;
	struct kv_list l = {0};
	json_t *doc = NULL, *arr;
	char tbuf[16];
	int rc;

	if ((rc = cli_connect(c)))
		return rc;
	rc = jobq_kv_list(c->q, prefix, kv_collect, &l);
	if (rc) {
		rc = cli_fail(c, "keys", rc);
		goto out;
	}
	/* The walk is in table order; a listing reads better sorted. */
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), cmp_entry);
	if (!c->json) {
		char t[CLI_TEXT_LEN];

		/* Escaped: a key is shown, never interpreted by the
		 * terminal. */
		for (size_t i = 0; i < l.n; i++)
			printf("%s\n",
			       cli_text(l.v[i].key, SIZE_MAX, t, sizeof(t)));
		rc = cli_flush();
		goto out;
	}
	doc = cli_list_new("keys", &arr);
	for (size_t i = 0; doc && i < l.n; i++) {
		json_t *o = json_object();

		/* A key that is not UTF-8 comes out as "key_base64". */
		if (o &&
		    (cli_json_data(o, "key", l.v[i].key, strlen(l.v[i].key)) ||
		     json_object_set_new(
			 o, "size", json_integer((json_int_t)l.v[i].size)) ||
		     json_object_set_new(
			 o, "type",
			 json_string(cli_type_name(l.v[i].type, tbuf,
						   sizeof(tbuf)))))) {
			json_decref(o);
			o = NULL;
		}
		cli_list_push(&doc, arr, o);
	}
	rc = cli_print_json(doc);
out:
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].key);
	free(l.v);
	return rc;
}
