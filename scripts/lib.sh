# Shared by scripts/demo.sh and scripts/test.sh: install what the build needs
# and configure a build directory. Sourced, not run.

JOBQ_PACKAGES="gcc meson ninja-build pkg-config liburing-dev libjansson-dev libcmocka-dev"
# Only the test command needs these.
JOBQ_TEST_PACKAGES="clang-format python3-dev python3-pytest"

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
