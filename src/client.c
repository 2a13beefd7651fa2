/* SPDX-License-Identifier: MIT */
/*
 * client.c - the connection to jobqd: handshake, rings, arena, waiting.
 *
 * A request is a submission-ring entry (sqe) whose payload sits in this
 * client's arena; its answer is one or more completion-ring entries (cqe)
 * carrying the request's user_data. Three budgets keep the rings safe:
 *
 *  - the submission ring never holds more than sq_entries unread entries
 *    (we wait for the manager's head before reusing a slot);
 *  - the completions of every request in flight fit in the completion ring
 *    at once: a request reserves as many entries as it can produce (a get
 *    of n objects reserves n) and the sum never exceeds cq_entries, so the
 *    manager can always post and the ring can never overflow;
 *  - arena bytes stay allocated until the request's final completion, as
 *    the manager may read the payload any time before it answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

#define HANDSHAKE_NS (5 * JOBQ__NSEC_PER_SEC)
#define ARENA_ALIGN  8u
/*
 * Chunk records per completion entry. At most cq_entries chunks are live,
 * but chunks are given back in order only: a freed chunk behind a live one
 * (a put blocked on a full queue) keeps its record until the older one is
 * freed. Spare records let other requests go on meanwhile.
 */
#define CHUNKS_PER_CQE 16u

static __thread char errmsg[512];

const char *jobq__last_error_msg(void)
{
	return errmsg;
}

void jobq__set_error_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------------
 * Name caches: open addressing, linear probing, grown at half load.
 */
static uint32_t name_hash(const char *name)
{
	return jobq__hash(name, strlen(name));
}

/* The id cached for @name in @m: 0 and *id, or -ENOENT. Under q->mu. */
static int name_get(struct jobq__namemap *m, const char *name, uint32_t *id)
{
	uint32_t h, i;

	if (!m->cap)
		return -ENOENT;
	h = name_hash(name);
	for (i = h & (m->cap - 1); m->ents[i].name;
	     i = (i + 1) & (m->cap - 1)) {
		if (m->ents[i].hash == h && !strcmp(m->ents[i].name, name)) {
			*id = m->ents[i].id;
			return 0;
		}
	}
	return -ENOENT;
}

static void name_insert(struct jobq__namemap *m, char *name, uint32_t h,
			uint32_t id)
{
	uint32_t i = h & (m->cap - 1);

	while (m->ents[i].name)
		i = (i + 1) & (m->cap - 1);
	m->ents[i].name = name;
	m->ents[i].hash = h;
	m->ents[i].id = id;
	m->n++;
}

/* Caches @name -> @id in @m, replacing an id cached before (a queue that
 * was removed and made again has a new id); a failed allocation only
 * costs a later lookup. Under q->mu. */
static void name_put(struct jobq__namemap *m, const char *name, uint32_t id)
{
	uint32_t h = name_hash(name);
	char *copy;

	for (uint32_t i = m->cap ? h & (m->cap - 1) : 0;
	     m->cap && m->ents[i].name; i = (i + 1) & (m->cap - 1)) {
		if (m->ents[i].hash == h && !strcmp(m->ents[i].name, name)) {
			m->ents[i].id = id;
			return;
		}
	}
	if ((m->n + 1) * 2 > m->cap) {
		struct jobq__namemap bigger = {0};

		bigger.cap = m->cap ? m->cap * 2 : 64;
		bigger.ents = calloc(bigger.cap, sizeof(*bigger.ents));
		if (!bigger.ents)
			return; /* a cache: missing an entry costs a lookup */
		for (uint32_t i = 0; i < m->cap; i++)
			if (m->ents[i].name)
				name_insert(&bigger, m->ents[i].name,
					    m->ents[i].hash, m->ents[i].id);
		free(m->ents);
		*m = bigger;
	}
	copy = strdup(name);
	if (copy)
		name_insert(m, copy, name_hash(name), id);
}

int jobq__name_find(jobq_t *q, struct jobq__namemap *m,
		    int (*find)(jobq_t *, const char *, uint32_t *),
		    const char *name, uint32_t *id)
{
	int err;

	pthread_mutex_lock(&q->mu);
	err = name_get(m, name, id);
	pthread_mutex_unlock(&q->mu);
	if (!err)
		return 0;
	err = find(q, name, id);
	if (err)
		return err;
	pthread_mutex_lock(&q->mu);
	name_put(m, name, *id);
	pthread_mutex_unlock(&q->mu);
	return 0;
}

void jobq__name_cache(jobq_t *q, struct jobq__namemap *m, const char *name,
		      uint32_t id)
{
	pthread_mutex_lock(&q->mu);
	name_put(m, name, id);
	pthread_mutex_unlock(&q->mu);
}

int jobq__name_open(jobq_t *q, struct jobq__namemap *m, uint32_t max,
		    uint8_t opcode, const char *name, uint64_t arg0,
		    uint64_t arg1, uint32_t *id)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	int res;

	jobq__op_init(&op, &r, opcode, name, strlen(name));
	op.sqe.flags = JOBQ_SQE_CREATE;
	op.sqe.arg0 = arg0;
	op.sqe.arg1 = arg1;
	res = jobq__call(q, &op);
	if (res < 0)
		return res;
	/* A queue id carries a generation above its record (proto.h). */
	if (((uint32_t)res & JOBQ_QID_MASK) >= max)
		return -EPROTO;
	pthread_mutex_lock(&q->mu);
	name_put(m, name, (uint32_t)res);
	pthread_mutex_unlock(&q->mu);
	if (id)
		*id = (uint32_t)res;
	return 0;
}

static void name_free(struct jobq__namemap *m)
{
	for (uint32_t i = 0; i < m->cap; i++)
		free(m->ents[i].name);
	free(m->ents);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------------
 * Whom we talk to. Anyone can create a directory where ours does not exist
 * yet (/tmp/jobq-$UID) and start a manager there, which would then read our
 * objects and hand our workers its jobs. So before anything is sent, the
 * instance directory and the manager behind the socket must be this user's
 * own, or root's; or, when the caller chose a group with $JOBQ_GROUP, owned
 * by a member of that group, of that group and closed to others, as `jobqd
 * --group` makes it.
 */
struct trust {
	uid_t me;    /* our effective uid */
	uid_t owner; /* the directory's owner, trusted as a manager too */
};

/* The gid $JOBQ_GROUP names (a name or a number): 0 and *gid, or -ENOENT. */
static int chosen_group(gid_t *gid)
{
	const char *g = getenv("JOBQ_GROUP");
	struct group gr, *res = NULL;
	char buf[16384], *end;
	unsigned long v;

	if (!g || !*g)
		return -ENOENT;
	if (!getgrnam_r(g, &gr, buf, sizeof(buf), &res) && res) {
		*gid = res->gr_gid;
		return 0;
	}
	errno = 0;
	v = strtoul(g, &end, 10);
	if (errno || *end || v > (gid_t)-1)
		return -ENOENT;
	*gid = (gid_t)v;
	return 0;
}

/* Whether the caller is a member of @gid (effective or supplementary). */
static bool member_of(gid_t gid)
{
	gid_t *groups;
	bool found = false;
	int n;

	if (getegid() == gid)
		return true;
	n = getgroups(0, NULL);
	if (n <= 0)
		return false;
	groups = calloc((size_t)n, sizeof(*groups));
	if (!groups)
		return false;
	n = getgroups(n, groups);
	for (int i = 0; i < n && !found; i++)
		found = groups[i] == gid;
	free(groups);
	return found;
}

/*
 * check_dir - whether the instance directory may be trusted (see above).
 * Returns 0 with t filled in; -EACCES with a message naming the directory
 * and its owner; 0 too when it does not exist (the connect then says that
 * no manager runs there).
 */
static int check_dir(jobq_t *q, struct trust *t)
{
	struct stat st;
	gid_t gid;

	t->me = geteuid();
	t->owner = t->me;
	if (stat(q->dir, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		jobq__set_error_msg("cannot inspect instance directory %s "
				    "(this user is uid %u): %s",
				    q->dir, (unsigned)t->me, strerror(errno));
		return -errno;
	}
	if (st.st_uid == t->me || st.st_uid == 0) {
		/* Ours, yet anyone may put a socket in it. */
		if (st.st_mode & S_IWOTH) {
			jobq__set_error_msg(
			    "instance directory %s (owner uid %u) is writable "
			    "by others (mode %04o): refusing it; chmod 700 it",
			    q->dir, (unsigned)st.st_uid,
			    (unsigned)(st.st_mode & 07777));
			return -EACCES;
		}
		t->owner = st.st_uid;
		return 0;
	}
	if (!chosen_group(&gid) && st.st_gid == gid && member_of(gid) &&
	    !(st.st_mode & S_IRWXO)) {
		t->owner = st.st_uid;
		return 0;
	}
	jobq__set_error_msg("instance directory %s belongs to uid %u, not to "
			    "this user (uid %u) or root: refusing its manager "
			    "(to share one, run jobqd --group GROUP and set "
			    "JOBQ_GROUP=GROUP)",
			    q->dir, (unsigned)st.st_uid, (unsigned)t->me);
	return -EACCES;
}

/* check_peer - the manager on q->sock must run as t->me, root or the
 * directory's owner. Returns 0 or -EACCES with a message. */
static int check_peer(jobq_t *q, int fd, const struct trust *t)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -errno;
	if (cr.uid == t->me || cr.uid == 0 || cr.uid == t->owner)
		return 0;
	jobq__set_error_msg("the manager in %s runs as uid %u, not as this "
			    "user (uid %u), root or the directory's owner "
			    "(uid %u): refusing it",
			    q->dir, (unsigned)cr.uid, (unsigned)t->me,
			    (unsigned)t->owner);
	return -EACCES;
}

/* ------------------------------------------------------------------------
 * Handshake.
 */
static int connect_socket(jobq_t *q, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n, fd;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", q->dir,
		     JOBQ_SOCKET_NAME);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		jobq__set_error_msg("instance directory path too long: %s",
				    q->dir);
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;

		close(fd);
		if (err == ENOENT || err == ECONNREFUSED || err == ENOTDIR) {
			jobq__set_error_msg("no manager answers in %s (start "
					    "one with: jobqd --dir %s)",
					    q->dir, q->dir);
			return JOBQ_ENOMANAGER;
		}
		jobq__set_error_msg("cannot connect to %s (this user is uid "
				    "%u): %s",
				    sa.sun_path, (unsigned)geteuid(),
				    strerror(err));
		return -err;
	}
	*out = fd;
	return 0;
}

