/* SPDX-License-Identifier: MIT */
/*
 * _jobq.c - the CPython extension under the jobq package: a thin layer
 * over libjobq (include/jobq.h). Everything Python-shaped (pickling,
 * futures, pools, the multiprocessing names) lives in the .py files; this
 * file only moves bytes and integers across, and turns errors into
 * exceptions.
 *
 * The GIL is released around every libjobq call, whether or not it can
 * block: a call that only reads the store is cheap to release around, and
 * releasing always means no path holds the GIL while it waits for the
 * library's request lock, which a thread running a completion callback
 * (that takes the GIL) may hold. Callbacks into Python take the GIL with
 * PyGILState_Ensure(), so they are safe from any thread the library runs
 * them in.
 *
 * A Handle belongs to the process that opened it: libjobq handles must not
 * be used across fork(). A forked child that still holds the object gets
 * an error from every method, and its deallocation leaves the parent's
 * connection alone.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <jobq.h>

/* _jobq.Error(code, text): code is what libjobq returned (negative). */
static PyObject *jobq_py_error;

typedef struct {
	PyObject_HEAD jobq_t *q;
	pid_t pid; /* the process that opened q */
	/* Puts sent by put_async() and not answered yet, and the first
	 * error one of them met (reported by the next put_async()). Written
	 * by put_cb() in whichever thread runs callbacks, hence atomics. */
	atomic_int inflight;
	atomic_int async_err;
	unsigned int since_process; /* put_async() calls since a reap */
} handle_obj;

typedef struct {
	PyObject_HEAD jobq_worker_t *w;
	PyObject *handle;   /* the handle_obj the worker runs over */
	PyObject *handlers; /* list: keeps every registered callable alive */
} worker_obj;

static PyObject *raise_code(int code)
{
	PyObject *v = Py_BuildValue("(is)", code, jobq_strerror(code));

	if (v) {
		PyErr_SetObject(jobq_py_error, v);
		Py_DECREF(v);
	}
	return NULL;
}

/*
 * This process's pid, kept by a pthread_atfork() child handler so that
 * every call need not ask the kernel (getpid() is a system call, 0.2 us:
 * as much as a whole store read). Written only at module init and in the
 * child right after fork(), while no other thread runs.
 */
static pid_t self_pid;

static void after_fork_child(void)
{
	self_pid = getpid();
}

/* The handle of @self, or NULL with an exception set when it is closed or
 * was opened by another process (the parent of a fork). */
static jobq_t *get_q(handle_obj *self)
{
	if (!self->q) {
		PyErr_SetString(PyExc_ValueError, "jobq handle is closed");
		return NULL;
	}
	if (self->pid != self_pid) {
		PyErr_SetString(PyExc_RuntimeError,
				"jobq handle was opened by another process "
				"(a handle does not survive fork)");
		return NULL;
	}
	return self->q;
}

/* A new (type, bytes) tuple for @o; frees o's payload either way. */
static PyObject *obj_tuple(jobq_obj_t *o)
{
	PyObject *r = Py_BuildValue("(Iy#)", o->type,
				    o->data ? (const char *)o->data : "",
				    (Py_ssize_t)o->len);

	jobq_obj_free(o);
	return r;
}

/* ------------------------------------------------------------------------
 * Handle: connecting.
 */
static int handle_init(handle_obj *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"dir", NULL};
	const char *dir = NULL;
	jobq_t *q = NULL;
	int err;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|z", kwlist, &dir))
		return -1;
	if (self->q) {
		PyErr_SetString(PyExc_RuntimeError, "handle already open");
		return -1;
	}
	Py_BEGIN_ALLOW_THREADS
	err = jobq_open(&q, dir);
	Py_END_ALLOW_THREADS
	if (err < 0) {
		raise_code(err);
		return -1;
	}
	self->q = q;
	self->pid = self_pid;
	return 0;
}

static void handle_close_q(handle_obj *self)
{
	jobq_t *q = self->q;

	self->q = NULL;
	if (!q || self->pid != self_pid)
		return; /* the parent's connection: not ours to close */
	Py_BEGIN_ALLOW_THREADS
	jobq_close(q);
	Py_END_ALLOW_THREADS
}

