// Package helper is the out-of-process helper: a process that owns one
// sandbox on behalf of a client (the public package in another process)
// and serves internal/ipc over a Unix socket; and the client's side of it
// (Start, Remote), so that both ends of the helper's messages, and the one
// conversion of an engine.Spec into the seed's terms, live here.
//
// # Model
//
// One helper serves one instance, as the seed's design has it: the client
// starts a helper (cmd/cc-helper, or the client's own binary re-executed
// with EnvMarker), sends MsgInstanceNew, and the helper starts the sandbox
// with internal/engine. The helper answers the messages the protocol's
// table names it for (ipc.PeerHelper) itself and forwards the agent's to
// the sandbox's agent as the table describes them: with the descriptors
// that come with them, a client's hang-up cancelling those that block,
// and, for streams, the connection itself.
// Where the backend allows it (the namespace backend), the answer to
// MsgInstanceNew also carries the agent's channel, so the client can open
// its own connections to the agent and its file, command and network calls
// cost no extra hop; the helper still owns the sandbox's life.
//
// Why one per instance, measured (2 vCPUs; BenchmarkHelper and
// BenchmarkStartRunClose with CC_USE_HELPER=1): with the channel handed
// over, calls cost the same whichever helper owns the sandbox (command
// round trip 0.99-1.03x in-process, Stat 1.04-1.07x, throughput
// 1.03-1.09x), so sharing a helper could only save its start, about
// 9.5 ms per New+Close (20 ms against 10.5 ms in-process). Against that a
// helper per instance keeps a crash or a kill to one sandbox, needs no
// reference counting (it exits with its instance, so it never outlives
// Close), and lets sandboxes start in parallel without a shared queue.
// Programs that start many short sandboxes and need the helper should
// weigh the 9.5 ms; in-process mode does not pay it.
//
// # The network helper
//
// `cc-helper serve` (serve.go, NetServer) is the other model: one
// long-lived process on a machine of its own, serving many clients over
// TCP with mutual TLS, each with sandboxes of its own that the engine runs
// in this process. Its connections carry the same messages; descriptors
// cannot cross TCP, so the client's calls take the streamed path, and a
// connection names the sandbox it serves (MsgRemoteAttach), checked
// against the client's certificate (netsession.go). The ledger
// (ledger.go) holds who owns what, the per-client limits of the policy,
// and the grace period after which a vanished client's sandboxes stop.
// NetClient and NetInstance are the client's side; the public package's
// Remote and Fleet build on them.
//
// # Lifetimes
//
// The helper exits when its client's control connection closes (the client
// closed, or died), stopping the sandbox first; it dies with its parent
// where the kernel allows (PR_SET_PDEATHSIG); the sandbox's agent dies with
// the helper.
package helper
