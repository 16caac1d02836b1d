package ipc

import (
	"io/fs"
	"math"
)

// FileInfo holds file metadata for IPC transfer.
type FileInfo struct {
	Name      string
	Size      int64
	Mode      fs.FileMode
	ModTime   int64 // Unix timestamp
	IsDir     bool
	IsSymlink bool
}

// EncodeFileInfo encodes file info: Name, Size, Mode (uint32), ModTime,
// IsDir, IsSymlink.
func EncodeFileInfo(enc *Encoder, fi FileInfo) {
	enc.String(fi.Name)
	enc.Int64(fi.Size)
	enc.Uint32(uint32(fi.Mode))
	enc.Int64(fi.ModTime)
	enc.Bool(fi.IsDir)
	enc.Bool(fi.IsSymlink)
}

// DecodeFileInfo decodes file info.
func DecodeFileInfo(dec *Decoder) (FileInfo, error) {
	var fi FileInfo
	var err error
	if fi.Name, err = dec.String(); err != nil {
		return fi, err
	}
	if fi.Size, err = dec.Int64(); err != nil {
		return fi, err
	}
	mode, err := dec.Uint32()
	if err != nil {
		return fi, err
	}
	fi.Mode = fs.FileMode(mode)
	if fi.ModTime, err = dec.Int64(); err != nil {
		return fi, err
	}
	if fi.IsDir, err = dec.Bool(); err != nil {
		return fi, err
	}
	fi.IsSymlink, err = dec.Bool()
	return fi, err
}

// DirEntry holds directory entry data for IPC transfer.
type DirEntry struct {
	Name  string
	IsDir bool
	Mode  fs.FileMode
}

// EncodeDirEntry encodes a directory entry: Name, IsDir, Mode (uint32).
func EncodeDirEntry(enc *Encoder, de DirEntry) {
	enc.String(de.Name)
	enc.Bool(de.IsDir)
	enc.Uint32(uint32(de.Mode))
}

// DecodeDirEntry decodes a directory entry.
func DecodeDirEntry(dec *Decoder) (DirEntry, error) {
	var de DirEntry
	var err error
	if de.Name, err = dec.String(); err != nil {
		return de, err
	}
	if de.IsDir, err = dec.Bool(); err != nil {
		return de, err
	}
	mode, err := dec.Uint32()
	de.Mode = fs.FileMode(mode)
	return de, err
}

// MountConfig holds mount configuration for IPC transfer.
type MountConfig struct {
	Tag      string
	HostPath string
	Writable bool
}

// minMountConfigSize is the encoded size of an empty MountConfig.
const minMountConfigSize = 4 + 4 + 1

// EncodeMountConfig encodes mount configuration: Tag, HostPath, Writable.
func EncodeMountConfig(enc *Encoder, mc MountConfig) {
	enc.String(mc.Tag)
	enc.String(mc.HostPath)
	enc.Bool(mc.Writable)
}

// DecodeMountConfig decodes mount configuration.
func DecodeMountConfig(dec *Decoder) (MountConfig, error) {
	var mc MountConfig
	var err error
	if mc.Tag, err = dec.String(); err != nil {
		return mc, err
	}
	if mc.HostPath, err = dec.String(); err != nil {
		return mc, err
	}
	mc.Writable, err = dec.Bool()
	return mc, err
}

// InstanceOptions holds instance options for IPC transfer.
type InstanceOptions struct {
	MemoryMB    uint64
	CPUs        int
	TimeoutSecs float64
	User        string
	EnableDmesg bool
	Mounts      []MountConfig
}

// EncodeInstanceOptions encodes instance options: MemoryMB (uint64), CPUs
// (int32), the timeout in nanoseconds (uint64), User, EnableDmesg, then a
// uint32 count and each mount. A negative or NaN timeout encodes as 0 (none),
// one too large for a uint64 of nanoseconds as the largest value.
func EncodeInstanceOptions(enc *Encoder, opts InstanceOptions) {
	enc.Uint64(opts.MemoryMB)
	enc.Int32(int32(opts.CPUs))
	enc.Uint64(secondsToNanos(opts.TimeoutSecs))
	enc.String(opts.User)
	enc.Bool(opts.EnableDmesg)
	enc.Uint32(uint32(len(opts.Mounts)))
	for _, m := range opts.Mounts {
		EncodeMountConfig(enc, m)
	}
}

// secondsToNanos converts seconds to whole nanoseconds, saturating. The
// conversion must be stable through the float64 seconds of the decoded
// struct (decode then encode gives the same bytes): below 2^49 ns (6.5
// days) whole nanoseconds survive the round trip; up to 1e18 ns (31
// years) whole microseconds do, so longer timeouts are rounded to them;
// beyond, the timeout is as good as none and saturates.
func secondsToNanos(s float64) uint64 {
	const exactNanos = 1 << 49
	const limit = 1e18
	switch ns := s * 1e9; {
	case !(ns > 0): // also NaN
		return 0
	case ns >= limit:
		return math.MaxUint64
	case ns < exactNanos:
		return uint64(math.Round(ns))
	default:
		return uint64(math.Round(s*1e6)) * 1000
	}
}

// DecodeInstanceOptions decodes instance options.
func DecodeInstanceOptions(dec *Decoder) (InstanceOptions, error) {
	var opts InstanceOptions
	var err error
	if opts.MemoryMB, err = dec.Uint64(); err != nil {
		return opts, err
	}
	cpus, err := dec.Int32()
	if err != nil {
		return opts, err
	}
	opts.CPUs = int(cpus)
	nanos, err := dec.Uint64()
	if err != nil {
		return opts, err
	}
	opts.TimeoutSecs = float64(nanos) / 1e9
	if opts.User, err = dec.String(); err != nil {
		return opts, err
	}
	if opts.EnableDmesg, err = dec.Bool(); err != nil {
		return opts, err
	}
	n, err := dec.count(minMountConfigSize)
	if err != nil {
		return opts, err
	}
	opts.Mounts = make([]MountConfig, n)
	for i := range opts.Mounts {
		if opts.Mounts[i], err = DecodeMountConfig(dec); err != nil {
			return opts, err
		}
	}
	return opts, nil
}

// SnapshotOptions holds snapshot options for IPC transfer.
type SnapshotOptions struct {
	Excludes []string
	CacheDir string
}

// EncodeSnapshotOptions encodes snapshot options: Excludes, CacheDir.
func EncodeSnapshotOptions(enc *Encoder, opts SnapshotOptions) {
	enc.StringSlice(opts.Excludes)
	enc.String(opts.CacheDir)
}

// DecodeSnapshotOptions decodes snapshot options.
func DecodeSnapshotOptions(dec *Decoder) (SnapshotOptions, error) {
	var opts SnapshotOptions
	var err error
	if opts.Excludes, err = dec.StringSlice(); err != nil {
		return opts, err
	}
	opts.CacheDir, err = dec.String()
	return opts, err
}

// Encode implements Msg (SnapshotOptions is the request of the agent's
// MsgFsSnapshot).
func (o *SnapshotOptions) Encode(e *Encoder) { EncodeSnapshotOptions(e, *o) }

// Decode implements Msg.
func (o *SnapshotOptions) Decode(d *Decoder) (err error) {
	*o, err = DecodeSnapshotOptions(d)
	return err
}
