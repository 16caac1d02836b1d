package ipc

import (
	"bytes"
	"testing"

	"github.com/ccsandbox/sandbox/internal/testutil/wiregolden"
)

// FuzzMessages decodes arbitrary bytes as the request or answer body of
// any message of the table, which the input chooses: a body is read from
// a peer that may be hostile (the agent runs inside the sandbox). No input
// may make a decoder panic or allocate beyond what the input justifies,
// and whatever a decoder accepts must encode to bytes that decode to the
// same value (bools: any nonzero byte reads as true, so the bytes
// themselves may differ). The corpus is every golden message.
func FuzzMessages(f *testing.F) {
	msgs, err := wiregolden.Read()
	if err != nil {
		f.Fatal(err)
	}
	index := map[uint16]uint8{}
	for i, d := range Messages() {
		index[d.Type] = uint8(i)
	}
	for _, g := range msgs {
		i, ok := index[g.Type]
		if !ok {
			continue
		}
		f.Add(i, false, g.Req)
		if len(g.Ans) > 0 {
			f.Add(i, true, g.Ans[1:])
		}
	}
	table := Messages()
	f.Fuzz(func(t *testing.T, which uint8, answer bool, b []byte) {
		d := table[int(which)%len(table)]
		newBody := d.Request
		if answer {
			newBody = d.Answer
		}
		m := newBody()
		if err := m.Decode(NewDecoder(b)); err != nil {
			return
		}
		var e1 Encoder
		m.Encode(&e1)
		m2 := newBody()
		if err := m2.Decode(NewDecoder(e1.Bytes())); err != nil {
			t.Fatalf("%s: re-encoded %+v does not decode: %v", d.Name, m, err)
		}
		var e2 Encoder
		m2.Encode(&e2)
		if !bytes.Equal(e1.Bytes(), e2.Bytes()) {
			t.Fatalf("%s: encoding not stable: %x vs %x", d.Name, e1.Bytes(), e2.Bytes())
		}
	})
}
