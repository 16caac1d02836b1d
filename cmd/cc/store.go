package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ccsandbox/sandbox"
	"github.com/spf13/cobra"
)

func newPullCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pull REFERENCE",
		Short: "Pull an image from a registry into the layer store",
		Long: "Pull asks the registry what REFERENCE names now and fetches the layers\n" +
			"the store lacks, then prints the image's full reference and digest.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := []sandbox.PullOption{sandbox.WithPullPolicy(sandbox.PullAlways)}
			for _, o := range g.storeOptions() {
				opts = append(opts, o)
			}
			if isTerminal(os.Stderr) {
				opts = append(opts, sandbox.WithProgress(sandbox.ProgressBar(os.Stderr)))
			}
			img, err := sandbox.Pull(cmd.Context(), args[0], opts...)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), img.Reference(), img.Digest())
			return err
		},
	}
}

func newImagesCmd(g *globals) *cobra.Command {
	var asJSON, quiet bool
	c := &cobra.Command{
		Use:   "images",
		Short: "List the images in the layer store",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := sandbox.Images(cmd.Context(), g.storeOptions()...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case asJSON:
				js := []imageJSON{}
				for _, im := range list {
					refs := im.References
					if refs == nil {
						refs = []string{}
					}
					js = append(js, imageJSON{im.Digest, refs, im.Platform, im.Created, im.Layers, im.Size})
				}
				return writeJSON(out, js)
			case quiet:
				for _, im := range list {
					fmt.Fprintln(out, im.Digest)
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "REFERENCE\tIMAGE ID\tPLATFORM\tCREATED\tSIZE")
			for _, im := range list {
				refs := im.References
				if len(refs) == 0 {
					refs = []string{"<none>"}
				}
				for _, r := range refs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r, shortID(im.Digest), im.Platform, created(im.Created), humanBytes(im.Size))
				}
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the digests")
	return c
}

func newRmiCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rmi IMAGE...",
		Short: "Remove images from the layer store",
		Long: "Rmi forgets each IMAGE (a reference that was pulled, a digest, or 12 or\n" +
			"more hex digits of one); cc prune then frees the layers no other image,\n" +
			"snapshot or running sandbox uses.",
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var failed []string
			for _, name := range args {
				if err := removeImage(ctx, g, name); err != nil {
					fmt.Fprintln(os.Stderr, "cc:", err)
					failed = append(failed, name)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), "removed", name)
			}
			if len(failed) > 0 {
				return &exitError{code: exitOwn, msg: "could not remove " + strings.Join(failed, ", ")}
			}
			return nil
		},
	}
}

// removeImage removes what rmi's argument names.
func removeImage(ctx context.Context, g *globals, name string) error {
	store := g.storeOptions()
	if isHex(name) && len(name) >= 12 {
		digest, err := imageByPrefix(ctx, name, store)
		if err != nil {
			return err
		}
		name = digest
	}
	return sandbox.RemoveImage(ctx, name, store...)
}

func newPruneCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Free the layers no image, snapshot or sandbox uses",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := sandbox.Prune(cmd.Context(), g.storeOptions()...)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "removed %d layers (%s) and %d leftovers of interrupted work\n", r.Layers, humanBytes(r.Bytes), r.Temp)
			return err
		},
	}
}

func newDfCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "df",
		Short: "Show the layer store's disk use",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := sandbox.DiskUsage(cmd.Context(), g.storeOptions()...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, usageJSON{u.Dir, u.Images, u.Layers, u.Bytes, u.Reclaimable, u.Temp})
			}
			tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
			fmt.Fprintf(tw, "store\t%s\n", u.Dir)
			fmt.Fprintf(tw, "images\t%d\n", u.Images)
			fmt.Fprintf(tw, "layers\t%d\t%s\n", u.Layers, humanBytes(u.Bytes))
			fmt.Fprintf(tw, "reclaimable\t\t%s\n", humanBytes(u.Reclaimable))
			fmt.Fprintf(tw, "temporary\t\t%s\n", humanBytes(u.Temp))
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the figures as JSON")
	return c
}

// imageJSON is an image as cc images --json prints it.
type imageJSON struct {
	Digest     string    `json:"digest"`
	References []string  `json:"references"`
	Platform   string    `json:"platform"`
	Created    time.Time `json:"created"`
	Layers     int       `json:"layers"`
	Size       int64     `json:"size"`
}

// usageJSON is the store's use as cc df --json prints it.
type usageJSON struct {
	Dir         string `json:"dir"`
	Images      int    `json:"images"`
	Layers      int    `json:"layers"`
	Bytes       int64  `json:"bytes"`
	Reclaimable int64  `json:"reclaimable"`
	Temp        int64  `json:"temp"`
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// shortID is a digest's first 12 hex digits, as docker shows image ids.
func shortID(digest string) string {
	_, hex, _ := strings.Cut(digest, ":")
	return hex[:min(12, len(hex))]
}

func created(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

// humanBytes formats n in decimal units, as docker does.
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %cB", v, "kMGTP"[i])
}
