package ipc

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Message types of the protocol, grouped by category in the high byte.
// The seed's numbers never change meaning; numbers marked "extension" are
// this SDK's additions inside free values. These are the numbers in use:
// table.go describes each, and seed_protocol.go holds the seed's numbers
// that nothing sends.
const (
	// Instance lifecycle (0x01xx)
	MsgInstanceNew        uint16 = 0x0100
	MsgInstanceClose      uint16 = 0x0101
	MsgInstanceWait       uint16 = 0x0102
	MsgInstanceID         uint16 = 0x0103
	MsgInstanceIsRunning  uint16 = 0x0104
	MsgInstanceSetNetwork uint16 = 0x0106
	MsgInstanceOpenLink   uint16 = 0x0108 // extension
	MsgInstanceStats      uint16 = 0x0109 // extension
	MsgInstanceSetTimeout uint16 = 0x010A // extension
	MsgInstanceSnapshot   uint16 = 0x010B // extension

	// Filesystem operations (0x02xx)
	MsgFsOpen        uint16 = 0x0200
	MsgFsCreate      uint16 = 0x0201
	MsgFsOpenFile    uint16 = 0x0202
	MsgFsReadFile    uint16 = 0x0203
	MsgFsWriteFile   uint16 = 0x0204
	MsgFsStat        uint16 = 0x0205
	MsgFsLstat       uint16 = 0x0206
	MsgFsRemove      uint16 = 0x0207
	MsgFsRemoveAll   uint16 = 0x0208
	MsgFsMkdir       uint16 = 0x0209
	MsgFsMkdirAll    uint16 = 0x020A
	MsgFsRename      uint16 = 0x020B
	MsgFsSymlink     uint16 = 0x020C
	MsgFsReadlink    uint16 = 0x020D
	MsgFsReadDir     uint16 = 0x020E
	MsgFsChmod       uint16 = 0x020F
	MsgFsChown       uint16 = 0x0210
	MsgFsChtimes     uint16 = 0x0211
	MsgFsSnapshot    uint16 = 0x0212
	MsgFsWriteStream uint16 = 0x0213 // extension
	MsgFsReadStream  uint16 = 0x0214 // extension

	// File operations (0x03xx)
	MsgFileClose    uint16 = 0x0300
	MsgFileRead     uint16 = 0x0301
	MsgFileWrite    uint16 = 0x0302
	MsgFileSeek     uint16 = 0x0303
	MsgFileSync     uint16 = 0x0304
	MsgFileTruncate uint16 = 0x0305
	MsgFileStat     uint16 = 0x0306
	MsgFileName     uint16 = 0x0307
	MsgFileReadAt   uint16 = 0x0308 // extension
	MsgFileWriteAt  uint16 = 0x0309 // extension
	MsgFileReadDir  uint16 = 0x030A // extension

	// Command operations (0x04xx)
	MsgCmdNew            uint16 = 0x0400
	MsgCmdFree           uint16 = 0x0402
	MsgCmdStart          uint16 = 0x0407
	MsgCmdWait           uint16 = 0x0408
	MsgCmdRun            uint16 = 0x0409
	MsgCmdKill           uint16 = 0x040D
	MsgCmdAttach         uint16 = 0x040E // extension
	MsgCmdSetConsoleSize uint16 = 0x040F // extension
	MsgCmdSpawn          uint16 = 0x0410 // extension

	// Network operations (0x05xx)
	MsgNetListen       uint16 = 0x0500
	MsgListenerAccept  uint16 = 0x0501
	MsgListenerClose   uint16 = 0x0502
	MsgListenerAddr    uint16 = 0x0503
	MsgNetDial         uint16 = 0x0509 // extension
	MsgNetListenPacket uint16 = 0x050A // extension

	// Session (0x08xx, extension): messages about the connection itself.

	// MsgHello is the versioned handshake a [Client] sends first, on its
	// control connection. A server of another version answers
	// [ErrCodeVersionMismatch].
	MsgHello uint16 = 0x0800

	// Network helper (0x09xx, extension): the messages of a helper that
	// serves many clients over TCP (cc-helper serve), where a connection
	// names its instance with MsgRemoteAttach instead of owning one.
	MsgRemoteAttach   uint16 = 0x0900
	MsgRemoteNew      uint16 = 0x0901
	MsgRemotePull     uint16 = 0x0902
	MsgRemoteCapacity uint16 = 0x0903
	MsgRemoteTap      uint16 = 0x0904
	MsgRemoteLayers   uint16 = 0x0905
	MsgRemotePutLayer uint16 = 0x0906
	MsgRemoteImage    uint16 = 0x0907
	MsgRemoteBuild    uint16 = 0x0908

	// Response types (0xFFxx)
	MsgResponse uint16 = 0xFF00
	MsgError    uint16 = 0xFF01
)

