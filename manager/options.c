/* SPDX-License-Identifier: MIT */
/*
 * options.c - jobqd's options: the command line and the configuration
 * file (--config FILE, else DIR/jobqd.json), which names the same long
 * options as JSON keys. The file's keys become command-line words put
 * before the command line's, so the command line wins and one parser
 * checks both. A bad option or value ends the program (exit status 2)
 * with a message naming it, and the file and key when it came from the
 * file, through jobq__opts_exit(), which a test may replace.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "jobqd.h"

/* The default ends the program; a fuzz target replaces it with one that
 * returns to its caller. */
__attribute__((weak, noreturn)) void jobq__opts_exit(int status)
{
	exit(status);
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: jobqd [--dir DIR] [--memory SIZE] [--max-object SIZE]\n"
	    "             [--max-clients N] [--group GROUP] [--daemon]\n"
	    "             [--log FILE] [--verbose] [--max-jobs N] [--keep S]\n"
	    "             [--max-queues N] [--max-locks N] [--client-max-bytes "
	    "SIZE]\n"
	    "             [--client-max-jobs N] [--client-max-locks-held N]\n"
	    "             [--max-types N]\n"
	    "             [--workers N] [--workers-nondaemon] [--worker "
	    "CMD]...\n"
	    "             [--grace S] [--rejoin-grace S] [--http [ADDR:]PORT]\n"
	    "             [--journal FILE] [--fsync MODE] [--compact-min "
	    "SIZE]\n"
	    "             [--backend URL [--migrate]] [--busy-poll]\n"
	    "\n"
	    "The jobq manager: owns the shared-memory store, queues, keys\n"
	    "and locks of one instance directory.\n"
	    "\n"
	    "  --dir DIR          instance directory (default: $JOBQ_DIR,\n"
	    "                     $XDG_RUNTIME_DIR/jobq, /tmp/jobq-$UID)\n"
	    "  --memory SIZE      store size (default 256M)\n"
	    "  --max-object SIZE  largest object (default 16M, or memory/8\n"
	    "                     when that is less; < memory/4)\n"
	    "  --max-clients N    most connected clients (default 1024)\n"
	    "  --group GROUP      also serve members of GROUP\n"
	    "  --daemon           run in the background; return once ready\n"
	    "  --log FILE         log here (SIGHUP reopens it)\n"
	    "  --verbose          log every client and object created\n"
	    "  --max-jobs N       job records (default: one per KiB of "
	    "memory)\n"
	    "  --keep S           keep finished jobs S seconds (default 3600)\n"
	    "  --max-queues N     queue records (default 4096, at most 65536)\n"
	    "  --max-locks N      lock records (default 4096)\n"
	    "  --max-types N      job type records (default 1024, at most "
	    "65535)\n"
	    "  --client-max-bytes SIZE  most payload bytes one client's puts\n"
	    "                     may have queued (default: no limit)\n"
	    "  --client-max-jobs N  most jobs one client may have submitted\n"
	    "                     and not finished (default: half the job "
	    "table)\n"
	    "  --client-max-locks-held N  most locks one client may hold at\n"
	    "                     once (default: a quarter of --max-locks)\n"
	    "  --workers N        start N built-in worker processes (daemon)\n"
	    "  --workers-nondaemon  a stop waits for the built-in workers'\n"
	    "                     running jobs however long they take\n"
	    "  --worker-concurrency C  jobs each built-in worker runs at "
	    "once (1..1024,\n"
	    "                     default 16: the built-in types wait on IO)\n"
	    "  --worker CMD       start and supervise `sh -c CMD` "
	    "(repeatable)\n"
	    "  --grace S          a graceful stop (SIGTERM, SIGINT, jobq\n"
	    "                     shutdown) lets running jobs finish and\n"
	    "                     answers whoever waits on them; daemon\n"
	    "                     workers get S seconds for it (default 10),\n"
	    "                     then their jobs end and run again after the\n"
	    "                     next start; a second signal or jobq "
	    "shutdown\n"
	    "                     --now stops at once\n"
	    "  --rejoin-grace S   a job that was running when jobqd died\n"
	    "                     waits up to S seconds (default 5, never\n"
	    "                     past its lease) for its worker to\n"
	    "                     reconnect and take it back, then runs\n"
	    "                     again; jobs of daemon workers, which die\n"
	    "                     with jobqd, run again at once\n"
	    "  --http [ADDR:]PORT  serve /metrics (Prometheus) and a "
	    "dashboard at /;\n"
	    "                     a bare PORT is 127.0.0.1 (0: any free "
	    "port, see\n"
	    "                     DIR/jobqd.http)\n"
	    "  --journal FILE     the journal of queues, keys and jobs\n"
	    "                     (default DIR/journal; its snapshot is\n"
	    "                     FILE.snap)\n"
	    "  --fsync MODE       none (default: survives a crash of jobqd,\n"
	    "                     not of the machine), batch (one fsync\n"
	    "                     shared by the requests that arrived\n"
	    "                     meanwhile) or always (one per request)\n"
	    "  --compact-min SIZE  a snapshot compacts the journal once it\n"
	    "                     passes both SIZE (default 16M) and twice\n"
	    "                     what a snapshot of the live state takes\n"
	    "  --backend URL      the PostgreSQL database that hosts share\n"
	    "                     (a libpq connection string or\n"
	    "                     postgresql://...): jobs, queues of\n"
	    "                     objects, keys and locks are shared with\n"
	    "                     every host on it. Creates\n"
	    "                     the schema in an empty database, refuses\n"
	    "                     an older or newer one, naming both\n"
	    "                     versions\n"
	    "  --migrate          with --backend: create or migrate the\n"
	    "                     schema, then exit\n"
	    "  --busy-poll        poll for requests without ever sleeping:\n"
	    "                     the lowest latency, for a whole CPU\n"
	    "                     (default: poll about as long as a\n"
	    "                     wake-up costs here, then sleep)\n"
	    "  --log-level LEVEL  error, warn, info (default) or debug\n"
	    "                     (--verbose is debug); --log syslog logs\n"
	    "                     to syslog, as a --daemon without --log does\n"
	    "  --config FILE      options from a JSON file (default\n"
	    "                     DIR/jobqd.json when it exists): keys are\n"
	    "                     the long options, {\"memory\": \"1G\",\n"
	    "                     \"workers\": 2, \"worker\": [\"cmd\"]};\n"
	    "                     the command line wins\n"
	    "  --help, --version\n");
}

