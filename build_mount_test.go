package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// mountRun numbers the cache ids of this process's mount cases, so that
// a run with -count finds no cache an earlier run filled.
var mountRun atomic.Int64

// uniqueID returns a cache id no earlier test run used.
func uniqueID() string {
	return fmt.Sprintf("t%d-%d-%d", os.Getpid(), time.Now().UnixNano(), mountRun.Add(1))
}

// RUN --mount, one case per type and option, through the public API.
func init() {
	dockerfileTable = append(dockerfileTable,
		dfCase{
			name:  "run --mount=type=cache: files persist across builds, by id, and reach no layer",
			df:    "FROM busybox\nARG ID\nRUN --mount=type=cache,id=$ID,target=/var/cache/app echo one >> /var/cache/app/log && cp /var/cache/app/log /seen\n",
			fresh: func() []BuildOption { return []BuildOption{WithBuildArg("ID", uniqueID())} },
			check: func(t *testing.T, b *dfBuild) {
				eq(t, "/seen", b.file("/seen"), "one\n")
				eq(t, "the mount's target in the image", b.sh("ls /var/cache >/dev/null 2>&1 && echo there || echo absent"), "absent\n")
				id := b.argValue("ID")
				// Another Dockerfile (another key), the same id elsewhere.
				df := "FROM busybox\nARG ID\nRUN --mount=type=cache,id=$ID,target=/elsewhere cat /elsewhere/log > /again\n"
				b2, err := buildDockerfile(t, df, b.ctx, append(b.opts[4:5], WithBuildArg("ID", id))...)
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "/again", b2.file("/again"), "one\n")
				// An unchanged rebuild runs nothing: the cache is not in the key.
				if ran := b.again().ran(); len(ran) != 0 {
					t.Errorf("rebuild ran %q", ran)
				}
				owners := b.layerOwners()
				for p := range owners {
					if strings.HasPrefix(p, "/var/cache") {
						t.Errorf("a layer holds %s", p)
					}
				}
			},
		},
		dfCase{
			name: "run --mount=type=cache: mode, uid and gid of a new cache; a source is a cache of its own",
			df: "FROM busybox\nARG ID\nRUN --mount=type=cache,id=$ID,target=/c,mode=0710,uid=1000,gid=10 stat -c '%a %u %g' /c > /st\n" +
				"RUN --mount=type=cache,id=$ID,target=/c,source=sub echo in-sub > /c/f\nRUN --mount=type=cache,id=$ID,target=/c ls /c > /ls\n",
			fresh: func() []BuildOption { return []BuildOption{WithBuildArg("ID", uniqueID())} },
			check: func(t *testing.T, b *dfBuild) {
				want := "710 1000 10\n"
				if !rootful() {
					want = "710 0 0\n" // an unprivileged store has root's id only
				}
				eq(t, "/st", b.file("/st"), want)
				eq(t, "/ls (the source's files are not in the plain cache)", b.file("/ls"), "")
			},
		},
		dfCase{
			name: "run --mount=type=cache,sharing=locked: stages that run at once take turns",
			df: "FROM busybox AS a\nARG ID\nRUN --mount=type=cache,id=$ID,target=/c,sharing=locked mkdir /c/busy && sleep 0.3 && rmdir /c/busy && echo a >> /c/turns\n" +
				"FROM busybox AS b\nARG ID\nRUN --mount=type=cache,id=$ID,target=/c,sharing=locked mkdir /c/busy && sleep 0.3 && rmdir /c/busy && echo b >> /c/turns\n" +
				"FROM busybox\nARG ID\nCOPY --from=a /bin/busybox /a\nCOPY --from=b /bin/busybox /b\nRUN --mount=type=cache,id=$ID,target=/c sort /c/turns > /turns\n",
			opts:  []BuildOption{WithBuildParallelism(2)},
			fresh: func() []BuildOption { return []BuildOption{WithBuildArg("ID", uniqueID())} },
			check: func(t *testing.T, b *dfBuild) {
				eq(t, "/turns", b.file("/turns"), "a\nb\n")
			},
		},
		dfCase{
			name:  "run --mount=type=bind: the context, read-only, in the key; rw writes are dropped",
			df:    "FROM busybox\nRUN --mount=type=bind,target=/src cat /src/a.txt > /out && (touch /src/x 2>/dev/null && echo writable || echo read-only) >> /out\nRUN --mount=type=bind,source=a.txt,target=/a.txt,rw echo changed > /a.txt && cat /a.txt > /rw\nRUN --mount=type=bind,target=/src cat /src/a.txt > /after\n",
			files: map[string]string{"a.txt": "A\n"},
			check: func(t *testing.T, b *dfBuild) {
				eq(t, "/out", b.file("/out"), "A\nread-only\n")
				eq(t, "/rw", b.file("/rw"), "changed\n")
				eq(t, "/after", b.file("/after"), "A\n")
				eq(t, "targets in the image", b.sh("ls -d /src /a.txt 2>/dev/null; echo end"), "end\n")
				data, _ := os.ReadFile(filepath.Join(b.ctx, "a.txt"))
				eq(t, "the context file", string(data), "A\n")
				if ran := b.again().ran(); len(ran) != 0 {
					t.Errorf("an unchanged rebuild ran %q", ran)
				}
				writeFile(t, b.ctx, "a.txt", "B\n")
				b2 := b.again()
				if len(b2.ran()) != 3 {
					t.Errorf("after a change to the bound file, ran %q; want all three steps", b2.ran())
				}
				eq(t, "/out after the change", b2.file("/out"), "B\nread-only\n")
			},
		},
		dfCase{
			name: "run --mount=type=bind from a stage, with a source",
			df:   "FROM busybox AS b\nRUN mkdir -p /d/e && echo in-b > /d/e/f\nFROM busybox\nWORKDIR /w\nRUN --mount=type=bind,from=b,source=/d,target=m cat m/e/f > /out\n",
			check: func(t *testing.T, b *dfBuild) {
				eq(t, "/out", b.file("/out"), "in-b\n")
				eq(t, "relative target left nothing", b.sh("ls -A /w"), "")
			},
		},
		dfCase{
			name:    "run --mount=type=bind of a missing source fails clearly",
			df:      "FROM busybox\nRUN --mount=type=bind,source=nope,target=/n true\n",
			wantErr: []string{"Dockerfile:2", `--mount source "/nope": not found in the build context`},
		},
		dfCase{
			name: "run --mount=type=tmpfs: a scratch directory for the step only",
			df:   "FROM busybox\nRUN --mount=type=tmpfs,target=/scratch,size=1m echo x > /scratch/f && cat /scratch/f > /out && stat -c %a /scratch >> /out\n",
			check: func(t *testing.T, b *dfBuild) {
				eq(t, "/out", b.file("/out"), "x\n1777\n")
				eq(t, "/scratch in the image", b.sh("ls -d /scratch 2>/dev/null; echo end"), "end\n")
				if !strings.Contains(b.output(), "size is not enforced") {
					t.Errorf("no warning about size: %q", b.output())
				}
			},
		},
		dfCase{
			name: "run --mount: a target inside an existing directory leaves it as it was",
			df:   "FROM busybox\nRUN mkdir -p /opt/keep && touch /opt/keep/k\nRUN --mount=type=tmpfs,target=/opt/keep/t --mount=type=tmpfs,target=/opt/new/deep/t echo made > /opt/new/file\n",
			check: func(t *testing.T, b *dfBuild) {
				eq(t, "listing", b.sh("cd /opt && find . | sort"), ".\n./keep\n./keep/k\n./new\n./new/file\n")
			},
		},
		dfCase{
			name:    "run --network=host is refused with the reason",
			df:      "FROM busybox\nRUN --network=host true\n",
			wantErr: []string{"Dockerfile:2", "RUN --network=host is not supported", "WithBuildNetwork"},
		},
		dfCase{
			name:    "run --security=insecure is refused",
			df:      "FROM busybox\nRUN --security=insecure true\n",
			wantErr: []string{"Dockerfile:2", "--security=insecure is not supported"},
		},
		dfCase{
			name:    "a failing step without network says so and names the option",
			df:      "FROM busybox\nRUN wget -q -T 2 -O /x http://192.0.2.1/x\n",
			wantErr: []string{"Dockerfile:2", "without network", "WithBuildNetwork"},
		},
		dfCase{
			name:    "a failing step with --network=none says so",
			df:      "FROM busybox\nRUN --network=none wget -q -T 2 -O /x http://192.0.2.1/x\n",
			opts:    []BuildOption{WithBuildNetwork()},
			wantErr: []string{"Dockerfile:2", "--network=none"},
		},
	)
}

// argValue returns the value a build of the case gave a build argument.
func (b *dfBuild) argValue(key string) string {
	var o buildOptions
	for _, opt := range b.opts {
		opt.applyBuild(&o)
	}
	return o.args[key]
}
