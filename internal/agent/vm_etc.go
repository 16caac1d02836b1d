package agent

import "fmt"

// GeneratedEtc returns the files under /etc that every sandbox gets in its
// writable layer, by name: hosts, resolv.conf and hostname. The namespace
// backend writes the same content from the host (ns.GeneratedFiles).
func GeneratedEtc(hostname string) map[string]string {
	return map[string]string{
		"hosts":       fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n", hostname),
		"resolv.conf": "nameserver 127.0.0.1\n",
		"hostname":    hostname + "\n",
	}
}
