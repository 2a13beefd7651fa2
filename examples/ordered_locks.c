/* SPDX-License-Identifier: MIT */
/*
 * ordered_locks.c - two locks taken in opposite orders: the deadlock the
 * manager refuses, and the lock-ordering that avoids it.
 *
 * The idea: the textbook deadlock. Process 1 holds lock A and asks for B;
 * process 2 holds B and asks for A. With plain threading.Lock objects both
 * would wait forever. jobqd sees every holder and waiter, so the request
 * that would close the cycle fails at once with -EDEADLK: that process
 * backs off (releases what it holds), the other one goes ahead, and the
 * first one tries again afterwards and succeeds.
 *
 * The cure is to take locks in one global order. jobq_lock_many() does
 * that for the caller: both processes ask for {A, B} in their own opposite
 * orders, the manager sorts them, and round after round neither process
 * ever sees -EDEADLK. A counter updated under both locks checks that they
 * really excluded each other.
 *
 *   ordered_locks [--dir DIR] [--rounds N]
 *
 * Exits 0 when exactly one process met -EDEADLK in the first part and
 * none did in the second, 1 otherwise, 2 on a bad argument.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jobq.h>

/* How a process of the first part ended: its exit status. */
enum {
	GOT_BOTH = 0,	 /* took both locks without trouble */
	BACKED_OFF = 10, /* met -EDEADLK, backed off, then took both */
	FAILED = 1,	 /* anything else */
};

static char lock_a[64], lock_b[64], counter[64];

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* A one-byte handshake over pipes: "I hold my first lock". */
static void tell(int fd)
{
	if (write(fd, "x", 1) != 1)
		_exit(FAILED);
}

static void await(int fd)
{
	char c;

	if (read(fd, &c, 1) != 1)
		_exit(FAILED);
}

/*
 * Part one, process @id: take @first, let the other know, wait until it
 * holds its own first lock, then ask for @second.
 */
static int opposite_orders(int id, const char *dir, const char *first,
			   const char *second, int tell_fd, int await_fd)
{
	int rc, backed_off = 0;
	jobq_t *q;

	rc = jobq_open(&q, dir);
	if (rc) {
		fprintf(stderr, "process %d: cannot connect: %s\n", id,
			jobq_strerror(rc));
		return FAILED;
	}
	rc = jobq_lock_acquire(q, first, 10);
	if (rc)
		goto fail;
	printf("process %d: holds %s, asks for %s\n", id, first, second);
	fflush(stdout);
	tell(tell_fd);
	await(await_fd);

	rc = jobq_lock_acquire(q, second, 10);
	if (rc == -EDEADLK) {
		/*
		 * Waiting would close the cycle. Let go of what we hold so
		 * the other process can finish, then start over.
		 */
		printf("process %d: -EDEADLK (%s): backing off, releasing %s\n",
		       id, jobq_strerror(rc), first);
		fflush(stdout);
		backed_off = 1;
		jobq_lock_release(q, first);
		sleep_ms(50);
		rc = jobq_lock_acquire(q, first, 10);
		if (!rc)
			rc = jobq_lock_acquire(q, second, 10);
	}
	if (rc)
		goto fail;
	printf("process %d: holds %s and %s%s\n", id, first, second,
	       backed_off ? " after retrying" : "");
	fflush(stdout);
	sleep_ms(20);
	jobq_lock_release(q, second);
	jobq_lock_release(q, first);
	jobq_close(q);
	return backed_off ? BACKED_OFF : GOT_BOTH;
fail:
	fprintf(stderr, "process %d: %s\n", id, jobq_strerror(rc));
	jobq_close(q);
	return FAILED;
}

/*
 * Part two, process @id: @rounds times take both locks with
 * jobq_lock_many() (in this process's own order), add one to the shared
 * counter by a read and a write, and release.
 */
static int lock_many_rounds(int id, const char *dir, const char *const *names,
			    int rounds)
{
	jobq_t *q;
	int rc;

	rc = jobq_open(&q, dir);
	if (rc)
		return FAILED;
	for (int r = 0; r < rounds; r++) {
		char buf[32];
		ssize_t n;
		long v;

		rc = jobq_lock_many(q, names, 2, 30);
		if (rc) {
			fprintf(stderr, "process %d: lock_many: %s\n", id,
				jobq_strerror(rc));
			break;
		}
		n = jobq_kv_get_buf(q, counter, buf, sizeof(buf) - 1, NULL);
		if (n < 0 || n >= (ssize_t)sizeof(buf)) {
			rc = n < 0 ? (int)n : -EINVAL;
			jobq_unlock_many(q, names, 2);
			break;
		}
		buf[n] = '\0';
		v = strtol(buf, NULL, 10);
		snprintf(buf, sizeof(buf), "%ld", v + 1);
		rc = jobq_kv_set(q, counter, JOBQ_T_TEXT, buf, strlen(buf));
		if (!rc)
			rc = jobq_unlock_many(q, names, 2);
		if (rc)
			break;
	}
	jobq_close(q);
	return rc ? FAILED : 0;
}