static void handle_dealloc(handle_obj *self)
{
	/* At interpreter exit a daemon thread may still be inside a call on
	 * this handle: leave the connection to the process's end then. */
	if (_Py_IsFinalizing())
		self->q = NULL;
	handle_close_q(self);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *handle_close(handle_obj *self, PyObject *unused)
{
	handle_close_q(self);
	Py_RETURN_NONE;
}

static PyObject *handle_get_dir(handle_obj *self, void *unused)
{
	jobq_t *q = get_q(self);

	return q ? PyUnicode_DecodeFSDefault(jobq_dir(q)) : NULL;
}

static PyObject *handle_get_max_object(handle_obj *self, void *unused)
{
	jobq_t *q = get_q(self);

	return q ? PyLong_FromSize_t(jobq_max_object(q)) : NULL;
}

static PyObject *handle_ping(handle_obj *self, PyObject *unused)
{
	jobq_t *q = get_q(self);
	int err;

	if (!q)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_ping(q);
	Py_END_ALLOW_THREADS
	if (err < 0)
		return raise_code(err);
	Py_RETURN_NONE;
}

static PyObject *handle_shutdown(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	int now = 0, err;

	if (!q || !PyArg_ParseTuple(args, "|p", &now))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_shutdown(q, now);
	Py_END_ALLOW_THREADS
	if (err < 0)
		return raise_code(err);
	Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------
 * Queues. Timeouts follow jobq.h: < 0 forever, 0 try once.
 */
static PyObject *handle_queue_open(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	struct jobq_queue_opts o = {0};
	unsigned long long depth = 0, bytes = 0;
	const char *name;
	int err;

	if (!q || !PyArg_ParseTuple(args, "s|KK", &name, &depth, &bytes))
		return NULL;
	o.max_depth = depth;
	o.max_bytes = bytes;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_queue_open(q, name, &o);
	Py_END_ALLOW_THREADS
	if (err < 0)
		return raise_code(err);
	Py_RETURN_NONE;
}

/* put(queue, type, data, timeout) -> True, or False when it timed out (or
 * would block, timeout 0). */
static PyObject *handle_put(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *name;
	unsigned int type;
	Py_buffer b;
	double timeout = -1;
	int err;

	if (!q || !PyArg_ParseTuple(args, "sIy*|d", &name, &type, &b, &timeout))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_put(q, name, type, b.buf, (size_t)b.len, timeout);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&b);
	if (err == -EAGAIN || err == -ETIMEDOUT || err == JOBQ_EFULL)
		Py_RETURN_FALSE;
	if (err < 0)
		return raise_code(err);
	Py_RETURN_TRUE;
}

static void put_cb(jobq_t *q, int res, jobq_obj_t *obj, void *arg)
{
	handle_obj *self = arg;
	int zero = 0;

	if (res < 0)
		atomic_compare_exchange_strong(&self->async_err, &zero, res);
	atomic_fetch_sub(&self->inflight, 1);
}

/*
 * put_async(queue, type, data): put without waiting for the manager's
 * answer (jobq_put_async(), waiting forever on a full store), as the
 * standard Queue.put hands its object to a feeder thread. The puts of a
 * handle are applied in order. A put that failed raises from the next
 * put_async(); flush() waits until every one was answered. Every 64 puts
 * it reaps what was answered, so that finished requests do not pile up in
 * a process that never waits.
 */
static PyObject *handle_put_async(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *name;
	unsigned int type;
	Py_buffer b;
	int err, reap;

	if (!q || !PyArg_ParseTuple(args, "sIy*", &name, &type, &b))
		return NULL;
	err = atomic_exchange(&self->async_err, 0);
	if (err < 0) {
		PyBuffer_Release(&b);
		return raise_code(err);
	}
	reap = ++self->since_process >= 64;
	if (reap)
		self->since_process = 0;
	atomic_fetch_add(&self->inflight, 1);
	Py_BEGIN_ALLOW_THREADS
	err = jobq_put_async(q, name, type, b.buf, (size_t)b.len, -1, put_cb,
			     self);
	if (err < 0)
		atomic_fetch_sub(&self->inflight, 1);
	else if (reap)
		(void)jobq_process(q);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&b);
	if (err < 0)
		return raise_code(err);
	Py_RETURN_NONE;
}

/* flush(timeout) -> True once every put_async() was answered (then the
 * first error among them raises), False when @timeout passed first. */
static PyObject *handle_flush(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	double timeout = -1;
	struct timespec t0, t;
	int err = 0;

	if (!q || !PyArg_ParseTuple(args, "|d", &timeout))
		return NULL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	Py_BEGIN_ALLOW_THREADS
	while (atomic_load(&self->inflight) > 0) {
		double left = 0.05;

		clock_gettime(CLOCK_MONOTONIC, &t);
		if (timeout >= 0) {
			left = timeout - (double)(t.tv_sec - t0.tv_sec) -
			       (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
			if (left <= 0)
				break;
			if (left > 0.05)
				left = 0.05;
		}
		/* Runs due callbacks; other outstanding requests (done
		 * callbacks of jobs) only bound the slice. */
		err = jobq_wait_idle(q, left);
		if (err < 0 && err != -ETIMEDOUT)
			break;
		err = 0;
	}
	Py_END_ALLOW_THREADS
	if (err < 0)
		return raise_code(err);
	if (atomic_load(&self->inflight) > 0)
		Py_RETURN_FALSE;
	err = atomic_exchange(&self->async_err, 0);
	if (err < 0)
		return raise_code(err);
	Py_RETURN_TRUE;
}

/* put_many(queue, [(type, bytes)...], timeout) -> how many were put. */
static PyObject *handle_put_many(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *name;
	PyObject *seq, *fast;
	double timeout = -1;
	jobq_obj_t *objs;
	Py_ssize_t n;
	int err;

	if (!q || !PyArg_ParseTuple(args, "sO|d", &name, &seq, &timeout))
		return NULL;
	fast = PySequence_Fast(seq, "put_many wants a sequence");
	if (!fast)
		return NULL;
	n = PySequence_Fast_GET_SIZE(fast);
	if (n == 0) {
		Py_DECREF(fast);
		return PyLong_FromLong(0);
	}
	objs = PyMem_Calloc((size_t)n, sizeof(*objs));
	if (!objs) {
		Py_DECREF(fast);
		return PyErr_NoMemory();
	}
	/* The tuples and their bytes stay alive through `fast`. */
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *it = PySequence_Fast_GET_ITEM(fast, i);
		unsigned int type;
		const char *data;
		Py_ssize_t len;

		if (!PyArg_ParseTuple(it, "Iy#", &type, &data, &len)) {
			PyMem_Free(objs);
			Py_DECREF(fast);
			return NULL;
		}
		objs[i].type = type;
		objs[i].data = (void *)data;
		objs[i].len = (size_t)len;
	}
	Py_BEGIN_ALLOW_THREADS
	err = jobq_put_many(q, name, objs, (size_t)n, timeout);
	Py_END_ALLOW_THREADS
	PyMem_Free(objs);
	Py_DECREF(fast);
	if (err == -EAGAIN || err == -ETIMEDOUT || err == JOBQ_EFULL)
		return PyLong_FromLong(0);
	if (err < 0)
		return raise_code(err);
	return PyLong_FromLong(err);
}

