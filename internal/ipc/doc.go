// Package ipc implements the wire protocol that every part of the SDK speaks:
// the public package to the out-of-process helper, and the host to the agent
// that runs inside each sandbox.
//
// # Wire format
//
// A message is a 6-byte header followed by a payload:
//
//	[2 bytes: message type, big endian]
//	[4 bytes: payload length, big endian]
//	[length bytes: payload]
//
// Payloads are built with [Encoder] and read with [Decoder]: integers are big
// endian, a bool is one byte, strings and byte slices are a uint32 length and
// the bytes, a string slice is a uint32 count and the strings. The message
// numbers and error codes are those of the seed document; numbers this
// package adds are marked as extensions and never reuse a seed number.
//
// # Messages
//
// Every message in use has a [Desc] in the table of table.go (listed in
// README.md): who serves it, the Go types of its request and answer bodies
// ([Msg] values, one struct each, whose Encode and checked Decode lay out
// the fields in the order their declarations give), whether it blocks,
// turns the connection into a stream, or carries descriptors. Servers
// register typed handlers with [Route], which decodes, calls and encodes;
// callers use the typed calls ([Client.Do] and its kin) or [Agent], the
// typed client of the agent's protocol. The seed's raw API ([Handler],
// [ResponseBuilder], [Client.CallWithEncoder], the seed's unused numbers)
// lives in seed_*.go.

// # Responses
//
// Every request gets exactly one answer on the connection it came on:
//
//   - success: a [MsgResponse] whose payload starts with the byte
//     [ErrCodeOK] (0), followed by the answer's body;
//   - failure: a [MsgError] whose payload is laid out by [EncodeError]: a
//     uint8 code, then the message, op and path strings. An extension may
//     follow: a uint32 Linux errno, which [DecodeError] reads when present.
//
// [IPCError] carries a failure to the caller. Its Is and Unwrap methods let
// errors.Is match the error the remote side saw: fs.ErrNotExist,
// fs.ErrExist, fs.ErrPermission, fs.ErrClosed, io.EOF, context.Canceled,
// context.DeadlineExceeded, the SDK's sentinels ([ErrNotRunning],
// [ErrAlreadyClosed], [ErrTimeout], ...) and raw errno values.
// Failures of the transport itself (the peer died, the socket broke) are
// [*TransportError] values, which match [ErrTransport] and never match an
// error the peer returned.
//
// # Concurrency
//
// A [Client] is safe for concurrent use. It keeps a pool of connections to
// its server and runs each call on a connection of its own, so a call that
// blocks inside its handler (a Wait, an Accept, a Read) never delays another.
// Besides the pool it holds one control connection, opened first, that
// carries the versioned handshake ([MsgHello]) and tells it at once when the
// peer has gone: from then on every pending and later call fails with a
// [*TransportError]. A [Server] serves its connections concurrently; all of
// them share one handler, and so one set of handle tables.
//
// # Limits
//
// No message may be longer than [MaxMessageSize]; [ReadHeader] rejects a
// larger length before anything is allocated, and every decoder checks
// lengths and counts against [Decoder.Remaining] before allocating.
//
// # Descriptors
//
// On Unix sockets a message can carry open files (SCM_RIGHTS), through
// [Client.Exchange] and the Files of [Request] and [Response]. Ownership:
// the sender keeps its own descriptors (the kernel duplicates them), except
// that the [Server] closes the files of a [Response] once it has sent them;
// the receiver owns the files it is given and must close them.
package ipc
