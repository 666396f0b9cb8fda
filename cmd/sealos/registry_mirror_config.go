package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/registry/mirrorconfig"
)

func init() { addRegistryCommand(newRegistryMirrorConfigCmd) }

func newRegistryMirrorConfigCmd() *cobra.Command {
	var (
		c              mirrorconfig.Config
		containerdDir  string
		registriesConf string
		dryRun         bool
		output         string
	)
	cmd := &cobra.Command{
		Use:   "mirror-config",
		Short: "Point containerd, podman, buildah and skopeo at a mirroring hub",
		Long: `mirror-config writes the node side of a hub in mirror mode (sealos registry serve
--mirror): pulls of the listed registries go to the hub, which answers them from what it
holds and fetches the rest from upstream when it can.

  containerd: <containerd-dir>/<registry>/hosts.toml (containerd's config_path, or
              ctr images pull --hosts-dir DIR). containerd tells the hub the registry with
              ?ns=<registry>.
  podman, buildah, skopeo, CRI-O: a registries.conf (v2) file, --registries-conf, whose
              mirror for <registry> is <hub>/<registry> (the hub's path-prefix form).

With --no-fallback the hub is the only place pulls go (air-gapped sites); otherwise a pull
the hub cannot answer goes to the registry itself. --template writes *.tmpl files whose hub
is "{{ .registryDomain }}:{{ .registryPort }}", for a rootfs image: the apply engine renders
etc/**/*.tmpl with the cluster env on every node (see the registry/mirrorconfig package).`,
		Example: `  # containerd on this node, plain HTTP hub
  sealos registry mirror-config --hub sealos.hub:5000

  # only docker.io and registry.k8s.io, never the internet, podman/skopeo too; show, don't write
  sealos registry mirror-config --hub 10.0.0.2:5000 --registry docker.io --registry registry.k8s.io \
    --no-fallback --registries-conf /etc/containers/registries.conf.d/50-sealos.conf --dry-run

  # templates inside a rootfs image build context
  sealos registry mirror-config --template --containerd-dir rootfs/etc/containerd/certs.d \
    --registries-conf rootfs/etc/containers/registries.conf.d/50-sealos.conf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if c.Template && !cmd.Flags().Changed("hub") {
				c.Hub = mirrorconfig.TemplateHub
			}
			if c.Hub == "" {
				return errors.New("--hub HOST:PORT is required (or --template)")
			}
			if containerdDir == "" && registriesConf == "" {
				return errors.New("nothing to write: --containerd-dir and --registries-conf are both empty")
			}
			out := cmd.OutOrStdout()
			var written []string
			if containerdDir != "" {
				if dryRun {
					files, err := mirrorconfig.ContainerdHosts(c)
					if err != nil {
						return err
					}
					for _, f := range files {
						fmt.Fprintf(out, "==> %s <==\n%s\n", filepath.Join(containerdDir, f.Path), f.Content)
					}
				} else {
					paths, err := mirrorconfig.WriteContainerd(containerdDir, c)
					written = append(written, paths...)
					if err != nil {
						return err
					}
				}
			}
			if registriesConf != "" {
				if dryRun {
					b, err := mirrorconfig.RegistriesConf(c)
					if err != nil {
						return err
					}
					p := registriesConf
					if c.Template {
						p += ".tmpl"
					}
					fmt.Fprintf(out, "==> %s <==\n%s\n", p, b)
				} else {
					p, err := mirrorconfig.WriteRegistriesConf(registriesConf, c)
					if err != nil {
						return err
					}
					written = append(written, p)
				}
			}
			if dryRun {
				return nil
			}
			if output == "json" {
				if written == nil {
					written = []string{}
				}
				return json.NewEncoder(out).Encode(struct {
					Files []string `json:"files"`
				}{written})
			}
			for _, p := range written {
				fmt.Fprintln(out, p)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Hub, "hub", "", "the hub's host:port, as nodes reach it (e.g. sealos.hub:5000)")
	f.StringArrayVar(&c.Registries, "registry", nil, fmt.Sprintf("registry whose pulls go to the hub (repeatable; default %v)", mirrorconfig.DefaultRegistries))
	f.StringVar(&containerdDir, "containerd-dir", "/etc/containerd/certs.d", "where containerd's hosts.toml files go (empty: none)")
	f.StringVar(&registriesConf, "registries-conf", "", "registries.conf file to write for podman/buildah/skopeo (empty: none)")
	f.BoolVar(&c.HTTPS, "https", false, "reach the hub over HTTPS (default plain HTTP)")
	f.BoolVar(&c.SkipVerify, "skip-verify", false, "accept any certificate of the hub (with --https)")
	f.BoolVar(&c.NoFallback, "no-fallback", false, "send pulls to the hub only, never to the registry itself")
	f.BoolVar(&c.HubPush, "hub-hosts", false, "also write a hosts.toml for the hub's own name (pull and push over plain HTTP)")
	f.BoolVar(&c.Template, "template", false, "write *.tmpl files for a rootfs image (hub: {{ .registryDomain }}:{{ .registryPort }})")
	f.BoolVar(&dryRun, "dry-run", false, "print the files instead of writing them")
	f.StringVarP(&output, "output", "o", "text", "result format: text or json (the files written)")
	return cmd
}
