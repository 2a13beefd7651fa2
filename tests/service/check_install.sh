#!/usr/bin/env bash
# What `meson install` puts down works as an installed jobq should: the
# release build (JOBQ_TEST_RELEASE_BUILD, which scripts/test.sh builds) is
# installed into a temporary destdir; an example is compiled against the
# installed jobq.h and libjobq found through the installed jobq.pc only;
# it runs against a manager started from the installed jobqd, and the
# installed jobq talks to that manager. The units, the completion and the
# header are where the README says. The manager is stopped by its pid.
set -u
build=${JOBQ_TEST_RELEASE_BUILD:-}
src=${JOBQ_TEST_SRCDIR:?}
if [ -z "$build" ] || [ ! -f "$build/build.ninja" ]; then
	[ -n "${CI:-}" ] && { echo "JOBQ_TEST_RELEASE_BUILD is not set: run scripts/test.sh"; exit 1; }
	echo "skipped: JOBQ_TEST_RELEASE_BUILD names no build (scripts/test.sh sets it)"
	exit 77
fi
for t in pkg-config cc; do
	command -v $t >/dev/null || { echo "skipped: $t is missing"; exit 77; }
done
top=$(mktemp -d) || exit 1
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	rm -rf "$top"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

dest=$top/dest
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >"$top/install.log" 2>&1 ||
	{ cat "$top/install.log"; fail "meson install"; }

pc=$(find "$dest" -name jobq.pc | head -n 1)
[ -n "$pc" ] || fail "no jobq.pc installed"
jobqd=$(find "$dest" -path '*/bin/jobqd' -type f | head -n 1)
jobq=$(find "$dest" -path '*/bin/jobq' -type f | head -n 1)
[ -x "$jobqd" ] && [ -x "$jobq" ] || fail "jobqd or jobq not installed"
libdir=$(dirname "$(find "$dest" -name 'libjobq.so' | head -n 1)")
for f in include/jobq.h share/man/man1/jobq.1 share/man/man8/jobqd.8 \
	share/man/man3/libjobq.3 share/man/man3/jobq_queues.3 \
	lib/systemd/system/jobqd.service lib/systemd/user/jobqd.service \
	lib/sysusers.d/jobq.conf share/bash-completion/completions/jobq; do
	[ -n "$(find "$dest" -path "*/$f" | head -n 1)" ] || fail "$f not installed"
done
grep -q "^ExecStart=$(dirname "${jobqd#$dest}")/jobqd" "$(find "$dest" -path '*/system/jobqd.service')" ||
	fail "the system unit does not start the installed jobqd"

# The man pages render without a warning from groff.
if command -v man >/dev/null; then
	for page in $(find "$dest" -path '*/share/man/man*' -type f); do
		w=$(man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
		[ -z "$w" ] || fail "man page $(basename "$page"): $w"
	done
fi

# Compile an example with nothing but what pkg-config says of the
# installed tree (the sysroot maps its paths into the destdir).
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$dest
flags=$(pkg-config --cflags --libs jobq) || fail "pkg-config jobq"
cc -o "$top/ticket_seller" "$src/examples/ticket_seller.c" $flags ||
	fail "compiling against the installed header and library"

dir=$top/jobq
"$jobqd" --dir "$dir" --daemon || fail "the installed jobqd did not start"
pid=$(cat "$dir/jobqd.pid")
LD_LIBRARY_PATH=$libdir "$top/ticket_seller" --dir "$dir" >"$top/example.log" 2>&1 ||
	{ cat "$top/example.log"; fail "the example against the installed jobqd"; }
LD_LIBRARY_PATH=$libdir ldd "$top/ticket_seller" | grep -q "$libdir/libjobq.so" ||
	fail "the example did not link the installed libjobq"
LD_LIBRARY_PATH=$libdir "$jobq" --dir "$dir" ping >/dev/null || fail "the installed jobq"
LD_LIBRARY_PATH=$libdir "$jobq" --dir "$dir" shutdown >/dev/null || fail "jobq shutdown"
pid=
echo "ok: installed, compiled through pkg-config, ran against the installed jobqd"
