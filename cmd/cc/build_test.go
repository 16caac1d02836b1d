package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/leakcheck"
	"github.com/ccsandbox/sandbox/internal/testutil/testimage"
)

// buildContext writes a build context: Debian's static busybox and a
// Dockerfile of two stages, whose first prints its GREETING build arg.
func buildContext(t *testing.T) string {
	t.Helper()
	bin, err := os.ReadFile(testimage.BusyboxPath)
	if err != nil {
		t.Fatalf("%v (%v)", testimage.ErrNoBusybox, err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "busybox"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	dockerfile := `FROM scratch AS base
COPY busybox /bin/busybox
ARG GREETING=unset
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox echo $GREETING > /greeting"]
ENTRYPOINT ["/bin/busybox"]
CMD ["cat", "/greeting"]

FROM base AS other
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox echo other > /greeting"]
`
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBuildOutput builds with each of cc build's flags and runs what it
// wrote: an OCI layout, a docker archive, and the result by its key.
func TestBuildOutput(t *testing.T) {
	leakcheck.Check(t)
	ctxDir := buildContext(t)
	out := t.TempDir()
	layout, archive := filepath.Join(out, "layout"), filepath.Join(out, "image.tar")
	greeting := "hello-" + filepath.Base(out) // new to the cache on every run

	r := runCC(t, nil, "build", "--target", "base", "--build-arg", "GREETING="+greeting, "-o", layout, ctxDir)
	key := strings.TrimSpace(r.stdout)
	if r.code != 0 || len(key) != 64 || !isHex(key) {
		t.Fatalf("cc build -o DIR: %s; want exit 0 and the result's key", r)
	}
	if !strings.Contains(r.stderr, "RUN /bin/busybox") || !strings.Contains(r.stderr, "DONE") {
		t.Errorf("cc build showed no progress on stderr: %q", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(layout, "index.json")); err != nil {
		t.Fatalf("cc build -o DIR wrote no OCI layout: %v", err)
	}
	runCC(t, nil, "run", layout).want(t, 0, greeting+"\n")
	runCC(t, nil, "run", key).want(t, 0, greeting+"\n")
	runCC(t, nil, "run", key, "echo", "args replace CMD").want(t, 0, "args replace CMD\n")

	// The same build again comes from the cache; with --no-cache it runs.
	r = runCC(t, nil, "build", "--target", "base", "--build-arg", "GREETING="+greeting, "-o", archive, "-t", "greet:1", ctxDir)
	if r.code != 0 || strings.TrimSpace(r.stdout) != key || !strings.Contains(r.stderr, "CACHED") {
		t.Errorf("the same build again: %s; want the same key, from the cache", r)
	}
	runCC(t, nil, "run", archive).want(t, 0, greeting+"\n")
	r = runCC(t, nil, "build", "--no-cache", "--target", "base", "--build-arg", "GREETING="+greeting, ctxDir)
	if r.code != 0 || strings.Contains(r.stderr, "CACHED") {
		t.Errorf("cc build --no-cache: %s; want every step run", r)
	}

	// Without --target, the last stage.
	r = runCC(t, nil, "build", "-f", filepath.Join(ctxDir, "Dockerfile"), ctxDir)
	if r.code != 0 {
		t.Fatalf("cc build of the last stage: %s", r)
	}
	runCC(t, nil, "run", strings.TrimSpace(r.stdout)).want(t, 0, "other\n")

	for _, args := range [][]string{
		{"build", filepath.Join(out, "missing")},
		{"build", "--target", "nosuchstage", ctxDir},
		{"build", "-f", filepath.Join(out, "missing.Dockerfile"), ctxDir},
		{"build", "-t", "x:1", ctxDir},
		{"build"},
	} {
		if r := runCC(t, nil, args...); r.code != exitOwn || r.stderr == "" || r.stdout != "" {
			t.Errorf("cc %s: %s; want exit 125 and an error", strings.Join(args, " "), r)
		}
	}
	noSandboxLeft(t, testCache)
}

// TestBuildSecretsNetworkCheck: --secret feeds RUN --mount=type=secret
// from a file and from the environment, bad --secret and --ssh flags are
// cc's own errors, a step that needs the network names --network, and
// --check lists what the builder refuses, by line, without building.
func TestBuildSecretsNetworkCheck(t *testing.T) {
	leakcheck.Check(t)
	ctxDir := buildContext(t)
	// The step checks the secrets by their digests, so their values
	// appear nowhere but in the file and the environment.
	fileSecret, envSecret := "file-"+filepath.Base(ctxDir), "env-"+filepath.Base(ctxDir)
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte(fileSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CC_TEST_TOKEN", envSecret)
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	df := fmt.Sprintf(`FROM scratch
COPY busybox /bin/busybox
RUN --mount=type=secret,id=file --mount=type=secret,id=env,env=TOKEN ["/bin/busybox", "sh", "-c", "test $(/bin/busybox sha256sum /run/secrets/file | /bin/busybox cut -c1-64) = %s && test $(printf %%s \"$TOKEN\" | /bin/busybox sha256sum | /bin/busybox cut -c1-64) = %s"]
`, sum(fileSecret), sum(envSecret))
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile.secret"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCC(t, nil, "build", "--no-cache", "-f", filepath.Join(ctxDir, "Dockerfile.secret"),
		"--secret", "id=file,src="+secretFile, "--secret", "id=env,env=CC_TEST_TOKEN", ctxDir)
	if r.code != 0 {
		t.Fatalf("cc build with secrets: %s", r)
	}
	if strings.Contains(r.stdout+r.stderr, fileSecret) || strings.Contains(r.stdout+r.stderr, envSecret) {
		t.Errorf("a secret's value reached cc's output: %s", r)
	}
	for _, bad := range [][]string{{"--secret", "src=" + secretFile}, {"--secret", "id=x"}, {"--secret", "id=x,env=CC_TEST_UNSET_VAR"}, {"--ssh", "=sock"}} {
		r := runCC(t, nil, append(append([]string{"build"}, bad...), ctxDir)...)
		if r.code != 125 || !strings.Contains(r.stderr, bad[0]) {
			t.Errorf("cc build %q: %s; want exit 125 naming %s", bad, r, bad[0])
		}
	}
	net := "FROM scratch\nCOPY busybox /bin/busybox\nADD http://127.0.0.1:1/file /file\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile.net"), []byte(net), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCC(t, nil, "build", "--check", "-f", filepath.Join(ctxDir, "Dockerfile.net"), ctxDir)
	if r.code != 1 || !strings.Contains(r.stdout, "Dockerfile:3") {
		t.Errorf("cc build --check of an ADD of a URL without --network: %s; want exit 1 and the line", r)
	}
	runCC(t, nil, "build", "--check", "--network", "-f", filepath.Join(ctxDir, "Dockerfile.net"), ctxDir).want(t, 0, "")
	r = runCC(t, nil, "build", "-f", filepath.Join(ctxDir, "Dockerfile.net"), ctxDir)
	if r.code != 125 || !strings.Contains(r.stderr, "--network") {
		t.Errorf("cc build of an ADD of a URL without --network: %s; want exit 125 naming --network", r)
	}
	runCC(t, nil, "build", "--check", ctxDir).want(t, 0, "")
}
