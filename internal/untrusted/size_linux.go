package untrusted

import (
	"context"
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"
)

// Size returns the bytes of the regular files of the tree at root (a host
// path the caller made), as du counts apparent sizes, hard links once
// each. Entries that vanish meanwhile are not counted; it stops with
// ctx's error.
func Size(ctx context.Context, root string) (int64, error) {
	d, err := Open(root)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	seen := map[[2]uint64]bool{}
	return d.size(ctx, seen, 0)
}

func (d *Dir) size(ctx context.Context, seen map[[2]uint64]bool, depth int) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if depth >= maxRemoveDepth*32 {
		return 0, d.err("walk", "", unix.ELOOP)
	}
	names, err := d.Names()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, name := range names {
		node, err := d.Lookup(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return n, err
		}
		st := node.Stat()
		switch node.Type() {
		case unix.S_IFREG:
			if key := [2]uint64{st.Dev, st.Ino}; st.Nlink == 1 || !seen[key] {
				seen[key] = true
				n += st.Size
			}
		case unix.S_IFDIR:
			sub, err := node.OpenDir()
			if err == nil {
				var k int64
				k, err = sub.size(ctx, seen, depth+1)
				n += k
				sub.Close()
			}
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				node.Close()
				return n, err
			}
		}
		node.Close()
	}
	return n, nil
}
