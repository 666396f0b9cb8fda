package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cluster-image/sealos/internal/platform"
	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/store"
)

func init() { addCommand(newManifestCmd) }

// manifestSubcommands is filled by the init of each file that adds a `sealos manifest`
// subcommand, so each lives in its own file.
var manifestSubcommands []func() *cobra.Command

func addManifestCommand(f func() *cobra.Command) {
	manifestSubcommands = append(manifestSubcommands, f)
}

func newManifestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Create, change and push manifest lists (multi-platform images)",
		Long: `manifest manages manifest lists in the local store, with buildah's semantics: a list is an
OCI image index that names one image per platform. Build an image per platform, gather them
in a list, then push the list and its images in one go. 'sealos images' shows lists among
the images; 'sealos rmi' and 'sealos manifest rm' remove them.`,
		Example: `  sealos build --platform linux/amd64 -t app:amd64 .
  sealos build --platform linux/arm64 -t app:arm64 .
  sealos manifest create app:v1 app:amd64 app:arm64
  sealos manifest push --all app:v1 registry.example.com/team/app:v1

  # or let each build add itself to the list
  sealos build --platform linux/amd64 --manifest app:v1 .
  sealos build --platform linux/arm64 --manifest app:v1 .`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	for _, f := range manifestSubcommands {
		cmd.AddCommand(f())
	}
	return cmd
}

// entryFlags are what add and annotate may set on a list entry.
type entryFlags struct {
	os, arch, variant, osVersion string
	features, osFeatures         []string
	annotations                  []string
}

func (f *entryFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.os, "os", "", "record this OS for the image (default: its config's)")
	fl.StringVar(&f.arch, "arch", "", "record this architecture for the image (default: its config's)")
	fl.StringVar(&f.variant, "variant", "", "record this architecture variant, e.g. v8")
	fl.StringVar(&f.osVersion, "os-version", "", "record this OS version")
	fl.StringSliceVar(&f.features, "features", nil, "record these platform features")
	fl.StringSliceVar(&f.osFeatures, "os-features", nil, "record these OS features")
	fl.StringArrayVar(&f.annotations, "annotation", nil, "set an annotation KEY=VALUE on the entry (repeatable)")
}

// apply sets the flags given on d.
func (f *entryFlags) apply(d *v1.Descriptor) error {
	ann, err := keyValues("--annotation", f.annotations, false)
	if err != nil {
		return err
	}
	if f.os != "" || f.arch != "" || f.variant != "" || f.osVersion != "" || len(f.features) > 0 || len(f.osFeatures) > 0 {
		p := v1.Platform{}
		if d.Platform != nil {
			p = *d.Platform
		}
		p.OS, p.Architecture = cmp.Or(f.os, p.OS), cmp.Or(f.arch, p.Architecture)
		p.Variant, p.OSVersion = cmp.Or(f.variant, p.Variant), cmp.Or(f.osVersion, p.OSVersion)
		if len(f.features) > 0 {
			p.Features = f.features
		}
		if len(f.osFeatures) > 0 {
			p.OSFeatures = f.osFeatures
		}
		if _, err := platform.Parse(p.String()); err != nil {
			return fmt.Errorf("--os/--arch/--variant: %w", err)
		}
		d.Platform = &p
	}
	if len(ann) > 0 && d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	for k, v := range ann {
		d.Annotations[k] = v
	}
	return nil
}

// listEntries resolves image for a list: from the local store, or else pulled into it
// from its registry (the list can only name images whose blobs the store has, so push can
// send them). all takes every image of an index; otherwise the one for platform p.
func listEntries(cmd *cobra.Command, st *store.Store, image string, all bool, p v1.Platform, opts ...client.Option) ([]v1.Descriptor, error) {
	ctx := cmd.Context()
	ds, err := st.ListEntry(ctx, image, all, p)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return ds, err
	}
	if _, perr := client.ParseReference(image); perr != nil {
		return nil, err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s is not in the local store: pulling it\n", image)
	opts = append(opts, client.WithPlatform(p))
	if term.IsTerminal(int(os.Stderr.Fd())) {
		prog := client.NewProgress(os.Stderr, true)
		defer prog.Close()
		opts = append(opts, client.WithProgress(prog))
	}
	if _, perr := client.Pull(ctx, st, image, all, client.PolicyMissing, opts...); perr != nil {
		return nil, perr
	}
	return st.ListEntry(ctx, image, all, p)
}

// listPlatform is the platform an index's image is chosen for: the host's, with the
// --os/--arch/--variant given.
func (f *entryFlags) listPlatform() v1.Platform {
	p := store.HostPlatform()
	if f.os != "" {
		p.OS = f.os
	}
	if f.arch != "" {
		p.Architecture = f.arch
		p.Variant = ""
	}
	if f.variant != "" {
		p.Variant = f.variant
	}
	return p
}

// shortDigests joins digests for a message.
func shortDigests(ds []v1.Descriptor) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.Digest.String()
	}
	return strings.Join(s, " ")
}

// registryOptions are the client options of a manifest command that reaches a registry.
func registryOptions(tlsVerify bool) []client.Option {
	return []client.Option{client.WithTLSVerify(tlsVerify), client.WithUserAgent("sealos/" + version)}
}
