package sandbox

import (
	"runtime"
	"strings"
	"testing"
)

// COPY --exclude, --parents and --link, FROM --platform and the platform
// arguments, and the parser directives.
func init() {
	dockerfileTable = append(dockerfileTable,
		dfCase{
			name:  "copy --exclude: patterns as BuildKit matches them, and excluded files are not in the key",
			df:    "FROM busybox\nCOPY --exclude=*.md . /c/\nCOPY --exclude=**/*.md --exclude=!keep.md . /d/\nCOPY --exclude=*.txt a* /e/\n",
			files: map[string]string{"a.txt": "A", "ab.go": "G", "b.md": "B", "keep.md": "K", "dir/c.md": "C", "dir/d.txt": "D"},
			check: func(t *testing.T, b *dfBuild) {
				eq(t, "/c", b.sh("cd /c && find . -type f | sort"), "./a.txt\n./ab.go\n./dir/c.md\n./dir/d.txt\n")
				eq(t, "/d", b.sh("cd /d && find . -type f | sort"), "./a.txt\n./ab.go\n./dir/d.txt\n./keep.md\n")
				eq(t, "/e", b.sh("cd /e && find . -type f | sort"), "./ab.go\n")
				writeFile(t, b.ctx, "b.md", "changed")
				if ran := b.again().ran(); len(ran) != 0 {
					t.Errorf("after changing b.md, which every COPY excludes, ran %q", ran)
				}
				writeFile(t, b.ctx, "dir/c.md", "changed")
				if ran := b.again().ran(); len(ran) != 3 {
					t.Errorf("after changing dir/c.md, which the first COPY takes, ran %q; want all three", ran)
				}
			},
		},
		dfCase{
			name:  "copy --parents keeps the sources' directories, from the ./ pivot, with **",
			df:    "FROM busybox\nCOPY --parents x/a.txt y/a.txt /p/\nCOPY --parents ./x/./y/*.txt /q/\nCOPY --parents x/**/*.txt /r/\nCOPY --parents x/y /s/\n",
			files: map[string]string{"x/a.txt": "xa", "y/a.txt": "ya", "x/y/b.txt": "xyb", "x/y/c.md": "md"},
			check: func(t *testing.T, b *dfBuild) {
				eq(t, "/p", b.sh("cd /p && find . -type f | sort"), "./x/a.txt\n./y/a.txt\n")
				eq(t, "/q", b.sh("cd /q && find . -type f | sort"), "./y/b.txt\n")
				eq(t, "/r", b.sh("cd /r && find . -type f | sort"), "./x/a.txt\n./x/y/b.txt\n")
				eq(t, "/s", b.sh("cd /s && find . -type f | sort"), "./x/y/b.txt\n./x/y/c.md\n")
				eq(t, "content", b.file("/r/x/y/b.txt"), "xyb")
			},
		},
		dfCase{
			name:  "copy --parents from a stage, below the pivot",
			df:    "FROM busybox AS one\nCOPY a.txt /p/x/a.txt\nFROM busybox\nCOPY --from=one --parents /p/./x/a.txt /from-stage/\n",
			files: map[string]string{"a.txt": "A"},
			check: func(t *testing.T, b *dfBuild) {
				eq(t, "/from-stage", b.sh("cd /from-stage && find . -type f"), "./x/a.txt\n")
			},
		},
		dfCase{
			name:  "copy --link: the same files, and a layer reused when the layers below change",
			df:    "FROM busybox\nARG V\nRUN echo $V > /v\nCOPY --link big.txt /opt/app/\nCOPY --link --chmod=0755 run.sh /usr/local/bin/run\n",
			files: map[string]string{"big.txt": strings.Repeat("data\n", 1000), "run.sh": "#!/bin/sh\necho run\n"},
			opts:  []BuildOption{WithBuildArg("V", "1")},
			check: func(t *testing.T, b *dfBuild) {
				eq(t, "/opt/app/big.txt", b.file("/opt/app/big.txt"), strings.Repeat("data\n", 1000))
				eq(t, "run", b.sh("run; stat -c %a /usr/local/bin/run"), "run\n755\n")
				_, m1 := b.ociConfig()
				b2 := b.again(WithBuildArg("V", "2"))
				eq(t, "/v", b2.file("/v"), "2\n")
				var ran, cached []string
				for _, e := range b2.events {
					if e.Done && strings.HasPrefix(e.Instruction, "COPY") {
						if e.Cached {
							cached = append(cached, e.Instruction)
						} else {
							ran = append(ran, e.Instruction)
						}
					}
				}
				if len(ran) != 0 || len(cached) != 2 {
					t.Errorf("after a change below, COPY --link ran %q, reused %q", ran, cached)
				}
				_, m2 := b2.ociConfig()
				l1, l2 := m1["layers"].([]any), m2["layers"].([]any)
				for i := 1; i <= 2; i++ {
					d1 := l1[len(l1)-i].(map[string]any)["digest"]
					d2 := l2[len(l2)-i].(map[string]any)["digest"]
					if d1 != d2 {
						t.Errorf("layer -%d: %v then %v; want the same layer", i, d1, d2)
					}
				}
			},
		},
		dfCase{
			name: "from --platform=$BUILDPLATFORM runs here while the target is another platform; the platform args",
			df: "FROM --platform=$BUILDPLATFORM busybox AS build\nARG TARGETPLATFORM TARGETOS TARGETARCH BUILDPLATFORM BUILDOS BUILDARCH TARGETVARIANT\n" +
				"RUN echo $TARGETPLATFORM $TARGETOS $TARGETARCH $BUILDPLATFORM $BUILDOS $BUILDARCH \"[$TARGETVARIANT]\" > /p\n" +
				"FROM scratch\nCOPY --from=build /p /p\n",
			opts: []BuildOption{WithPlatform("linux/" + otherArch())},
			check: func(t *testing.T, b *dfBuild) {
				cfg, manifest := b.ociConfig()
				if cfg["architecture"] != otherArch() {
					t.Errorf("architecture %v", cfg["architecture"])
				}
				if n := len(manifest["layers"].([]any)); n != 1 {
					t.Errorf("%d layers", n)
				}
				got := b.file("/p")
				want := "linux/" + otherArch() + " linux " + otherArch() + " linux/" + runtime.GOARCH + " linux " + runtime.GOARCH + " []\n"
				eq(t, "/p", got, want)
			},
		},
		dfCase{
			name:    "from --platform of another platform: RUN fails clearly",
			df:      "FROM --platform=linux/" + otherArch() + " scratch\nCOPY a.txt /\nRUN true\n",
			files:   map[string]string{"a.txt": "A"},
			wantErr: []string{"Dockerfile:3", "RUN needs a sandbox of the stage's platform linux/" + otherArch(), "no emulation"},
		},
		dfCase{
			name:    "from --platform that does not parse",
			df:      "FROM --platform=linux busybox\n",
			wantErr: []string{"Dockerfile:1", "FROM --platform=linux"},
		},
		dfCase{
			name:  "# syntax= is accepted and reported; # escape= is honoured",
			df:    "# syntax=docker/dockerfile:1.7\n# escape=`\nFROM busybox\nRUN echo a `\n  b > /e\nCOPY a.txt c:\\dir\\\n",
			files: map[string]string{"a.txt": "A"},
			check: func(t *testing.T, b *dfBuild) {
				eq(t, "/e", b.file("/e"), "a b\n")
				eq(t, "backslashes are plain", b.sh("cat '/c:\\dir\\'"), "A")
				if !strings.Contains(b.output(), "syntax=docker/dockerfile:1.7") {
					t.Errorf("progress does not report the syntax directive: %q", b.output())
				}
			},
		},
		dfCase{
			name:    "add of a git repository is refused with the reason",
			df:      "FROM busybox\nADD https://github.com/moby/buildkit.git#v0.34.2 /src\n",
			wantErr: []string{"Dockerfile:2", "ADD of a git repository is not supported", "RUN step"},
		},
		dfCase{
			name:    "add --checksum without a URL",
			df:      "FROM busybox\nADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 a.txt /\n",
			files:   map[string]string{"a.txt": "A"},
			wantErr: []string{"Dockerfile:2", "--checksum needs an http(s) URL"},
		},
	)
}