static int status_of(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return FAILED;
	return WEXITSTATUS(status);
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int rounds = 200, p1[2], p2[2], s1, s2, rc, ok = 1;
	pid_t a, b;
	jobq_t *q;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else {
			fprintf(
			    stderr,
			    "usage: ordered_locks [--dir DIR] [--rounds N]\n");
			return 2;
		}
	}
	if (rounds < 1)
		rounds = 1;
	snprintf(lock_a, sizeof(lock_a), "ordered_locks.%d.A", (int)getpid());
	snprintf(lock_b, sizeof(lock_b), "ordered_locks.%d.B", (int)getpid());
	snprintf(counter, sizeof(counter), "ordered_locks.%d.counter",
		 (int)getpid());

	/* Is a manager there at all? Say so before forking. */
	rc = jobq_open(&q, dir);
	if (rc) {
		fprintf(stderr, "ordered_locks: cannot connect: %s\n",
			jobq_strerror(rc));
		return 1;
	}
	rc = jobq_kv_set(q, counter, JOBQ_T_TEXT, "0", 1);
	jobq_close(q);
	if (rc) {
		fprintf(stderr, "ordered_locks: %s\n", jobq_strerror(rc));
		return 1;
	}

	printf("part 1: plain acquire, opposite orders\n");
	fflush(stdout);
	if (pipe(p1) || pipe(p2)) {
		perror("ordered_locks: pipe");
		return 1;
	}
	a = fork();
	if (a == 0)
		_exit(opposite_orders(1, dir, lock_a, lock_b, p1[1], p2[0]));
	b = fork();
	if (b == 0)
		_exit(opposite_orders(2, dir, lock_b, lock_a, p2[1], p1[0]));
	if (a < 0 || b < 0) {
		perror("ordered_locks: fork");
		return 1;
	}
	close(p1[0]);
	close(p1[1]);
	close(p2[0]);
	close(p2[1]);
	s1 = status_of(a);
	s2 = status_of(b);
	if (!((s1 == GOT_BOTH && s2 == BACKED_OFF) ||
	      (s1 == BACKED_OFF && s2 == GOT_BOTH))) {
		printf("FAILED: expected one process to get -EDEADLK and the "
		       "other to go ahead (exits %d and %d)\n",
		       s1, s2);
		ok = 0;
	} else {
		printf("ok: the deadlock was refused, one process backed "
		       "off, both finished\n");
	}

	printf("part 2: jobq_lock_many, opposite orders, %d rounds each\n",
	       rounds);
	fflush(stdout);
	{
		const char *order1[] = {lock_a, lock_b};
		const char *order2[] = {lock_b, lock_a};
		char buf[32];
		ssize_t n;
		long total = -1;

		a = fork();
		if (a == 0)
			_exit(lock_many_rounds(1, dir, order1, rounds));
		b = fork();
		if (b == 0)
			_exit(lock_many_rounds(2, dir, order2, rounds));
		if (a < 0 || b < 0) {
			perror("ordered_locks: fork");
			return 1;
		}
		s1 = status_of(a);
		s2 = status_of(b);
		if (jobq_open(&q, dir) == 0) {
			n = jobq_kv_get_buf(q, counter, buf, sizeof(buf) - 1,
					    NULL);
			if (n >= 0 && n < (ssize_t)sizeof(buf)) {
				buf[n] = '\0';
				total = strtol(buf, NULL, 10);
			}
			jobq_kv_del(q, counter);
			jobq_close(q);
		}
		if (s1 || s2 || total != 2L * rounds) {
			printf("FAILED: exits %d and %d, counter %ld of %d\n",
			       s1, s2, total, 2 * rounds);
			ok = 0;
		} else {
			printf("ok: %d rounds each, no -EDEADLK, counter %ld\n",
			       rounds, total);
		}
	}
	return ok ? 0 : 1;
}
