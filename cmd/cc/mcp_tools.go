package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/ccsandbox/sandbox"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// tools are the MCP server's tools over one session's sandboxes.
type tools struct {
	g   *globals
	f   *mcpFlags
	set *sandboxSet
}

// maxListEntries bounds the entries list_files returns.
const maxListEntries = 10000

// register adds the tools to server.
func (t *tools) register(server *mcp.Server) {
	addTool(t, server, &mcp.Tool{Name: "create_sandbox", Description: "Start a new isolated Linux sandbox from an image and return its id. " +
		"Limits not given take the server's defaults; network access is off unless asked for and allowed by the server."}, t.create)
	addTool(t, server, &mcp.Tool{Name: "run_command", Description: "Run a program in a sandbox and wait for it: returns its exit code and output. " +
		"For a shell command line, run [\"sh\", \"-c\", \"LINE\"]."}, t.run)
	addTool(t, server, &mcp.Tool{Name: "write_file", Description: "Write a file in a sandbox, creating its parent directories and replacing what was there."}, t.writeFile)
	addTool(t, server, &mcp.Tool{Name: "read_file", Description: "Read a file of a sandbox. Text comes back as it is, other content in base64."}, t.readFile)
	addTool(t, server, &mcp.Tool{Name: "list_files", Description: "List a directory of a sandbox: each entry's name, type, size and mode."}, t.listFiles)
	addTool(t, server, &mcp.Tool{Name: "list_sandboxes", Description: "List the open sandboxes."}, t.listSandboxes)
	addTool(t, server, &mcp.Tool{Name: "close_sandbox", Description: "Close a sandbox: stop everything in it and discard its files."}, t.closeSandbox)
}

// addTool adds a tool whose handler runs as one call of the set: refused
// while the server shuts down, cancelled when it does.
func addTool[In, Out any](t *tools, server *mcp.Server, tool *mcp.Tool, h func(context.Context, In) (Out, error)) {
	mcp.AddTool(server, tool, func(ctx context.Context, _ *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
		var zero Out
		ctx, done, err := t.set.begin(ctx)
		if err != nil {
			return nil, zero, err
		}
		defer done()
		out, err := h(ctx, in)
		return nil, out, err
	})
}

type createIn struct {
	Image          string   `json:"image,omitempty" jsonschema:"the image: a registry reference such as docker.io/library/python:3.12, host for the host's own programs, or the digest of an image the server has; default: the server's"`
	MemoryMB       int64    `json:"memory_mb,omitempty" jsonschema:"memory limit in MiB"`
	CPUs           float64  `json:"cpus,omitempty" jsonschema:"CPU limit in CPUs, may be fractional"`
	PidsLimit      int64    `json:"pids_limit,omitempty" jsonschema:"the most processes and threads"`
	TimeoutSeconds float64  `json:"timeout_seconds,omitempty" jsonschema:"stop the sandbox this many seconds after it starts"`
	Network        bool     `json:"network,omitempty" jsonschema:"give the sandbox outbound network access (only if the server allows it)"`
	Env            []string `json:"env,omitempty" jsonschema:"variables for every command, each KEY=value"`
	Workdir        string   `json:"workdir,omitempty" jsonschema:"the absolute directory commands start in"`
}

type createOut struct {
	ID      string `json:"id" jsonschema:"the sandbox's id, for the other tools"`
	Image   string `json:"image" jsonschema:"the image it was made from"`
	Network bool   `json:"network" jsonschema:"whether it has outbound network access"`
}

func (t *tools) create(ctx context.Context, in createIn) (createOut, error) {
	opts, err := t.createOptions(in)
	if err != nil {
		return createOut{}, err
	}
	// A client's image name never reaches the host's files, and reaches a
	// registry only when the operator allowed the network.
	image, rules := in.Image, sourceRules{noPull: !t.f.allowNetwork, guarded: true}
	if image == "" {
		image, rules = t.f.image, sourceRules{paths: true} // the operator's choice
	}
	if err := t.set.reserve(); err != nil {
		return createOut{}, err
	}
	src, release, err := openSource(ctx, t.g, image, rules)
	if err != nil {
		t.set.unreserve()
		return createOut{}, fmt.Errorf("image %s: %w", image, err)
	}
	inst, err := sandbox.New(ctx, src, opts...)
	if err != nil {
		release()
		t.set.unreserve()
		return createOut{}, err
	}
	sb := &openSandbox{inst: inst, release: release, image: image, network: in.Network, created: time.Now()}
	if err := t.set.add(sb); err != nil {
		return createOut{}, err
	}
	return createOut{ID: inst.ID(), Image: image, Network: in.Network}, nil
}