/* get(queue, timeout) -> (type, bytes), or None when it timed out. */
static PyObject *handle_get(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *name;
	double timeout = -1;
	jobq_obj_t o = {0};
	int err;

	if (!q || !PyArg_ParseTuple(args, "s|d", &name, &timeout))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_get(q, name, &o, timeout);
	Py_END_ALLOW_THREADS
	if (err == -EAGAIN || err == -ETIMEDOUT)
		Py_RETURN_NONE;
	if (err < 0)
		return raise_code(err);
	return obj_tuple(&o);
}

/* get_many(queue, max, timeout) -> [(type, bytes)...], empty on timeout. */
static PyObject *handle_get_many(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *name;
	Py_ssize_t max;
	double timeout = -1;
	jobq_obj_t *objs;
	PyObject *list;
	int n;

	if (!q || !PyArg_ParseTuple(args, "sn|d", &name, &max, &timeout))
		return NULL;
	if (max <= 0)
		return PyList_New(0);
	objs = PyMem_Calloc((size_t)max, sizeof(*objs));
	if (!objs)
		return PyErr_NoMemory();
	Py_BEGIN_ALLOW_THREADS
	n = jobq_get_many(q, name, objs, (size_t)max, timeout);
	Py_END_ALLOW_THREADS
	if (n == -EAGAIN || n == -ETIMEDOUT)
		n = 0;
	if (n < 0) {
		PyMem_Free(objs);
		return raise_code(n);
	}
	list = PyList_New(n);
	/* obj_tuple() frees every payload, also after a failure. */
	for (int i = 0; i < n; i++) {
		PyObject *t = obj_tuple(&objs[i]);

		if (list && t)
			PyList_SET_ITEM(list, i, t);
		else if (list)
			Py_CLEAR(list);
		else
			Py_XDECREF(t);
	}
	PyMem_Free(objs);
	return list;
}

static PyObject *handle_task_done(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *name;
	int err;

	if (!q || !PyArg_ParseTuple(args, "s", &name))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_task_done(q, name);
	Py_END_ALLOW_THREADS
	if (err < 0)
		return raise_code(err);
	Py_RETURN_NONE;
}

/* join(queue, timeout) -> True when no unit is unfinished, False on
 * timeout. */
static PyObject *handle_join(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *name;
	double timeout = -1;
	int err;

	if (!q || !PyArg_ParseTuple(args, "s|d", &name, &timeout))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_join(q, name, timeout);
	Py_END_ALLOW_THREADS
	if (err == -EAGAIN || err == -ETIMEDOUT)
		Py_RETURN_FALSE;
	if (err < 0)
		return raise_code(err);
	Py_RETURN_TRUE;
}

/* queue_info(name) -> (depth, bytes, max_depth, max_bytes, unfinished,
 * total_put, total_get), or None when there is no such queue. */
static PyObject *handle_queue_info(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	struct jobq_queue_info i;
	const char *name;
	int err;

	if (!q || !PyArg_ParseTuple(args, "s", &name))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_queue_info(q, name, &i);
	Py_END_ALLOW_THREADS
	if (err == -ENOENT)
		Py_RETURN_NONE;
	if (err < 0)
		return raise_code(err);
	return Py_BuildValue(
	    "(KKKKKKK)", (unsigned long long)i.depth,
	    (unsigned long long)i.bytes, (unsigned long long)i.max_depth,
	    (unsigned long long)i.max_bytes, (unsigned long long)i.unfinished,
	    (unsigned long long)i.total_put, (unsigned long long)i.total_get);
}

/* ------------------------------------------------------------------------
 * Key/value store.
 */
static PyObject *handle_kv_set(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *key;
	unsigned int type;
	Py_buffer b;
	int err;

	if (!q || !PyArg_ParseTuple(args, "sIy*", &key, &type, &b))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_kv_set(q, key, type, b.buf, (size_t)b.len);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&b);
	if (err < 0)
		return raise_code(err);
	Py_RETURN_NONE;
}

/* kv_get(key) -> (type, bytes), or None when the key is missing. */
static PyObject *handle_kv_get(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *key;
	jobq_obj_t o = {0};
	int err;

	if (!q || !PyArg_ParseTuple(args, "s", &key))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_kv_get(q, key, &o);
	Py_END_ALLOW_THREADS
	if (err == -ENOENT)
		Py_RETURN_NONE;
	if (err < 0)
		return raise_code(err);
	return obj_tuple(&o);
}

/* kv_del(key) -> True when it was there. */
static PyObject *handle_kv_del(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *key;
	int err;

	if (!q || !PyArg_ParseTuple(args, "s", &key))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_kv_del(q, key);
	Py_END_ALLOW_THREADS
	if (err == -ENOENT)
		Py_RETURN_FALSE;
	if (err < 0)
		return raise_code(err);
	Py_RETURN_TRUE;
}

static PyObject *handle_kv_incr(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *key;
	long long by = 1;
	int64_t out = 0;
	int err;

	if (!q || !PyArg_ParseTuple(args, "s|L", &key, &by))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_kv_incr(q, key, by, &out);
	Py_END_ALLOW_THREADS
	if (err < 0)
		return raise_code(err);
	return PyLong_FromLongLong(out);
}

/* kv_cas(key, expect or None, type, data) -> True when it set the value. */
static PyObject *handle_kv_cas(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *key;
	PyObject *expect;
	Py_buffer e = {0}, b;
	unsigned int type;
	int err;

	if (!q || !PyArg_ParseTuple(args, "sOIy*", &key, &expect, &type, &b))
		return NULL;
	if (expect != Py_None &&
	    PyObject_GetBuffer(expect, &e, PyBUF_SIMPLE) < 0) {
		PyBuffer_Release(&b);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	err = jobq_kv_cas(q, key, expect == Py_None ? NULL : e.buf,
			  expect == Py_None ? 0 : (size_t)e.len, type, b.buf,
			  (size_t)b.len);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&b);
	if (expect != Py_None)
		PyBuffer_Release(&e);
	if (err == JOBQ_EMISMATCH)
		Py_RETURN_FALSE;
	if (err < 0)
		return raise_code(err);
	Py_RETURN_TRUE;
}

