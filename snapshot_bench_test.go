package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkSnapshot: Snapshot of a running sandbox with 1 MB and 100 MB
// of changes, on the small busybox image and on a large one (busybox with
// 512 MB more in a layer below): the time follows the change, not the
// image.
func BenchmarkSnapshot(b *testing.B) {
	ctx := context.Background()
	small := Source(busyboxImage(b))
	large := largeImage(b, 512)
	defer large.Close()
	for _, img := range []struct {
		name string
		src  Source
	}{{"busybox", small}, {"large", large}} {
		for _, mb := range []int{1, 100} {
			b.Run(fmt.Sprintf("%s/%dMB", img.name, mb), func(b *testing.B) {
				inst := newInstance(b, img.src)
				// 1 MB files: a change of mb files.
				run(b, inst, fmt.Sprintf("mkdir /changes && for i in $(seq %d); do head -c 1048576 /dev/urandom > /changes/$i; done", mb))
				b.SetBytes(int64(mb) << 20)
				for b.Loop() {
					snap, err := inst.Snapshot(ctx)
					if err != nil {
						b.Fatal(err)
					}
					snap.Close()
				}
			})
		}
	}
}

// BenchmarkNewFromSnapshot: New + Command("true").Run + Close from a
// snapshot (busybox plus 1 MB of changes), beside the same from the image
// it was taken of.
func BenchmarkNewFromSnapshot(b *testing.B) {
	ctx := context.Background()
	img := busyboxImage(b)
	inst := newInstance(b, img)
	run(b, inst, "head -c 1048576 /dev/urandom > /changed")
	snap, err := inst.Snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer snap.Close()
	for _, c := range []struct {
		name string
		src  Source
	}{{"sdk", snap}, {"floor", img}} {
		b.Run(c.name, func(b *testing.B) {
			startRunClose(b, c.src, WithCacheDir(testCache))
		})
	}
}

// largeImage is busybox with mb MB of files in one more layer, as a
// snapshot.
func largeImage(b *testing.B, mb int) *Snapshot {
	b.Helper()
	inst := newInstance(b, busyboxImage(b))
	run(b, inst, fmt.Sprintf("mkdir /bulk && for i in $(seq %d); do head -c 1048576 /dev/urandom > /bulk/$i; done", mb))
	snap, err := inst.Snapshot(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return snap
}

// BenchmarkSnapshotChange: Snapshot of a running sandbox with 1 MB of
// changes (one file), frozen while it is copied, beside the floor of that
// work done by hand on the host: the same 1 MB file copied into a fresh
// directory and synced, as the store's layer is.
func BenchmarkSnapshotChange(b *testing.B) {
	ctx := context.Background()
	inst := newInstance(b, busyboxImage(b))
	run(b, inst, "head -c 1048576 /dev/urandom > /changed")
	data, err := inst.ReadFile("/changed")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("sdk", func(b *testing.B) {
		b.SetBytes(1 << 20)
		for b.Loop() {
			snap, err := inst.Snapshot(ctx)
			if err != nil {
				b.Fatal(err)
			}
			snap.Close()
		}
	})
	b.Run("floor", func(b *testing.B) {
		b.SetBytes(1 << 20)
		dir := b.TempDir()
		for i := 0; b.Loop(); i++ {
			d := filepath.Join(dir, strconv.Itoa(i))
			if err := os.Mkdir(d, 0o700); err != nil {
				b.Fatal(err)
			}
			f, err := os.Create(filepath.Join(d, "changed"))
			if err == nil {
				_, err = f.Write(data)
			}
			if err == nil {
				err = f.Sync()
			}
			if err == nil {
				err = f.Close()
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