/* Receives the welcome and its descriptors, waiting at most 5 s in all. */
static int recv_welcome(jobq_t *q, int sock, struct jobq_welcome *w, int fds[4],
			int *nfds)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	uint64_t deadline = jobq__now_ns() + HANDSHAKE_NS;
	struct iovec iov = {.iov_base = w, .iov_len = sizeof(*w)};
	struct msghdr msg = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = cbuf.buf,
	    .msg_controllen = sizeof(cbuf.buf),
	};
	struct cmsghdr *c;
	ssize_t n;

	*nfds = 0;
	for (;;) {
		struct pollfd p = {.fd = sock, .events = POLLIN};
		uint64_t now = jobq__now_ns();
		int r;

		if (now >= deadline) {
			jobq__set_error_msg("the manager in %s did not answer "
					    "within 5 s",
					    q->dir);
			return -ETIMEDOUT;
		}
		r = poll(&p, 1, (int)((deadline - now) / 1000000 + 1));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0)
			break;
	}
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	/*
	 * A manager that refuses us answers and closes at once; when our
	 * hello reached it unread, the close leaves ECONNRESET pending ahead
	 * of its answer. The error is reported once; the answer, if there is
	 * one, is read next.
	 */
	if (n < 0 && errno == ECONNRESET)
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	/* A manager killed between our connect and its accept resets the
	 * connection: that is "no manager", like a refused connect. */
	if (n < 0)
		return errno == ECONNRESET || errno == EPIPE || errno == EAGAIN
			   ? JOBQ_ENOMANAGER
			   : -errno;
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (*nfds < 4)
				fds[(*nfds)++] = fd;
			else
				close(fd);
		}
	}
	if (n == 0) {
		jobq__set_error_msg("the manager in %s closed the connection "
				    "during the handshake",
				    q->dir);
		return JOBQ_ENOMANAGER;
	}
	if ((size_t)n < sizeof(*w) || (msg.msg_flags & MSG_CTRUNC)) {
		jobq__set_error_msg("malformed welcome from the manager in %s",
				    q->dir);
		return -EPROTO;
	}
	return 0;
}

static bool pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/* Is [off, off + len) inside a mapping of @size bytes? */
static bool in_range(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

/*
 * Maps all of @fd shared with @prot into *p and its size into *size.
 * Returns 0, -EPROTO when it is smaller than @min bytes, or -errno.
 */
static int map_fd(int fd, int prot, size_t min, void **p, uint64_t *size)
{
	struct stat st;
	void *m;

	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < min)
		return -EPROTO;
	m = mmap(NULL, (size_t)st.st_size, prot, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	*p = m;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int map_store(jobq_t *q, int fd)
{
	void *p = NULL;
	int err;

	err = map_fd(fd, PROT_READ, sizeof(struct jobq_store_hdr), &p,
		     &q->store_mapped);
	if (err)
		return err;
	return jobq__store_adopt(q, p, q->store_mapped);
}

int jobq__store_adopt(jobq_t *q, const void *p, uint64_t size)
{
	const struct jobq_store_hdr *h = p;

	q->store = p;
	q->store_mapped = size;
	q->store_size = size;
	if (size < sizeof(*h)) {
		jobq__set_error_msg("the store of the manager in %s is "
				    "too small",
				    q->dir);
		return -EPROTO;
	}
	q->sh = h;
	if (h->magic != JOBQ_STORE_MAGIC || h->version != JOBQ_LAYOUT_VERSION ||
	    h->hdr_size != sizeof(*h)) {
		jobq__set_error_msg(
		    "the store of the manager in %s has another "
		    "layout (version %u, this library %u)",
		    q->dir, h->version, JOBQ_LAYOUT_VERSION);
		return JOBQ_EVERSION;
	}
	/* Polls for an answer from a quarter to three times what a wake-up
	 * costs there (spin.h), starting at once. */
	jobq__spin_init(&q->spin, h->wake_ns, 1, 4, 12);
	/* Records hold 8-byte fields and atomics: a misplaced table would
	 * make every read of it a misaligned access; and no table lies over
	 * the header. */
	if (h->size > q->store_size || !pow2(h->kv_slots) ||
	    h->queues_off % 8 || h->locks_off % 8 || h->kv_off % 8 ||
	    h->queues_off < sizeof(*h) || h->locks_off < sizeof(*h) ||
	    h->kv_off < sizeof(*h) ||
	    !in_range(h->queues_off,
		      (uint64_t)h->max_queues * sizeof(struct jobq_queue_rec),
		      h->size) ||
	    !in_range(h->locks_off,
		      (uint64_t)h->max_locks * sizeof(struct jobq_lock_rec),
		      h->size) ||
	    !in_range(h->kv_off,
		      (uint64_t)h->kv_slots * sizeof(struct jobq_kv_slot),
		      h->size)) {
		jobq__set_error_msg("the store of the manager in %s is "
				    "inconsistent",
				    q->dir);
		return JOBQ_EVERSION;
	}
	/* The job, job index, type and worker tables: misplaced ones make
	 * every job lookup fail with -ENOENT rather than refuse the store. */
	q->jobs_ok =
	    h->max_jobs && pow2(h->jobidx_slots) && !(h->jobs_off % 8) &&
	    h->jobs_off >= sizeof(*h) && h->jobidx_off >= sizeof(*h) &&
	    h->types_off >= sizeof(*h) && h->workers_off >= sizeof(*h) &&
	    !(h->jobidx_off % 8) && !(h->types_off % 8) &&
	    !(h->workers_off % 8) &&
	    in_range(h->jobs_off,
		     (uint64_t)h->max_jobs * sizeof(struct jobq_job_rec),
		     h->size) &&
	    in_range(h->jobidx_off,
		     (uint64_t)h->jobidx_slots * sizeof(uint64_t), h->size) &&
	    in_range(h->types_off,
		     (uint64_t)h->max_types * sizeof(struct jobq_type_rec),
		     h->size) &&
	    in_range(h->workers_off,
		     (uint64_t)h->max_clients * sizeof(struct jobq_worker_rec),
		     h->size);
	q->clients_ok =
	    h->hdr_size >= offsetof(struct jobq_store_hdr, quota_bad) +
			       sizeof(h->quota_bad) &&
	    !(h->clients_off % 8) && h->clients_off >= sizeof(*h) &&
	    in_range(h->clients_off,
		     (uint64_t)h->max_clients * sizeof(struct jobq_client_rec),
		     h->size);
	/* Offsets read from the store are checked against the size the
	 * header promises, never beyond what is mapped. */
	q->store_size = h->size;
	q->queues = (const void *)(q->store + h->queues_off);
	q->locks = (const void *)(q->store + h->locks_off);
	q->kv = (const void *)(q->store + h->kv_off);
	q->kv_mask = h->kv_slots - 1;
	q->max_queues = h->max_queues;
	q->max_locks = h->max_locks;
	q->max_object = h->max_object;
	return 0;
}

/*
 * region_adopt - take the @size bytes at @p (a client region, mapped
 * read-write) as q's region: check its header as untrusted input and set
 * the ring and arena fields of @q from it. Returns 0 or JOBQ_EVERSION
 * with a message.
 */
static int region_adopt(jobq_t *q, void *p, uint64_t size)
{
	struct jobq_region_hdr *h = p;

	q->region = p;
	q->region_size = size;
	q->rh = h;
	if (h->magic != JOBQ_REGION_MAGIC ||
	    h->version != JOBQ_LAYOUT_VERSION) {
		jobq__set_error_msg("the client region from the manager in %s "
				    "has another layout",
				    q->dir);
		return JOBQ_EVERSION;
	}
	/* A completion names its request by a slot below 1 << 16. */
	if (h->size > q->region_size || !pow2(h->sq_entries) ||
	    !pow2(h->cq_entries) || h->cq_entries < h->sq_entries ||
	    h->cq_entries > JOBQ_UD_SLOT_MASK + 1u || h->sq_off % 8 ||
	    h->cq_off % 8 ||
	    !in_range(h->sq_off,
		      (uint64_t)h->sq_entries * sizeof(struct jobq_sqe),
		      h->size) ||
	    !in_range(h->cq_off,
		      (uint64_t)h->cq_entries * sizeof(struct jobq_cqe),
		      h->size) ||
	    !in_range(h->arena_off, h->arena_size, h->size) ||
	    h->arena_size < 64) {
		jobq__set_error_msg("the client region from the manager in %s "
				    "is inconsistent",
				    q->dir);
		return JOBQ_EVERSION;
	}
	q->sqes = (void *)(q->region + h->sq_off);
	q->cqes = (void *)(q->region + h->cq_off);
	q->sq_entries = h->sq_entries;
	q->cq_entries = h->cq_entries;
	q->arena = q->region + h->arena_off;
	q->arena_off = h->arena_off;
	q->arena_size = h->arena_size;
	q->sq_tail = load_relaxed(&h->sq.tail);
	q->cq_head = load_relaxed(&h->cq.head);
	return 0;
}

static int map_region(jobq_t *q, int fd)
{
	void *p = NULL;
	uint64_t size;
	int err;

	err = map_fd(fd, PROT_READ | PROT_WRITE, sizeof(struct jobq_region_hdr),
		     &p, &size);
	if (err)
		return err;
	return region_adopt(q, p, size);
}

static int init_tables(jobq_t *q)
{
	q->slots = calloc(q->cq_entries, sizeof(*q->slots));
	q->free_slots = calloc(q->cq_entries, sizeof(*q->free_slots));
	q->nchunks = q->cq_entries * CHUNKS_PER_CQE;
	q->chunks = calloc(q->nchunks, sizeof(*q->chunks));
	if (!q->slots || !q->free_slots || !q->chunks)
		return -ENOMEM;
	for (uint32_t i = 0; i < q->cq_entries; i++)
		q->free_slots[i] = q->cq_entries - 1 - i;
	q->nfree = q->cq_entries;
	return 0;
}

static void handle_free(jobq_t *q)
{
	struct jobq_req *r = q->done_head;

	while (r) {
		struct jobq_req *next = r->next_done;

		jobq_obj_free(&r->obj1);
		free(r);
		r = next;
	}
	/* Asynchronous requests still in flight are abandoned. */
	if (q->slots)
		for (uint32_t i = 0; i < q->cq_entries; i++)
			if (q->slots[i] &&
			    (q->slots[i]->async || q->slots[i]->detached)) {
				jobq_obj_free(&q->slots[i]->obj1);
				free(q->slots[i]);
			}
	if (q->store)
		munmap((void *)q->store, (size_t)q->store_mapped);
	for (uint32_t i = 0; i < q->nretired; i++)
		munmap(q->retired[i].p, q->retired[i].len);
	free(q->retired);
	if (q->region)
		munmap(q->region, q->region_size);
	if (q->sock >= 0)
		close(q->sock);
	if (q->sq_efd >= 0)
		close(q->sq_efd);
	if (q->cq_efd >= 0)
		close(q->cq_efd);
	if (q->lead_efd >= 0)
		close(q->lead_efd);
	free(q->slots);
	free(q->free_slots);
	free(q->chunks);
	name_free(&q->qnames);
	name_free(&q->lnames);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q);
}

/*
 * handshake - connect to the manager of q->dir, check it (the directory,
 * the peer's uid), say hello (with @floor, the lowest request id still
 * waiting, and JOBQ_HELLO_RECONNECT when @again) and receive the welcome
 * and its four descriptors. Returns 0 with the socket in *sock and the
 * descriptors in @fds; else an error with a message, nothing left open.
 */
static int handshake(jobq_t *q, bool again, uint64_t floor, int *sock,
		     int fds[4])
{
	struct jobq_hello hello = {
	    .magic = JOBQ_HELLO_MAGIC,
	    .version = JOBQ_LAYOUT_VERSION,
	    .pid = getpid(),
	    .flags = again ? JOBQ_HELLO_RECONNECT : 0,
	    /* A handle that never reconnects never resends: the manager
	     * need not keep its answers. */
	    .session = q->reconnect_ns ? q->session : 0,
	    .floor = floor,
	};
	uint64_t keep_ms = q->reconnect_ns / 1000000;
	struct jobq_welcome w = {0};
	struct trust trust;
	int nfds = 0, fd = -1, err;
	ssize_t n;

	hello.keep_ms = keep_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)keep_ms;
	err = check_dir(q, &trust);
	if (!err)
		err = connect_socket(q, &fd);
	if (!err)
		err = check_peer(q, fd, &trust);
	if (err)
		goto fail;

	snprintf(hello.name, sizeof(hello.name), "%s",
		 program_invocation_short_name);
	do
		n = send(fd, &hello, sizeof(hello), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	/* A manager that refused us may have closed before our hello
	 * arrived: its answer still waits to be read, and says why. */
	if (n < 0 && errno != EPIPE && errno != ECONNRESET) {
		err = -errno;
		goto fail;
	}

	err = recv_welcome(q, fd, &w, fds, &nfds);
	if (err)
		goto fail;
	w.msg[sizeof(w.msg) - 1] = '\0';
	if (w.magic != JOBQ_HELLO_MAGIC || w.version != JOBQ_LAYOUT_VERSION) {
		jobq__set_error_msg(
		    "the manager in %s speaks layout version %u, "
		    "this library %u",
		    q->dir, w.version, JOBQ_LAYOUT_VERSION);
		err = JOBQ_EVERSION;
		goto fail;
	}
	if (w.status == -EACCES || w.status == -EPERM) {
		jobq__set_error_msg("the manager in %s refuses this user (uid "
				    "%u): %s",
				    q->dir, (unsigned)geteuid(), w.msg);
		err = -EACCES;
		goto fail;
	}
	if (w.status < 0) {
		jobq__set_error_msg("%s", w.msg);
		err = w.status;
		goto fail;
	}
	if (nfds != 4) {
		jobq__set_error_msg("the manager in %s sent %d descriptors, "
				    "not 4",
				    q->dir, nfds);
		err = -EPROTO;
		goto fail;
	}
	*sock = fd;
	return 0;

fail:
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (fd >= 0)
		close(fd);
	return err;
}

/* The reconnect window: @opts, else $JOBQ_RECONNECT, else 30 s. */
static uint64_t reconnect_window(const struct jobq_open_opts *opts)
{
	const char *env = getenv("JOBQ_RECONNECT");
	double s = 30;

	if (opts && opts->reconnect != 0) {
		s = opts->reconnect;
	} else if (env && *env) {
		char *end;
		double v = strtod(env, &end);

		if (end != env && !*end)
			s = v;
	}
	if (!(s > 0))
		return 0;
	if (s > 86400.0 * 365)
		s = 86400.0 * 365;
	return (uint64_t)(s * 1e9);
}

/* A session id no other handle has: 64 random bits (never 0). */
static uint64_t new_session(void)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = jobq__now_ns() ^ ((uint64_t)getpid() << 40) ^
		    (uint64_t)(uintptr_t)&v;
	return v ? v : 1;
}