struct kv_walk {
	PyObject *list;
	size_t skip; /* bytes of prefix to drop from each key */
	int failed;
};

/* Runs with the GIL released (inside jobq_kv_list): takes it to append. */
static int kv_list_cb(const char *key, const jobq_obj_t *v, void *arg)
{
	struct kv_walk *k = arg;
	PyGILState_STATE g = PyGILState_Ensure();
	PyObject *t = Py_BuildValue("(sIy#)", key + k->skip, v->type,
				    v->data ? (const char *)v->data : "",
				    (Py_ssize_t)v->len);

	if (!t || PyList_Append(k->list, t) < 0)
		k->failed = 1;
	Py_XDECREF(t);
	PyGILState_Release(g);
	return k->failed;
}

/* kv_list(prefix) -> [(key without the prefix, type, bytes)...]. */
static PyObject *handle_kv_list(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *prefix = "";
	struct kv_walk k = {0};
	int err;

	if (!q || !PyArg_ParseTuple(args, "|s", &prefix))
		return NULL;
	k.list = PyList_New(0);
	if (!k.list)
		return NULL;
	k.skip = strlen(prefix);
	Py_BEGIN_ALLOW_THREADS
	err = jobq_kv_list(q, prefix, kv_list_cb, &k);
	Py_END_ALLOW_THREADS
	if (k.failed) {
		Py_DECREF(k.list);
		return NULL;
	}
	if (err < 0) {
		Py_DECREF(k.list);
		return raise_code(err);
	}
	return k.list;
}

/* ------------------------------------------------------------------------
 * Locks and events.
 */
static PyObject *handle_lock_create(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *name;
	int kind;
	unsigned int value = 1;
	int err;

	if (!q || !PyArg_ParseTuple(args, "si|I", &name, &kind, &value))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_lock_create(q, name, kind, value);
	Py_END_ALLOW_THREADS
	if (err < 0)
		return raise_code(err);
	Py_RETURN_NONE;
}

/* lock_acquire(name, timeout) -> True, or False when it timed out. */
static PyObject *handle_lock_acquire(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *name;
	double timeout = -1;
	int err;

	if (!q || !PyArg_ParseTuple(args, "s|d", &name, &timeout))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_lock_acquire(q, name, timeout);
	Py_END_ALLOW_THREADS
	if (err == -EAGAIN || err == -ETIMEDOUT)
		Py_RETURN_FALSE;
	if (err < 0)
		return raise_code(err);
	Py_RETURN_TRUE;
}

static PyObject *handle_lock_release(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *name;
	int err;

	if (!q || !PyArg_ParseTuple(args, "s", &name))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_lock_release(q, name);
	Py_END_ALLOW_THREADS
	if (err < 0)
		return raise_code(err);
	Py_RETURN_NONE;
}

static PyObject *handle_event_set(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *name;
	int clear = 0, err;

	if (!q || !PyArg_ParseTuple(args, "s|p", &name, &clear))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = clear ? jobq_event_clear(q, name) : jobq_event_set(q, name);
	Py_END_ALLOW_THREADS
	if (err < 0)
		return raise_code(err);
	Py_RETURN_NONE;
}

/* event_wait(name, timeout) -> True once set, False on timeout. */
static PyObject *handle_event_wait(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	const char *name;
	double timeout = -1;
	int err;

	if (!q || !PyArg_ParseTuple(args, "s|d", &name, &timeout))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_event_wait(q, name, timeout);
	Py_END_ALLOW_THREADS
	if (err == -EAGAIN || err == -ETIMEDOUT)
		Py_RETURN_FALSE;
	if (err < 0)
		return raise_code(err);
	Py_RETURN_TRUE;
}

/* lock_info(name) -> (kind, limit, held, waiters, holder pid, is_set), or
 * None when there is no such lock. */
static PyObject *handle_lock_info(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	struct jobq_lock_info *all = NULL, found;
	const char *name;
	size_t n = 0;
	int err, hit = 0;

	if (!q || !PyArg_ParseTuple(args, "s", &name))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_locks(q, &all, &n);
	if (err == 0)
		for (size_t i = 0; i < n && !hit; i++)
			if (!strcmp(all[i].name, name)) {
				found = all[i];
				hit = 1;
			}
	free(all);
	Py_END_ALLOW_THREADS
	if (err < 0)
		return raise_code(err);
	if (!hit)
		Py_RETURN_NONE;
	return Py_BuildValue("(iIIIii)", found.kind, found.limit, found.held,
			     found.waiters, (int)found.holder, found.is_set);
}

/* ------------------------------------------------------------------------
 * Jobs.
 */
static int parse_submit_opts(PyObject *kw, struct jobq_submit_opts *o)
{
	PyObject *v;

	if (!kw)
		return 0;
	if ((v = PyDict_GetItemString(kw, "queue")) && v != Py_None &&
	    !(o->queue = PyUnicode_AsUTF8(v)))
		return -1;
	if ((v = PyDict_GetItemString(kw, "priority")) &&
	    (o->priority = (int)PyLong_AsLong(v)) == -1 && PyErr_Occurred())
		return -1;
	if ((v = PyDict_GetItemString(kw, "delay")) &&
	    (o->delay = PyFloat_AsDouble(v)) == -1 && PyErr_Occurred())
		return -1;
	if ((v = PyDict_GetItemString(kw, "timeout")) &&
	    (o->timeout = PyFloat_AsDouble(v)) == -1 && PyErr_Occurred())
		return -1;
	if ((v = PyDict_GetItemString(kw, "retries")) &&
	    (o->retries = (int)PyLong_AsLong(v)) == -1 && PyErr_Occurred())
		return -1;
	if ((v = PyDict_GetItemString(kw, "no_retry")))
		o->no_retry = PyObject_IsTrue(v);
	return 0;
}

