package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"syscall"
)

// Error codes for IPC errors. The first block is the seed's (they match the C
// error codes); the second is this SDK's extension, for errors the seed's
// codes are too coarse to tell apart. A code never changes meaning.
const (
	ErrCodeOK                    = 0
	ErrCodeInvalidHandle         = 1 // ErrInvalidHandle
	ErrCodeInvalidArgument       = 2 // fs.ErrInvalid and other bad arguments
	ErrCodeNotRunning            = 3 // ErrNotRunning
	ErrCodeAlreadyClosed         = 4 // ErrAlreadyClosed
	ErrCodeTimeout               = 5 // ErrTimeout
	ErrCodeHypervisorUnavailable = 6 // ErrHypervisorUnavailable
	ErrCodeIO                    = 7 // an I/O error; the errno, if any, travels with it
	ErrCodeNetwork               = 8 // a network error; the errno, if any, travels with it
	ErrCodeCancelled             = 9 // ErrCancelled
	ErrCodeUnknown               = 99

	// Extensions.
	ErrCodeNotExist         = 10 // fs.ErrNotExist
	ErrCodeExist            = 11 // fs.ErrExist
	ErrCodePermission       = 12 // fs.ErrPermission
	ErrCodeClosed           = 13 // fs.ErrClosed (os.ErrClosed)
	ErrCodeNetClosed        = 14 // net.ErrClosed
	ErrCodeEOF              = 15 // io.EOF
	ErrCodeContextCanceled  = 16 // context.Canceled
	ErrCodeDeadlineExceeded = 17 // context.DeadlineExceeded
	ErrCodeIOTimeout        = 18 // os.ErrDeadlineExceeded, a deadline on I/O
	ErrCodeUnsupported      = 19 // errors.ErrUnsupported
	ErrCodeExecNotFound     = 20 // exec.ErrNotFound
	ErrCodeVersionMismatch  = 21 // ErrVersionMismatch
	ErrCodeProcessDone      = 22 // os.ErrProcessDone
	ErrCodeWaitDelay        = 23 // exec.ErrWaitDelay
	ErrCodeUnexpectedEOF    = 24 // io.ErrUnexpectedEOF
	ErrCodeOutOfMemory      = 25 // ErrOutOfMemory
)

// Sentinel errors of the SDK. Each has its own error code, so errors.Is
// matches them on the far side of any connection; the public package exports
// the same values.
var (
	// ErrInvalidHandle: a handle names no open object (never opened, or
	// already released).
	ErrInvalidHandle = errors.New("invalid handle")
	// ErrNotRunning: the instance or process has stopped.
	ErrNotRunning = errors.New("not running")
	// ErrAlreadyClosed: Close was already called on the object.
	ErrAlreadyClosed = errors.New("already closed")
	// ErrTimeout: the instance reached its time limit (WithTimeout).
	ErrTimeout = errors.New("timeout")
	// ErrHypervisorUnavailable: the isolation backend cannot run on this
	// host; the wrapping error names what is missing.
	ErrHypervisorUnavailable = errors.New("hypervisor unavailable")
	// ErrCancelled: the operation was cancelled.
	ErrCancelled = errors.New("cancelled")
	// ErrOutOfMemory: the sandbox was killed for exceeding its memory limit.
	ErrOutOfMemory = errors.New("out of memory")
	// ErrVersionMismatch: the peer speaks another protocol version.
	ErrVersionMismatch = errors.New("protocol version mismatch")
	// ErrTransport matches every [*TransportError]: the connection to the
	// peer failed, so the outcome of the call is unknown.
	ErrTransport = errors.New("ipc transport failed")
)

// codeSentinels maps each code to the error it stands for, in the order
// [CodeOf] tests them. A code may stand for no sentinel (ErrCodeIO).
var codeSentinels = []struct {
	code uint8
	err  error
}{
	{ErrCodeInvalidHandle, ErrInvalidHandle},
	{ErrCodeNotRunning, ErrNotRunning},
	{ErrCodeAlreadyClosed, ErrAlreadyClosed},
	{ErrCodeTimeout, ErrTimeout},
	{ErrCodeHypervisorUnavailable, ErrHypervisorUnavailable},
	{ErrCodeCancelled, ErrCancelled},
	{ErrCodeOutOfMemory, ErrOutOfMemory},
	{ErrCodeVersionMismatch, ErrVersionMismatch},
	{ErrCodeContextCanceled, context.Canceled},
	{ErrCodeDeadlineExceeded, context.DeadlineExceeded},
	{ErrCodeIOTimeout, os.ErrDeadlineExceeded},
	{ErrCodeExecNotFound, exec.ErrNotFound},
	{ErrCodeWaitDelay, exec.ErrWaitDelay},
	{ErrCodeProcessDone, os.ErrProcessDone},
	{ErrCodeNotExist, fs.ErrNotExist},
	{ErrCodeExist, fs.ErrExist},
	{ErrCodePermission, fs.ErrPermission},
	{ErrCodeClosed, fs.ErrClosed},
	{ErrCodeNetClosed, net.ErrClosed},
	{ErrCodeUnexpectedEOF, io.ErrUnexpectedEOF},
	{ErrCodeEOF, io.EOF},
	{ErrCodeUnsupported, errors.ErrUnsupported},
	{ErrCodeInvalidArgument, fs.ErrInvalid},
}

// sentinelOf returns the error a code stands for, or nil.
func sentinelOf(code uint8) error {
	for _, cs := range codeSentinels {
		if cs.code == code {
			return cs.err
		}
	}
	return nil
}

