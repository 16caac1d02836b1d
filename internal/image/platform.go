package image

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// HostPlatform returns the platform of images this host runs natively:
// linux and the architecture the program was built for.
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// ParsePlatform parses "os/arch[/variant]".
func ParsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch or os/arch/variant", s)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// FormatPlatform writes a platform as "os/arch[/variant]".
func FormatPlatform(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// platformMatches reports whether an image for have runs where want is
// asked for. An empty variant on either side matches the architecture's
// default (v8 for arm64).
func platformMatches(want, have v1.Platform) bool {
	if want.OS != have.OS || want.Architecture != have.Architecture {
		return false
	}
	norm := func(p v1.Platform) string {
		if p.Variant == "" && p.Architecture == "arm64" {
			return "v8"
		}
		return p.Variant
	}
	return want.Variant == "" || have.Variant == "" || norm(want) == norm(have)
}

// pickManifest chooses the manifest for want from an index: the first
// exact match, else the first compatible one. The error lists what the
// index offers.
func pickManifest(im *v1.IndexManifest, want v1.Platform, what string) (v1.Descriptor, error) {
	var found *v1.Descriptor
	var offered []string
	for i, d := range im.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue // attestations and the like
		}
		offered = append(offered, FormatPlatform(*d.Platform))
		if !platformMatches(want, *d.Platform) {
			continue
		}
		if d.Platform.Variant == want.Variant {
			return d, nil
		}
		if found == nil {
			found = &im.Manifests[i]
		}
	}
	if found != nil {
		return *found, nil
	}
	return v1.Descriptor{}, fmt.Errorf("%s has no image for %s (it has %s): %w",
		what, FormatPlatform(want), strings.Join(offered, ", "), ErrPlatform)
}

// checkPlatform refuses a config whose platform is not want.
func checkPlatform(cfg *v1.ConfigFile, want v1.Platform, what string) error {
	have := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if have.OS == "" && have.Architecture == "" {
		return nil // an old config that does not say: take it
	}
	if !platformMatches(want, have) {
		return fmt.Errorf("%s is an image for %s, not %s (choose the platform with WithPlatform): %w",
			what, FormatPlatform(have), FormatPlatform(want), ErrPlatform)
	}
	return nil
}

// parseConfig parses a config blob.
func parseConfig(b []byte) (*v1.ConfigFile, error) {
	cfg, err := v1.ParseConfigFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parsing image config: %w", err)
	}
	return cfg, nil
}