/* submit(type, args_type, args, **opts) -> job id. opts: queue, priority,
 * delay, timeout (the lease), retries, no_retry. */
static PyObject *handle_submit(handle_obj *self, PyObject *args, PyObject *kw)
{
	jobq_t *q = get_q(self);
	struct jobq_submit_opts o = {0};
	const char *type;
	unsigned int atype;
	Py_buffer b;
	uint64_t id = 0;
	int err;

	if (!q || !PyArg_ParseTuple(args, "sIy*", &type, &atype, &b))
		return NULL;
	if (parse_submit_opts(kw, &o) < 0) {
		PyBuffer_Release(&b);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	err = jobq_submit(q, type, atype, b.buf, (size_t)b.len, &o, &id);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&b);
	if (err < 0)
		return raise_code(err);
	return PyLong_FromUnsignedLongLong(id);
}

/* submit_many(type, [(args_type, bytes)...], **opts) -> [ids]: all of them
 * (it submits again until every one went, since a batch may take only the
 * first ones). */
static PyObject *handle_submit_many(handle_obj *self, PyObject *args,
				    PyObject *kw)
{
	jobq_t *q = get_q(self);
	struct jobq_submit_opts o = {0};
	const char *type;
	PyObject *seq, *fast, *ids_list = NULL;
	jobq_obj_t *objs;
	uint64_t *ids;
	Py_ssize_t n, done = 0;
	int err = 0;

	if (!q || !PyArg_ParseTuple(args, "sO", &type, &seq))
		return NULL;
	if (parse_submit_opts(kw, &o) < 0)
		return NULL;
	fast = PySequence_Fast(seq, "submit_many wants a sequence");
	if (!fast)
		return NULL;
	n = PySequence_Fast_GET_SIZE(fast);
	objs = PyMem_Calloc((size_t)n + 1, sizeof(*objs));
	ids = PyMem_Calloc((size_t)n + 1, sizeof(*ids));
	if (!objs || !ids) {
		PyErr_NoMemory();
		goto out;
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *it = PySequence_Fast_GET_ITEM(fast, i);
		unsigned int t;
		const char *data;
		Py_ssize_t len;

		if (!PyArg_ParseTuple(it, "Iy#", &t, &data, &len))
			goto out;
		objs[i].type = t;
		objs[i].data = (void *)data;
		objs[i].len = (size_t)len;
	}
	Py_BEGIN_ALLOW_THREADS
	while (done < n) {
		err = jobq_submit_many(q, type, objs + done, (size_t)(n - done),
				       &o, ids + done);
		if (err <= 0)
			break;
		done += err;
	}
	Py_END_ALLOW_THREADS
	if (done < n && err < 0) {
		raise_code(err);
		goto out;
	}
	ids_list = PyList_New(n);
	for (Py_ssize_t i = 0; ids_list && i < n; i++) {
		PyObject *v = PyLong_FromUnsignedLongLong(ids[i]);

		if (!v) {
			Py_CLEAR(ids_list);
			break;
		}
		PyList_SET_ITEM(ids_list, i, v);
	}
out:
	PyMem_Free(objs);
	PyMem_Free(ids);
	Py_DECREF(fast);
	return ids_list;
}

/*
 * apply(type, args_type, args, lease, timeout) -> (code, type, bytes):
 * submit and wait in one call (jobq_apply()), for Pool.apply's round trip.
 * @code is what jobq_job_wait() returns; the object is the result, the
 * error text of a job that did not succeed, or (0, b"") when there is
 * neither (a timeout).
 */
static PyObject *handle_apply(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	struct jobq_submit_opts o = {0};
	const char *type;
	unsigned int atype;
	Py_buffer b;
	double timeout = -1;
	jobq_obj_t out = {0};
	PyObject *t, *r;
	int err;

	if (!q || !PyArg_ParseTuple(args, "sIy*d|d", &type, &atype, &b,
				    &o.timeout, &timeout))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err =
	    jobq_apply(q, type, atype, b.buf, (size_t)b.len, &o, &out, timeout);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&b);
	t = obj_tuple(&out);
	if (!t)
		return NULL;
	r = Py_BuildValue("(iOO)", err, PyTuple_GET_ITEM(t, 0),
			  PyTuple_GET_ITEM(t, 1));
	Py_DECREF(t);
	return r;
}

/* job_wait(id, timeout) -> what jobq_job_wait() returns, as an int: 0,
 * JOBQ_EJOBFAILED, -ECANCELED, -ETIMEDOUT, -EAGAIN, -ENOENT, ... */
static PyObject *handle_job_wait(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	unsigned long long id;
	double timeout = -1;
	int err;

	if (!q || !PyArg_ParseTuple(args, "K|d", &id, &timeout))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_job_wait(q, id, timeout);
	Py_END_ALLOW_THREADS
	return PyLong_FromLong(err);
}

/* job_result(id) -> (type, bytes): the result, or the error text of a job
 * that did not succeed. */
static PyObject *handle_job_result(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	unsigned long long id;
	jobq_obj_t o = {0};
	int err;

	if (!q || !PyArg_ParseTuple(args, "K", &id))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_job_result(q, id, &o);
	Py_END_ALLOW_THREADS
	if (err < 0)
		return raise_code(err);
	return obj_tuple(&o);
}

/* job_info(id) -> (state, attempts, max_attempts, worker pid), or None. */
static PyObject *handle_job_info(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	unsigned long long id;
	struct jobq_job_info i;
	int err;

	if (!q || !PyArg_ParseTuple(args, "K", &id))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_job_info(q, id, &i);
	Py_END_ALLOW_THREADS
	if (err == -ENOENT)
		Py_RETURN_NONE;
	if (err < 0)
		return raise_code(err);
	return Py_BuildValue("(iIIi)", i.state, i.attempts, i.max_attempts,
			     (int)i.worker);
}

