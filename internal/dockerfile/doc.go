// Package dockerfile runs Dockerfiles: it parses them with BuildKit's parser
// and instructions packages, expands words with BuildKit's shell package
// (Docker's own rules), works out the stages a target needs, and turns
// each instruction into a step over an Executor, which the public package
// implements with sandboxes and snapshots.
//
// # Vocabulary
//
//   - ref: a root filesystem (overlay-format layer directories, lowest
//     first) with an OCI image config: a base image or what a step made.
//
//   - stage: the instructions from one FROM to the next; its result is
//     the ref of its last step. Stages run in goroutines of their own as
//     soon as the stages they need are built, a few at a time (see
//     schedule.go), each with a platform (FROM --platform, or the
//     build's); only stages of the host's platform can RUN.
//
//   - step: one instruction. Metadata steps (ENV, LABEL, USER, CMD, ...)
//     change only the config kept in memory and never start a sandbox;
//     filesystem steps (RUN, COPY, ADD, and WORKDIR when it must create
//     the directory) make a new ref through the Executor.
//
//   - key: a step's cache key: the previous step's key, the instruction
//     after expansion and, for COPY and ADD, a hash of the names, modes
//     and contents of exactly the files it reads (or the key of the stage
//     or image it copies from); RUN's key holds its environment, the
//     build arguments in scope included. An ARG adds only its name to the
//     keys that follow: a value counts where it is used, in a word it
//     expands into or in a RUN's environment. A stage's first key is that
//     of its base ref (an image digest, never a tag). A filesystem step
//     whose key the cache knows is not run again; the config it recorded
//     is taken when it is the one the build has come to, times aside.
//
//   - mount: what RUN --mount gives one step, on the host side (a copy of
//     a bind's files, a cache directory of the store, a scratch directory
//     in host memory, a secret's file, an agent socket's relay), bound
//     into the step's sandbox; the step's snapshot leaves out the
//     directories its targets made. A secret's value reaches nothing but
//     the step: no key, layer, event or error holds it.
//
// Nothing here imports the public package: the Executor interface is the
// whole contract. Check plans a build without an Executor and lists
// what a build would refuse.
package dockerfile