// IPCError represents an error in the IPC protocol: a failure the remote side
// reported. Errno, when not zero, is the Linux errno behind it (an extension
// to the seed's layout).
type IPCError struct {
	Code    uint8
	Message string
	Op      string
	Path    string
	Errno   uint32
}

// Error formats the error as "op: path: message", leaving out empty parts.
func (e *IPCError) Error() string {
	switch {
	case e.Op != "" && e.Path != "":
		return fmt.Sprintf("%s: %s: %s", e.Op, e.Path, e.Message)
	case e.Op != "":
		return fmt.Sprintf("%s: %s", e.Op, e.Message)
	case e.Path != "":
		return fmt.Sprintf("%s: %s", e.Path, e.Message)
	}
	return e.Message
}

// Unwrap returns the sentinel the code stands for and the errno, so that
// errors.Is(err, fs.ErrNotExist) or errors.Is(err, syscall.EISDIR) hold on
// this side exactly when they held on the remote side.
func (e *IPCError) Unwrap() []error {
	var errs []error
	if s := sentinelOf(e.Code); s != nil {
		errs = append(errs, s)
	}
	if en, ok := hostErrno(e.Errno); ok {
		errs = append(errs, en)
	}
	return errs
}

// Timeout reports whether the error is a timeout, as net.Error asks.
func (e *IPCError) Timeout() bool {
	return e.Code == ErrCodeIOTimeout || e.Code == ErrCodeDeadlineExceeded
}

// Bare returns a copy of e without Op and Path, whose message is only the
// remote error's text: the form to put inside an *fs.PathError or
// *net.OpError that supplies op and path itself.
func (e *IPCError) Bare() *IPCError {
	c := *e
	c.Op, c.Path = "", ""
	return &c
}

// EncodeError encodes an error response: a uint8 code, then message, op and
// path strings.
func EncodeError(enc *Encoder, code uint8, message, op, path string) {
	enc.Uint8(code)
	enc.String(message)
	enc.String(op)
	enc.String(path)
}

// encodeIPCError encodes e with [EncodeError], followed by the errno
// extension when e carries one.
func encodeIPCError(enc *Encoder, e *IPCError) {
	EncodeError(enc, e.Code, e.Message, e.Op, e.Path)
	if e.Errno != 0 {
		enc.Uint32(e.Errno)
	}
}

// DecodeError decodes an error response. It returns (nil, nil) when the code
// is [ErrCodeOK]. A trailing uint32 after the path is read as the errno
// extension.
func DecodeError(dec *Decoder) (*IPCError, error) {
	code, err := dec.Uint8()
	if err != nil {
		return nil, err
	}
	if code == ErrCodeOK {
		return nil, nil
	}
	e := &IPCError{Code: code}
	if e.Message, err = dec.String(); err != nil {
		return nil, err
	}
	if e.Op, err = dec.String(); err != nil {
		return nil, err
	}
	if e.Path, err = dec.String(); err != nil {
		return nil, err
	}
	if dec.Remaining() >= 4 {
		e.Errno, _ = dec.Uint32()
	}
	return e, nil
}

// CodeOf returns the error code that stands for err: the code of an
// *IPCError, the code of the first sentinel err matches, [ErrCodeIO] or
// [ErrCodeNetwork] for other errors with an errno or network origin, and
// [ErrCodeUnknown] otherwise.
func CodeOf(err error) uint8 {
	if err == nil {
		return ErrCodeOK
	}
	if ie, ok := errors.AsType[*IPCError](err); ok {
		return ie.Code
	}
	for _, cs := range codeSentinels {
		if errors.Is(err, cs.err) {
			return cs.code
		}
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return ErrCodeNetwork
	}
	if _, ok := errors.AsType[syscall.Errno](err); ok {
		return ErrCodeIO
	}
	return ErrCodeUnknown
}

// ToIPCError converts any error into the *IPCError that describes it on the
// wire: an *IPCError is returned as it is; otherwise the code comes from
// [CodeOf], op and path from an *fs.PathError, *os.LinkError or
// *net.OpError inside it (the message is then the error below them), and
// the errno from a syscall.Errno inside it. It returns nil for nil.
func ToIPCError(err error) *IPCError {
	if err == nil {
		return nil
	}
	if ie, ok := errors.AsType[*IPCError](err); ok {
		return ie
	}
	e := &IPCError{Code: CodeOf(err), Message: err.Error()}
	if pe, ok := errors.AsType[*fs.PathError](err); ok && pe.Err != nil && err == error(pe) {
		e.Op, e.Path, e.Message = pe.Op, pe.Path, pe.Err.Error()
	} else if le, ok := errors.AsType[*os.LinkError](err); ok && le.Err != nil && err == error(le) {
		e.Op, e.Path, e.Message = le.Op, le.Old, le.Err.Error()
	} else if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Err != nil && err == error(oe) {
		e.Op, e.Message = oe.Op, oe.Err.Error()
		if oe.Addr != nil {
			e.Path = oe.Addr.String()
		}
	}
	if en, ok := errors.AsType[syscall.Errno](err); ok {
		e.Errno = linuxErrno(en)
	}
	return e
}

// TransportError reports that the connection to the peer failed: it died, it
// closed the connection, or it sent bytes that are not a message. The call's
// outcome on the remote side is unknown. It matches [ErrTransport] and
// deliberately nothing else: a broken connection is never mistaken for
// io.EOF or fs.ErrNotExist.
type TransportError struct {
	Op  string // what the transport was doing: "dial", "write", "read", ...
	Err error  // the cause, for the message only
}

// Error describes the failure.
func (e *TransportError) Error() string {
	return "ipc " + e.Op + ": " + e.Err.Error()
}

// Is reports whether target is [ErrTransport].
func (e *TransportError) Is(target error) bool {
	return target == ErrTransport
}
