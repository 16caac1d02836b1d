package dockerfile

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestArgScopes(t *testing.T) {
	f := newFakeExec(t)
	df := `ARG G=global
ARG B=ba
FROM ${B}se
ARG G
ARG S=stage
ARG OVER=default
ENV E=env S=env-wins
RUN one
FROM base AS second
COPY --from=0 /.run /first
RUN two
`
	if _, err := f.build(df, Options{Args: map[string]string{"OVER": "given", "UNUSED": "x"}}); err != nil {
		t.Fatal(err)
	}
	if len(f.runs) != 2 {
		t.Fatalf("%d runs", len(f.runs))
	}
	first := map[string]string{}
	for _, kv := range f.runs[0].Env {
		k, v, _ := strings.Cut(kv, "=")
		first[k] = v
	}
	for k, want := range map[string]string{"G": "global", "S": "env-wins", "OVER": "given", "E": "env", "PATH": "/bin"} {
		if first[k] != want {
			t.Errorf("first RUN: %s=%q, want %q (env %q)", k, first[k], want, f.runs[0].Env)
		}
	}
	if _, ok := first["B"]; ok {
		t.Error("a global ARG not declared in the stage reached RUN")
	}
	if env := f.lastEnv(); env["G"] != "" || env["S"] != "" || env["E"] != "" {
		t.Errorf("the second stage saw the first's args or env: %q", f.runs[1].Env)
	}
	if !slices.Equal(f.runs[0].Args, []string{"/bin/sh", "-c", "one"}) {
		t.Errorf("args %q", f.runs[0].Args)
	}
}

func TestKeysAndCache(t *testing.T) {
	f := newFakeExec(t)
	df := "FROM base\nRUN first\nARG V\nRUN second\nENV X=1\nRUN third\n"
	build := func(v string) int {
		t.Helper()
		before := len(f.runs)
		if _, err := f.build(df, Options{Args: map[string]string{"V": v}}); err != nil {
			t.Fatal(err)
		}
		return len(f.runs) - before
	}
	if n := build("1"); n != 3 {
		t.Fatalf("first build ran %d steps", n)
	}
	if n := build("1"); n != 0 {
		t.Errorf("a rebuild ran %d steps", n)
	}
	if n := build("2"); n != 2 {
		t.Errorf("a new ARG value ran %d steps, want 2 (from its first use on)", n)
	}
	before := len(f.runs)
	if _, err := f.build(df, Options{Args: map[string]string{"V": "2"}, NoCache: true}); err != nil || len(f.runs)-before != 3 {
		t.Errorf("no-cache ran %d steps (%v)", len(f.runs)-before, err)
	}
}

func TestTargetBuildsWhatItNeeds(t *testing.T) {
	f := newFakeExec(t)
	df := "FROM base AS a\nRUN in-a\nFROM base AS b\nRUN in-b\nFROM a AS c\nCOPY --from=b /.run /from-b\nRUN in-c\nFROM base\nRUN last\n"
	cfg, err := f.build(df, Options{Target: "C"})
	if err != nil {
		t.Fatal(err)
	}
	var ran []string
	for _, r := range f.runs {
		ran = append(ran, r.Args[2])
	}
	if !slices.Equal(ran, []string{"in-a", "in-b", "in-c"}) {
		t.Errorf("ran %q", ran)
	}
	if n := len(cfg.History); n != 3 {
		t.Errorf("history of c: %d entries", n)
	}
}

func TestOnbuildAndConfig(t *testing.T) {
	f := newFakeExec(t)
	parent, err := Build(t.Context(), []byte("FROM base\nONBUILD RUN trigger\nENTRYPOINT [\"e\"]\nCMD [\"c\"]\n"), f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.images["parent"] = parent
	cfg, err := f.build("FROM parent\nENTRYPOINT run this\nSHELL [\"/bin/bash\", \"-c\"]\nCMD more\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.runs) != 1 || f.runs[0].Args[2] != "trigger" {
		t.Errorf("runs %v", f.runs)
	}
	if len(cfg.Config.OnBuild) != 0 {
		t.Errorf("OnBuild kept: %q", cfg.Config.OnBuild)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/bin/sh", "-c", "run this"}) || !slices.Equal(cfg.Config.Cmd, []string{"/bin/bash", "-c", "more"}) {
		t.Errorf("entrypoint %q cmd %q", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	// ENTRYPOINT alone drops the inherited CMD.
	cfg, err = f.build("FROM parent\nENTRYPOINT [\"x\"]\n", Options{})
	if err != nil || cfg.Config.Cmd != nil {
		t.Errorf("inherited CMD kept: %q %v", cfg.Config.Cmd, err)
	}
}

func TestErrorsNameTheLine(t *testing.T) {
	f := newFakeExec(t)
	for df, want := range map[string]string{
		"":                                       "empty",
		"RUN x\n":                                "no build stage",
		"FROM base\nBOGUS x\n":                   "line 2",
		"FROM base\n\nCOPY --from=$X a b\n":      "Dockerfile:3",
		"FROM base\nSTOPSIGNAL NOTASIGNAL\n":     "Dockerfile:2: STOPSIGNAL NOTASIGNAL: invalid signal",
		"FROM base\nEXPOSE 80/bogus\n":           "Dockerfile:2",
		"FROM base\nCOPY --chmod=999 a b\n":      "Dockerfile:2",
		"FROM base\nRUN --network=host x\n":      "RUN --network=host is not supported",
		"FROM nosuchimage\n":                     "Dockerfile:1: FROM nosuchimage: no image",
		"FROM base\nARG A=${B:?B is required}\n": "B is required",
		"FROM base\nWORKDIR /etc/passwd\n":       "not a directory",
		"FROM base\nADD http://x.invalid/f /\n":  "the build has no network: WithBuildNetwork",
	} {
		_, err := f.build(df, Options{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", df, err, want)
		}
	}
}

func TestParallelStagesFailFast(t *testing.T) {
	f := newFakeExec(t)
	df := "FROM base AS slow\nRUN block\nFROM base AS bad\nRUN fail\nFROM base\nCOPY --from=slow /.run /a\nCOPY --from=bad /.run /b\n"
	_, err := f.build(df, Options{Parallelism: 2})
	if err == nil || !strings.Contains(err.Error(), "Dockerfile:4") || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("error %v; want the failing stage's, which cancels the other", err)
	}
	// One slot: the blocking stage comes first and holds it; the build
	// ends with the caller's context.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Build(ctx, []byte(df), f, Options{Parallelism: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled build: %v", err)
	}
}

func TestSlotsGoInOrder(t *testing.T) {
	sl := newSlots(1)
	if err := sl.acquire(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 3)
	for _, idx := range []int{3, 1, 2} {
		go func() {
			if sl.acquire(t.Context(), idx) == nil {
				got <- idx
				sl.release()
			}
		}()
	}
	for {
		sl.mu.Lock()
		n := len(sl.waiting)
		sl.mu.Unlock()
		if n == 3 {
			break
		}
		runtime.Gosched()
	}
	sl.release()
	for _, want := range []int{1, 2, 3} {
		if idx := <-got; idx != want {
			t.Errorf("stage %d got the slot, want %d", idx, want)
		}
	}
}
