// Package egress carries a sandbox's outbound traffic: it terminates every
// TCP and UDP flow leaving the sandbox in a user-space TCP/IP stack
// (gVisor's netstack) attached to the sandbox's network device, and opens
// the matching connection on the host through a dialer the SDK's user
// controls. Nothing leaves the sandbox except through that dialer.
//
// # Addresses
//
// The sandbox sees the network [SandboxPrefix] with the address
// [SandboxAddr] and the gateway [Gateway], which is also its DNS server:
// queries sent there are answered from the host's resolver. Other
// addresses of that network are unreachable.
package egress
