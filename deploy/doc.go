// Package deploy holds what runs cc-helper away from the program that uses
// the SDK: the Dockerfile of its container image (built by `make
// helper-image` with the SDK's own Build) and, in kubernetes/, the
// manifests that run it on every node of a cluster. It has no Go API: its
// test builds the image and starts the helper from it in a sandbox.
package deploy
