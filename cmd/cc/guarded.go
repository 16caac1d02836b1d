package main

import (
	"net/http"

	"github.com/ccsandbox/sandbox/internal/egress"
)

// guardedTransport is the HTTP transport of a pull whose image name an
// MCP client chose (see egress.GuardedTransport).
func guardedTransport() http.RoundTripper { return egress.GuardedTransport() }
