package kubernetes

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ccsandbox/sandbox/internal/helper"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// caKey is the key of the Secret that holds the CA client certificates
// must chain to, as cert-manager names it beside tls.crt and tls.key.
const caKey = "ca.crt"

// manifests are the objects of this directory, by kind.
type manifests struct {
	namespaces []*corev1.Namespace
	configMaps []*corev1.ConfigMap
	daemonSets []*appsv1.DaemonSet
	services   []*corev1.Service
}

// readManifests decodes every document of every .yaml file in dir.
func readManifests(dir string) (*manifests, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no manifests in %s", dir)
	}
	m := &manifests{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := m.decodeFile(filepath.Base(f), b); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// decodeFile decodes the documents of one file strictly: unknown or
// duplicate fields, unknown kinds and unexpected apiVersions are errors.
func (m *manifests) decodeFile(name string, b []byte) error {
	for i, doc := range bytes.Split(append([]byte("\n"), b...), []byte("\n---\n")) {
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return fmt.Errorf("%s, document %d: %w", name, i, err)
		}
		if string(j) == "null" {
			continue // comments only
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return fmt.Errorf("%s, document %d: %w", name, i, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			o := &corev1.Namespace{}
			m.namespaces, obj = append(m.namespaces, o), o
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			m.configMaps, obj = append(m.configMaps, o), o
		case "apps/v1 DaemonSet":
			o := &appsv1.DaemonSet{}
			m.daemonSets, obj = append(m.daemonSets, o), o
		case "v1 Service":
			o := &corev1.Service{}
			m.services, obj = append(m.services, o), o
		default:
			return fmt.Errorf("%s, document %d: unexpected apiVersion %q kind %q", name, i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return fmt.Errorf("%s, document %d (%s): %w", name, i, tm.Kind, err)
		}
	}
	return nil
}

// check returns every way in which the manifests do not fit together or
// do not fit cc-helper serve, joined; nil when they do.
func (m *manifests) check(t *testing.T) error {
	if len(m.namespaces) != 1 || len(m.daemonSets) != 1 || len(m.services) != 1 || len(m.configMaps) != 1 {
		return fmt.Errorf("want one Namespace, DaemonSet, Service and ConfigMap, have %d, %d, %d and %d",
			len(m.namespaces), len(m.daemonSets), len(m.services), len(m.configMaps))
	}
	ns, ds, svc := m.namespaces[0], m.daemonSets[0], m.services[0]
	var errs []error
	for _, o := range []metav1.Object{m.configMaps[0], ds, svc} {
		if o.GetNamespace() != ns.Name {
			errs = append(errs, fmt.Errorf("%s is in namespace %q, not %q", o.GetName(), o.GetNamespace(), ns.Name))
		}
	}
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		errs = append(errs, fmt.Errorf("namespace %s does not admit privileged pods (pod-security.kubernetes.io/enforce)", ns.Name))
	}
	port, err := m.checkDaemonSet(t, ds)
	errs = append(errs, err)
	if port != nil {
		errs = append(errs, checkService(svc, ds, port))
	}
	return errors.Join(errs...)
}

// checkDaemonSet checks the helper's pod and returns the container port
// its arguments listen on (nil if none).
func (m *manifests) checkDaemonSet(t *testing.T, ds *appsv1.DaemonSet) (*corev1.ContainerPort, error) {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("daemonset %s: "+format, append([]any{ds.Name}, args...)...))
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		fail("selector: %v", err)
	} else if sel.Empty() || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		fail("selector %s does not select its pods' labels %v", sel, ds.Spec.Template.Labels)
	}
	spec := ds.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		fail("want one container, have %d", len(spec.Containers))
		return nil, errors.Join(errs...)
	}
	c := spec.Containers[0]
	if len(c.Command) > 0 {
		fail("container %s overrides the image's entrypoint (/cc-helper) with %q", c.Name, c.Command)
	}
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		fail("container %s: args %q do not start with serve", c.Name, c.Args)
		return nil, errors.Join(errs...)
	}
	mounts := map[string]*corev1.Volume{} // mount path -> volume
	for _, vm := range c.VolumeMounts {
		v := findVolume(spec.Volumes, vm.Name)
		if v == nil {
			fail("mount %s names no volume %q", vm.MountPath, vm.Name)
			continue
		}
		if !vm.ReadOnly && (v.Secret != nil || v.ConfigMap != nil) {
			fail("mount %s of %s is writable", vm.MountPath, vm.Name)
		}
		mounts[path.Clean(vm.MountPath)] = v
	}

	// The policy the args name is a key of the ConfigMap, where it is
	// mounted; ParseServeFlags reads it, so it is checked too.
	cm := m.configMaps[0]
	policyCopy := filepath.Join(t.TempDir(), "policy.json")
	policy, args, ok := replaceFlag(c.Args[1:], "policy", policyCopy)
	if ok {
		v := mounts[path.Dir(policy)]
		switch {
		case v == nil || v.ConfigMap == nil || v.ConfigMap.Name != cm.Name:
			fail("-policy %s is not in a mount of ConfigMap %s", policy, cm.Name)
		case len(v.ConfigMap.Items) > 0:
			fail("the mount of ConfigMap %s remaps its keys; this test reads keys as file names", cm.Name)
		default:
			data, ok := cm.Data[path.Base(policy)]
			if !ok {
				fail("-policy %s: ConfigMap %s has no key %s", policy, cm.Name, path.Base(policy))
			}
			if err := os.WriteFile(policyCopy, []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg, err := helper.ParseServeFlags(args)
	if err != nil {
		fail("container %s: args: %v", c.Name, err)
		return nil, errors.Join(errs...)
	}
	if cfg.InsecureLoopback {
		fail("-insecure-loopback serves plaintext")
	}

	// The certificates are the Secret's keys, where it is mounted.
	for _, f := range []struct{ flag, file, key string }{
		{"-tls-cert", cfg.TLSCert, corev1.TLSCertKey},
		{"-tls-key", cfg.TLSKey, corev1.TLSPrivateKeyKey},
		{"-client-ca", cfg.ClientCA, caKey},
	} {
		v := mounts[path.Dir(f.file)]
		switch {
		case v == nil || v.Secret == nil:
			fail("%s %s is not in a mount of a Secret", f.flag, f.file)
		case len(v.Secret.Items) > 0:
			fail("the mount of Secret %s remaps its keys; this test reads keys as file names", v.Secret.SecretName)
		case path.Base(f.file) != f.key:
			fail("%s %s: want the Secret's key %s", f.flag, f.file, f.key)
		}
	}
	if v := mounts[path.Clean(cfg.Store)]; cfg.Store == "" || v == nil || v.HostPath == nil {
		fail("-store %q is not a hostPath mount", cfg.Store)
	}
	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		fail("container %s is not privileged (README.md, Privileges, says why it must be)", c.Name)
	} else if ro := c.SecurityContext.ReadOnlyRootFilesystem; ro != nil && *ro {
		if v := mounts["/tmp"]; v == nil || v.EmptyDir == nil {
			fail("the root file system is read-only and /tmp is no emptyDir")
		}
	}

	// It listens on every address of the pod, on a named port.
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		fail("-listen %q: %v", cfg.Listen, err)
		return nil, errors.Join(errs...)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		fail("-listen %s: not every address of the pod", cfg.Listen)
	}
	n, err := strconv.Atoi(portStr)
	if err != nil {
		fail("-listen %s: port %q", cfg.Listen, portStr)
		return nil, errors.Join(errs...)
	}
	var port *corev1.ContainerPort
	for i, p := range c.Ports {
		if int(p.ContainerPort) == n && (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) {
			port = &c.Ports[i]
		}
	}
	if port == nil || port.Name == "" {
		fail("container %s declares no named TCP port %d (-listen)", c.Name, n)
		return nil, errors.Join(errs...)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.TCPSocket == nil || !targets(p.TCPSocket.Port, port) {
			fail("%s probe is not a TCP connect to port %s (%d)", name, port.Name, n)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		fail("container %s requests no CPU or memory", c.Name)
	}
	return port, errors.Join(errs...)
}

// checkService checks that the Service is headless, selects the helper's
// pods, and names the port they listen on, so that its A and SRV records
// lead to the helpers.
func checkService(svc *corev1.Service, ds *appsv1.DaemonSet, port *corev1.ContainerPort) error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("service %s: "+format, append([]any{svc.Name}, args...)...))
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		fail("clusterIP is %q, not None: it would not publish the pods' addresses", svc.Spec.ClusterIP)
	}
	if len(svc.Spec.Selector) == 0 {
		fail("selects no pods")
	}
	for k, v := range svc.Spec.Selector {
		if ds.Spec.Template.Labels[k] != v {
			fail("selector %s=%s does not select daemonset %s's pods (%v)", k, v, ds.Name, ds.Spec.Template.Labels)
		}
	}
	found := false
	for _, p := range svc.Spec.Ports {
		if !targets(p.TargetPort, port) && !(p.TargetPort.IntVal == 0 && p.TargetPort.StrVal == "" && p.Port == port.ContainerPort) {
			continue
		}
		found = true
		// A headless Service does not translate ports: clients dial the
		// pods' addresses at the port the records give.
		if p.Port != port.ContainerPort {
			fail("port %d differs from the pods' %d", p.Port, port.ContainerPort)
		}
		if errs := validation.IsValidPortName(p.Name); p.Name == "" || len(errs) > 0 {
			fail("port %d's name %q cannot name SRV records: %v", p.Port, p.Name, errs)
		}
	}
	if !found {
		fail("no port leads to the helpers' port %s (%d)", port.Name, port.ContainerPort)
	}
	return errors.Join(errs...)
}