/* While options from the configuration file are parsed: its path and the
 * key at hand, so that a bad value is reported against the file. */
static const char *config_path;
static const char *config_key;

static __attribute__((noreturn)) void bad_usage(const char *fmt,
						const char *arg)
{
	fprintf(stderr, "jobqd: ");
	if (config_path)
		fprintf(stderr, "config %s, key \"%s\": ", config_path,
			config_key ? config_key : "?");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(jobqd --help lists the options)\n");
	jobq__opts_exit(2);
}

/*
 * check_memory - --memory between 8M and what this machine has. The store
 * is backed by memory; one larger than the machine's is accepted by the
 * kernel (pages come when touched) only to fail much later.
 */
static void check_memory(uint64_t memory)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	char have[32];

	if (memory < (8ull << 20))
		bad_usage("--memory must be at least 8M (the tables alone "
			  "take most of that)%s",
			  "");
	if (pages <= 0 || psz <= 0 || memory / (uint64_t)psz <= (uint64_t)pages)
		return;
	jobq__format_size((uint64_t)pages * (uint64_t)psz, have, sizeof(have));
	bad_usage("--memory is more than this machine has (%s)", have);
}

/*
 * Options come from the command line and from a configuration file. The
 * file is turned into more command-line words, put before the real ones
 * and parsed by the one getopt loop below, so both are checked by the same
 * code and a later (command-line) value replaces an earlier one; a
 * --config-end word between them marks where the file's options end.
 */
/* Options without a short letter. */
enum {
	OPT_CLIENT_MAX_JOBS = 0x200,
	OPT_CLIENT_MAX_HELD,
	OPT_MAX_TYPES,
	OPT_BUSY_POLL,
	OPT_COMPACT_MIN,
};