/* cancel(id) -> what jobq_cancel() returns (0, -EALREADY, -ENOENT). */
static PyObject *handle_cancel(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	unsigned long long id;
	int err;

	if (!q || !PyArg_ParseTuple(args, "K", &id))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_cancel(q, id);
	Py_END_ALLOW_THREADS
	return PyLong_FromLong(err);
}

/*
 * on_done(id, callable): callable(id, res) once job @id is final, with
 * @res as job_wait() returns it. libjobq runs done callbacks only from
 * jobq_process() and jobq_wait_idle(), and outside its request lock, so
 * the callable runs in the thread that calls pump(), and may call the
 * library again.
 */
static void done_cb(jobq_t *q, uint64_t id, int res, void *arg)
{
	PyObject *fn = arg;
	PyGILState_STATE g = PyGILState_Ensure();
	PyObject *r =
	    PyObject_CallFunction(fn, "Ki", (unsigned long long)id, res);

	if (!r)
		PyErr_WriteUnraisable(fn);
	Py_XDECREF(r);
	Py_DECREF(fn);
	PyGILState_Release(g);
}

static PyObject *handle_on_done(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	unsigned long long id;
	PyObject *fn;
	int err;

	if (!q || !PyArg_ParseTuple(args, "KO", &id, &fn))
		return NULL;
	Py_INCREF(fn);
	Py_BEGIN_ALLOW_THREADS
	err = jobq_job_on_done(q, id, done_cb, fn);
	Py_END_ALLOW_THREADS
	if (err < 0) {
		Py_DECREF(fn);
		return raise_code(err);
	}
	Py_RETURN_NONE;
}

/*
 * pump(wake_fd, timeout) - run done callbacks as their jobs finish, for
 * up to @timeout seconds (jobq_wait_idle()); when none is outstanding,
 * sleep until the eventfd @wake_fd is written (a new on_done) or @timeout
 * passes. It waits through the library's own wait, not by polling
 * jobq_fd(): that would take wake-ups that threads blocked in other calls
 * of the handle are waiting for.
 */
static PyObject *handle_pump(handle_obj *self, PyObject *args)
{
	jobq_t *q = get_q(self);
	double timeout = 0.1;
	int wake, err;

	if (!q || !PyArg_ParseTuple(args, "i|d", &wake, &timeout))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	err = jobq_wait_idle(q, timeout);
	if (err == 0) {
		struct pollfd p = {.fd = wake, .events = POLLIN};

		if (poll(&p, 1, (int)(timeout * 1000)) > 0) {
			eventfd_t v;

			(void)eventfd_read(wake, &v);
		}
	}
	Py_END_ALLOW_THREADS
	if (err < 0 && err != -ETIMEDOUT)
		return raise_code(err);
	Py_RETURN_NONE;
}

static PyObject *handle_stats(handle_obj *self, PyObject *unused)
{
	jobq_t *q = get_q(self);
	struct jobq_stats s;

	if (!q)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	jobq_stats(q, &s);
	Py_END_ALLOW_THREADS
	return Py_BuildValue(
	    "{s:i,s:I,s:I,s:I,s:I,s:K,s:K,s:K,s:K,s:K}", "manager_pid",
	    (int)s.manager_pid, "clients", s.clients, "queues", s.queues,
	    "locks", s.locks, "keys", s.keys, "memory_used",
	    (unsigned long long)s.memory_used, "submitted",
	    (unsigned long long)s.submitted, "done", (unsigned long long)s.done,
	    "retried", (unsigned long long)s.retried, "dead",
	    (unsigned long long)s.dead);
}