// targets reports whether a probe's or Service's port names p.
func targets(v intstr.IntOrString, p *corev1.ContainerPort) bool {
	if v.Type == intstr.String {
		return v.StrVal == p.Name
	}
	return v.IntVal == p.ContainerPort
}

func findVolume(vs []corev1.Volume, name string) *corev1.Volume {
	for i := range vs {
		if vs[i].Name == name {
			return &vs[i]
		}
	}
	return nil
}

// replaceFlag returns the value of the flag name in args (as -name=V,
// --name=V, -name V or --name V) and args with that value replaced by v.
func replaceFlag(args []string, name, v string) (old string, out []string, ok bool) {
	out = append([]string(nil), args...)
	for i, a := range out {
		for _, p := range []string{"-" + name, "--" + name} {
			switch {
			case strings.HasPrefix(a, p+"="):
				old, out[i] = strings.TrimPrefix(a, p+"="), p+"="+v
				return old, out, true
			case a == p && i+1 < len(out):
				old, out[i+1] = out[i+1], v
				return old, out, true
			}
		}
	}
	return "", out, false
}

// TestManifests decodes every manifest of this directory strictly into
// k8s.io/api types and checks that they fit together and that the
// helper's arguments are flags cc-helper serve accepts.
func TestManifests(t *testing.T) {
	m, err := readManifests(".")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.check(t); err != nil {
		t.Fatal(err)
	}
}

