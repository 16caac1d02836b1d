package sandbox

import (
	"runtime"
	"slices"
	"strings"
	"testing"
)

// otherArch is an architecture that is not the host's.
func otherArch() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}

// dockerfileTable holds the cases of TestBuildDockerfile.
var dockerfileTable = []dfCase{
	{
		name: "run shell form",
		df:   "FROM busybox\nRUN echo hi > /a && echo $0 >> /a\n",
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "/a", b.file("/a"), "hi\n/bin/sh\n")
		},
	},
	{
		name: "run exec form is not a shell",
		df:   `FROM busybox` + "\n" + `RUN ["/bin/sh", "-c", "echo \"$1\" > /b", "zero", "$HOME"]` + "\n",
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "/b", b.file("/b"), "$HOME\n") // no expansion by the builder
		},
	},
	{
		name: "run heredoc",
		df:   "FROM busybox\nRUN <<EOF\necho one > /h\necho two >> /h\nEOF\n",
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "/h", b.file("/h"), "one\ntwo\n")
		},
	},
	{
		name: "run heredoc script leaves nothing behind",
		df:   "FROM busybox\nRUN <<EOF\n#!/bin/sh\necho \"$0\" > /script-name\nEOF\nRUN ls -A /dev/shm > /shm\n",
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "/script-name", b.file("/script-name"), "/dev/shm/.cc-build-heredoc/EOF\n")
			eq(t, "/shm", b.file("/shm"), "")
		},
	},
	{
		name:    "run failure names the line and shows the output",
		df:      "FROM busybox\n\nRUN echo about to fail && false\n",
		wantErr: []string{"Dockerfile:3", "RUN echo about to fail && false", "exit status 1", "about to fail"},
	},
	{
		name: "run output reaches the progress",
		df:   "FROM busybox\nRUN echo line-one && echo line-two >&2\n",
		check: func(t *testing.T, b *dfBuild) {
			if out := b.output(); !strings.Contains(out, "line-one\n") || !strings.Contains(out, "line-two\n") {
				t.Errorf("output %q", out)
			}
		},
	},
	{
		name: "env expansion and config",
		df:   "FROM busybox\nENV A=1 B=${A}2\nENV C \"$B three\"\nRUN echo \"$A $B $C\" > /env\n",
		check: func(t *testing.T, b *dfBuild) {
			// Words of one ENV expand with the environment from before it.
			eq(t, "/env", b.file("/env"), "1 2 2 three\n")
			env := b.snap.Config().Env
			for _, kv := range []string{"A=1", "B=2", "C=2 three"} {
				if !slices.Contains(env, kv) {
					t.Errorf("Env %q lacks %q", env, kv)
				}
			}
		},
	},
	{
		name: "arg default, override, and not persisted",
		df:   "FROM busybox\nARG X=def\nARG Y=def\nRUN echo \"$X $Y\" > /args\n",
		opts: []BuildOption{WithBuildArg("Y", "over")},
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "/args", b.file("/args"), "def over\n")
			for _, kv := range b.snap.Config().Env {
				if strings.HasPrefix(kv, "X=") || strings.HasPrefix(kv, "Y=") {
					t.Errorf("ARG persisted in Env: %q", kv)
				}
			}
		},
	},
	{
		name: "global arg in FROM, inherited by a stage ARG",
		df:   "ARG BASE=busy\nARG V=global\nFROM ${BASE}box\nARG V\nRUN echo $V > /v\n",
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "/v", b.file("/v"), "global\n")
		},
	},
	{
		name: "env wins over a build arg",
		df:   "FROM busybox\nENV P=env\nARG P\nRUN echo $P > /p\n",
		opts: []BuildOption{WithBuildArg("P", "arg")},
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "/p", b.file("/p"), "env\n")
		},
	},
	{
		name: "unused build arg is a warning; proxy args need no ARG",
		df:   "FROM busybox\nRUN echo \"$HTTP_PROXY\" > /proxy\n",
		opts: []BuildOption{WithBuildArg("NOBODY_DECLARES_ME", "x"), WithBuildArg("HTTP_PROXY", "http://proxy.invalid:3128")},
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "/proxy", b.file("/proxy"), "http://proxy.invalid:3128\n")
			if out := b.output(); !strings.Contains(out, "NOBODY_DECLARES_ME") || strings.Contains(out, "HTTP_PROXY") {
				t.Errorf("warnings: %q", out)
			}
			if slices.ContainsFunc(b.snap.Config().Env, func(kv string) bool { return strings.HasPrefix(kv, "HTTP_PROXY") }) {
				t.Error("the proxy reached the config")
			}
		},
	},
	{
		name:  "copy file, directory contents, and glob, relative to WORKDIR",
		df:    "FROM busybox\nWORKDIR /app\nCOPY a.txt ./\nCOPY dir sub/\nCOPY *.md /docs/\nCOPY a.txt renamed\n",
		files: map[string]string{"a.txt": "A", "dir/x": "X", "dir/deep/y": "Y", "one.md": "1", "two.md": "2", "three.txt": "3"},
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "listing", b.sh("cd /app && find . | sort; ls /docs"), ".\n./a.txt\n./renamed\n./sub\n./sub/deep\n./sub/deep/y\n./sub/x\none.md\ntwo.md\n")
		},
	},
	{
		name:  "copy keeps the base's directories and follows its symlinks",
		df:    "FROM busybox\nRUN mkdir -m 0700 /private && ln -s /private /link\nCOPY a.txt /link/\n",
		files: map[string]string{"a.txt": "A"},
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "stat", b.sh("stat -c '%a %F' /private /link; cat /private/a.txt"), "700 directory\n777 symbolic link\nA")
		},
	},
	{
		name:  "copy --chmod and --chown by id",
		df:    "FROM busybox\nCOPY --chmod=0640 --chown=1000:1000 a.txt /a\nCOPY --chmod=755 dir /d\n",
		files: map[string]string{"a.txt": "A", "dir/f": "F"},
		check: func(t *testing.T, b *dfBuild) {
			owner := "1000:1000"
			if !rootful() {
				owner = "0:0" // one id inside: the image keeps the owner (below), the sandbox shows root
			}
			eq(t, "stat", b.sh("stat -c '%a %u:%g' /a /d/f"), "640 "+owner+"\n755 0:0\n")
			if got := b.layerOwners()["/a"]; got != "1000:1000" {
				t.Errorf("exported owner of /a = %q, want 1000:1000", got)
			}
		},
	},
	{
		name:  "copy --chown by name reads the image's passwd and group",
		df:    "FROM busybox\nCOPY --chown=user:daemon a.txt /a\nCOPY --chown=user b.txt /b\n",
		files: map[string]string{"a.txt": "A", "b.txt": "B"},
		check: func(t *testing.T, b *dfBuild) {
			o := b.layerOwners()
			eq(t, "/a owner", o["/a"], "1000:1")
			eq(t, "/b owner", o["/b"], "1000:1000")
		},
	},
	{
		name:    "copy --chown of an unknown user fails clearly",
		df:      "FROM busybox\nCOPY --chown=nosuchuser a.txt /a\n",
		files:   map[string]string{"a.txt": "A"},
		wantErr: []string{"Dockerfile:2", "unable to find user nosuchuser"},
	},
	{
		name:    "copy of a missing source fails clearly",
		df:      "FROM busybox\nCOPY missing.txt /\n",
		wantErr: []string{"Dockerfile:2", `"missing.txt": not found in the build context`},
	},
	{
		name:    "several sources need a directory destination",
		df:      "FROM busybox\nCOPY a.txt b.txt /dest\n",
		files:   map[string]string{"a.txt": "A", "b.txt": "B"},
		wantErr: []string{"destination must be a directory"},
	},
	{
		name: "copy heredoc with expansion",
		df:   "FROM busybox\nARG WHO=world\nCOPY <<EOF /greeting\nhello ${WHO}\nEOF\nCOPY <<'EOF' /raw\nhello ${WHO}\nEOF\n",
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "/greeting", b.file("/greeting"), "hello world\n")
			eq(t, "/raw", b.file("/raw"), "hello ${WHO}\n")
		},
	},
	{
		name:  "add extracts a local tar.gz, keeping its owners, and copies other files",
		df:    "FROM busybox\nADD arch.tar.gz /x/\nADD plain.txt /x/\nCOPY arch.tar.gz /kept/\n",
		files: map[string]string{"arch.tar.gz": "tar:top/f=content", "plain.txt": "P"},
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "files", b.sh("cat /x/top/f /x/plain.txt; ls /kept"), "contentParch.tar.gz\n")
			if got := b.layerOwners()["/x/top/f"]; got != "1000:1000" {
				t.Errorf("extracted owner %q", got)
			}
		},
	},
	{
		name:    "add of a URL fails clearly without network",
		df:      "FROM busybox\nADD https://example.invalid/file.tar /\n",
		wantErr: []string{"Dockerfile:2", "the build has no network: WithBuildNetwork"},
	},
	{
		name: "workdir creates the directory; relative workdirs join",
		df:   "FROM busybox\nWORKDIR /w\nWORKDIR x/y\nRUN pwd > /pwd\n",
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "/pwd", b.file("/pwd"), "/w/x/y\n")
			eq(t, "WorkingDir", b.snap.Config().WorkingDir, "/w/x/y")
		},
	},
	{
		name:        "user applies to RUN and is recorded",
		df:          "FROM busybox\nUSER user\nRUN id -u > /tmp/uid\nUSER root\nRUN cp /tmp/uid /uid\nUSER user:daemon\n",
		rootlessErr: []string{"Dockerfile:3", "RUN id -u"},
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "/uid", b.file("/uid"), "1000\n")
			eq(t, "User", b.snap.Config().User, "user:daemon")
		},
	},
	{
		name: "shell changes RUN and shell-form CMD",
		df:   "FROM busybox\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN echo $- > /flags\nCMD echo from-cmd\n",
		check: func(t *testing.T, b *dfBuild) {
			if !strings.Contains(b.file("/flags"), "e") {
				t.Errorf("RUN did not use the SHELL: %q", b.file("/flags"))
			}
			if c := b.snap.Config().Cmd; !slices.Equal(c, []string{"/bin/sh", "-ec", "echo from-cmd"}) {
				t.Errorf("Cmd %q", c)
			}
		},
	},
	{
		name: "entrypoint and cmd run as the image's default command",
		df:   "FROM busybox\nENTRYPOINT [\"echo\", \"from\"]\nCMD [\"the-image\"]\n",
		check: func(t *testing.T, b *dfBuild) {
			if b.inst == nil {
				b.inst = newInstance(t, b.snap)
			}
			out, err := b.inst.EntrypointCommand().Output()
			if err != nil || string(out) != "from the-image\n" {
				t.Errorf("default command: %q %v", out, err)
			}
		},
	},
	{
		name: "config metadata: expose, label, stopsignal, volume, healthcheck",
		df: "FROM busybox\nARG PORTS=\"80 53/udp\"\nEXPOSE $PORTS 443\nLABEL a=b \"c d\"=e\nSTOPSIGNAL SIGINT\nVOLUME /data\n" +
			"HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost\nMAINTAINER someone\n",
		check: func(t *testing.T, b *dfBuild) {
			c := b.snap.Config()
			if !slices.Equal(c.ExposedPorts, []string{"443/tcp", "53/udp", "80/tcp"}) || c.Labels["a"] != "b" || c.Labels["c d"] != "e" || c.StopSignal != "SIGINT" {
				t.Errorf("config %+v", c)
			}
			cfg, _ := b.ociConfig()
			conf := cfg["config"].(map[string]any)
			if _, ok := conf["Volumes"].(map[string]any)["/data"]; !ok {
				t.Errorf("Volumes %v", conf["Volumes"])
			}
			hc := conf["Healthcheck"].(map[string]any)
			if hc["Interval"].(float64) != 5e9 || hc["Retries"].(float64) != 2 || hc["Test"].([]any)[0] != "CMD-SHELL" {
				t.Errorf("Healthcheck %v", hc)
			}
			if cfg["author"] != "someone" {
				t.Errorf("author %v", cfg["author"])
			}
		},
	},
	{
		name:  ".dockerignore with an exception",
		df:    "FROM busybox\nCOPY . /c/\n",
		files: map[string]string{".dockerignore": "# comment\n*.log\nbuild\n!build/keep\n", "a.txt": "A", "x.log": "L", "build/out": "O", "build/keep": "K"},
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "listing", b.sh("cd /c && find . -type f | sort"), "./.dockerignore\n./a.txt\n./build/keep\n")
		},
	},
	{
		name: "multi-stage: copy --from by name, by index, and from an image",
		df:   "FROM busybox AS builder\nRUN echo built > /artifact\nFROM scratch\nCOPY --from=builder /artifact /by-name\nCOPY --from=0 /artifact /by-index\nCOPY --from=busybox /etc/group /group\n",
		check: func(t *testing.T, b *dfBuild) {
			cfg, manifest := b.ociConfig()
			if n := len(manifest["layers"].([]any)); n != 3 {
				t.Errorf("%d layers, want 3 on scratch", n)
			}
			if h := cfg["history"].([]any); len(h) != 3 {
				t.Errorf("history %v", h)
			}
		},
	},
	{
		name: "target builds only the stages it needs",
		df: "FROM busybox AS unrelated\nRUN false\nFROM busybox AS base\nRUN echo base > /base\nFROM base AS wanted\nRUN cat /base > /wanted\n" +
			"FROM busybox AS after\nRUN false\n",
		opts: []BuildOption{WithTarget("WANTED")},
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "/wanted", b.file("/wanted"), "base\n")
			for _, e := range b.events {
				if e.Stage == "unrelated" || e.Stage == "after" {
					t.Errorf("stage %s was built", e.Stage)
				}
			}
		},
	},
	{
		name:  "platform: a scratch build for another architecture",
		df:    "FROM scratch\nCOPY a.txt /\n",
		files: map[string]string{"a.txt": "A"},
		opts:  []BuildOption{WithPlatform("linux/" + otherArch())},
		check: func(t *testing.T, b *dfBuild) {
			if c := b.snap.Config(); c.Architecture != otherArch() || c.OS != "linux" {
				t.Errorf("platform %s/%s", c.OS, c.Architecture)
			}
		},
	},
	{
		name:    "platform: a base of another platform is refused",
		df:      "FROM busybox\n",
		opts:    []BuildOption{WithPlatform("linux/" + otherArch())},
		wantErr: []string{"Dockerfile:1", `build source "busybox" is for linux/` + runtime.GOARCH},
	},
	{
		name:    "a forward stage reference fails clearly",
		df:      "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nFROM a\n",
		wantErr: []string{"Dockerfile:2", `cannot copy from stage "b"`},
	},
	{
		name:    "a parse error names the line",
		df:      "FROM busybox\nRUN true\nNOSUCHINSTRUCTION x\n",
		wantErr: []string{"line 3", "unknown instruction"},
	},
	{
		name:    "an unknown target fails clearly",
		df:      "FROM busybox AS one\n",
		opts:    []BuildOption{WithTarget("two")},
		wantErr: []string{`target stage "two" could not be found`},
	},
	{
		name: "metadata-only steps add no layer and run nothing",
		df:   "FROM busybox\nENV A=1\nLABEL l=v\nUSER nobody\nEXPOSE 80\nCMD [\"sh\"]\n",
		check: func(t *testing.T, b *dfBuild) {
			if ran := b.ran(); len(ran) != 0 {
				t.Errorf("steps ran: %q", ran)
			}
			if n := len(b.snap.info.Layers); n != len(busyboxImage(t).layers) {
				t.Errorf("%d layers", n)
			}
		},
	},
	{
		name: "sharing a sandbox between RUNs: files carry, processes do not",
		df:   "FROM busybox\nRUN echo 1 > /n && (sleep 60 >/dev/null 2>&1 &)\nRUN echo 2 >> /n && ! ps | grep -v grep | grep -q 'sleep 60'\nRUN cat /n > /copy\n",
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "/copy", b.file("/copy"), "1\n2\n")
		},
	},
	{
		name:  "a step that repeats a lower layer stacks, and the image starts",
		df:    "FROM busybox\nCOPY a.txt /a\nRUN rm /a\nCOPY a.txt /a\nRUN true\n",
		files: map[string]string{"a.txt": "A"},
		check: func(t *testing.T, b *dfBuild) {
			eq(t, "/a", b.file("/a"), "A")
			cfg, manifest := b.ociConfig()
			layers := len(manifest["layers"].([]any))
			nonEmpty := 0
			for _, h := range cfg["history"].([]any) {
				if e, _ := h.(map[string]any)["empty_layer"].(bool); !e {
					nonEmpty++
				}
			}
			if nonEmpty != layers {
				t.Errorf("%d history entries with a layer, %d layers", nonEmpty, layers)
			}
		},
	},
	{
		name: "onbuild triggers run in the child only",
		df:   "FROM busybox\nONBUILD RUN echo triggered >> /t\n",
		check: func(t *testing.T, parent *dfBuild) {
			child, err := buildDockerfile(t, "FROM parent\nRUN true\n", parent.ctx, WithBuildSource("parent", parent.snap))
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "/t", child.file("/t"), "triggered\n")
			grandchild, err := buildDockerfile(t, "FROM child\n", parent.ctx, WithBuildSource("child", child.snap))
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "/t again", grandchild.file("/t"), "triggered\n")
		},
	},
}

