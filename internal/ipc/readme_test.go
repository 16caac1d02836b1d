package ipc

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite README.md from the message table")

// TestReadmeListsTable keeps README.md's list of messages in step with the
// table: it is generated from it (go test -run TestReadmeListsTable
// -update-readme rewrites it).
func TestReadmeListsTable(t *testing.T) {
	want := readme()
	if *updateReadme {
		if err := os.WriteFile("README.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("README.md does not list the message table; run go test ./internal/ipc -run TestReadmeListsTable -update-readme")
	}
}

// readme renders README.md from the table.
func readme() string {
	var b strings.Builder
	b.WriteString(`# internal/ipc: the messages

The wire protocol of the SDK (see doc.go for the framing, answers, errors and
descriptors). Every message in use has a descriptor in table.go naming the Go
types of its request and answer bodies (msg_*.go, and the seed's types in
types.go); an answer's body follows its success byte. The agent and helper serve
through the table (Route), the helper forwards by it, the fuzz target and the
golden test (testdata/wire.golden) walk it, and this list is generated from it
by TestReadmeListsTable. "Blocks": the handler waits for something outside the
call, and a client that hangs up cancels it. "Stream": a successful answer turns
the connection into a raw byte stream (always, or on the streamed path: when no
descriptor came with the answer). The seed's numbers that nothing sends are in
seed_protocol.go.

| Number | Message | Served by | Request → Answer | Blocks | Stream | Purpose |
| --- | --- | --- | --- | --- | --- | --- |
`)
	for _, d := range Messages() {
		blocks, stream := "", ""
		if d.Blocks {
			blocks = "yes"
		}
		switch d.Hijack {
		case HijackAlways:
			stream = "always"
		case HijackWithoutFiles:
			stream = "streamed path"
		}
		purpose := d.Purpose
		if d.RequestFiles != "" {
			purpose += "; request files: " + d.RequestFiles
		}
		if d.AnswerFiles != "" {
			purpose += "; answer files: " + d.AnswerFiles
		}
		fmt.Fprintf(&b, "| 0x%04X | %s | %s | `%s` → `%s` | %s | %s | %s |\n",
			d.Type, d.Name, d.Peer, d.RequestType().Name(), d.AnswerType().Name(), blocks, stream, purpose)
	}
	return b.String()
}