static PyMethodDef handle_methods[] = {
    {"close", (PyCFunction)handle_close, METH_NOARGS, NULL},
    {"ping", (PyCFunction)handle_ping, METH_NOARGS, NULL},
    {"shutdown", (PyCFunction)handle_shutdown, METH_VARARGS, NULL},
    {"queue_open", (PyCFunction)handle_queue_open, METH_VARARGS, NULL},
    {"put", (PyCFunction)handle_put, METH_VARARGS, NULL},
    {"put_async", (PyCFunction)handle_put_async, METH_VARARGS, NULL},
    {"flush", (PyCFunction)handle_flush, METH_VARARGS, NULL},
    {"put_many", (PyCFunction)handle_put_many, METH_VARARGS, NULL},
    {"get", (PyCFunction)handle_get, METH_VARARGS, NULL},
    {"get_many", (PyCFunction)handle_get_many, METH_VARARGS, NULL},
    {"task_done", (PyCFunction)handle_task_done, METH_VARARGS, NULL},
    {"join", (PyCFunction)handle_join, METH_VARARGS, NULL},
    {"queue_info", (PyCFunction)handle_queue_info, METH_VARARGS, NULL},
    {"kv_set", (PyCFunction)handle_kv_set, METH_VARARGS, NULL},
    {"kv_get", (PyCFunction)handle_kv_get, METH_VARARGS, NULL},
    {"kv_del", (PyCFunction)handle_kv_del, METH_VARARGS, NULL},
    {"kv_incr", (PyCFunction)handle_kv_incr, METH_VARARGS, NULL},
    {"kv_cas", (PyCFunction)handle_kv_cas, METH_VARARGS, NULL},
    {"kv_list", (PyCFunction)handle_kv_list, METH_VARARGS, NULL},
    {"lock_create", (PyCFunction)handle_lock_create, METH_VARARGS, NULL},
    {"lock_acquire", (PyCFunction)handle_lock_acquire, METH_VARARGS, NULL},
    {"lock_release", (PyCFunction)handle_lock_release, METH_VARARGS, NULL},
    {"lock_info", (PyCFunction)handle_lock_info, METH_VARARGS, NULL},
    {"event_set", (PyCFunction)handle_event_set, METH_VARARGS, NULL},
    {"event_wait", (PyCFunction)handle_event_wait, METH_VARARGS, NULL},
    {"submit", (PyCFunction)(void (*)(void))handle_submit,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"submit_many", (PyCFunction)(void (*)(void))handle_submit_many,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"apply", (PyCFunction)handle_apply, METH_VARARGS, NULL},
    {"job_wait", (PyCFunction)handle_job_wait, METH_VARARGS, NULL},
    {"job_result", (PyCFunction)handle_job_result, METH_VARARGS, NULL},
    {"job_info", (PyCFunction)handle_job_info, METH_VARARGS, NULL},
    {"cancel", (PyCFunction)handle_cancel, METH_VARARGS, NULL},
    {"on_done", (PyCFunction)handle_on_done, METH_VARARGS, NULL},
    {"pump", (PyCFunction)handle_pump, METH_VARARGS, NULL},
    {"stats", (PyCFunction)handle_stats, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef handle_getset[] = {
    {"dir", (getter)handle_get_dir, NULL, NULL, NULL},
    {"max_object", (getter)handle_get_max_object, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject handle_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "jobq._jobq.Handle",
    .tp_basicsize = sizeof(handle_obj),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Handle(dir=None): one connection to a jobqd manager",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)handle_init,
    .tp_dealloc = (destructor)handle_dealloc,
    .tp_methods = handle_methods,
    .tp_getset = handle_getset,
};

/* ------------------------------------------------------------------------
 * Workers.
 *
 * A Python handler is called as fn(id, attempt, args_type, args_bytes)
 * and returns (True, type, bytes) to succeed, or (False, final, text) to
 * fail (for good when final). An exception escaping it fails the attempt
 * retryably, with the exception's text.
 */
static int py_handler(jobq_job_t *job, void *arg)
{
	PyObject *fn = arg, *r;
	const jobq_obj_t *a = jobq_job_args(job);
	PyGILState_STATE g = PyGILState_Ensure();
	int ret = 0;

	r = PyObject_CallFunction(
	    fn, "KIIy#", (unsigned long long)jobq_job_id(job),
	    jobq_job_attempt(job), a->type,
	    a->data ? (const char *)a->data : "", (Py_ssize_t)a->len);
	if (!r) {
		PyObject *type, *value, *tb, *s = NULL;

		PyErr_Fetch(&type, &value, &tb);
		if (value)
			s = PyObject_Str(value);
		ret = jobq_job_fail(job, 0, "%s",
				    s && PyUnicode_Check(s)
					? PyUnicode_AsUTF8(s)
					: "the Python handler raised");
		PyErr_Clear();
		Py_XDECREF(s);
		Py_XDECREF(type);
		Py_XDECREF(value);
		Py_XDECREF(tb);
	} else {
		int ok = 0, final = 0;
		unsigned int t = 0;
		const char *data = NULL;
		Py_ssize_t len = 0;

		if (PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 3 &&
		    PyObject_IsTrue(PyTuple_GET_ITEM(r, 0)) == 1) {
			ok = PyArg_ParseTuple(r, "pIy#", &final, &t, &data,
					      &len);
			if (ok)
				ret =
				    jobq_job_succeed(job, t, data, (size_t)len);
			else
				ret =
				    jobq_job_fail(job, 0,
						  "the handler's result is not "
						  "(True, type, bytes)");
		} else if (PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 3 &&
			   PyArg_ParseTuple(r, "pps", &ok, &final, &data)) {
			ret = jobq_job_fail(job, final, "%s", data);
		} else {
			ret = jobq_job_fail(job, 0,
					    "the handler returned neither "
					    "(True, type, bytes) nor (False, "
					    "final, text)");
		}
		PyErr_Clear();
		Py_DECREF(r);
	}
	PyGILState_Release(g);
	return ret;
}

static int worker_init(worker_obj *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"handle", "concurrency", "daemon", NULL};
	struct jobq_worker_opts o = {0};
	PyObject *h;
	unsigned int conc = 1;
	int daemon = 0, err;
	jobq_t *q;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O!|Ip", kwlist,
					 &handle_type, &h, &conc, &daemon))
		return -1;
	if (self->w) {
		PyErr_SetString(PyExc_RuntimeError, "worker already made");
		return -1;
	}
	q = get_q((handle_obj *)h);
	if (!q)
		return -1;
	o.concurrency = conc;
	o.daemon = daemon;
	/* Handlers run on the worker's fibers and re-enter CPython, whose
	 * frames need far more than a fiber's default 64 KiB: give each
	 * fiber a thread's usual stack. */
	o.stack_size = 8u << 20;
	err = jobq_worker_new(&self->w, q, &o);
	if (err < 0) {
		raise_code(err);
		return -1;
	}
	Py_INCREF(h);
	self->handle = h;
	self->handlers = PyList_New(0);
	return self->handlers ? 0 : -1;
}

