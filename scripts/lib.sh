# Shared by scripts/demo.sh and scripts/test.sh: install what the build needs
# and configure a build directory. Sourced, not run.

JOBQ_PACKAGES="gcc meson ninja-build pkg-config liburing-dev libjansson-dev libcmocka-dev libpq-dev"
# Only the test command needs these: the formatter; clang with its runtime
# (libFuzzer, the sanitizers) for the fuzz targets; the Python binding's
# headers and pytest; and what the tests drive the service with (a
# Prometheus parser, tmux, headless Chromium); and a PostgreSQL 15 server
# with pgbench for the --backend tests and their baseline.
JOBQ_TEST_PACKAGES="clang-format clang libclang-rt-dev python3-dev python3-pytest python3-prometheus-client tmux chromium python3-websocket postgresql-15 postgresql-contrib"

# need_packages: install the packages that are missing (apt-get when root),
# or print the exact command to run and fail.
need_packages() {
	local missing=() p
	for p in $JOBQ_PACKAGES "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -eq 0 ]; then
		echo "installing: ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null &&
			apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
			{ echo "apt-get install failed: ${missing[*]}" >&2; return 1; }
	else
		echo "missing packages; run:" >&2
		echo "  sudo apt-get install -y ${missing[*]}" >&2
		return 1
	fi
}

# build DIR: ninja in DIR, quiet unless it fails (then its whole output).
build() {
	local log
	log=$(mktemp) || return 1
	echo "building $1"
	if ! ninja -C "$1" -j "$(nproc)" >"$log" 2>&1; then
		cat "$log"
		rm -f "$log"
		echo "build of $1 failed" >&2
		return 1
	fi
	rm -f "$log"
}

# configure DIR [meson options...]: set up DIR once, reconfigure if it exists.
configure() {
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
}
