package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ccsandbox/sandbox"
	"github.com/spf13/cobra"
)

// buildFlags are cc build's flags.
type buildFlags struct {
	file    string
	args    []string
	target  string
	noCache bool
	output  string
	tag     string
	network bool
	secrets []string
	ssh     []string
	check   bool
}

func newBuildCmd(g *globals) *cobra.Command {
	var f buildFlags
	c := &cobra.Command{
		Use:   "build [flags] CONTEXT",
		Short: "Build an image from a Dockerfile",
		Long: "Build runs the Dockerfile (CONTEXT/Dockerfile unless -f says otherwise)\n" +
			"over the directory CONTEXT, showing its progress on standard error, and\n" +
			"prints the result's key on standard output: cc run takes the key as its\n" +
			"IMAGE. With -o it also writes the result as an OCI layout directory, or\n" +
			"as a docker archive when the name ends in .tar.",
		Example: "  cc build -o app.tar --build-arg VERSION=1.0 .\n" +
			"  cc run $(cc build .)",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd.Context(), g, &f, args[0], cmd.OutOrStdout())
		},
	}
	fl := c.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "the Dockerfile (default CONTEXT/Dockerfile; - reads standard input)")
	fl.StringArrayVar(&f.args, "build-arg", nil, "set a build argument, K=V or K to pass this environment's (repeatable)")
	fl.StringVar(&f.target, "target", "", "build this stage (and what it needs) instead of the last")
	fl.BoolVar(&f.noCache, "no-cache", false, "run every step again instead of taking it from the cache")
	fl.StringVarP(&f.output, "output", "o", "", "write the result to DIR (an OCI layout) or FILE.tar (a docker archive)")
	fl.StringVarP(&f.tag, "tag", "t", "", "the name of the image written by -o (name:tag)")
	fl.BoolVar(&f.network, "network", false, "give RUN steps and ADD of URLs the network (default: none)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "a secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR (repeatable)")
	fl.StringArrayVar(&f.ssh, "ssh", nil, "an SSH agent for RUN --mount=type=ssh: ID=SOCKET, or default for $SSH_AUTH_SOCK (repeatable)")
	fl.BoolVar(&f.check, "check", false, "check the Dockerfile for what this builder refuses, by line, and build nothing")
	return c
}

// runBuild is cc build.
func runBuild(ctx context.Context, g *globals, f *buildFlags, contextDir string, stdout io.Writer) error {
	if fi, err := os.Stat(contextDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("build context %s: not a directory", contextDir)
	}
	if f.tag != "" && f.output == "" {
		return &exitError{code: exitOwn, msg: "--tag names the image -o writes: give -o too"}
	}
	dockerfile, err := readDockerfile(f.file, contextDir)
	if err != nil {
		return err
	}
	opts := []sandbox.BuildOption{
		sandbox.WithContextDir(contextDir),
		sandbox.WithBuildProgress(sandbox.BuildProgressWriter(os.Stderr)),
	}
	more, err := f.buildOptions()
	if err != nil {
		return &exitError{code: exitOwn, msg: err.Error()}
	}
	opts = append(opts, more...)
	for _, o := range g.storeOptions() {
		opts = append(opts, o)
	}
	if isTerminal(os.Stderr) {
		opts = append(opts, sandbox.WithPullOptions(sandbox.WithProgress(sandbox.ProgressBar(os.Stderr))))
	}
	for _, kv := range f.args {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				continue // as docker does
			}
		}
		opts = append(opts, sandbox.WithBuildArg(k, v))
	}
	if f.target != "" {
		opts = append(opts, sandbox.WithTarget(f.target))
	}
	if f.noCache {
		opts = append(opts, sandbox.WithNoCache())
	}
	if f.check {
		return checkDockerfile(dockerfile, opts, stdout)
	}
	snap, err := sandbox.Build(ctx, dockerfile, opts...)
	if err != nil && !f.network && strings.Contains(err.Error(), "WithBuildNetwork") {
		err = fmt.Errorf("%w\n(cc build gives steps the network with --network)", err)
	}
	if err != nil {
		return err
	}
	defer snap.Close()
	if f.output != "" {
		var eo []sandbox.ExportOption
		if f.tag != "" {
			eo = append(eo, sandbox.WithTag(f.tag))
		}
		if strings.HasSuffix(f.output, ".tar") {
			err = snap.WriteDockerArchive(ctx, f.output, eo...)
		} else {
			err = snap.WriteOCILayout(ctx, f.output, eo...)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", f.output, err)
		}
	}
	_, err = fmt.Fprintln(stdout, snap.CacheKey())
	return err
}

// readDockerfile reads the Dockerfile that -f names, standard input for
// "-", or CONTEXT/Dockerfile.
func readDockerfile(file, contextDir string) ([]byte, error) {
	switch file {
	case "-":
		return io.ReadAll(os.Stdin)
	case "":
		file = filepath.Join(contextDir, "Dockerfile")
	}
	return os.ReadFile(file)
}

// buildOptions turns --network, --secret and --ssh into build options.
func (f *buildFlags) buildOptions() ([]sandbox.BuildOption, error) {
	var opts []sandbox.BuildOption
	if f.network {
		opts = append(opts, sandbox.WithBuildNetwork())
	}
	for _, spec := range f.secrets {
		kv := map[string]string{}
		for _, part := range strings.Split(spec, ",") {
			k, v, ok := strings.Cut(part, "=")
			if !ok || v == "" || kv[k] != "" {
				return nil, fmt.Errorf("--secret %q: want id=ID,src=FILE or id=ID,env=VAR", spec)
			}
			kv[k] = v
		}
		id := kv["id"]
		switch {
		case id == "" || len(kv) != 2:
			return nil, fmt.Errorf("--secret %q: want id=ID,src=FILE or id=ID,env=VAR", spec)
		case kv["src"] != "":
			opts = append(opts, sandbox.WithBuildSecretFile(id, kv["src"]))
		case kv["source"] != "":
			opts = append(opts, sandbox.WithBuildSecretFile(id, kv["source"]))
		case kv["env"] != "":
			v, ok := os.LookupEnv(kv["env"])
			if !ok {
				return nil, fmt.Errorf("--secret %q: $%s is not set", id, kv["env"])
			}
			opts = append(opts, sandbox.WithBuildSecret(id, []byte(v)))
		default:
			return nil, fmt.Errorf("--secret %q: want id=ID,src=FILE or id=ID,env=VAR", spec)
		}
	}
	for _, spec := range f.ssh {
		id, sock, ok := strings.Cut(spec, "=")
		if !ok {
			sock = os.Getenv("SSH_AUTH_SOCK")
			if sock == "" {
				return nil, fmt.Errorf("--ssh %s: $SSH_AUTH_SOCK is not set; give ID=SOCKET", spec)
			}
		}
		if id == "" || sock == "" {
			return nil, fmt.Errorf("--ssh %q: want ID=SOCKET or ID", spec)
		}
		opts = append(opts, sandbox.WithBuildSSH(id, sock))
	}
	return opts, nil
}

// checkDockerfile is cc build --check: it prints every problem, one a
// line, and fails when there is one.
func checkDockerfile(dockerfile []byte, opts []sandbox.BuildOption, stdout io.Writer) error {
	problems, err := sandbox.CheckDockerfile(dockerfile, opts...)
	if err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
	}
	if len(problems) > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%d problem(s): this builder would refuse the Dockerfile", len(problems))}
	}
	return nil
}