// createOptions checks create_sandbox's arguments against the server's
// limits and turns them into options for sandbox.New.
func (t *tools) createOptions(in createIn) ([]sandbox.Option, error) {
	f := t.f
	var opts []sandbox.Option
	for _, o := range t.g.storeOptions() {
		opts = append(opts, o)
	}
	if in.Network {
		if !f.allowNetwork {
			return nil, errors.New("network access is not allowed: the server must be started with --allow-network")
		}
		opts = append(opts, sandbox.WithNetwork())
	}
	memory, err := limit("memory_mb", float64(in.MemoryMB), float64(f.memoryMB))
	if err != nil {
		return nil, err
	}
	if memory > 0 {
		opts = append(opts, sandbox.WithMemoryMB(uint64(memory)))
	}
	cpus, err := limit("cpus", in.CPUs, f.cpus)
	if err != nil {
		return nil, err
	}
	if cpus > 0 {
		opts = append(opts, sandbox.WithCPUs(cpus))
	}
	pids, err := limit("pids_limit", float64(in.PidsLimit), float64(f.pids))
	if err != nil {
		return nil, err
	}
	if pids > 0 {
		opts = append(opts, sandbox.WithPidsLimit(int64(pids)))
	}
	secs, err := limit("timeout_seconds", in.TimeoutSeconds, f.timeout.Seconds())
	if err != nil {
		return nil, err
	}
	if secs > 0 {
		opts = append(opts, sandbox.WithTimeout(time.Duration(secs*float64(time.Second))))
	}
	if len(in.Env) > 0 {
		opts = append(opts, sandbox.WithEnv(in.Env...))
	}
	if in.Workdir != "" {
		opts = append(opts, sandbox.WithWorkDir(in.Workdir))
	}
	return opts, nil
}

// limit returns the limit to apply: asked when given (it may not be
// negative, nor above the server's max when the server has one), else the
// server's. Zero means none.
func limit(name string, asked, max float64) (float64, error) {
	switch {
	case asked < 0:
		return 0, fmt.Errorf("%s %v: negative", name, asked)
	case asked == 0:
		return max, nil
	case max > 0 && asked > max:
		return 0, fmt.Errorf("%s %v is above the server's limit of %v", name, asked, max)
	}
	return asked, nil
}

type runIn struct {
	ID             string   `json:"id" jsonschema:"the sandbox's id"`
	Command        []string `json:"command" jsonschema:"the program and its arguments, such as [\"ls\", \"-l\", \"/\"]"`
	Stdin          string   `json:"stdin,omitempty" jsonschema:"text for the program's standard input"`
	TimeoutSeconds float64  `json:"timeout_seconds,omitempty" jsonschema:"kill the program after this many seconds; default and most: the server's command timeout"`
	Workdir        string   `json:"workdir,omitempty" jsonschema:"the absolute directory to run in"`
	Env            []string `json:"env,omitempty" jsonschema:"variables added to the environment, each KEY=value"`
}