int jobq_open_ex(jobq_t **qp, const char *dir,
		 const struct jobq_open_opts *opts)
{
	int fds[4] = {-1, -1, -1, -1};
	pthread_condattr_t ca;
	const char *busy;
	jobq_t *q;
	int err;

	errmsg[0] = '\0';
	if (opts && (!jobq__reserved_zero(opts->reserved, 6) ||
		     opts->reserved0 || opts->busy_poll > 1))
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->sock = q->sq_efd = q->cq_efd = -1;
	q->lead_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->lead_efd < 0) {
		err = -errno;
		free(q);
		return err;
	}
	q->pid = jobq__pid();
	q->session = new_session();
	q->next_rid = 1;
	q->reconnect_ns = reconnect_window(opts);
	busy = getenv("JOBQ_BUSY_POLL");
	q->busy_poll =
	    (opts && opts->busy_poll) || (busy && !strcmp(busy, "1"));
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);

	err = jobq__resolve_dir(dir, q->dir, sizeof(q->dir));
	if (!err)
		err = handshake(q, false, 1, &q->sock, fds);
	if (err)
		goto fail;
	err = map_store(q, fds[0]);
	if (!err)
		err = map_region(q, fds[1]);
	if (!err)
		err = init_tables(q);
	close(fds[0]);
	close(fds[1]);
	q->sq_efd = fds[2];
	q->cq_efd = fds[3];
	if (err)
		goto fail;
	/* Reads of the completion eventfd must never block: several threads
	 * (a sleeping leader, jobq_process) may drain it. */
	fcntl(q->cq_efd, F_SETFL, fcntl(q->cq_efd, F_GETFL) | O_NONBLOCK);
	*qp = q;
	return 0;

fail:
	handle_free(q);
	return err;
}

int jobq_open(jobq_t **qp, const char *dir)
{
	return jobq_open_ex(qp, dir, NULL);
}

