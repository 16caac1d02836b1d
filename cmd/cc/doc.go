// Command cc runs sandboxes from the command line and serves them to AI
// agents over the Model Context Protocol. It is built only on the public
// API of github.com/ccsandbox/sandbox, which it exercises the way any other
// program would.
//
//	go install github.com/ccsandbox/sandbox/cmd/cc@latest
//
// # Commands
//
//	cc run [flags] IMAGE [COMMAND [ARG...]]   run a command in a new sandbox, as docker run does
//	cc build [flags] CONTEXT                  build a Dockerfile; print the result's key
//	cc pull REFERENCE                         pull an image into the layer store
//	cc images                                 list the store's images
//	cc rmi IMAGE...                           remove images (their layers go at the next prune)
//	cc prune                                  free the layers nothing uses
//	cc df                                     show the store's disk use
//	cc mcp [flags]                            serve sandboxes to an MCP client on stdio
//
// IMAGE is "host" (the host's own programs, see sandbox.HostImage), a path
// to an OCI layout directory or a docker archive (written with a "/" or
// ending in ".tar"), the digest of an image in the store or the key of a
// snapshot or build result ("cc build" prints it; 12 or more hex digits of
// an image's digest will do), or a registry reference, pulled when the
// store lacks it.
//
// # Exit status
//
// As docker run's: the command's own exit code; 128+N when a signal N
// killed it (137 for a kill by the memory limit); 126 when the command
// cannot be run, 127 when it is not found; and 125 when cc itself fails
// (a bad flag, an image that cannot be had, a sandbox that cannot start, a
// sandbox stopped by --timeout). Errors are printed on standard error.
// The run ends with the command, as docker run's does: processes it left
// in the background stop with the sandbox. Ctrl-C (SIGINT), SIGTERM and
// SIGHUP stop the sandbox and everything in it; cc then exits with 128
// plus the signal's number. With -t the
// terminal is in raw mode and Ctrl-C goes to the command, as with docker
// run -it.
//
// # Flags
//
// The flags are parsed by spf13/cobra (with spf13/pflag), the library
// docker, kubectl and podman use, rather than the standard flag package:
// it gives the conventions users of those tools type without thinking
// (combined short flags such as -it, --long and -s forms, repeatable -v
// and -e), --help and a usage message on every subcommand, and it stops
// parsing at IMAGE so that the command's own flags pass through untouched.
// The standard package offers none of the first three.
//
// The global flag --cache-dir chooses the layer store (default: the
// CC_CACHE_DIR environment variable, or the "cc" directory in the user's
// cache directory), and --debug logs what the SDK does on standard error.
//
// # MCP server
//
// cc mcp serves sandboxes on standard input and output to one MCP client
// (an agent) with tools to create a sandbox, run a command in it, write,
// read and list its files, list the open sandboxes and close one. Network
// access is off unless the server runs with --allow-network, and so is
// pulling: without it, an image a client names must already be in the
// store. A client's image name is never looked up among the host's files
// (host paths are refused by their spelling alone). --memory,
// --cpus, --pids and --timeout are each sandbox's defaults and the most a
// client may ask for; --max-sandboxes bounds how many are open at once.
// Every sandbox the server made is closed when the client disconnects or
// the server is stopped. A bad tool call (an unknown image or sandbox, a
// missing or malformed argument, a limit above the server's) gets an error
// result that says why; the server and the other sandboxes go on.
package main
