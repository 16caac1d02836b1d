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
	snap, err := sandbox.Build(ctx, dockerfile, opts...)
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
