#!/bin/sh
# test-rootless.sh PKG...: runs the tests of the given packages as an
# unprivileged user, so rootless mode is tested too. As root it creates the
# user ccsandbox-test if needed; as any other user it runs them as itself.
set -eu
user=ccsandbox-test
dir=$(mktemp -d "${TMPDIR:-/tmp}/cc-rootless-XXXXXX")
trap 'rm -rf "$dir"' EXIT
chmod 755 "$dir"
for pkg in "$@"; do
	name=$(echo "$pkg" | tr '/.' '__')
	go test -c -race -o "$dir/$name.test" "$pkg"
done
go build -o "$dir/cc-helper" ./cmd/cc-helper # for TestHelperBinary
mkdir "$dir/examples" # for TestExamples: this user cannot build them
for ex in examples/*/; do
	CGO_ENABLED=0 go build -o "$dir/examples/$(basename "$ex")" "./$ex" # static: the gvisor example is runsc too
done
run() {
	if [ "$(id -u)" = 0 ]; then
		su "$user" -s /bin/sh -c "$1"
	else
		sh -c "$1"
	fi
}
home="$dir/home"
mkdir "$home"
if [ "$(id -u)" = 0 ]; then
	id "$user" >/dev/null 2>&1 || useradd --no-create-home --shell /bin/sh "$user"
	chown "$user" "$home"
fi
# The tests run in their package's directory. A user who cannot reach the
# checkout (one in a private temporary directory, say) gets a copy of its
# files instead.
root=$(go list -m -f '{{.Dir}}')
copy=
if ! run "cd '$root'" 2>/dev/null; then
	copy="$dir/src"
	mkdir "$copy"
	if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
		(cd "$root" && git ls-files -z | xargs -0 cp --parents -t "$copy")
	else
		(cd "$root" && tar -cf - --exclude=./.git .) | tar -xf - -C "$copy"
	fi
	chmod -R a+rX "$copy"
	echo "== rootless: $user cannot reach $root; testing a copy in $copy"
fi
status=0
for pkg in "$@"; do
	name=$(echo "$pkg" | tr '/.' '__')
	src=$(go list -f '{{.Dir}}' "$pkg")
	if [ -n "$copy" ]; then
		src="$copy${src#"$root"}"
	fi
	echo "== rootless: $pkg"
	if ! run "cd '$src' && HOME='$home' XDG_CACHE_HOME='$home/.cache' CC_TEST_HELPER_BIN='$dir/cc-helper' CC_TEST_EXAMPLES_BIN='$dir/examples' GORACE=atexit_sleep_ms=0 '$dir/$name.test' -test.count=1 -test.timeout=15m; rc=\$?; exit \$rc"; then
		status=1
	fi
done
exit $status
