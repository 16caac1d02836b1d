package layertar

import "errors"

// Limits of one Write. A layer directory a sandbox wrote may hold any
// number of files of several links, and each is remembered, by its entry
// name, until the layer is written, to write its other links as links.
const (
	// MaxLinkBytes bounds the memory Write keeps for hard links: the name
	// of each file of several links, plus LinkCost: 256 MiB, as much as
	// the names unpacking a layer keeps at most
	// (image.DefaultMaxNameBytes), some 2 million links at most.
	MaxLinkBytes int64 = 256 << 20
	// LinkCost is what a remembered link costs besides its name: its key
	// and value in the map and their share of the map's table.
	LinkCost = 128
)

// ErrTooManyLinks matches the error of Write for a layer whose files of
// several links pass MaxLinkBytes.
var ErrTooManyLinks = errors.New("layer export: too many hard-linked files")
