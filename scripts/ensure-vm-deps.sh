#!/bin/sh
# ensure-vm-deps.sh: make sure the VM backend (internal/hv/vm) can run here:
# QEMU (qemu-system-x86), mkfs.ext4 (e2fsprogs), and a guest kernel with its
# modules, Debian's linux-image-amd64 (the cloud kernel has no 9p).
#
# The kernel is never installed: the package that linux-image-amd64 depends
# on is fetched with `apt-get download` and unpacked with `dpkg -x` into
#   /var/cache/cc-sandbox/vm/kernel/<package version>   as root (for every user)
#   $CC_CACHE_DIR/vm/kernel/<package version>           otherwise (default
#                                                       ~/.cache/cc/vm/kernel)
# which is where the backend looks for kernels (see findKernel). /boot is
# not touched. As a user other than root, missing packages are named with
# the command that installs them, and the script fails.
set -eu
export DEBIAN_FRONTEND=noninteractive
here=$(dirname "$0")
"$here/ensure-debs.sh" qemu-system-x86 e2fsprogs

if [ "$(id -u)" = 0 ]; then
	base=/var/cache/cc-sandbox/vm/kernel
else
	base=${CC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cc}/vm/kernel
fi

# The versioned kernel package behind linux-image-amd64.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
	if [ "$(id -u)" = 0 ]; then
		apt-get update -q >/dev/null
		pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	fi
	if [ -z "$pkg" ]; then
		echo "cannot resolve linux-image-amd64: run apt-get update (as root), or set CC_KERNEL to a vmlinuz with its modules" >&2
		exit 1
	fi
fi
version=$(apt-cache show "$pkg" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
dest="$base/$pkg-$version"
if [ -d "$dest/boot" ]; then
	exit 0
fi
echo "unpacking $pkg $version into $dest"
mkdir -p "$base"
tmp=$(mktemp -d "$base/.tmp-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # apt-get download runs as _apt
(cd "$tmp" && apt-get download -q "$pkg=$version" >/dev/null)
dpkg -x "$tmp"/*.deb "$tmp/root"
chmod -R a+rX "$tmp/root"
mv "$tmp/root" "$dest"
