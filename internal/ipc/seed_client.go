package ipc

// The seed document's convenience call, for code written against it; the
// SDK's own callers use the typed calls of calls.go.

// CallWithEncoder is a convenience method that uses an encoder for the request.
func (c *Client) CallWithEncoder(msgType uint16, encode func(*Encoder)) ([]byte, error) {
	enc := NewEncoder()
	encode(enc)
	return c.Call(msgType, enc.Bytes())
}
