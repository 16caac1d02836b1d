package ipc

import "slices"

// The seed document's Dockerfile build options, for MsgBuildDockerfile,
// which nothing in this SDK sends (builds run in the calling process).

// DockerfileOptions holds Dockerfile build options for IPC transfer.
type DockerfileOptions struct {
	Dockerfile []byte            // Dockerfile content
	ContextDir string            // Directory for COPY/ADD (optional)
	CacheDir   string            // Cache directory (required)
	BuildArgs  map[string]string // Build arguments (optional)
}

// EncodeDockerfileOptions encodes Dockerfile build options: Dockerfile (as
// bytes), ContextDir, CacheDir, then a uint32 count and each build argument
// as key and value. Keys are written in sorted order so that equal options
// always encode to equal bytes.
func EncodeDockerfileOptions(enc *Encoder, opts DockerfileOptions) {
	enc.WriteBytes(opts.Dockerfile)
	enc.String(opts.ContextDir)
	enc.String(opts.CacheDir)
	enc.Uint32(uint32(len(opts.BuildArgs)))
	keys := make([]string, 0, len(opts.BuildArgs))
	for k := range opts.BuildArgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		enc.String(k)
		enc.String(opts.BuildArgs[k])
	}
}

// DecodeDockerfileOptions decodes Dockerfile build options. BuildArgs is nil
// when the count is zero.
func DecodeDockerfileOptions(dec *Decoder) (DockerfileOptions, error) {
	var opts DockerfileOptions
	var err error
	if opts.Dockerfile, err = dec.Bytes(); err != nil {
		return opts, err
	}
	if opts.ContextDir, err = dec.String(); err != nil {
		return opts, err
	}
	if opts.CacheDir, err = dec.String(); err != nil {
		return opts, err
	}
	n, err := dec.count(8)
	if err != nil {
		return opts, err
	}
	if n > 0 {
		opts.BuildArgs = make(map[string]string, n)
	}
	for range n {
		k, err := dec.String()
		if err != nil {
			return opts, err
		}
		v, err := dec.String()
		if err != nil {
			return opts, err
		}
		opts.BuildArgs[k] = v
	}
	return opts, nil
}
