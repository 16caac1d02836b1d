//go:build race

package main

// raceEnabled: the tests build cc with the race detector too.
const raceEnabled = true
