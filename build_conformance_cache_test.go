package sandbox

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/ccsandbox/sandbox/internal/testutil/dockerfilecases"
)

// conformanceScripts carry out the multi-build steps of the cache cases,
// as their expected.txt words them. Per-step cache hits come from the
// build's progress (BuildProgress.Cached), image identity from the
// result's CacheKey.
var conformanceScripts = map[string]func(r *confRun){
	"18-multistage-copy-from": func(r *confRun) {
		v := r.c.Variants[0]
		b1 := r.mustBuild(v)
		r.check(b1, v)
		b2 := r.mustBuild(v)
		r.allCached(b2, "step 2")
		if b2.snap.CacheKey() != b1.snap.CacheKey() {
			r.t.Errorf("step 2: result %s, want B1's %s", b2.snap.CacheKey(), b1.snap.CacheKey())
		}
		r.write("foo", "pqr")
		b3 := r.mustBuild(v)
		c := b3.cached()
		if c["first"] || c["stage-2"] || !c["stage-1"] {
			r.t.Errorf("step 3: per stage, all cached = %v; want first and stage-2 rebuilt, stage-1 cached", c)
		}
		r.checkFile(b3, "/bay", "pqr")
		r.checkFile(b3, "/baz", "pqr")
	},
	"37-cache-copy-wildcard": func(r *confRun) {
		v := r.c.Variants[0]
		u1 := r.file(r.mustBuild(v), "/unique")
		r.write("bar", "bar-data-mod")
		if u := r.file(r.mustBuild(v), "/unique"); u != u1 {
			r.t.Errorf("step 2: /unique changed (%q -> %q): a change after the RUN must keep its cache", u1, u)
		}
		r.write("foo2", "foo2-data-mod")
		if u := r.file(r.mustBuild(v), "/unique"); u == u1 {
			r.t.Errorf("step 3: /unique unchanged: a change in a wildcard-matched source must invalidate")
		}
	},
	"38-cache-context-file-change": func(r *confRun) {
		v := r.c.Variants[0]
		i1 := r.mustBuild(v)
		r.write("foo", "bye")
		i2 := r.mustBuild(v)
		if i2.snap.CacheKey() == i1.snap.CacheKey() || i2.cached()["stage-0"] {
			r.t.Errorf("step 2: the ADD step must miss the cache (I1 %s, I2 %s)", i1.snap.CacheKey(), i2.snap.CacheKey())
		}
		i3 := r.mustBuild(v)
		r.allCached(i3, "step 3")
		if i3.snap.CacheKey() != i2.snap.CacheKey() {
			r.t.Errorf("step 3: I3 %s != I2 %s", i3.snap.CacheKey(), i2.snap.CacheKey())
		}
	},
	"39-cache-build-arg-and-no-cache": func(r *confRun) {
		with := func(foo string) dockerfilecases.Variant {
			return dockerfilecases.Variant{Args: map[string]string{"foo": foo}}
		}
		b1 := r.mustBuild(with("bar"))
		u1, v1 := r.file(b1, "/unique"), r.file(b1, "/unique2")
		b2 := r.mustBuild(with("bar"))
		if r.file(b2, "/unique") != u1 || r.file(b2, "/unique2") != v1 {
			r.t.Errorf("step 2: the same build must hit the cache")
		}
		b3 := r.mustBuild(with("bar1"))
		if r.file(b3, "/unique") == u1 || r.file(b3, "/unique2") != v1 {
			r.t.Errorf("step 3: a new ARG value must miss at its first use only")
		}
		b4 := r.mustBuild(with("bar1"), WithNoCache())
		u4, v4 := r.file(b4, "/unique"), r.file(b4, "/unique2")
		if u4 == r.file(b3, "/unique") || v4 == v1 {
			r.t.Errorf("step 4: no-cache must run every stage again")
		}
		b5 := r.mustBuild(with("bar1"), WithNoCache("s1"))
		if r.file(b5, "/unique") != u4 || r.file(b5, "/unique2") == v4 {
			r.t.Errorf("step 5: no-cache for s1 only must run s1 alone again")
		}
	},
	"40-cache-wildcard-rename": func(r *confRun) {
		v := r.c.Variants[0]
		r.mustBuild(v)
		if err := os.Rename(filepath.Join(r.ctxDir, "file1"), filepath.Join(r.ctxDir, "file2")); err != nil {
			r.t.Fatal(err)
		}
		if res := r.build(r.c.Dockerfile, v); res.err == nil {
			r.t.Errorf("step 2: the build succeeded after the rename; the COPY key must hold the matched names")
		} else {
			r.t.Logf("step 2 fails as it must: %v", res.err)
		}
	},
}

// write changes a file of the case's context copy.
func (r *confRun) write(rel, data string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.ctxDir, rel), []byte(data), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// file reads a file of a build's image, in a sandbox.
func (r *confRun) file(res *confResult, p string) string {
	r.t.Helper()
	b, err := newInstance(r.t, res.snap).ReadFile(p)
	if err != nil {
		r.t.Fatalf("%s: %v", p, err)
	}
	return string(b)
}

func (r *confRun) checkFile(res *confResult, p, want string) {
	r.t.Helper()
	if got := r.file(res, p); got != want {
		r.t.Errorf("%s: %q, want %q", p, got, want)
	}
}

// allCached checks that every step of a build came from the cache.
func (r *confRun) allCached(res *confResult, what string) {
	r.t.Helper()
	var ran []string
	for _, e := range res.events {
		if e.Done && !e.Cached {
			ran = append(ran, e.Stage+": "+e.Instruction)
		}
	}
	if len(ran) > 0 {
		r.t.Errorf("%s: every step must be a cache hit; these ran: %s", what, strings.Join(ran, "; "))
	}
}