void jobq_close(jobq_t *q)
{
	uint32_t bye = JOBQ_BYE_MAGIC;

	if (!q)
		return;
	/* Say goodbye, so that the manager counts a client that left, not
	 * one that died. Never waits: a full socket only loses the word. A
	 * forked child closing its copy says nothing: the connection is
	 * its parent's, which goes on. */
	if (q->sock >= 0 && q->region && getpid() == q->pid &&
	    send(q->sock, &bye, sizeof(bye), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* The manager is gone or busy: nothing to tell. */
	}
	handle_free(q);
}

const char *jobq_dir(const jobq_t *q)
{
	return q->dir;
}

size_t jobq_max_object(const jobq_t *q)
{
	return (size_t)q->max_object;
}

/* ------------------------------------------------------------------------
 * Arena: a ring of chunks in byte positions that only grow. A chunk never
 * straddles the arena's end: the tail of the arena that is too short is
 * added to the chunk as padding.
 */
/*
 * Where @len bytes would go: at arena offset *off, the chunk ending at byte
 * position *end. Returns whether they fit now, in bytes and in chunk
 * records.
 */
static bool arena_fit(jobq_t *q, uint64_t len, uint64_t *off, uint64_t *end)
{
	uint64_t pad = 0;

	len = (len + ARENA_ALIGN - 1) & ~(uint64_t)(ARENA_ALIGN - 1);
	*off = q->alloc_pos % q->arena_size;
	if (*off + len > q->arena_size) {
		pad = q->arena_size - *off;
		*off = 0;
	}
	*end = q->alloc_pos + pad + len;
	return *end - q->free_pos <= q->arena_size &&
	       q->chunk_tail - q->chunk_head < q->nchunks;
}

/* Takes @len bytes: their arena offset in *off, their chunk in *chunk.
 * Returns 0 or -EAGAIN when they do not fit now. */
static int arena_alloc(jobq_t *q, uint64_t len, uint64_t *off, int32_t *chunk)
{
	uint64_t end;

	if (!arena_fit(q, len, off, &end))
		return -EAGAIN;
	*chunk = (int32_t)(q->chunk_tail % q->nchunks);
	q->chunks[*chunk].end = end;
	q->chunks[*chunk].live = true;
	q->chunk_tail++;
	q->alloc_pos = end;
	return 0;
}

static void arena_free(jobq_t *q, int32_t chunk)
{
	q->chunks[chunk].live = false;
	while (q->chunk_head != q->chunk_tail &&
	       !q->chunks[q->chunk_head % q->nchunks].live) {
		q->free_pos = q->chunks[q->chunk_head % q->nchunks].end;
		q->chunk_head++;
	}
	/*
	 * Empty: the next chunk starts at the arena's beginning again, so a
	 * stream of small requests keeps reusing the same few pages instead
	 * of walking through all of the arena (every page it touches stays in
	 * this process's and the manager's memory).
	 */
	if (q->chunk_head == q->chunk_tail) {
		uint64_t next = (q->alloc_pos + q->arena_size - 1) /
				q->arena_size * q->arena_size;

		q->alloc_pos = q->free_pos = next;
	}
}

/* ------------------------------------------------------------------------
 * Completions.
 */
int jobq__copy_object(jobq_t *q, uint64_t off, uint32_t len, uint32_t type,
		      jobq_obj_t *out)
{
	char *p;

	if (!in_range(off, len, q->store_size) || (len && off == 0))
		return -EIO;
	p = malloc((size_t)len + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p, q->store + off, len);
	p[len] = '\0';
	out->type = type;
	out->flags = 0;
	out->len = len;
	out->data = p;
	return 0;
}

/*
 * Copies the object of completion @c out for request @r: into the
 * caller's buffer while it has room (jobq_get_many_into(), so that a
 * batch costs no malloc and no free, and glibc has no heap top to trim
 * after every batch), else into a malloc'd block. Under q->mu.
 */
static int copy_object_req(jobq_t *q, struct jobq_req *r,
			   const struct jobq_cqe *c)
{
	jobq_obj_t *out = &r->objs[r->nobj];
	size_t at = (r->bufused + 7) & ~(size_t)7;
	uint8_t *p;

	if (!r->buf || at > r->buflen || r->buflen - at < (size_t)c->len + 1)
		return jobq__copy_object(q, c->val, c->len, c->type, out);
	if (!in_range(c->val, c->len, q->store_size) || (c->len && !c->val))
		return -EIO;
	p = r->buf + at;
	memcpy(p, q->store + c->val, c->len);
	p[c->len] = '\0';
	r->bufused = at + c->len + 1;
	out->type = c->type;
	out->flags = JOBQ_OBJ_BORROWED;
	out->len = c->len;
	out->data = p;
	return 0;
}

static void finish_req(jobq_t *q, struct jobq_req *r, int res, uint64_t val)
{
	uint32_t slot = (uint32_t)(r->user_data & JOBQ_UD_SLOT_MASK);

	r->res = res;
	r->val = val;
	r->done = true;
	q->slots[slot] = NULL;
	q->free_slots[q->nfree++] = slot;
	q->reserved -= r->reserve;
	if (r->chunk >= 0)
		arena_free(q, r->chunk);
	r->chunk = -1;
	if (r->detached) {
		free(r);
		return;
	}
	if (r->async) {
		r->next_done = NULL;
		if (q->done_tail)
			q->done_tail->next_done = r;
		else
			q->done_head = r;
		q->done_tail = r;
	}
}

/* Makes the completion eventfd readable, as the manager would. */
static void kick_efd(jobq_t *q)
{
	uint64_t one = 1;

	if (write(q->cq_efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, so already readable. */
	}
}

/* Wakes the leader asleep in sleep_cq(). */
static void kick_leader(jobq_t *q)
{
	uint64_t one = 1;

	if (write(q->lead_efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: saturated, so already readable. */
	}
}

/* Makes the submission eventfd readable: the manager wakes and looks. */
static void wake_manager(jobq_t *q)
{
	uint64_t one = 1;

	if (write(q->sq_efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, so already readable;
		 * other errors surface as a dead socket. */
	}
}

/* The manager is gone for good: every request in flight fails. */
static void fail_all_locked(jobq_t *q, int err)
{
	for (uint32_t i = 0; i < q->cq_entries; i++)
		if (q->slots[i])
			finish_req(q, q->slots[i], err, 0);
	pthread_cond_broadcast(&q->cv);
}

static void mark_closed_locked(jobq_t *q)
{
	atomic_store(&q->closed, true);
	if (!q->gone) {
		q->gone = true;
		q->gone_err = JOBQ_ECLOSED;
	}
	fail_all_locked(q, q->gone_err);
}

/*
 * A request the manager answered JOBQ_ECLOSED because it is stopping (a
 * wait it will not start or finish): with reconnecting on, the request
 * stays in flight and is sent again to the manager that comes back.
 * Worker reservations are not held: a worker told to stop stops.
 */
static bool held_over_stop(const jobq_t *q, const struct jobq_req *r)
{
	if (!q->reconnect_ns || q->gone)
		return false;
	switch (r->sqe.op) {
	case JOBQ_OP_Q_GET:
	case JOBQ_OP_Q_PUT:
	case JOBQ_OP_Q_PUT_MANY:
	case JOBQ_OP_Q_JOIN:
	case JOBQ_OP_JOB_WAIT:
		return true;
	default:
		return false;
	}
}

/*
 * Consumes every completion the manager has posted. Objects are copied out
 * of the store before cq.head moves past their entry: moving the head is
 * what lets the manager free them. Returns how many entries were consumed.
 * Called with q->mu held.
 */
static int reap_locked(jobq_t *q, bool in_process)
{
	uint32_t head = q->cq_head, tail = load_acquire(&q->rh->cq.tail);
	uint32_t mask = q->cq_entries - 1;
	int n = 0;
	bool async_done = false;

	if (tail - head > q->cq_entries) {
		/* A manager that overruns the ring is broken; stop trusting
		 * this connection rather than read garbage. */
		mark_closed_locked(q);
		return 0;
	}
	while (head != tail) {
		struct jobq_cqe c = q->cqes[head & mask];
		uint32_t slot = (uint32_t)(c.user_data & JOBQ_UD_SLOT_MASK);
		struct jobq_req *r = NULL;

		if (c.user_data == JOBQ_UD_NOTICE) {
			if (q->notice_fn)
				q->notice_fn(q, &c, q->notice_arg);
			head++;
			n++;
			continue;
		}
		if (slot < q->cq_entries && q->slots[slot] &&
		    q->slots[slot]->user_data == c.user_data)
			r = q->slots[slot];
		if (r && (c.flags & JOBQ_CQE_OBJECT)) {
			if (r->nobj < r->maxobj) {
				int err = copy_object_req(q, r, &c);

				/* Out of memory: stop here, leaving the
				 * object unacknowledged, and retry later. */
				if (err == -ENOMEM)
					break;
				if (err)
					r->copy_err = err;
				else
					r->nobj++;
			}
		}
		if (r && (c.flags & JOBQ_CQE_JOB) && r->njobs < r->maxjobs)
			r->jobs[r->njobs++] = c;
		if (r && !(c.flags & JOBQ_CQE_MORE) && c.res == JOBQ_ECLOSED &&
		    !r->nobj && !r->njobs && held_over_stop(q, r))
			r = NULL; /* sent again after the reconnect */
		if (r && !(c.flags & JOBQ_CQE_MORE)) {
			bool was_async = r->async;

			finish_req(q, r, c.res, c.val);
			if (was_async)
				async_done = true;
		}
		head++;
		n++;
	}
	if (n) {
		q->cq_head = head;
		store_release(&q->rh->cq.head, head);
		/*
		 * The manager may wait for this head: to post completions
		 * that did not fit, to take requests that need cq room, or to
		 * free acknowledged objects for a put that waits for memory.
		 * Then it set WANT_HEAD before it slept (proto.h); the fence
		 * pairs with its fence between setting it and reading head.
		 */
		full_fence();
		if (load_relaxed(&q->rh->cq.pflags) & JOBQ_RING_WANT_HEAD)
			wake_manager(q);
		pthread_cond_broadcast(&q->cv);
		/*
		 * The leader sleeps outside q->mu, so whoever holds it now is
		 * not the leader. Those completions may include the leader's
		 * own, and the leader, having seen an empty ring, may already
		 * sleep with nothing left to announce them: kick it so that
		 * it looks again. Through its own doorbell: a thread polling
		 * jobq_fd() would drain the shared eventfd before the leader
		 * saw it, and the leader would sleep for good.
		 */
		if (q->leader)
			kick_leader(q);
		/* A thread other than the event loop's consumed completions
		 * whose callbacks are due: make the descriptor readable so the
		 * loop comes to run them. */
		else if (async_done && !in_process &&
			 (atomic_load(&q->always_wake) ||
			  atomic_load(&q->wake_holds)))
			kick_efd(q);
	}
	return n;
}

static bool cq_ready(jobq_t *q)
{
	return load_acquire(&q->rh->cq.tail) != load_relaxed(&q->rh->cq.head);
}

bool jobq__cq_ready(jobq_t *q)
{
	return cq_ready(q);
}

void jobq__wake_hold(jobq_t *q)
{
	atomic_fetch_add(&q->wake_holds, 1);
	atomic_fetch_or(&q->rh->cq.flags, JOBQ_RING_NEED_WAKEUP);
	full_fence();
}

void jobq__wake_release(jobq_t *q)
{
	if (atomic_fetch_sub(&q->wake_holds, 1) != 1)
		return;
	atomic_fetch_and(&q->rh->cq.flags, ~JOBQ_RING_NEED_WAKEUP);
	/* A hold taken meanwhile may have set the flag just before that
	 * clear, and its sleeper may be asleep already: set it again, and
	 * since completions posted while it was clear announced nothing,
	 * make the eventfd readable if there are any. */
	if (atomic_load(&q->wake_holds)) {
		atomic_fetch_or(&q->rh->cq.flags, JOBQ_RING_NEED_WAKEUP);
		full_fence();
		if (cq_ready(q))
			kick_efd(q);
	}
}

bool jobq__socket_dead(jobq_t *q)
{
	char b[64];

	for (;;) {
		ssize_t n = recv(q->sock, b, sizeof(b), MSG_DONTWAIT);

		if (n == 0)
			return true;
		if (n < 0)
			return errno != EAGAIN && errno != EWOULDBLOCK &&
			       errno != EINTR;
	}
}

static void drain_efd(jobq_t *q)
{
	uint64_t v;

	if (read(q->cq_efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: another thread drained it first. */
	}
}

/* Looks for a completion 32 times, pausing between looks: about a
 * microsecond, between two reads of the clock. */
static bool cq_ready_soon(jobq_t *q)
{
	for (int i = 0; i < 32; i++) {
		if (cq_ready(q))
			return true;
		jobq__cpu_relax();
	}
	return false;
}

/* How long a busy poll goes before it looks at anything else. */
#define BUSY_SLICE_NS 1000000u

/* How poll_cq() ended. */
enum poll_end {
	POLL_READY,	/* a completion is there */
	POLL_TIMEOUT,	/* the window ran out */
	POLL_PREEMPTED, /* this thread was kept off its CPU */
	POLL_OFFCPU,	/* jobqd is awake but its turns stand still */
	POLL_PARKED,	/* jobqd took every request and holds them */
};

/*
 * Polls for a completion for up to q->spin.ns (spin.h), and stops early
 * when polling cannot pay:
 *
 *  - This thread was kept off its CPU: someone else needs it.
 *  - jobqd is awake but its turn count stands still: jobqd is off its CPU
 *    (or in a turn far longer than usual); a wake-up will bring the answer.
 *  - jobqd has taken every request of ours and turned twice since without
 *    answering: they wait for another process (a get on an empty queue, a
 *    job's result, a lock), which may need this very CPU. We give it the
 *    CPU once (one sched_yield(), never a loop of them: a directed hand-off
 *    to a process that may be queued behind us), poll a little more, and
 *    then sleep, so that a producer that runs ahead fills the queue while
 *    its consumer sleeps and wakes it once for the lot.
 */
static enum poll_end poll_cq(jobq_t *q, uint64_t start, uint64_t *now)
{
	const struct jobq_store_hdr *h = q->sh;
	uint64_t beat = load_relaxed(&h->beat), last = start, beat_at = start;
	uint64_t taken_at = 0; /* jobqd's turn when it had taken them all */
	bool yielded = false;

	while (*now - start < q->spin.ns) {
		uint64_t b;

		if (cq_ready_soon(q))
			return POLL_READY;
		*now = jobq__now_ns();
		if (*now - last > JOBQ__SPIN_GAP_NS)
			return POLL_PREEMPTED;
		last = *now;
		b = load_relaxed(&h->beat);
		if (b != beat) {
			beat = b;
			beat_at = *now;
		} else if (*now - beat_at > JOBQ__SPIN_GAP_NS &&
			   !(load_relaxed(&q->rh->sq.flags) &
			     JOBQ_RING_NEED_WAKEUP)) {
			return POLL_OFFCPU;
		}
		if (load_acquire(&q->rh->sq.head) !=
		    load_relaxed(&q->rh->sq.tail)) {
			taken_at = 0;
		} else if (!taken_at) {
			taken_at = b;
		} else if (b - taken_at >= 2) {
			if (yielded)
				return POLL_PARKED;
			yielded = true;
			sched_yield();
			/* Whoever ran meanwhile was asked for: not a sign
			 * that polling keeps anyone off this CPU. */
			last = *now = jobq__now_ns();
		}
	}
	return POLL_TIMEOUT;
}

/*
 * jobq_open_opts.busy_poll: polls without sleeping until a completion
 * comes, @max_ns pass or a millisecond has; then returns, so that the
 * caller looks at what else it waits for (room in the submission ring, a
 * kick from another thread), having checked that the manager lives.
 */
static void busy_poll_cq(jobq_t *q, uint64_t start, uint64_t max_ns)
{
	uint64_t now = start;

	if (max_ns > BUSY_SLICE_NS)
		max_ns = BUSY_SLICE_NS;
	while (now - start < max_ns) {
		if (cq_ready_soon(q))
			return;
		now = jobq__now_ns();
	}
	if (jobq__socket_dead(q))
		atomic_store(&q->closed, true);
}

/*
 * Waits, without q->mu, until the completion ring has something, the
 * manager dies, the completion eventfd is written for another reason (room
 * in the submission ring, a kick from another thread) or @max_ns passes
 * (UINT64_MAX: never): polls for a while (poll_cq()), then announces that
 * it sleeps (NEED_WAKEUP), fences, checks again and sleeps on the eventfd
 * and the socket. Only the leader calls this, so the flag has one writer
 * at a time; jobq_fd() may set it concurrently, hence atomic updates.
 *
 * The sleep has no bound of its own: every event it waits for writes the
 * eventfd or closes the socket after the flag or the ring says so (proto.h),
 * so nothing is lost and an idle client does not wake.
 */
static void sleep_cq(jobq_t *q, uint64_t max_ns)
{
	uint64_t start = jobq__now_ns(), now = start;
	bool forever = max_ns == UINT64_MAX;
	struct pollfd p[3];
	int r;

	if (q->busy_poll) {
		busy_poll_cq(q, start, max_ns);
		return;
	}
	switch (poll_cq(q, start, &now)) {
	case POLL_READY:
		jobq__spin_paid(&q->spin);
		return;
	case POLL_TIMEOUT:
		jobq__spin_missed(&q->spin, false);
		break;
	case POLL_PREEMPTED:
		jobq__spin_missed(&q->spin, true);
		break;
	case POLL_OFFCPU:
	case POLL_PARKED:
		/* Says nothing of the window: what we wait for is not
		 * jobqd's answer to come while it runs. */
		break;
	}
	if (max_ns <= now - start)
		return;
	max_ns -= now - start;

	jobq__wake_hold(q);
	if (!cq_ready(q)) {
		struct timespec ts = {
		    .tv_sec = (time_t)(max_ns / JOBQ__NSEC_PER_SEC),
		    .tv_nsec = (long)(max_ns % JOBQ__NSEC_PER_SEC),
		};

		p[0] = (struct pollfd){.fd = q->cq_efd, .events = POLLIN};
		p[1] = (struct pollfd){.fd = q->sock, .events = POLLIN};
		p[2] = (struct pollfd){.fd = q->lead_efd, .events = POLLIN};
		/* The exact time left, not rounded to milliseconds. */
		r = ppoll(p, 3, forever ? NULL : &ts, NULL);
		if (r > 0 && (p[0].revents & POLLIN))
			drain_efd(q);
		if (r > 0 && (p[2].revents & POLLIN)) {
			uint64_t v;

			if (read(q->lead_efd, &v, sizeof(v)) < 0) {
				/* EAGAIN: nothing to take. */
			}
		}
		if (r > 0 && p[1].revents && jobq__socket_dead(q))
			atomic_store(&q->closed, true);
	}
	jobq__wake_release(q);
}

/* ------------------------------------------------------------------------
 * Reconnecting (jobq.h says what a caller sees).
 *
 * Everything happens under q->mu, with no thread asleep on the old
 * descriptors (the leader steps down first: its socket is dead, so its
 * poll returns). The old region stays mapped until the requests in flight
 * are copied out of it: their entries are kept in each request (r->sqe),
 * their payloads are still in the old arena (a chunk lives until its
 * request's final completion). The new socket and eventfds take the old
 * descriptor numbers (dup3), so that an event loop polling jobq_fd() goes
 * on polling the right one; the new store takes the old store's address
 * when it fits, so that readers outside q->mu keep a valid mapping.
 */
#define BACKOFF_MIN_NS (10 * 1000000ull)
#define BACKOFF_MAX_NS JOBQ__NSEC_PER_SEC
/* A manager stopped on purpose gets this long to come back (a restart). */
#define STOPPED_GRACE_NS (5 * JOBQ__NSEC_PER_SEC)

static void publish_locked(jobq_t *q);
static bool sq_has_room(jobq_t *q);

static int cmp_rid(const void *a, const void *b)
{
	const struct jobq_req *x = *(struct jobq_req *const *)a;
	const struct jobq_req *y = *(struct jobq_req *const *)b;

	return x->user_data < y->user_data ? -1 : x->user_data > y->user_data;
}

/* The new store @fd replaces the old one: at its address when it fits. */
static int remap_store(jobq_t *q, int fd)
{
	struct stat st;
	void *p;

	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < sizeof(struct jobq_store_hdr))
		return -EPROTO;
	if ((uint64_t)st.st_size <= q->store_mapped) {
		p = mmap((void *)q->store, (size_t)st.st_size, PROT_READ,
			 MAP_SHARED | MAP_FIXED, fd, 0);
		if (p == MAP_FAILED)
			return -errno;
		/* The rest of the old mapping stays: a reader racing the
		 * switch may still look there, and the header's sizes keep
		 * every later offset inside the new store. */
		return jobq__store_adopt(q, p, (uint64_t)st.st_size);
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	{
		struct jobq__retired *nr =
		    realloc(q->retired, (q->nretired + 1) * sizeof(*nr));

		if (!nr) {
			munmap(p, (size_t)st.st_size);
			return -ENOMEM;
		}
		q->retired = nr;
		nr[q->nretired].p = (void *)q->store;
		nr[q->nretired].len = (size_t)q->store_mapped;
		q->nretired++;
	}
	return jobq__store_adopt(q, p, (uint64_t)st.st_size);
}

/* Moves descriptor @from to number @to (closing what @to was). */
static int move_fd(int from, int to)
{
	int r = dup3(from, to, O_CLOEXEC);

	close(from);
	return r < 0 ? -errno : 0;
}

/*
 * Waits (q->mu held) until the new sq has room for one more entry.
 * Returns 0, or JOBQ_ECLOSED when the new manager went away too.
 */
static int resend_room(jobq_t *q)
{
	while (!sq_has_room(q)) {
		struct pollfd p = {.fd = q->sock, .events = POLLIN};

		publish_locked(q);
		atomic_fetch_or(&q->rh->sq.pflags, JOBQ_RING_WANT_HEAD);
		full_fence();
		if (sq_has_room(q))
			break;
		if (poll(&p, 1, 1) > 0 && jobq__socket_dead(q))
			return JOBQ_ECLOSED;
	}
	if (!q->sq_waiters)
		atomic_fetch_and(&q->rh->sq.pflags, ~JOBQ_RING_WANT_HEAD);
	return 0;
}

/*
 * Sends the requests in flight again, oldest first, each with its
 * payload from @saved (the copies of the old arena's bytes) and what is
 * left of its timeout. A get that had received objects before the
 * manager went is finished with them instead. Lock requests fail with
 * JOBQ_ELOST: their ids name nothing in the new manager.
 */
static int resend_locked(jobq_t *q, struct jobq_req **rs, uint8_t **saved,
			 uint32_t n)
{
	uint64_t now = jobq__now_ns();

	for (uint32_t i = 0; i < n; i++) {
		struct jobq_req *r = rs[i];
		struct jobq_sqe *sqe;
		uint64_t off = 0;
		int err;

		if (!r || r->done)
			continue;
		if (r->nobj || r->njobs) {
			rs[i] = r->detached ? NULL : r; /* freed by finish */
			finish_req(q, r, 0, 0);
			continue;
		}
		switch (r->sqe.op) {
		case JOBQ_OP_L_ACQUIRE:
		case JOBQ_OP_L_RELEASE:
		case JOBQ_OP_L_MANY:
		case JOBQ_OP_EV_SET:
		case JOBQ_OP_EV_CLEAR:
		case JOBQ_OP_EV_WAIT:
			rs[i] = r->detached ? NULL : r;
			finish_req(q, r, JOBQ_ELOST, 0);
			continue;
		}
		err = resend_room(q);
		if (err)
			return err;
		if (saved[i]) {
			/* Reset above: every chunk is free; these fit, as
			 * they all fitted at once in an arena as large. */
			err = arena_alloc(q, r->sqe.arena_len, &off, &r->chunk);
			if (err) {
				jobq__set_error_msg(
				    "the manager in %s came back with a "
				    "smaller arena than the requests in "
				    "flight need",
				    q->dir);
				return -E2BIG;
			}
			memcpy(q->arena + off, saved[i], r->sqe.arena_len);
		}
		sqe = &q->sqes[q->sq_tail & (q->sq_entries - 1)];
		*sqe = r->sqe;
		sqe->arena_off = q->arena_off + off;
		sqe->flags |= JOBQ_SQE_RESENT;
		if (r->deadline)
			sqe->timeout_ns = r->deadline > now
					      ? (int64_t)(r->deadline - now)
					      : 1;
		r->sqe.arena_off = sqe->arena_off;
		q->sq_tail++;
	}
	publish_locked(q);
	return 0;
}

/*
 * One attempt: connect, map, switch the handle over and resend. Returns
 * 0, a transient error (nobody answers yet), or one that ends the
 * handle (*fatal: a manager of another user, another layout).
 */
static int reconnect_once(jobq_t *q, struct jobq_req **rs, uint8_t **saved,
			  uint32_t n, bool *fatal)
{
	uint64_t floor = q->next_rid;
	int fds[4], sock, err;
	uint8_t *old_region = q->region;
	uint64_t old_size = q->region_size;
	void *p = NULL;
	uint64_t size = 0;

	*fatal = false;
	for (uint32_t i = 0; i < n; i++) {
		if (rs[i] && !rs[i]->done) {
			floor = jobq_ud_rid(rs[i]->user_data);
			break;
		}
	}
	err = handshake(q, true, floor, &sock, fds);
	if (err) {
		*fatal = err == -EACCES || err == JOBQ_EVERSION;
		return err;
	}
	err = map_fd(fds[1], PROT_READ | PROT_WRITE,
		     sizeof(struct jobq_region_hdr), &p, &size);
	/* The request table was sized for the old completion ring, and a
	 * request names its slot in it: the new ring must be as large. The
	 * arena may differ (another --max-object). */
	if (!err &&
	    ((struct jobq_region_hdr *)p)->cq_entries != q->cq_entries) {
		jobq__set_error_msg("the manager in %s came back with a "
				    "completion ring of another size",
				    q->dir);
		err = JOBQ_EVERSION;
	}
	if (!err)
		err = remap_store(q, fds[0]);
	if (!err)
		err = region_adopt(q, p, size);
	if (err) {
		if (p)
			munmap(p, size);
		if (q->region != old_region)
			region_adopt(q, old_region, old_size);
		for (int i = 0; i < 4; i++)
			close(fds[i]);
		close(sock);
		*fatal = true;
		return err;
	}
	close(fds[0]);
	close(fds[1]);
	munmap(old_region, old_size);
	move_fd(sock, q->sock);
	move_fd(fds[2], q->sq_efd);
	move_fd(fds[3], q->cq_efd);
	fcntl(q->cq_efd, F_SETFL, fcntl(q->cq_efd, F_GETFL) | O_NONBLOCK);

	/* A fresh arena and fresh rings. */
	q->chunk_head = q->chunk_tail = 0;
	q->alloc_pos = q->free_pos = 0;
	for (uint32_t i = 0; i < q->nchunks; i++)
		q->chunks[i].live = false;
	for (uint32_t i = 0; i < n; i++)
		if (rs[i] && !rs[i]->done)
			rs[i]->chunk = -1;
	if (q->sq_waiters)
		atomic_fetch_or(&q->rh->sq.pflags, JOBQ_RING_WANT_HEAD);
	/* Whoever holds a wake (a sleeper, a jobq_fd() user) must be woken
	 * by the new manager too. */
	if (atomic_load(&q->wake_holds))
		atomic_fetch_or(&q->rh->cq.flags, JOBQ_RING_NEED_WAKEUP);
	/* Lock ids are the new manager's own; queue ids are replayed. */
	name_free(&q->lnames);
	atomic_store(&q->closed, false);
	q->reconnects++;
	if (q->reconnect_fn)
		q->reconnect_fn(q, q->reconnect_arg);
	err = resend_locked(q, rs, saved, n);
	kick_efd(q);
	pthread_cond_broadcast(&q->cv);
	if (err == JOBQ_ECLOSED)
		atomic_store(&q->closed, true); /* it went again: try again */
	else if (err)
		*fatal = true;
	return err;
}

/*
 * reconnect_locked - the manager went away (q->closed): connect again
 * within the window and resend what had no answer. Returns 0 when the
 * handle works again; otherwise the handle is gone for good and every
 * request in flight has failed with the returned error. Called with
 * q->mu held; may sleep (with it held) for the whole window.
 */
static int reconnect_locked(jobq_t *q)
{
	struct jobq_req **rs = NULL;
	uint8_t **saved = NULL;
	uint64_t now, deadline, window, backoff = BACKOFF_MIN_NS;
	uint32_t n = 0;
	bool stopped;
	int err = JOBQ_ECLOSED;

	while (q->leader && atomic_load(&q->closed))
		pthread_cond_wait(&q->cv, &q->mu);
	if (!atomic_load(&q->closed))
		return 0; /* another thread reconnected meanwhile */
	if (q->gone || !q->reconnect_ns || getpid() != q->pid)
		goto gone;
	/* Stopped on purpose (jobq shutdown, SIGTERM): the store says so. */
	stopped = load_relaxed(&q->sh->shutting_down) != 0;
	window = q->reconnect_ns;
	if (stopped && window > STOPPED_GRACE_NS)
		window = STOPPED_GRACE_NS;

	/* The requests in flight, oldest first, and their payloads. */
	rs = calloc(q->cq_entries, sizeof(*rs));
	saved = calloc(q->cq_entries, sizeof(*saved));
	if (!rs || !saved)
		goto gone;
	for (uint32_t i = 0; i < q->cq_entries; i++)
		if (q->slots[i])
			rs[n++] = q->slots[i];
	qsort(rs, n, sizeof(*rs), cmp_rid);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t len = rs[i]->sqe.arena_len;

		if (!len || rs[i]->chunk < 0)
			continue;
		saved[i] = malloc(len);
		if (!saved[i])
			goto gone;
		memcpy(saved[i], q->region + rs[i]->sqe.arena_off, len);
	}

	deadline = jobq__now_ns() + window;
	for (;;) {
		bool fatal;
		struct timespec ts;

		err = reconnect_once(q, rs, saved, n, &fatal);
		if (!err)
			break;
		if (fatal)
			goto gone;
		now = jobq__now_ns();
		if (now >= deadline) {
			jobq__set_error_msg(
			    "the manager in %s %s and did not come back "
			    "within %.3g s",
			    q->dir, stopped ? "was stopped" : "went away",
			    (double)window / 1e9);
			err = JOBQ_ECLOSED;
			goto gone;
		}
		if (backoff > deadline - now)
			backoff = deadline - now;
		ts.tv_sec = (time_t)(backoff / JOBQ__NSEC_PER_SEC);
		ts.tv_nsec = (long)(backoff % JOBQ__NSEC_PER_SEC);
		nanosleep(&ts, NULL);
		backoff *= 2;
		if (backoff > BACKOFF_MAX_NS)
			backoff = BACKOFF_MAX_NS;
		/* The requests that finished meanwhile (a reconnect that
		 * resent them and broke again) are not sent twice. */
	}
	for (uint32_t i = 0; i < n; i++)
		free(saved[i]);
	free(saved);
	free(rs);
	return 0;

gone:
	for (uint32_t i = 0; saved && i < n; i++)
		free(saved[i]);
	free(saved);
	free(rs);
	atomic_store(&q->closed, true);
	if (!q->gone) {
		q->gone = true;
		q->gone_err = err < 0 ? err : JOBQ_ECLOSED;
	}
	fail_all_locked(q, q->gone_err);
	return q->gone_err;
}

/*
 * Waits with q->mu held until @pred is true, the manager is gone
 * (JOBQ_ECLOSED) or @deadline (monotonic ns, 0: none) passes (-ETIMEDOUT).
 * Completions are reaped on the way, whoever they belong to.
 *
 * @pred may only depend on what is announced: a completion, the manager's
 * death, a change made under q->mu (each followed by a broadcast), or an
 * event that writes the completion eventfd (see submit_one_locked() for
 * room in the submission ring). Nothing here wakes on a timer but the
 * deadline, so a condition nobody announces would wait forever.
 */
static int wait_locked(jobq_t *q, bool (*pred)(jobq_t *, void *), void *arg,
		       uint64_t deadline)
{
	for (;;) {
		uint64_t now, sleep_ns = UINT64_MAX;

		reap_locked(q, false);
		if (pred(q, arg))
			return 0;
		if (atomic_load(&q->closed)) {
			int err;

			/* Take what the manager posted before it went. */
			reap_locked(q, false);
			if (pred(q, arg))
				return 0;
			err = reconnect_locked(q);
			if (err)
				return err;
			continue;
		}
		now = jobq__now_ns();
		if (deadline) {
			if (now >= deadline)
				return -ETIMEDOUT;
			if (deadline - now < sleep_ns)
				sleep_ns = deadline - now;
		}
		if (!q->leader) {
			q->leader = true;
			pthread_mutex_unlock(&q->mu);
			sleep_cq(q, sleep_ns);
			pthread_mutex_lock(&q->mu);
			q->leader = false;
			/* The leader drained the eventfd; an event loop that
			 * polls jobq_fd() must still see callbacks due. */
			if (q->done_head && (atomic_load(&q->always_wake) ||
					     atomic_load(&q->wake_holds)))
				kick_efd(q);
			/* Hand the role over: a follower re-checks and one of
			 * them becomes the next leader. */
			pthread_cond_broadcast(&q->cv);
		} else if (!deadline) {
			/* The leader broadcasts when it steps down, and so
			 * does every reap: a follower needs no timer. */
			pthread_cond_wait(&q->cv, &q->mu);
		} else {
			struct timespec ts = {
			    .tv_sec = (time_t)(deadline / JOBQ__NSEC_PER_SEC),
			    .tv_nsec = (long)(deadline % JOBQ__NSEC_PER_SEC),
			};

			pthread_cond_timedwait(&q->cv, &q->mu, &ts);
		}
	}
}

/* ------------------------------------------------------------------------
 * Submission.
 */
struct room_need {
	uint32_t reserve;
	uint64_t bytes;
};

static bool sq_has_room(jobq_t *q)
{
	return q->sq_tail - load_acquire(&q->rh->sq.head) < q->sq_entries;
}

static bool arena_has_room(jobq_t *q, uint64_t len)
{
	uint64_t off, end;

	return !len || arena_fit(q, len, &off, &end);
}

/* Completion entries requests may reserve: the rest is for notices. */
static uint32_t cq_budget(jobq_t *q)
{
	uint32_t keep = JOBQ__NOTICE_ROOM;

	if (keep > q->cq_entries / 4)
		keep = q->cq_entries / 4;
	return q->cq_entries - keep;
}

static bool room_pred(jobq_t *q, void *arg)
{
	const struct room_need *need = arg;

	return q->reserved + need->reserve <= cq_budget(q) && q->nfree &&
	       sq_has_room(q) && arena_has_room(q, need->bytes);
}

/* Publishes the entries written so far and wakes the manager if it sleeps. */
static void publish_locked(jobq_t *q)
{
	if (load_relaxed(&q->rh->sq.tail) == q->sq_tail)
		return;
	store_release(&q->rh->sq.tail, q->sq_tail);
	full_fence();
	if (load_relaxed(&q->rh->sq.flags) & JOBQ_RING_NEED_WAKEUP)
		wake_manager(q);
}

/*
 * Asks the manager to write the completion eventfd when it moves sq head
 * (@on), or stops asking. Under q->mu, so one writer at a time. Setting it
 * is followed by a full fence: a room check after this call either sees
 * the manager's new head or the manager sees the flag (proto.h).
 */
static void want_sq_head(jobq_t *q, bool on)
{
	if (on) {
		atomic_fetch_or(&q->rh->sq.pflags, JOBQ_RING_WANT_HEAD);
		full_fence();
	} else {
		atomic_fetch_and(&q->rh->sq.pflags, ~JOBQ_RING_WANT_HEAD);
	}
}

/* The payload pieces of @op, and how many there are in *n. */
static const struct iovec *op_iov(const struct jobq__op *op, int *n)
{
	if (op->iovv) {
		*n = op->iovc;
		return op->iovv;
	}
	*n = op->niov;
	return op->iov;
}

static uint64_t op_bytes(const struct jobq__op *op)
{
	const struct iovec *v;
	uint64_t len = 0;
	int n;

	v = op_iov(op, &n);
	for (int i = 0; i < n; i++)
		len += v[i].iov_len;
	return len;
}

void jobq__op_init(struct jobq__op *op, struct jobq_req *req, uint8_t opcode,
		   const void *data, size_t len)
{
	memset(op, 0, sizeof(*op));
	op->sqe.op = opcode;
	op->req = req;
	if (len) {
		op->iov[0].iov_base = (void *)data;
		op->iov[0].iov_len = len;
		op->niov = 1;
	}
}

static int submit_one_locked(jobq_t *q, struct jobq__op *op)
{
	struct jobq_req *r = op->req;
	struct room_need need = {
	    .reserve = r->maxobj > 1 ? r->maxobj : 1,
	    .bytes = op_bytes(op),
	};

	if (r->maxjobs > need.reserve)
		need.reserve = r->maxjobs;
	struct jobq_sqe *sqe;
	uint64_t off = 0;
	uint32_t slot;
	int err;

	if (need.bytes > q->arena_size || need.bytes > UINT32_MAX)
		return -E2BIG;
	if (need.reserve > cq_budget(q))
		return -EINVAL;
	if (atomic_load(&q->closed)) {
		reap_locked(q, false);
		err = reconnect_locked(q);
		if (err)
			return err;
	}
	if (!room_pred(q, &need)) {
		/*
		 * Entries already written must reach the manager before we
		 * wait for it, or we could wait for ourselves. Every part of
		 * the room is announced: a completion frees budget, request
		 * slots and arena bytes, and room in the submission ring,
		 * which no completion may come with (a get that blocks), is
		 * announced by the manager because we ask with WANT_HEAD.
		 */
		publish_locked(q);
		q->sq_waiters++;
		want_sq_head(q, true);
		err = wait_locked(q, room_pred, &need, 0);
		if (--q->sq_waiters == 0)
			want_sq_head(q, false);
		if (err)
			return err;
	}

	r->chunk = -1;
	if (need.bytes) {
		const struct iovec *v;
		uint8_t *dst;
		int nv;

		err = arena_alloc(q, need.bytes, &off, &r->chunk);
		if (err)
			return err; /* room_pred said yes: cannot happen */
		dst = q->arena + off;
		v = op_iov(op, &nv);
		for (int i = 0; i < nv; i++) {
			if (!v[i].iov_len)
				continue;
			memcpy(dst, v[i].iov_base, v[i].iov_len);
			dst += v[i].iov_len;
		}
	}
	slot = q->free_slots[--q->nfree];
	r->user_data = q->next_rid++ << JOBQ_UD_SLOT_BITS | slot;
	r->reserve = need.reserve;
	r->done = false;
	q->slots[slot] = r;
	q->reserved += need.reserve;
	r->njobs = 0;
	if (r->async)
		q->async_pending++;

	sqe = &q->sqes[q->sq_tail & (q->sq_entries - 1)];
	*sqe = op->sqe;
	sqe->user_data = r->user_data;
	/* An empty payload names no bytes: the manager ignores its offset
	 * (it checks the range only when arena_len is not 0). */
	sqe->arena_off = q->arena_off + off;
	sqe->arena_len = (uint32_t)need.bytes;
	r->sqe = *sqe;
	r->deadline = 0;
	if (sqe->timeout_ns > 0) {
		r->deadline = jobq__now_ns() + (uint64_t)sqe->timeout_ns;
		if (r->deadline < (uint64_t)sqe->timeout_ns)
			r->deadline = UINT64_MAX;
	}
	q->sq_tail++;
	return 0;
}

int jobq__submit(jobq_t *q, struct jobq__op *ops, size_t n)
{
	size_t i;
	int err = 0;

	/* A forked child shares our rings' memory but not our bookkeeping:
	 * one request from it would corrupt both. */
	if (jobq__pid() != q->pid)
		return JOBQ_EFORKED;
	pthread_mutex_lock(&q->mu);
	for (i = 0; i < n; i++) {
		err = ops[i].sqe.timeout_ns == JOBQ__TIMEOUT_BAD
			  ? -EINVAL
			  : submit_one_locked(q, &ops[i]);
		if (err)
			break;
	}
	publish_locked(q);
	pthread_mutex_unlock(&q->mu);
	return i ? (int)i : err;
}

int jobq__submit_locked(jobq_t *q, struct jobq__op *op)
{
	struct room_need need = {
	    .reserve = op->req->maxobj > 1 ? op->req->maxobj : 1,
	    .bytes = op_bytes(op),
	};
	int err;

	if (op->req->maxjobs > need.reserve)
		need.reserve = op->req->maxjobs;
	if (atomic_load(&q->closed) || !room_pred(q, &need))
		return -EAGAIN;
	err = submit_one_locked(q, op);
	if (!err)
		publish_locked(q);
	return err;
}

uint32_t jobq__reconnects(jobq_t *q)
{
	uint32_t n;

	pthread_mutex_lock(&q->mu);
	n = q->reconnects;
	pthread_mutex_unlock(&q->mu);
	return n;
}

void jobq__set_reconnect_hook(jobq_t *q, void (*fn)(jobq_t *, void *),
			      void *arg)
{
	pthread_mutex_lock(&q->mu);
	q->reconnect_fn = fn;
	q->reconnect_arg = arg;
	pthread_mutex_unlock(&q->mu);
}

struct jobq_req *jobq__async_req(jobq_cb cb, void *arg)
{
	struct jobq_req *r = calloc(1, sizeof(*r));

	if (r) {
		r->async = true;
		r->cb = cb;
		r->arg = arg;
	}
	return r;
}

int jobq__submit_async(jobq_t *q, struct jobq__op *op)
{
	int n = jobq__submit(q, op, 1);

	if (n < 0) {
		free(op->req);
		return n;
	}
	return 0;
}

struct reqs_arg {
	struct jobq_req **reqs;
	size_t n;
};

static bool reqs_done(jobq_t *q, void *arg)
{
	struct reqs_arg *a = arg;

	(void)q;
	while (a->n && a->reqs[a->n - 1]->done)
		a->n--;
	return a->n == 0;
}

int jobq__wait(jobq_t *q, struct jobq_req **reqs, size_t n)
{
	struct reqs_arg a = {reqs, n};
	int err;

	pthread_mutex_lock(&q->mu);
	err = wait_locked(q, reqs_done, &a, 0);
	pthread_mutex_unlock(&q->mu);
	return err;
}

int jobq__wait_until(jobq_t *q, bool (*pred)(jobq_t *, void *), void *arg,
		     uint64_t deadline)
{
	int err;

	pthread_mutex_lock(&q->mu);
	err = wait_locked(q, pred, arg, deadline);
	pthread_mutex_unlock(&q->mu);
	return err;
}

void jobq__poll(jobq_t *q)
{
	pthread_mutex_lock(&q->mu);
	reap_locked(q, false);
	pthread_mutex_unlock(&q->mu);
}

bool jobq__detach(jobq_t *q, struct jobq_req *r)
{
	bool in_flight;

	pthread_mutex_lock(&q->mu);
	in_flight = !r->done;
	if (in_flight)
		r->detached = true;
	pthread_mutex_unlock(&q->mu);
	return in_flight;
}

void jobq__set_notice_hook(jobq_t *q, jobq__notice_fn fn, void *arg)
{
	pthread_mutex_lock(&q->mu);
	q->notice_fn = fn;
	q->notice_arg = arg;
	pthread_mutex_unlock(&q->mu);
}

int jobq__call(jobq_t *q, struct jobq__op *op)
{
	struct jobq_req *r = op->req;
	int err;

	err = jobq__submit(q, op, 1);
	if (err < 0)
		return err;
	jobq__wait(q, &r, 1);
	if (r->res == JOBQ_EQUOTA)
		jobq__quota_msg(q);
	return r->res;
}

/* ------------------------------------------------------------------------
 * Round trips and the event-loop interface.
 */
int jobq_ping(jobq_t *q)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	int err;

	jobq__op_init(&op, &r, JOBQ_OP_NOP, NULL, 0);
	err = jobq__call(q, &op);
	return err < 0 ? err : 0;
}

int jobq_shutdown(jobq_t *q, int now)
{
	struct jobq_req r = {0};
	struct jobq__op op;
	int err;

	jobq__op_init(&op, &r, JOBQ_OP_SHUTDOWN, NULL, 0);
	op.sqe.arg0 = now ? 1 : 0;
	err = jobq__call(q, &op);
	return err < 0 ? err : 0;
}

int jobq_fd(jobq_t *q)
{
	/* One hold for good: whoever polls the descriptor may sleep at any
	 * time. */
	if (!atomic_exchange(&q->always_wake, true))
		jobq__wake_hold(q);
	/* Completions posted before the flag was visible announced nothing;
	 * make the descriptor readable so that they are not overlooked. */
	if (cq_ready(q))
		kick_efd(q);
	return q->cq_efd;
}

/* Runs the callbacks of finished asynchronous requests, without q->mu. */
static int run_callbacks(jobq_t *q)
{
	struct jobq_req *r;
	int ran = 0;

	pthread_mutex_lock(&q->mu);
	r = q->done_head;
	q->done_head = q->done_tail = NULL;
	pthread_mutex_unlock(&q->mu);
	while (r) {
		struct jobq_req *next = r->next_done;
		int res = r->res;
		jobq_obj_t *obj = NULL;

		if (r->maxobj) {
			if (r->nobj) {
				res = 0;
				obj = &r->obj1;
			} else if (res >= 0) {
				res = r->copy_err ? r->copy_err : -EPROTO;
			}
		} else if (res > 0 && !r->keep_res) {
			res = 0;
		}
		if (r->cb)
			r->cb(q, res, obj, r->arg);
		jobq_obj_free(&r->obj1);
		free(r);
		ran++;
		r = next;
	}
	if (ran) {
		pthread_mutex_lock(&q->mu);
		q->async_pending -= (uint32_t)ran;
		pthread_cond_broadcast(&q->cv);
		pthread_mutex_unlock(&q->mu);
	}
	return ran;
}

int jobq_process(jobq_t *q)
{
	int ran;

	/* Reset the descriptor before reaping: completions posted after the
	 * reap make it readable again. */
	drain_efd(q);
	pthread_mutex_lock(&q->mu);
	reap_locked(q, true);
	if (!atomic_load(&q->closed) && jobq__socket_dead(q))
		atomic_store(&q->closed, true);
	if (atomic_load(&q->closed)) {
		reap_locked(q, true);
		reconnect_locked(q);
	}
	pthread_mutex_unlock(&q->mu);
	ran = run_callbacks(q);
	if (!ran && atomic_load(&q->closed))
		return JOBQ_ECLOSED;
	return ran;
}

int jobq__process_ready(jobq_t *q)
{
	if (cq_ready(q)) {
		pthread_mutex_lock(&q->mu);
		reap_locked(q, true);
		pthread_mutex_unlock(&q->mu);
	}
	return run_callbacks(q);
}

static bool idle_or_callbacks(jobq_t *q, void *arg)
{
	(void)arg;
	return q->done_head || !q->async_pending;
}

int jobq_wait_idle(jobq_t *q, double timeout)
{
	int64_t t = jobq__timeout_ns(timeout);
	uint64_t deadline = t < 0 ? 0 : jobq__now_ns() + (uint64_t)t;
	int err = 0;

	if (t == JOBQ__TIMEOUT_BAD)
		return -EINVAL;
	for (;;) {
		run_callbacks(q);
		pthread_mutex_lock(&q->mu);
		if (!q->async_pending) {
			pthread_mutex_unlock(&q->mu);
			return 0;
		}
		if (t == 0) {
			/* Try once: take what the manager has posted and run
			 * the callbacks that made due; give up only when
			 * nothing more came. */
			int n = reap_locked(q, false);

			pthread_mutex_unlock(&q->mu);
			if (!n)
				return -ETIMEDOUT;
			continue;
		}
		err = wait_locked(q, idle_or_callbacks, NULL, deadline);
		pthread_mutex_unlock(&q->mu);
		if (err == JOBQ_ECLOSED) {
			/* Every request failed: run their callbacks. */
			run_callbacks(q);
			return err;
		}
		if (err)
			return err;
	}
}