static const struct option long_opts[] = {
    {"dir", required_argument, NULL, 'd'},
    {"memory", required_argument, NULL, 'm'},
    {"max-object", required_argument, NULL, 'o'},
    {"max-clients", required_argument, NULL, 'c'},
    {"group", required_argument, NULL, 'g'},
    {"daemon", no_argument, NULL, 'D'},
    {"log", required_argument, NULL, 'l'},
    {"log-level", required_argument, NULL, 'L'},
    {"verbose", no_argument, NULL, 'v'},
    {"max-jobs", required_argument, NULL, 'J'},
    {"max-queues", required_argument, NULL, 'Q'},
    {"client-max-bytes", required_argument, NULL, 'b'},
    {"client-max-jobs", required_argument, NULL, OPT_CLIENT_MAX_JOBS},
    {"client-max-locks-held", required_argument, NULL, OPT_CLIENT_MAX_HELD},
    {"max-types", required_argument, NULL, OPT_MAX_TYPES},
    {"max-locks", required_argument, NULL, 'T'},
    {"keep", required_argument, NULL, 'K'},
    {"workers", required_argument, NULL, 'W'},
    {"workers-nondaemon", no_argument, NULL, 'N'},
    {"worker-concurrency", required_argument, NULL, 'X'},
    {"worker", required_argument, NULL, 'C'},
    {"grace", required_argument, NULL, 'G'},
    {"rejoin-grace", required_argument, NULL, 'R'},
    {"http", required_argument, NULL, 'H'},
    {"journal", required_argument, NULL, 'j'},
    {"fsync", required_argument, NULL, 'F'},
    {"compact-min", required_argument, NULL, OPT_COMPACT_MIN},
    {"backend", required_argument, NULL, 'B'},
    {"migrate", no_argument, NULL, 'M'},
    {"busy-poll", no_argument, NULL, OPT_BUSY_POLL},
    {"config", required_argument, NULL, 'f'},
    {"config-end", no_argument, NULL, 'E'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {0},
};

/* The value of option --@name on the command line (either "--name V" or
 * "--name=V"), the last one given, or NULL. */
static const char *cli_value(int argc, char **argv, const char *name)
{
	const char *v = NULL;
	size_t n = strlen(name);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (a[0] != '-' || a[1] != '-' || strncmp(a + 2, name, n))
			continue;
		if (a[2 + n] == '=')
			v = a + 3 + n;
		else if (!a[2 + n] && i + 1 < argc)
			v = argv[++i];
	}
	return v;
}

/* The words getopt parses and the file's name; they live as long as the
 * process, since the options point into them. Volatile: written and never
 * read, the stores would be dropped, and a leak checker would see the
 * words as lost. */
static char **volatile all_words;
static char *volatile config_name;
/* The parsed file while its keys are turned into words (a bad one exits
 * from the middle of that). */
static json_t *config_doc;

/* Appends one word to the growing argument list; exits when out of
 * memory (this runs before anything else). */
static void push_word(char ***words, int *n, char *w)
{
	char **nw = realloc(*words, (size_t)(*n + 2) * sizeof(*nw));

	if (!nw || !w) {
		fprintf(stderr, "jobqd: out of memory reading options\n");
		exit(1);
	}
	nw[(*n)++] = w;
	nw[*n] = NULL;
	*words = all_words = nw;
}