static void worker_dealloc(worker_obj *self)
{
	jobq_worker_free(self->w);
	self->w = NULL;
	Py_XDECREF(self->handlers);
	Py_XDECREF(self->handle);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *worker_handle(worker_obj *self, PyObject *args)
{
	const char *type;
	PyObject *fn;
	int err;

	if (!PyArg_ParseTuple(args, "sO", &type, &fn))
		return NULL;
	if (!self->w) {
		PyErr_SetString(PyExc_ValueError, "worker is not set up");
		return NULL;
	}
	if (PyList_Append(self->handlers, fn) < 0)
		return NULL;
	err = jobq_worker_handle(self->w, type, py_handler, fn);
	if (err < 0)
		return raise_code(err);
	Py_RETURN_NONE;
}

/* The worker that SIGTERM and SIGINT stop, while run() runs. */
static jobq_worker_t *volatile stop_target;

static void on_stop_signal(int sig)
{
	jobq_worker_t *w = stop_target;

	if (w)
		jobq_worker_stop(w);
}

/*
 * run(stop_on_signals=True): serve until jobq_worker_stop() or the
 * manager's shutdown. With stop_on_signals, SIGTERM and SIGINT stop the
 * worker gracefully (the running job finishes): a Python signal handler
 * could not run while this call holds the thread outside the interpreter.
 */
static PyObject *worker_run(worker_obj *self, PyObject *args)
{
	struct sigaction sa = {0}, old_term, old_int;
	int sigs = 1, err;

	if (!PyArg_ParseTuple(args, "|p", &sigs))
		return NULL;
	if (!self->w || !get_q((handle_obj *)self->handle))
		return PyErr_Occurred()
			   ? NULL
			   : (PyErr_SetString(PyExc_ValueError, "no worker"),
			      NULL);
	if (sigs) {
		stop_target = self->w;
		sa.sa_handler = on_stop_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, &old_term);
		sigaction(SIGINT, &sa, &old_int);
	}
	Py_BEGIN_ALLOW_THREADS
	err = jobq_worker_run(self->w);
	Py_END_ALLOW_THREADS
	if (sigs) {
		sigaction(SIGTERM, &old_term, NULL);
		sigaction(SIGINT, &old_int, NULL);
		stop_target = NULL;
	}
	if (err < 0)
		return raise_code(err);
	Py_RETURN_NONE;
}

static PyObject *worker_stop(worker_obj *self, PyObject *unused)
{
	if (self->w)
		jobq_worker_stop(self->w);
	Py_RETURN_NONE;
}

static PyMethodDef worker_methods[] = {
    {"handle", (PyCFunction)worker_handle, METH_VARARGS, NULL},
    {"run", (PyCFunction)worker_run, METH_VARARGS, NULL},
    {"stop", (PyCFunction)worker_stop, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject worker_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "jobq._jobq.Worker",
    .tp_basicsize = sizeof(worker_obj),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Worker(handle, concurrency=1, daemon=False)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)worker_init,
    .tp_dealloc = (destructor)worker_dealloc,
    .tp_methods = worker_methods,
};

/* ------------------------------------------------------------------------
 * Module.
 */

/* set_pdeathsig(sig): this process gets @sig when the thread that forked
 * it ends (prctl PR_SET_PDEATHSIG); 0 clears it. */
static PyObject *mod_set_pdeathsig(PyObject *m, PyObject *args)
{
	int sig;

	if (!PyArg_ParseTuple(args, "i", &sig))
		return NULL;
	if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig) < 0)
		return PyErr_SetFromErrno(PyExc_OSError);
	Py_RETURN_NONE;
}

static PyObject *mod_strerror(PyObject *m, PyObject *args)
{
	int code;

	if (!PyArg_ParseTuple(args, "i", &code))
		return NULL;
	return PyUnicode_FromString(jobq_strerror(code));
}

static PyObject *mod_default_dir(PyObject *m, PyObject *unused)
{
	char buf[4096];
	int err = jobq_default_dir(buf, sizeof(buf));

	if (err < 0)
		return raise_code(err);
	return PyUnicode_DecodeFSDefault(buf);
}

static PyMethodDef mod_methods[] = {
    {"set_pdeathsig", mod_set_pdeathsig, METH_VARARGS, NULL},
    {"strerror", mod_strerror, METH_VARARGS, NULL},
    {"default_dir", mod_default_dir, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mod_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_jobq",
    .m_doc = "libjobq for the jobq package",
    .m_size = -1,
    .m_methods = mod_methods,
};

PyMODINIT_FUNC PyInit__jobq(void);

PyMODINIT_FUNC PyInit__jobq(void)
{
	PyObject *m;

	if (PyType_Ready(&handle_type) < 0 || PyType_Ready(&worker_type) < 0)
		return NULL;
	self_pid = getpid();
	errno = pthread_atfork(NULL, NULL, after_fork_child);
	if (errno)
		return PyErr_SetFromErrno(PyExc_OSError);
	m = PyModule_Create(&mod_def);
	if (!m)
		return NULL;
	jobq_py_error =
	    PyErr_NewException("jobq._jobq.Error", PyExc_OSError, NULL);
	Py_INCREF(&handle_type);
	Py_INCREF(&worker_type);
	if (!jobq_py_error || PyModule_AddObject(m, "Error", jobq_py_error) ||
	    PyModule_AddObject(m, "Handle", (PyObject *)&handle_type) ||
	    PyModule_AddObject(m, "Worker", (PyObject *)&worker_type))
		return NULL;
	Py_INCREF(jobq_py_error);
#define C(name) PyModule_AddIntConstant(m, #name, name)
	if (C(JOBQ_ENOMANAGER) || C(JOBQ_EMISMATCH) || C(JOBQ_EKIND) ||
	    C(JOBQ_ENOTNUM) || C(JOBQ_ECLOSED) || C(JOBQ_EFULL) ||
	    C(JOBQ_ELIMIT) || C(JOBQ_EJOBFAILED) || C(JOBQ_T_NONE) ||
	    C(JOBQ_T_BYTES) || C(JOBQ_T_JSON) || C(JOBQ_T_TEXT) ||
	    C(JOBQ_T_USER) || C(JOBQ_LOCK) || C(JOBQ_RLOCK) ||
	    C(JOBQ_SEMAPHORE) || C(JOBQ_EVENT) || C(JOBQ_JOB_WAITING) ||
	    C(JOBQ_JOB_DELAYED) || C(JOBQ_JOB_READY) || C(JOBQ_JOB_RUNNING) ||
	    C(JOBQ_JOB_SUCCEEDED) || C(JOBQ_JOB_FAILED) || C(JOBQ_JOB_DEAD) ||
	    C(JOBQ_JOB_CANCELLED))
		return NULL;
#undef C
	return m;
}
