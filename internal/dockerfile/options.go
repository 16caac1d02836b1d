package dockerfile

import (
	"context"
	"net"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Options configure Build.
type Options struct {
	// Context is the build context directory; "" means none (COPY and
	// ADD from the context then fail).
	Context string
	// Args are the build arguments (--build-arg).
	Args map[string]string
	// Target names the stage to build; "" means the last.
	Target string
	// NoCache makes every step run again; NoCacheStages only those of
	// the named stages. Results are still recorded.
	NoCache       bool
	NoCacheStages []string
	// SourceDateEpoch, when not zero, is the time of every history entry
	// and of the config's created field, and no file or directory a step
	// writes into a layer gets a later modification time (times before
	// it are kept). Steps are cached apart from builds without it.
	SourceDateEpoch time.Time
	// Platform is the platform built for; zero means linux and the
	// program's architecture.
	Platform v1.Platform
	// Progress, when set, receives the build's events, never two at once.
	Progress func(Event)
	// Network gives RUN steps (but those with --network=none) egress, and
	// lets ADD fetch URLs, through Dial.
	Network bool
	// Dial opens the connections ADD of a URL makes (addr is IP:port);
	// nil refuses them. RUN steps reach the network through the
	// Executor, which has its own dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Secrets are the values RUN --mount=type=secret reads, by id. They
	// never reach a layer, a key, the history, an event or an error.
	Secrets map[string]Secret
	// SSH are the agent sockets RUN --mount=type=ssh forwards, by id.
	SSH map[string]string
	// Parallelism bounds the stages that run at once; 0 means one.
	Parallelism int
	// NoNetwork says, when a step without network fails, why it had
	// none; "": a build has none unless WithBuildNetwork gives it.
	NoNetwork string
}

// Secret is a build secret: a value, or a host file read when a step
// needs it.
type Secret struct {
	Value []byte
	File  string // used when Value is nil
}

// Event is one thing that happened during a build.
type Event struct {
	Step        int    // the step's number in its stage, from 1; 0 for build-wide messages
	Total       int    // the filesystem steps of the stage (FROM included)
	Stage       string // the stage's name, or "stage-N"
	Instruction string // the instruction as run, after expansion
	Cached      bool   // on the end event: the result came from the cache (or needed no work)
	Done        bool   // the step has ended
	Output      string // a line of output (or a warning when Step is 0)
}

func (o *Options) noCacheFor(stage string) bool {
	if o.NoCache {
		return true
	}
	for _, s := range o.NoCacheStages {
		if strings.EqualFold(s, stage) {
			return true
		}
	}
	return false
}