// TestManifestsRefuse shows that the checks fail: each case breaks the
// real manifests in one way and expects the error that names it.
func TestManifestsRefuse(t *testing.T) {
	edits := []struct {
		name string
		file string // the file to edit by text, or "" to edit the objects
		old  string
		new  string
		obj  func(m *manifests)
		want string
	}{
		{name: "misspelled field", file: "daemonset.yaml", old: "      containers:", new: "      contianers:", want: `unknown field "contianers"`},
		{name: "duplicate field", file: "service.yaml", old: "  clusterIP: None\n", new: "  clusterIP: None\n  clusterIP: None\n", want: "already set"},
		{name: "unknown kind", file: "service.yaml", old: "kind: Service", new: "kind: Servce", want: `kind "Servce"`},
		{name: "unknown flag", file: "daemonset.yaml", old: "- -store=", new: "- -stor=", want: "flag provided but not defined: -stor"},
		{name: "policy with an unknown field", file: "policy.yaml", old: `"allowMounts"`, new: `"allowMount"`, want: `unknown field "allowMount"`},
		{name: "policy outside the ConfigMap", obj: func(m *manifests) {
			mounts := m.daemonSets[0].Spec.Template.Spec.Containers[0].VolumeMounts
			for i := range mounts {
				if mounts[i].Name == "policy" {
					mounts[i].MountPath = "/etc/cc-helper/pol"
				}
			}
		}, want: "-policy /etc/cc-helper/policy/policy.json is not in a mount of ConfigMap"},
		{name: "certificate outside the Secret", obj: func(m *manifests) {
			args := m.daemonSets[0].Spec.Template.Spec.Containers[0].Args
			_, args, _ = replaceFlag(args, "tls-cert", "/etc/tls.crt")
			m.daemonSets[0].Spec.Template.Spec.Containers[0].Args = args
		}, want: "-tls-cert /etc/tls.crt is not in a mount of a Secret"},
		{name: "service selects other pods", obj: func(m *manifests) {
			m.services[0].Spec.Selector["app.kubernetes.io/name"] = "other"
		}, want: "does not select daemonset"},
		{name: "service with a cluster IP", obj: func(m *manifests) { m.services[0].Spec.ClusterIP = "" }, want: "not None"},
		{name: "unnamed service port", obj: func(m *manifests) { m.services[0].Spec.Ports[0].Name = "" }, want: "cannot name SRV records"},
		{name: "service on another port", obj: func(m *manifests) { m.services[0].Spec.Ports[0].Port = 443 }, want: "port 443 differs"},
		{name: "listen on a port the pod does not declare", obj: func(m *manifests) {
			c := &m.daemonSets[0].Spec.Template.Spec.Containers[0]
			_, c.Args, _ = replaceFlag(c.Args, "listen", ":7444")
		}, want: "declares no named TCP port 7444"},
		{name: "HTTP liveness probe", obj: func(m *manifests) {
			p := m.daemonSets[0].Spec.Template.Spec.Containers[0].LivenessProbe
			p.TCPSocket, p.HTTPGet = nil, &corev1.HTTPGetAction{Port: intstr.FromInt(7443)}
		}, want: "liveness probe is not a TCP connect"},
		{name: "unprivileged", obj: func(m *manifests) {
			m.daemonSets[0].Spec.Template.Spec.Containers[0].SecurityContext.Privileged = nil
		}, want: "is not privileged"},
	}
	for _, e := range edits {
		t.Run(e.name, func(t *testing.T) {
			dir := t.TempDir()
			files, _ := filepath.Glob("*.yaml")
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if f == e.file {
					if !bytes.Contains(b, []byte(e.old)) {
						t.Fatalf("%s has no %q to edit", f, e.old)
					}
					b = bytes.Replace(b, []byte(e.old), []byte(e.new), 1)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			m, err := readManifests(dir)
			if err == nil {
				if e.obj != nil {
					e.obj(m)
				}
				err = m.check(t)
			}
			if err == nil || !strings.Contains(err.Error(), e.want) {
				t.Fatalf("got %v, want an error with %q", err, e.want)
			}
		})
	}
}
