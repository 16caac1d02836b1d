package sandbox

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestCheckDockerfile plans builds without running them: every refused
// instruction or flag comes back with its line and reason, what the
// options give is no longer refused, and a clean Dockerfile has none.
func TestCheckDockerfile(t *testing.T) {
	df := strings.Join([]string{
		"# syntax=docker/dockerfile:1",                               // 1
		"FROM --platform=linux/" + otherArch() + " busybox AS cross", // 2
		"RUN make",                                           // 3: a foreign platform
		"FROM busybox AS main",                               // 4
		"RUN --network=host true",                            // 5
		"RUN --security=insecure true",                       // 6
		"RUN --device=/dev/fuse true",                        // 7
		"RUN --mount=type=secret,id=tok,required true",       // 8: no such secret
		"RUN --mount=type=ssh,required true",                 // 9: no agent
		"RUN --mount=type=bind,from=later,target=/x true",    // 10: a later stage
		"ADD https://github.com/moby/buildkit.git /src",      // 11: git
		"ADD https://example.com/f.tar /",                    // 12: no network
		"ADD --checksum=sha256:beef https://example.com/f /", // 13: bad checksum, no network
		"COPY --from=later /a /b",                            // 14: a later stage
		"COPY https://example.com/f /",                       // 15: COPY of a URL
		"RUN --mount=type=cache,target=/c,bogus=1 true",      // 16: a bad mount
		"RUN --mount=type=tmpfs,target=/t,size=1g true",      // 17: fine (size is a warning)
		"COPY --parents --exclude=*.md --link a/./b /dst/",   // 18: fine
		"FROM busybox AS later",                              // 19
	}, "\n") + "\n"
	problems, err := CheckDockerfile([]byte(df))
	if err != nil {
		t.Fatal(err)
	}
	byLine := map[int][]string{}
	for _, p := range problems {
		byLine[p.Line] = append(byLine[p.Line], p.Message)
		if !strings.HasPrefix(p.String(), fmt.Sprintf("Dockerfile:%d: ", p.Line)) {
			t.Errorf("String() = %q", p.String())
		}
	}
	want := map[int][]string{
		3:  {"sandboxes here run linux/"},
		5:  {"--network=host is not supported"},
		6:  {"--security=insecure is not supported"},
		7:  {"--device is not supported"},
		8:  {`secret "tok" is required`},
		9:  {`ssh agent "default" is required`},
		10: {`cannot mount from stage "later"`},
		11: {"git repository is not supported"},
		12: {"needs the network", "WithBuildNetwork"},
		13: {"invalid --checksum", "needs the network"},
		14: {`cannot copy from stage "later"`},
		15: {"COPY cannot read URLs"},
		16: {"bogus"},
	}
	for line, subs := range want {
		all := strings.Join(byLine[line], "\n")
		for _, s := range subs {
			if !strings.Contains(all, s) {
				t.Errorf("line %d: problems %q lack %q", line, byLine[line], s)
			}
		}
	}
	for line := range byLine {
		if _, ok := want[line]; !ok {
			t.Errorf("line %d: unexpected problems %q", line, byLine[line])
		}
	}

	// What the options give is no longer refused.
	problems, err = CheckDockerfile([]byte(df), WithBuildNetwork(), WithBuildSecret("tok", []byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, p := range problems {
		lines = append(lines, p.Line)
	}
	for _, gone := range []int{8, 12} {
		if slices.Contains(lines, gone) {
			t.Errorf("with the network and the secret, line %d is still refused: %v", gone, problems)
		}
	}

	// A clean Dockerfile, a parse error, a bad option, an unknown target.
	if p, err := CheckDockerfile([]byte("FROM busybox AS b\nRUN --mount=type=cache,target=/root/.cache true\nFROM scratch\nCOPY --from=b / /\n")); err != nil || len(p) != 0 {
		t.Errorf("a clean Dockerfile: %v %v", p, err)
	}
	if p, _ := CheckDockerfile([]byte("FROM busybox\nRUN true\nNOSUCH x\n")); len(p) != 1 || p[0].Line != 3 || !strings.Contains(p[0].Message, "unknown instruction") {
		t.Errorf("a parse error: %+v", p)
	}
	if _, err := CheckDockerfile([]byte("FROM busybox\n"), WithBuildParallelism(-1)); err == nil {
		t.Error("a bad option was accepted")
	}
	if p, _ := CheckDockerfile([]byte("FROM busybox AS a\n"), WithTarget("b")); len(p) != 1 || !strings.Contains(p[0].Message, `target stage "b"`) {
		t.Errorf("an unknown target: %+v", p)
	}
}
