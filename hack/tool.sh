#!/usr/bin/env bash
# Usage: hack/tool.sh OUT DIR GO-BUILD-ARGUMENTS... (the last one the package)
#
# Builds a tool of one of the tools modules (DIR, hack/<name>) into OUT and keeps the binary in a
# cache outside the clone, keyed by everything it is built from: the module's files, the build
# arguments, the Go toolchain the module selects and its settings. Another clone, or bin/ after
# `make clean`, then gets a copy instead of a new link (the four Kubernetes binaries alone take
# about a minute to link with a warm build cache). The cache is $MERIDIAN_TOOLS_CACHE, by default
# ${XDG_CACHE_HOME:-~/.cache}/meridian/tools; MERIDIAN_TOOLS_CACHE=off builds every time.
set -euo pipefail
out=$1 dir=$2
shift 2

build() { (cd "$dir" && "${GO:-go}" build -o "$1" "${@:2}"); }

cache=${MERIDIAN_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meridian/tools}
if [ "$cache" = off ] || ! mkdir -p "$cache" 2>/dev/null; then
	build "$out" "$@"
	exit
fi

name=$(basename "$out")
key=$(
	cd "$dir"
	{
		"${GO:-go}" version
		"${GO:-go}" env GOOS GOARCH GOFLAGS CGO_ENABLED GOEXPERIMENT GOAMD64 GOARM64
		printf '%s\0' "$@"
		for f in $(ls | LC_ALL=C sort); do
			if [ -f "$f" ]; then
				printf '%s\0' "$f"
				cat "$f"
			fi
		done
	} | sha256sum | cut -c1-16
)
cached=$cache/$name-$key

if [ ! -x "$cached" ]; then
	tmp=$cache/.$name.$$
	trap 'rm -f "$tmp"' EXIT
	build "$tmp" "$@"
	# One version of each tool is kept.
	rm -f "$cache/$name"-*
	mv -f "$tmp" "$cached"
else
	echo "$name: from the tools cache ($cached)"
fi
mkdir -p "$(dirname "$out")"
cp -f "$cached" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
