package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// HelperName is the file name of the helper binary, without the platform's
// executable suffix.
const HelperName = "cc-helper"

// helperStartTimeout bounds how long SpawnHelper waits for a new helper to
// accept connections.
const helperStartTimeout = 10 * time.Second

// HelperNotFoundError is returned when the cc-helper binary cannot be found.
type HelperNotFoundError struct {
	SearchedPaths []string
}

// Error lists where the helper was looked for.
func (e *HelperNotFoundError) Error() string {
	return fmt.Sprintf("%s not found (searched: %s)", HelperName, strings.Join(e.SearchedPaths, ", "))
}

// FindHelper looks for the helper binary (extension) and returns its path,
// or a *HelperNotFoundError listing every place searched, in this order:
//
//  1. the file named by the CC_HELPER_PATH environment variable;
//  2. cc-helper (cc-helper.exe on Windows) next to os.Executable();
//  3. cc-helper next to libPath, when libPath is not empty;
//  4. the per-user install directory: $XDG_DATA_HOME/cc/bin or
//     ~/.local/share/cc/bin on Linux and other Unix systems,
//     ~/Library/Application Support/cc/bin on macOS,
//     %LOCALAPPDATA%\cc\bin on Windows;
//  5. the directories of $PATH.
func FindHelper(libPath string) (string, error) {
	name := HelperName
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	var searched []string
	try := func(p string) bool {
		searched = append(searched, p)
		fi, err := os.Stat(p)
		return err == nil && fi.Mode().IsRegular()
	}
	if p := os.Getenv("CC_HELPER_PATH"); p != "" && try(p) {
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), name); try(p) {
			return p, nil
		}
	}
	if libPath != "" {
		if p := filepath.Join(filepath.Dir(libPath), name); try(p) {
			return p, nil
		}
	}
	if dir := userInstallDir(); dir != "" {
		if p := filepath.Join(dir, name); try(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	searched = append(searched, "$PATH")
	return "", &HelperNotFoundError{SearchedPaths: searched}
}

// userInstallDir returns the per-user directory helpers are installed in.
func userInstallDir() string {
	switch runtime.GOOS {
	case "windows":
		if d := os.Getenv("LOCALAPPDATA"); d != "" {
			return filepath.Join(d, "cc", "bin")
		}
		return ""
	case "darwin":
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, "Library", "Application Support", "cc", "bin")
		}
		return ""
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "cc", "bin")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "cc", "bin")
	}
	return ""
}

// SpawnHelper starts a new cc-helper process and connects to it.
// libPath should be the path to libcc.so/.dylib for locating cc-helper (it
// may be empty); see [FindHelper] for the search order. It returns a
// *HelperNotFoundError when no helper is found.
func SpawnHelper(libPath string) (*Client, error) {
	path, err := FindHelper(libPath)
	if err != nil {
		return nil, err
	}
	return StartHelper(context.Background(), exec.Command(path))
}

// sweepSockets runs RemoveStaleSockets once, before this process's first
// helper start.
var sweepSockets sync.Once

// StartHelper starts cmd as a helper and connects to it (extension): it adds
// the arguments "-socket PATH" for a new socket path in this user's private
// socket directory (see [SocketDir]), starts the process so
// that it dies with this one where the platform allows, waits for it to
// listen, and performs the handshake. The returned client owns the process:
// Close stops it. cmd.Stderr is left as the caller set it; cmd is the
// helper's process once StartHelper returns.
//
// A terminal's ^C can reach the helper in the moment between its fork and
// its leaving this program's process group (see setDieWithParent); a
// helper that dies of SIGINT or SIGQUIT before it listens is started
// again, until one lives or the start's time (helperStartTimeout) is up.
func StartHelper(ctx context.Context, cmd *exec.Cmd) (*Client, error) {
	ctx, cancel := context.WithTimeout(ctx, helperStartTimeout)
	defer cancel()
	// An attempt appends to Args past the caller's length and sets the
	// same fields of SysProcAttr each time: the unstarted cmd is a
	// template for the next one.
	template := *cmd
	for {
		c, err := startHelperOnce(ctx, cmd)
		if err == nil || !errors.Is(err, errGroupSignal) || ctx.Err() != nil {
			return c, err
		}
		*cmd = template // the dead attempt has been waited for
	}
}

