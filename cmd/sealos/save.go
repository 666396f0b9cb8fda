package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/store"
)

func newSaveCmd() *cobra.Command {
	var (
		file   string
		format string
	)
	cmd := &cobra.Command{
		Use:   "save -o FILE [--format oci-archive|docker-archive] IMAGE...",
		Short: "Write images of the local store to an archive",
		Long: `save writes each IMAGE (a name, name@digest or image ID prefix) of the local store into
one tar archive FILE ("-" for stdout):
  oci-archive     (default) an OCI image layout: multi-platform indexes are kept whole and
                  loading it back keeps every digest. Readable by skopeo, podman, buildah
                  (oci-archive:FILE) and containerd.
  docker-archive  the docker save format (manifest.json with RepoTags), for docker load
                  and skopeo (docker-archive:FILE). It holds single images: an index is
                  saved as this machine's platform.
FILE is written to a temporary name and renamed when complete.`,
		Example: `  sealos save -o kube.tar labring/kubernetes:v1.29.0
  sealos save -o apps.tar --format docker-archive app:v1 db:v2
  sealos save -o - app:v1 | ssh host sealos load`,
		Annotations: batchGC,
		Args:        cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return fmt.Errorf("save: give the archive with -o FILE (or -o - for stdout)")
			}
			if format != store.FormatOCIArchive && format != store.FormatDockerArchive {
				return fmt.Errorf("unknown --format %q: use %s", format, strings.Join(store.Formats, " or "))
			}
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			if file == "-" {
				return st.Save(cmd.Context(), cmd.OutOrStdout(), format, args...)
			}
			return saveToFile(cmd, st, file, format, args)
		},
	}
	cmd.Flags().StringVarP(&file, "output", "o", "", "archive file to write (\"-\" for stdout)")
	cmd.Flags().StringVar(&format, "format", store.FormatOCIArchive, "archive format: oci-archive or docker-archive")
	return cmd
}

func saveToFile(cmd *cobra.Command, st *store.Store, file, format string, refs []string) error {
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return fmt.Errorf("save: cannot write %s: %w", file, err)
	}
	defer os.Remove(f.Name())
	var w io.Writer = f
	if err := st.Save(cmd.Context(), w, format, refs...); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save %s: %w", file, err)
	}
	if err := os.Rename(f.Name(), file); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Saved %d image(s) to %s (%s)\n", len(refs), file, format)
	return nil
}

func init() { addCommand(newSaveCmd) }
