package sandbox

import (
	"errors"
	"fmt"

	"github.com/ccsandbox/sandbox/internal/dockerfile"
)

// DockerfileProblem is an instruction, or a flag of one, that Build would
// refuse, as CheckDockerfile reports it.
type DockerfileProblem struct {
	Line        int    // the instruction's first line; 0 when the Dockerfile as a whole is at fault
	Instruction string // the instruction as written, "" when none
	Message     string // what is refused, and why
}

// String returns "Dockerfile:LINE: INSTRUCTION: message", as Build's
// errors read.
func (p DockerfileProblem) String() string {
	return dockerfile.Problem(p).String()
}

// CheckDockerfile parses the Dockerfile src and plans a build of it with opts (the
// options Build would get), without pulling, reading the context or
// running anything, and returns every instruction or flag Build would
// refuse, each with its line: what the parser rejects, the flags and
// mounts this builder does not support (with the reason), secrets and SSH
// agents a step requires that opts do not give, URLs to fetch with the
// network off, RUN steps in a stage of a platform this host cannot run,
// and references to stages not defined before. Every stage is checked,
// whether the target needs it or not. No problem means none of these:
// the build can still fail on a missing file or a failing command. It
// returns an error only for an invalid option.
func CheckDockerfile(src []byte, opts ...BuildOption) ([]DockerfileProblem, error) {
	var o buildOptions
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("sandbox.CheckDockerfile: nil option")
		}
		if err := opt.applyBuild(&o); err != nil {
			return nil, fmt.Errorf("sandbox.CheckDockerfile: %w", err)
		}
	}
	var out []DockerfileProblem
	for _, p := range dockerfile.Check(src, o.internal()) {
		out = append(out, DockerfileProblem(p))
	}
	return out, nil
}