// The cache rules, each case building more than once.
func init() {
	dockerfileTable = append(dockerfileTable,
		dfCase{
			name:  "cache: a rebuild with nothing changed runs no step",
			df:    "FROM busybox\nCOPY a.txt /\nRUN head -c 16 /dev/urandom | od -x > /r\nWORKDIR /made\nENV X=1\n",
			files: map[string]string{"a.txt": "A"},
			check: func(t *testing.T, b *dfBuild) {
				if len(b.ran()) == 0 {
					t.Fatal("the first build ran nothing")
				}
				again := b.again()
				if ran := again.ran(); len(ran) != 0 {
					t.Errorf("the rebuild ran %q", ran)
				}
				if again.snap.CacheKey() != b.snap.CacheKey() {
					t.Errorf("rebuild %s, first %s", again.snap.CacheKey(), b.snap.CacheKey())
				}
			},
		},
		dfCase{
			name:  "cache: a changed file re-runs from the first step that reads it",
			df:    "FROM busybox\nCOPY a.txt /\nRUN od -x /dev/urandom | head -1 > /r1\nCOPY b.txt /\nRUN od -x /dev/urandom | head -1 > /r2\n",
			files: map[string]string{"a.txt": "A", "b.txt": "B"},
			check: func(t *testing.T, b *dfBuild) {
				r1, r2 := b.file("/r1"), b.file("/r2")
				writeFile(t, b.ctx, "b.txt", "B2")
				b2 := b.again()
				if b2.file("/r1") != r1 || b2.file("/r2") == r2 {
					t.Errorf("after changing b.txt: r1 kept %v, r2 kept %v", b2.file("/r1") == r1, b2.file("/r2") == r2)
				}
				if ran := b2.ran(); len(ran) != 2 {
					t.Errorf("ran %q, want the second COPY and RUN", ran)
				}
				writeFile(t, b.ctx, "a.txt", "A2")
				if b3 := b.again(); b3.file("/r1") == r1 {
					t.Error("after changing a.txt the first RUN did not run again")
				}
			},
		},
		dfCase{
			name:  "cache: a file mode is part of the key",
			df:    "FROM busybox\nCOPY a.sh /\nRUN od -x /dev/urandom | head -1 > /r\n",
			files: map[string]string{"a.sh": "#!/bin/sh\n"},
			check: func(t *testing.T, b *dfBuild) {
				r := b.file("/r")
				chmod(t, b.ctx, "a.sh", 0o755)
				if b.again().file("/r") == r {
					t.Error("a mode change kept the cache")
				}
			},
		},
		dfCase{
			name:  "cache: only the build args a step uses count",
			df:    "FROM busybox\nRUN od -x /dev/urandom | head -1 > /before\nARG V\nCOPY a.txt /\nRUN od -x /dev/urandom | head -1 > /after\n",
			files: map[string]string{"a.txt": "A"},
			opts:  []BuildOption{WithBuildArg("V", "1")},
			check: func(t *testing.T, b *dfBuild) {
				before, after := b.file("/before"), b.file("/after")
				b2 := b.again(WithBuildArg("V", "2"))
				if b2.file("/before") != before || b2.file("/after") == after {
					t.Errorf("before kept %v (want true), after kept %v (want false)", b2.file("/before") == before, b2.file("/after") == after)
				}
				if ran := b2.ran(); len(ran) != 1 || !strings.HasPrefix(ran[0], "stage-0: RUN") {
					t.Errorf("ran %q; want the last RUN only (the COPY does not use V)", ran)
				}
				cfg, _ := b2.ociConfig()
				var history []string
				for _, h := range cfg["history"].([]any) {
					s, _ := h.(map[string]any)["created_by"].(string)
					history = append(history, s)
				}
				if !slices.Contains(history, "ARG V=2") || slices.Contains(history, "ARG V=1") {
					t.Errorf("history %q", history)
				}
			},
		},
		dfCase{
			name: "cache: no-cache runs everything, or only the named stages",
			df:   "FROM busybox AS a\nRUN od -x /dev/urandom | head -1 > /r; echo a\nFROM busybox AS b\nRUN od -x /dev/urandom | head -1 > /r; echo b\nFROM scratch\nCOPY --from=a /r /a\nCOPY --from=b /r /b\n",
			check: func(t *testing.T, b *dfBuild) {
				all := b.again(WithNoCache())
				if all.file("/a") == b.file("/a") || all.file("/b") == b.file("/b") {
					t.Error("WithNoCache() kept a result")
				}
				onlyB := b.again(WithNoCache("B"))
				if onlyB.file("/a") != all.file("/a") || onlyB.file("/b") == all.file("/b") {
					t.Error("WithNoCache(\"B\") did not run stage b alone")
				}
			},
		},
		dfCase{
			name: "cache: FROM is keyed by digest, not by name",
			df:   "FROM busybox\nRUN cat /marker > /seen 2>/dev/null || echo none > /seen\n",
			check: func(t *testing.T, b *dfBuild) {
				eq(t, "/seen", b.file("/seen"), "none\n")
				inst := newInstance(t, busyboxImage(t))
				run(t, inst, "echo other > /marker")
				other, err := inst.Snapshot(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				defer other.Close()
				b2 := b.again(WithBuildSource("busybox", other))
				eq(t, "/seen with another base", b2.file("/seen"), "other\n")
			},
		},
	)
}