/* One key of the configuration file as command-line words. */
static void config_words(const char *path, const char *key, json_t *v,
			 char ***words, int *n)
{
	const struct option *o;
	char buf[64], *flag;

	config_path = path;
	config_key = key;
	for (o = long_opts; o->name; o++)
		if (!strcmp(o->name, key))
			break;
	if (!o->name || !strcmp(key, "config") || !strcmp(key, "config-end") ||
	    !strcmp(key, "help") || !strcmp(key, "version"))
		bad_usage("no such option (the keys are jobqd's long options, "
			  "as jobqd --help lists them)%s",
			  "");
	if (asprintf(&flag, "--%s", key) < 0)
		flag = NULL;
	if (o->has_arg == no_argument) {
		if (!json_is_boolean(v))
			bad_usage("a flag: true or false%s", "");
		if (json_is_true(v))
			push_word(words, n, flag);
		else
			free(flag);
		return;
	}
	if (json_is_array(v) && !strcmp(key, "worker")) {
		size_t i;
		json_t *e;

		json_array_foreach(v, i, e)
		{
			if (!json_is_string(e))
				bad_usage("a list of commands (strings)%s", "");
			push_word(words, n, strdup(flag));
			push_word(words, n, strdup(json_string_value(e)));
		}
		free(flag);
		return;
	}
	push_word(words, n, flag);
	if (json_is_string(v)) {
		push_word(words, n, strdup(json_string_value(v)));
	} else if (json_is_integer(v)) {
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		push_word(words, n, strdup(buf));
	} else if (json_is_real(v)) {
		snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
		push_word(words, n, strdup(buf));
	} else {
		bad_usage("a string or a number%s", "");
	}
}

/*
 * with_config - the words to parse: the configuration file's options
 * (--config FILE, else DIR/jobqd.json when it exists), --config-end, then
 * the command line's. A missing --config FILE, JSON that does not parse,
 * an unknown key or a value of the wrong kind ends the program with a
 * message naming the file and the key.
 */
static char **with_config(int argc, char **argv, int *nout)
{
	const char *explicit = cli_value(argc, argv, "config");
	char dir[PATH_MAX], def[PATH_MAX + 16], **words = NULL;
	const char *path = explicit;
	json_error_t jerr;
	const char *key;
	json_t *doc, *v;
	int n = 0;

	push_word(&words, &n, argv[0]);
	if (!path && !jobq__resolve_dir(cli_value(argc, argv, "dir"), dir,
					sizeof(dir))) {
		snprintf(def, sizeof(def), "%s/jobqd.json", dir);
		if (access(def, F_OK) == 0)
			path = def;
	}
	if (path) {
		doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
		if (!doc) {
			fprintf(stderr, "jobqd: config %s: %s%s\n", path,
				jerr.text,
				access(path, F_OK) ? "" : " (not valid JSON)");
			jobq__opts_exit(2);
		}
		if (!json_is_object(doc)) {
			json_decref(doc);
			fprintf(stderr,
				"jobqd: config %s: not a JSON object of "
				"options\n",
				path);
			jobq__opts_exit(2);
		}
		config_doc = doc;
		json_object_foreach(doc, key, v)
		    config_words(path, key, v, &words, &n);
		json_decref(config_doc);
		config_doc = NULL;
		config_path = config_name = strdup(path);
		config_key = NULL;
		/* The file's words stay: optarg points into them. */
	}
	push_word(&words, &n, "--config-end");
	for (int i = 1; i < argc; i++)
		push_word(&words, &n, argv[i]);
	*nout = n;
	return words;
}

