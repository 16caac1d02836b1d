// Package greet is a module the build tests serve from an in-process Go
// module proxy.
package greet

// Hello returns the greeting.
func Hello() string { return "hello from example.com/greet v1.0.0" }
