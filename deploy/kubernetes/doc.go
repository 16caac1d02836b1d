// Package kubernetes holds the manifests that run cc-helper on every node
// of a Kubernetes cluster (a DaemonSet, a headless Service, the policy's
// ConfigMap and their Namespace) and the guide to them, README.md. It has
// no Go API: its tests decode every manifest strictly into k8s.io/api types
// and check that they fit together and that the container's arguments are
// flags cc-helper serve accepts.
package kubernetes