void jobq__parse_opts(int argc, char **argv, struct jobq__opts *o)
{
	const char *dir = NULL;
	bool max_object_set = false;
	uint32_t from_file = 0; /* --worker commands the file gave */
	int ch, li = -1;

	o->log_level = JOBQ__LOG_INFO;
	o->memory = 256ull << 20;
	o->max_object = 16ull << 20;
	o->max_clients = 1024;
	o->keep_ns = 3600 * JOBQ__NSEC_PER_SEC;
	o->grace_ns = 10 * JOBQ__NSEC_PER_SEC;
	o->rejoin_grace_ns = 5 * JOBQ__NSEC_PER_SEC;
	o->compact_min = JOBQ__COMPACT_MIN;
	opterr = 0;
	argv = with_config(argc, argv, &argc);
	while ((ch = getopt_long(argc, argv, ":", long_opts, &li)) != -1) {
		char *end;
		unsigned long v;
		double d;

		/* Until --config-end the words are the file's: a bad value
		 * is reported with the file and its key. */
		if (config_path)
			config_key = li >= 0 ? long_opts[li].name : NULL;
		li = -1;
		switch (ch) {
		case 'E':
			config_path = config_key = NULL;
			from_file = o->nworker_cmds;
			break;
		case 'f':
			break; /* read by with_config() */
		case 'L':
			if (!strcmp(optarg, "error"))
				o->log_level = JOBQ__LOG_ERROR;
			else if (!strcmp(optarg, "warn"))
				o->log_level = JOBQ__LOG_WARN;
			else if (!strcmp(optarg, "info"))
				o->log_level = JOBQ__LOG_INFO;
			else if (!strcmp(optarg, "debug"))
				o->log_level = JOBQ__LOG_DEBUG;
			else
				bad_usage(
				    "--log-level %s: error, warn, info or "
				    "debug",
				    optarg);
			break;
		case 'd':
			dir = optarg;
			break;
		case 'm':
			if (jobq_parse_size(optarg, &o->memory) ||
			    o->memory == 0)
				bad_usage("--memory %s: not a size (64M, 1G)",
					  optarg);
			break;
		case 'o':
			if (jobq_parse_size(optarg, &o->max_object))
				bad_usage(
				    "--max-object %s: not a size (1M, 16M)",
				    optarg);
			max_object_set = true;
			break;
		case 'c':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v < 1 || v > 65536)
				bad_usage("--max-clients %s: not a number "
					  "from 1 to 65536",
					  optarg);
			o->max_clients = (uint32_t)v;
			break;
		case 'g':
			o->group = optarg;
			break;
		case 'D':
			o->daemon = true;
			break;
		case 'l':
			o->log = optarg;
			o->log_syslog = !strcmp(optarg, "syslog");
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'J':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v < 1 || v > (1ul << 24) - 2)
				bad_usage("--max-jobs %s: not a number from 1 "
					  "to 16777214",
					  optarg);
			o->max_jobs = (uint32_t)v;
			break;
		case 'b':
			if (jobq_parse_size(optarg, &o->client_max_bytes))
				bad_usage("--client-max-bytes %s: not a size "
					  "(64M, 1G)",
					  optarg);
			break;
		case OPT_MAX_TYPES:
			/* A job names its type in 16 bits (proto.h). */
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v < 16 || v > 65535)
				bad_usage("--max-types %s: not a number from "
					  "16 to 65535",
					  optarg);
			o->max_types = (uint32_t)v;
			break;
		case OPT_CLIENT_MAX_JOBS:
		case OPT_CLIENT_MAX_HELD:
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v < 1 || v > UINT32_MAX)
				bad_usage(ch == OPT_CLIENT_MAX_JOBS
					      ? "--client-max-jobs %s: not a "
						"number from 1 to 4294967295"
					      : "--client-max-locks-held %s: "
						"not a number from 1 to "
						"4294967295",
					  optarg);
			if (ch == OPT_CLIENT_MAX_JOBS)
				o->client_max_jobs = (uint32_t)v;
			else
				o->client_max_held = (uint32_t)v;
			break;
		case 'Q':
		case 'T':
			/* A queue id holds its record in 16 bits (proto.h). */
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v < 16 || v > 65536)
				bad_usage(ch == 'Q' ? "--max-queues %s: not a "
						      "number from 16 to 65536"
						    : "--max-locks %s: not a "
						      "number from 16 to 65536",
					  optarg);
			if (ch == 'Q')
				o->max_queues = (uint32_t)v;
			else
				o->max_locks = (uint32_t)v;
			break;
		case 'K':
		case 'G':
		case 'R':
			errno = 0;
			d = strtod(optarg, &end);
			if (errno || *end || end == optarg || !(d >= 0) ||
			    d > 1e9)
				bad_usage(ch == 'K' ? "--keep %s: not a number "
						      "of seconds"
					  : ch == 'G'
					      ? "--grace %s: not a number "
						"of seconds"
					      : "--rejoin-grace %s: not a "
						"number of seconds",
					  optarg);
			if (ch == 'K')
				o->keep_ns = (uint64_t)(d * 1e9);
			else if (ch == 'G')
				o->grace_ns = (uint64_t)(d * 1e9);
			else
				o->rejoin_grace_ns = (uint64_t)(d * 1e9);
			break;
		case 'W':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v > 1024)
				bad_usage("--workers %s: not a number from 0 "
					  "to 1024",
					  optarg);
			o->workers = (uint32_t)v;
			break;
		case 'N':
			o->workers_nondaemon = true;
			break;
		case OPT_BUSY_POLL:
			o->busy_poll = true;
			break;
		case 'X':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v < 1 || v > 1024)
				bad_usage(
				    "--worker-concurrency %s: not a number "
				    "from 1 to 1024",
				    optarg);
			o->worker_concurrency = (uint32_t)v;
			break;
		case 'C': {
			const char **n;

			/* The command line's --worker list replaces the
			 * file's, as every other option does. */
			if (!config_path && from_file) {
				o->nworker_cmds = 0;
				from_file = 0;
			}
			n = realloc(o->worker_cmds,
				    (o->nworker_cmds + 1) * sizeof(*n));

			if (!n || !*optarg)
				bad_usage("--worker %s: needs a command",
					  optarg);
			n[o->nworker_cmds++] = optarg;
			o->worker_cmds = n;
			break;
		}
		case 'H':
			o->http = optarg;
			break;
		case 'j':
			if (!*optarg)
				bad_usage("--journal needs a file name%s", "");
			o->journal = optarg;
			break;
		case OPT_COMPACT_MIN:
			if (jobq_parse_size(optarg, &o->compact_min) ||
			    o->compact_min < (64u << 10))
				bad_usage("--compact-min %s: not a size of 64K "
					  "or more",
					  optarg);
			break;
		case 'F':
			if (!strcmp(optarg, "none"))
				o->fsync_mode = JOBQ__FSYNC_NONE;
			else if (!strcmp(optarg, "batch"))
				o->fsync_mode = JOBQ__FSYNC_BATCH;
			else if (!strcmp(optarg, "always"))
				o->fsync_mode = JOBQ__FSYNC_ALWAYS;
			else
				bad_usage("--fsync %s: not none, batch or "
					  "always",
					  optarg);
			break;
		case 'B':
			if (!*optarg)
				bad_usage("--backend needs a PostgreSQL "
					  "connection string%s",
					  "");
			o->backend = optarg;
			break;
		case 'M':
			o->migrate = true;
			break;
		case 'h':
			usage(stdout);
			jobq__opts_exit(0);
		case 'V':
			printf("jobqd %s (layout %u)\n", JOBQ_VERSION_STRING,
			       JOBQ_LAYOUT_VERSION);
			jobq__opts_exit(0);
		case ':':
			bad_usage("%s needs a value", argv[optind - 1]);
		default:
			bad_usage("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument %s", argv[optind]);
	if (o->migrate && !o->backend)
		bad_usage("--migrate needs --backend URL%s", "");
