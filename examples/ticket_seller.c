/* SPDX-License-Identifier: MIT */
/*
 * ticket_seller.c - a Lock guarding state shared by many processes.
 *
 * The idea: Python's multiprocessing.Lock around a read-modify-write that
 * 100 processes do at once. Fifty tickets are a number in jobq's key/value
 * store; each seller process repeatedly takes the lock, reads how many are
 * left, sells one by writing back one less, and lets go. With the lock,
 * exactly fifty are sold and the count never goes below zero, however the
 * processes interleave. With --unsafe the lock is skipped and sellers that
 * read the same count sell the same ticket twice: the check then fails,
 * which is the point of the lock.
 *
 *   ticket_seller [--dir DIR] [--sellers N] [--tickets T] [--unsafe]
 *
 * Exits 0 when every ticket was sold exactly once, 1 when not, 2 on a bad
 * argument.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jobq.h>

struct result {
	int seller;
	int sold;
	int saw_negative;
	int error; /* a library error, 0 when none */
};

static void sleep_ms(double ms)
{
	struct timespec ts = {(time_t)(ms / 1000),
			      (long)((ms - (time_t)(ms / 1000) * 1000) * 1e6)};

	nanosleep(&ts, NULL);
}

/* Connect, waiting a little while the manager's client table is full. */
static int open_retry(jobq_t **q, const char *dir)
{
	int rc;

	for (int i = 0; i < 200; i++) {
		rc = jobq_open(q, dir);
		if (rc != JOBQ_ELIMIT)
			return rc;
		sleep_ms(50);
	}
	return rc;
}

static int read_count(jobq_t *q, const char *key, long *out)
{
	char buf[32];
	ssize_t n = jobq_kv_get_buf(q, key, buf, sizeof(buf) - 1, NULL);

	if (n < 0)
		return (int)n;
	if ((size_t)n >= sizeof(buf))
		return -EINVAL;
	buf[n] = '\0';
	*out = strtol(buf, NULL, 10);
	return 0;
}

/*
 * One seller: sell until none are left. The read and the write are two
 * separate requests; only the lock makes the pair atomic.
 */
static struct result seller(int id, const char *dir, const char *key,
			    const char *lock, int unsafe)
{
	struct result r = {.seller = id};
	jobq_t *q;
	int rc;

	rc = open_retry(&q, dir);
	if (rc) {
		r.error = rc;
		return r;
	}
	for (;;) {
		long left = 0;
		char buf[32];

		if (!unsafe && (rc = jobq_lock_acquire(q, lock, 60)))
			break;
		rc = read_count(q, key, &left);
		if (rc == 0 && left < 0)
			r.saw_negative = 1;
		if (rc || left <= 0) {
			if (!unsafe)
				jobq_lock_release(q, lock);
			break;
		}
		/* Take a moment, as real work would: races show up here. */
		sleep_ms(0.2);
		snprintf(buf, sizeof(buf), "%ld", left - 1);
		rc = jobq_kv_set(q, key, JOBQ_T_TEXT, buf, strlen(buf));
		if (rc == 0)
			r.sold++;
		if (!unsafe) {
			int rc2 = jobq_lock_release(q, lock);

			rc = rc ? rc : rc2;
		}
		if (rc)
			break;
	}
	r.error = rc;
	jobq_close(q);
	return r;
}

static void usage(void)
{
	fprintf(stderr, "usage: ticket_seller [--dir DIR] [--sellers N] "
			"[--tickets T] [--unsafe]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int sellers = 100, tickets = 50, unsafe = 0;
	char key[64], lock[64], buf[32];
	int go[2], res[2], failed = 0, total = 0, none = 0, negative = 0;
	struct result *results;
	jobq_t *q;
	long left = -1;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--sellers") && i + 1 < argc)
			sellers = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--tickets") && i + 1 < argc)
			tickets = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--unsafe"))
			unsafe = 1;
		else
			usage();
	}
	if (sellers < 1 || tickets < 0)
		usage();
	results = calloc((size_t)sellers, sizeof(*results));
	if (!results)
		return 1;

	/* Names of this run only, so runs side by side do not mix. */
	snprintf(key, sizeof(key), "ticket_seller.%d.left", (int)getpid());
	snprintf(lock, sizeof(lock), "ticket_seller.%d", (int)getpid());
	rc = jobq_open(&q, dir);
	if (rc) {
		fprintf(stderr, "ticket_seller: cannot connect: %s\n",
			jobq_strerror(rc));
		return 1;
	}
	snprintf(buf, sizeof(buf), "%d", tickets);
	rc = jobq_kv_set(q, key, JOBQ_T_TEXT, buf, strlen(buf));
	if (!rc)
		rc = jobq_lock_create(q, lock, JOBQ_LOCK, 0);
	/* A handle does not cross fork(): each seller opens its own. */
	jobq_close(q);
	if (rc) {
		fprintf(stderr, "ticket_seller: setting up: %s\n",
			jobq_strerror(rc));
		return 1;
	}

	/*
	 * Every seller waits on the "go" pipe, so they all start together
	 * once all of them exist; each reports on the results pipe (one
	 * write of less than PIPE_BUF bytes, so reports never interleave).
	 */
	if (pipe(go) || pipe(res)) {
		perror("ticket_seller: pipe");
		return 1;
	}
	for (int i = 0; i < sellers; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("ticket_seller: fork");
			sellers = i;
			break;
		}
		if (pid == 0) {
			struct result r;
			char c;

			close(go[1]);
			close(res[0]);
			while (read(go[0], &c, 1) < 0 && errno == EINTR)
				;
			r = seller(i, dir, key, lock, unsafe);
			if (write(res[1], &r, sizeof(r)) != sizeof(r))
				_exit(1);
			_exit(0);
		}
	}
	close(go[0]);
	close(res[1]);
	close(go[1]); /* go */

	for (;;) {
		struct result r;
		ssize_t n = read(res[0], &r, sizeof(r));

		if (n < 0 && errno == EINTR)
			continue;
		if (n != sizeof(r))
			break;
		if (r.seller >= 0 && r.seller < sellers)
			results[r.seller] = r;
	}
	for (int i = 0; i < sellers; i++) {
		int status;

		if (wait(&status) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			failed++;
	}

	printf("tickets sold by each of %d sellers%s:\n", sellers,
	       unsafe ? " (no lock)" : "");
	for (int i = 0; i < sellers; i++) {
		printf("%3d%s", results[i].sold, i % 20 == 19 ? "\n" : " ");
		total += results[i].sold;
		none += results[i].sold == 0;
		negative |= results[i].saw_negative;
		if (results[i].error) {
			fprintf(stderr, "ticket_seller: seller %d: %s\n", i,
				jobq_strerror(results[i].error));
			failed++;
		}
	}
	if (sellers % 20)
		printf("\n");

	rc = jobq_open(&q, dir);
	if (rc == 0) {
		if (read_count(q, key, &left))
			left = -1;
		jobq_kv_del(q, key);
		jobq_close(q);
	}
	printf("%d of %d tickets sold, %ld left, %d sellers sold none\n", total,
	       tickets, left, none);
	free(results);
	if (failed || total != tickets || left != 0 || negative) {
		printf("FAILED: %s\n", total > tickets
					   ? "tickets were sold twice"
				       : negative ? "the count went below zero"
				       : failed	  ? "a seller failed"
						  : "tickets are left over");
		return 1;
	}
	printf("ok: every ticket sold exactly once\n");
	return 0;
}