type runOut struct {
	ExitCode  int    `json:"exit_code" jsonschema:"the program's exit code; 128+N when signal N killed it"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	TimedOut  bool   `json:"timed_out,omitempty" jsonschema:"the program was killed at its time limit"`
	Truncated bool   `json:"truncated,omitempty" jsonschema:"output was cut to its first and last parts"`
}

func (t *tools) run(ctx context.Context, in runIn) (runOut, error) {
	sb, err := t.set.get(in.ID)
	if err != nil {
		return runOut{}, err
	}
	if len(in.Command) == 0 || in.Command[0] == "" {
		return runOut{}, errors.New("command: give the program and its arguments, such as [\"ls\", \"-l\"]")
	}
	limit, err := limit("timeout_seconds", in.TimeoutSeconds, t.f.commandTimeout.Seconds())
	if err != nil {
		return runOut{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(limit*float64(time.Second)))
	defer cancel()
	c := sb.inst.CommandContext(ctx, in.Command[0], in.Command[1:]...)
	c.Dir = in.Workdir
	if len(in.Env) > 0 {
		c.Env = append(c.Environ(), in.Env...)
	}
	if len(in.Stdin) > t.f.maxInput {
		return runOut{}, fmt.Errorf("stdin: %d bytes, more than the server's --max-input %d", len(in.Stdin), t.f.maxInput)
	}
	if in.Stdin != "" {
		c.Stdin = strings.NewReader(in.Stdin)
	}
	stdout, stderr := newCapture(t.f.maxOutput), newCapture(t.f.maxOutput)
	c.Stdout, c.Stderr = stdout, stderr
	// Output a program's background children hold open is cut a moment
	// after the program exits, so that starting a server does not hang.
	c.WaitDelay = time.Second
	err = c.Run()
	out := runOut{}
	var cutOut, cutErr bool
	out.Stdout, cutOut = stdout.text()
	out.Stderr, cutErr = stderr.text()
	out.Truncated = cutOut || cutErr
	var ee *sandbox.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded && c.ProcessState != nil:
		out.TimedOut = true
		out.ExitCode = exitCode(c.ProcessState)
	case err == nil, errors.Is(err, sandbox.ErrWaitDelay):
		out.ExitCode = exitCode(c.ProcessState)
	case errors.As(err, &ee):
		out.ExitCode = exitCode(ee.ProcessState)
	default:
		return runOut{}, err
	}
	return out, nil
}

// exitCode is a process's exit code, or 128+N when signal N killed it.
func exitCode(ps *sandbox.ProcessState) int {
	if ps.Signaled() {
		return 128 + int(ps.Signal())
	}
	return ps.ExitCode()
}

type writeIn struct {
	ID      string `json:"id" jsonschema:"the sandbox's id"`
	Path    string `json:"path" jsonschema:"the file's absolute path in the sandbox"`
	Content string `json:"content" jsonschema:"what to write"`
	Base64  bool   `json:"base64,omitempty" jsonschema:"content is base64-encoded bytes"`
	Mode    string `json:"mode,omitempty" jsonschema:"the file's permissions in octal, such as 755; default 644"`
}

type writeOut struct {
	Path  string `json:"path"`
	Bytes int    `json:"bytes" jsonschema:"how many bytes were written"`
}

func (t *tools) writeFile(ctx context.Context, in writeIn) (writeOut, error) {
	sb, err := t.set.get(in.ID)
	if err != nil {
		return writeOut{}, err
	}
	size := len(in.Content)
	if in.Base64 {
		size = base64.StdEncoding.DecodedLen(size)
	}
	if size > t.f.maxInput {
		return writeOut{}, fmt.Errorf("content: %d bytes, more than the server's --max-input %d", size, t.f.maxInput)
	}
	data := []byte(in.Content)
	if in.Base64 {
		if data, err = base64.StdEncoding.DecodeString(in.Content); err != nil {
			return writeOut{}, fmt.Errorf("content: not base64: %w", err)
		}
	}
	mode := fs.FileMode(0o644)
	if in.Mode != "" {
		m, err := strconv.ParseUint(in.Mode, 8, 32)
		if err != nil || m > 0o7777 {
			return writeOut{}, fmt.Errorf("mode %q: want octal permissions such as 644", in.Mode)
		}
		mode = fs.FileMode(m)
	}
	p, err := absPath(in.Path)
	if err != nil {
		return writeOut{}, err
	}
	if err := sb.inst.MkdirAll(path.Dir(p), 0o755); err != nil {
		return writeOut{}, err
	}
	// O_NONBLOCK: code in the sandbox may have put a FIFO there, whose
	// open would wait for a reader; only a regular file is written.
	f, err := sb.inst.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NONBLOCK, mode)
	if err != nil {
		return writeOut{}, err
	}
	if err := regularFile(f, p); err != nil {
		f.Close()
		return writeOut{}, err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return writeOut{}, err
	}
	if in.Mode != "" { // WriteFile's mode passes the umask and applies only to new files
		if err := sb.inst.Chmod(p, mode); err != nil {
			return writeOut{}, err
		}
	}
	return writeOut{Path: p, Bytes: len(data)}, nil
}

type readIn struct {
	ID   string `json:"id" jsonschema:"the sandbox's id"`
	Path string `json:"path" jsonschema:"the file's absolute path in the sandbox"`
}

type readOut struct {
	Content string `json:"content"`
	Base64  bool   `json:"base64,omitempty" jsonschema:"content is base64-encoded: the file is not UTF-8 text"`
	Size    int    `json:"size" jsonschema:"the file's size in bytes"`
}

func (t *tools) readFile(ctx context.Context, in readIn) (readOut, error) {
	sb, err := t.set.get(in.ID)
	if err != nil {
		return readOut{}, err
	}
	p, err := absPath(in.Path)
	if err != nil {
		return readOut{}, err
	}
	// O_NONBLOCK: a FIFO must not make the call wait for a writer.
	f, err := sb.inst.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return readOut{}, err
	}
	defer f.Close()
	if err := regularFile(f, p); err != nil {
		return readOut{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(t.f.maxOutput)+1))
	if err != nil {
		return readOut{}, err
	}
	if len(data) > t.f.maxOutput {
		return readOut{}, fmt.Errorf("%s is larger than %d bytes, the most this server returns (--max-output): read a part with run_command", p, t.f.maxOutput)
	}
	if utf8.Valid(data) {
		return readOut{Content: string(data), Size: len(data)}, nil
	}
	return readOut{Content: base64.StdEncoding.EncodeToString(data), Base64: true, Size: len(data)}, nil
}

type listIn struct {
	ID   string `json:"id" jsonschema:"the sandbox's id"`
	Path string `json:"path,omitempty" jsonschema:"the directory's absolute path; default /"`
}

type listEntry struct {
	Name string `json:"name"`
	Type string `json:"type" jsonschema:"file, dir, symlink or other"`
	Size int64  `json:"size"`
	Mode string `json:"mode" jsonschema:"as ls -l shows it"`
}

type listOut struct {
	Path      string      `json:"path"`
	Entries   []listEntry `json:"entries"`
	Truncated bool        `json:"truncated,omitempty" jsonschema:"the directory has more entries than were returned"`
}

func (t *tools) listFiles(ctx context.Context, in listIn) (listOut, error) {
	sb, err := t.set.get(in.ID)
	if err != nil {
		return listOut{}, err
	}
	if in.Path == "" {
		in.Path = "/"
	}
	p, err := absPath(in.Path)
	if err != nil {
		return listOut{}, err
	}
	// One batch of at most one entry more than a listing holds: a
	// directory the sandbox filled is never read whole.
	dir, err := sb.inst.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		return listOut{}, err
	}
	entries, err := dir.ReadDir(maxListEntries + 1)
	dir.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return listOut{}, err
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	out := listOut{Path: p, Entries: []listEntry{}}
	if len(entries) > maxListEntries {
		entries, out.Truncated = entries[:maxListEntries], true
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return listOut{}, err
		}
		le := listEntry{Name: e.Name(), Type: "other"}
		switch {
		case e.Type().IsRegular():
			le.Type = "file"
		case e.IsDir():
			le.Type = "dir"
		case e.Type()&fs.ModeSymlink != 0:
			le.Type = "symlink"
		}
		if fi, err := e.Info(); err == nil {
			le.Size, le.Mode = fi.Size(), fi.Mode().String()
		}
		out.Entries = append(out.Entries, le)
	}
	return out, nil
}

type listSandboxesOut struct {
	Sandboxes []sandboxInfo `json:"sandboxes"`
}

type sandboxInfo struct {
	ID      string `json:"id"`
	Image   string `json:"image"`
	Network bool   `json:"network"`
	Running bool   `json:"running" jsonschema:"false once it stopped (its time limit ran out)"`
	Created string `json:"created" jsonschema:"when it started, RFC 3339"`
}

func (t *tools) listSandboxes(ctx context.Context, _ struct{}) (listSandboxesOut, error) {
	out := listSandboxesOut{Sandboxes: []sandboxInfo{}}
	for _, sb := range t.set.list() {
		running := true
		select {
		case <-sb.inst.Done():
			running = false
		default:
		}
		out.Sandboxes = append(out.Sandboxes, sandboxInfo{ID: sb.inst.ID(), Image: sb.image, Network: sb.network, Running: running, Created: sb.created.UTC().Format(time.RFC3339)})
	}
	return out, nil
}

type closeIn struct {
	ID string `json:"id" jsonschema:"the sandbox's id"`
}

type closeOut struct {
	Closed string `json:"closed" jsonschema:"the id of the sandbox closed"`
}

func (t *tools) closeSandbox(ctx context.Context, in closeIn) (closeOut, error) {
	if err := t.set.remove(in.ID); err != nil {
		return closeOut{}, err
	}
	return closeOut{Closed: in.ID}, nil
}

// regularFile returns an error unless f, opened as p, is a regular file.
func regularFile(f *sandbox.File, p string) error {
	fi, err := f.Stat()
	switch {
	case err != nil:
		return err
	case fi.IsDir():
		return fmt.Errorf("%s is a directory: list_files lists it", p)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file (%v)", p, fi.Mode().Type())
	}
	return nil
}

// absPath checks that p is an absolute path in the sandbox and cleans it.
func absPath(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("path %q: want an absolute path, such as /tmp/file", p)
	}
	return path.Clean(p), nil
}