// ProtocolVersion is the version of this package's protocol, exchanged in
// [MsgHello]. It changes whenever a message changes shape or one is added,
// so that a helper installed from an older build fails the handshake
// clearly rather than meeting a message it does not know. Version 2 added
// MsgInstanceSetTimeout; version 3 gave the helper's snapshot its own
// number, MsgInstanceSnapshot (it was MsgFsSnapshot, which is the agent's);
// version 4 added the network helper's messages (0x09xx) and
// MsgFsWriteStream; version 5 added MsgFsReadStream; version 6 added
// MsgRemoteTap; version 7 added MsgRemoteLayers, MsgRemotePutLayer and
// MsgRemoteImage (images by content); version 8 added MsgRemoteBuild.
const ProtocolVersion uint32 = 8

// HelloMagic opens every [MsgHello] request, so a server can tell a client of
// this protocol from a stray peer.
const HelloMagic = "cc-sandbox-ipc"

// HeaderSize is the size of the header in bytes.
const HeaderSize = 6

// MaxMessageSize is the largest payload a message may carry (64 MiB).
// [ReadHeader] rejects longer messages before allocating anything. Bulk data
// larger than this travels in several messages or over a passed descriptor.
const MaxMessageSize = 64 << 20

// MaxDirEntries is the most entries one directory answer (MsgFsReadDir,
// MsgFileReadDir) holds: at most 17 MiB on the wire (names are at most 255
// bytes), well within MaxMessageSize, and a bounded reading for the agent.
// A directory with more is read a batch at a time.
const MaxDirEntries = 1 << 16

// Header represents a message header.
type Header struct {
	Type   uint16
	Length uint32
}

// ErrMessageTooLarge is returned by [ReadHeader] and [WriteHeader] for a
// length above [MaxMessageSize].
var ErrMessageTooLarge = fmt.Errorf("ipc: message longer than %d bytes", MaxMessageSize)

// ReadHeader reads a message header from the reader. It returns io.EOF when
// the reader ends before the first byte, io.ErrUnexpectedEOF when it ends
// inside the header, and an error wrapping [ErrMessageTooLarge] when the
// length exceeds [MaxMessageSize].
func ReadHeader(r io.Reader) (Header, error) {
	var buf [HeaderSize]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return Header{}, err
	}
	return parseHeader(buf[:])
}

// parseHeader decodes a header from the first HeaderSize bytes of b.
func parseHeader(b []byte) (Header, error) {
	h := Header{
		Type:   binary.BigEndian.Uint16(b[0:2]),
		Length: binary.BigEndian.Uint32(b[2:6]),
	}
	if h.Length > MaxMessageSize {
		return h, fmt.Errorf("message 0x%04x of %d bytes: %w", h.Type, h.Length, ErrMessageTooLarge)
	}
	return h, nil
}

// WriteHeader writes a message header to the writer. It refuses a length
// above [MaxMessageSize], which no peer would accept.
func WriteHeader(w io.Writer, h Header) error {
	if h.Length > MaxMessageSize {
		return fmt.Errorf("message 0x%04x of %d bytes: %w", h.Type, h.Length, ErrMessageTooLarge)
	}
	var buf [HeaderSize]byte
	putHeader(buf[:], h)
	_, err := w.Write(buf[:])
	return err
}

// putHeader encodes h into the first HeaderSize bytes of b.
func putHeader(b []byte, h Header) {
	binary.BigEndian.PutUint16(b[0:2], h.Type)
	binary.BigEndian.PutUint32(b[2:6], h.Length)
}
