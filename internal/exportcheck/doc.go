// Package exportcheck holds no code: its test checks the images the SDK
// writes out (Image.WriteOCILayout, Image.WriteDockerArchive) with
// go-containerregistry's validate package.
//
// The check lives here rather than in the root package's tests because
// validate brings in go-cmp, whose package init compiles regular
// expressions: every sandbox's agent is the test binary re-executed, so
// in the root package's test binary it cost each agent about 280 KB of
// memory and half a millisecond of its start, which BenchmarkIdlePSS and
// the start benchmarks then counted as the SDK's.
package exportcheck
