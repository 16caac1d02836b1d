package fsutil

import "strconv"

// FDPath names the entry base of the directory descriptor dirfd, for the
// calls that take only a path (xattrs on non-regular files); the l* calls
// that use it never follow its final component.
func FDPath(dirfd int, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + base
}
