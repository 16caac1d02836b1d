package sandbox_test

import (
	"fmt"
	"log"

	"github.com/ccsandbox/sandbox"
)

// CheckDockerfile says, before any build, which lines a build would
// refuse and why; the options it gets change what is refused.
func ExampleCheckDockerfile() {
	dockerfile := []byte(`FROM golang:1.22 AS build
RUN --mount=type=cache,target=/root/.cache/go-build go build -o /out/app .
RUN --mount=type=secret,id=token,required curl -H @/run/secrets/token https://example.com
ADD https://github.com/moby/buildkit.git /src
FROM scratch
COPY --from=build /out/app /app
`)
	problems, err := sandbox.CheckDockerfile(dockerfile, sandbox.WithBuildNetwork())
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range problems {
		fmt.Printf("line %d: %.60s\n", p.Line, p.Message)
	}
	// Output:
	// line 3: secret "token" is required and the build has none of that id
	// line 4: ADD of a git repository is not supported: a git client's con
}
