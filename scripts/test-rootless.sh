#!/bin/sh
# test-rootless.sh PKG... [-test.run=REGEXP ...]: runs the tests of the
# given packages as an unprivileged user, so rootless mode is tested too.
# As root it runs them as the user ccsandbox-test, which it creates if
# needed; as any other user it runs them as that user. It is one rootless
# phase of scripts/testrun (see docs/testing.md), as in make test: the test
# binaries are built once, without -race, as the calling user, and the
# summary lists every skipped test with its reason.
#
#   scripts/test-rootless.sh . ./internal/hv/ns
#   scripts/test-rootless.sh . -test.run='^TestSnapshot'
set -eu
if [ $# -eq 0 ]; then
	echo "usage: $0 PKG... [-test.FLAG=VALUE ...]" >&2
	exit 2
fi
cd "$(dirname "$0")/.."
phases=$(mktemp "${TMPDIR:-/tmp}/cc-rootless-phases-XXXXXX")
trap 'rm -f "$phases"' EXIT
echo "rootless rootless plain - $*" >"$phases"
go run ./scripts/testrun "$phases"