#ifndef JOBQ_HAVE_PG
	if (o->backend)
		bad_usage("--backend: this jobqd was built without libpq "
			  "(install libpq-dev, then meson setup "
			  "-Dpostgresql=enabled)%s",
			  "");
#endif
	check_memory(o->memory);
	/* The default max-object shrinks with a small store; one named on
	 * the command line is checked as given. */
	if (!max_object_set && o->max_object >= o->memory / 4)
		o->max_object = o->memory / 8;
	if (o->max_object >= o->memory / 4)
		bad_usage("--max-object must be less than a quarter of "
			  "--memory (%s)",
			  "jobqd --memory SIZE --max-object SIZE");
	if (o->max_object > UINT32_MAX - 64)
		bad_usage("--max-object %s: objects are at most 4 GiB", "SIZE");
	if (jobq__resolve_dir(dir, o->dir, sizeof(o->dir)))
		bad_usage("instance directory name too long%s", "");
	if (o->group) {
		struct group *gr = getgrnam(o->group);
		char *end;
		unsigned long g;

		if (gr) {
			o->gid = gr->gr_gid;
			return;
		}
		errno = 0;
		g = strtoul(o->group, &end, 10);
		if (errno || *end || !*o->group)
			bad_usage("--group %s: no such group", o->group);
		o->gid = (gid_t)g;
	}
}