// errGroupSignal marks the error of a helper that died of a signal a
// terminal sends to its foreground process group.
var errGroupSignal = errors.New("killed by a terminal's signal to this program's process group")

// startHelperOnce is one attempt of StartHelper.
func startHelperOnce(ctx context.Context, cmd *exec.Cmd) (*Client, error) {
	sweepSockets.Do(RemoveStaleSockets)
	socketPath, err := socketPath()
	if err != nil {
		return nil, err
	}
	lock, err := lockSocket(socketPath)
	if err != nil {
		return nil, fmt.Errorf("the helper socket's lock file: %w", err)
	}
	cmd.Args = append(cmd.Args, "-socket", socketPath)
	setDieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		unlockSocket(socketPath, lock)
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	procDone := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(procDone)
	}()
	fail := func(err error) (*Client, error) {
		cmd.Process.Kill()
		<-procDone
		os.Remove(socketPath)
		unlockSocket(socketPath, lock)
		return nil, err
	}

	// Every connection must reach the helper itself, not whatever else
	// might listen at the path.
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", socketPath)
		if err != nil {
			return nil, err
		}
		if err := checkPeerPid(conn, cmd.Process.Pid, "the helper this process started"); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}
	var conn net.Conn
	for {
		var err error
		if conn, err = dial(ctx); err == nil {
			break // this first connection becomes the control connection
		}
		if errors.Is(err, ErrPeerRefused) {
			return fail(fmt.Errorf("helper %s: %w", cmd.Path, err))
		}
		select {
		case <-procDone:
			os.Remove(socketPath)
			unlockSocket(socketPath, lock)
			if diedOfTerminalSignal(waitErr) {
				return nil, fmt.Errorf("helper %s exited before listening: %v (%w)", cmd.Path, waitErr, errGroupSignal)
			}
			return nil, fmt.Errorf("helper %s exited before listening: %v", cmd.Path, waitErr)
		case <-ctx.Done():
			return fail(fmt.Errorf("helper %s did not listen on %s: %w", cmd.Path, socketPath, ctx.Err()))
		case <-time.After(5 * time.Millisecond):
		}
	}

	proc := &helperProcess{cmd: cmd, done: procDone, socketPath: socketPath, lock: lock}
	c := &Client{dial: dial, deadCh: make(chan struct{}), busy: make(map[*msgConn]struct{}), owner: proc}
	if err := c.handshake(ctx, conn); err != nil {
		return fail(err)
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		<-procDone
		cause := errors.New("helper exited")
		if waitErr != nil {
			cause = fmt.Errorf("helper exited: %w", waitErr)
		}
		c.markDead(cause)
	}()
	return c, nil
}

// helperGrace is how long Close waits for a spawned helper to exit on its
// own before killing it.
const helperGrace = 2 * time.Second

// helperProcess is a helper StartHelper started: its Client owns it, and
// closes it once its connections are closed, which asks the helper to exit.
type helperProcess struct {
	cmd        *exec.Cmd
	done       chan struct{} // closed when cmd has been waited for
	socketPath string
	lock       *os.File // held while the socket is in use (socketlock_linux.go)
}

// Close waits for the helper to exit, killing it after helperGrace, and
// removes its socket.
func (p *helperProcess) Close() error {
	select {
	case <-p.done:
	case <-time.After(helperGrace):
		p.cmd.Process.Kill()
		<-p.done
	}
	os.Remove(p.socketPath)
	unlockSocket(p.socketPath, p.lock)
	return nil
}
