package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/store"
)

func newImagesCmd() *cobra.Command {
	var (
		output  string
		quiet   bool
		digests bool
		noTrunc bool
	)
	cmd := &cobra.Command{
		Use:     "images [REPOSITORY[:TAG]]",
		Aliases: []string{"image-list"},
		Short:   "List the images in the local store",
		Long: `images lists the images in the local store (under --root): one row per name, an image
with several names on several rows, images without a name as <none>.

REPOSITORY[:TAG] keeps only the images of that repository (and tag); short names are
completed like docker ("app" is docker.io/library/app). IMAGE ID is the config digest
of an image and the digest of a multi-platform index; SIZE is what its blobs take in the
store. --output json prints every field, for scripts.`,
		Example: `  sealos images
  sealos images labring/kubernetes
  sealos images --output json | jq -r '.[].name'
  sealos images -q`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("unknown --output %q: use table or json", output)
			}
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			entries, err := st.List(cmd.Context())
			if err != nil {
				return err
			}
			if len(args) == 1 {
				if entries, err = filterEntries(entries, args[0]); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			switch {
			case output == "json":
				if entries == nil {
					entries = []store.Entry{}
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			case quiet:
				seen := map[string]bool{}
				for _, e := range entries {
					id := e.ShortID()
					if noTrunc {
						id = e.ID.String()
					}
					if !seen[id] {
						seen[id] = true
						fmt.Fprintln(out, id)
					}
				}
				return nil
			}
			return printImageTable(out, entries, digests, noTrunc, time.Now())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "result format: table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print image IDs only")
	cmd.Flags().BoolVar(&digests, "digests", false, "show manifest digests")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "print whole IDs")
	return cmd
}

// filterEntries keeps the entries of the repository (and tag, when given) in ref.
func filterEntries(entries []store.Entry, ref string) ([]store.Entry, error) {
	hasTag := false
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		hasTag = true
	}
	full, err := store.NormalizeRef(ref)
	if err != nil {
		return nil, err
	}
	repo := full[:strings.LastIndexAny(full, ":@")]
	var out []store.Entry
	for _, e := range entries {
		if hasTag && e.Name == full || !hasTag && e.Repository == repo {
			out = append(out, e)
		}
	}
	return out, nil
}

func printImageTable(w io.Writer, entries []store.Entry, digests, noTrunc bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	head := "REPOSITORY\tTAG\t"
	if digests {
		head += "DIGEST\t"
	}
	fmt.Fprintln(tw, head+"IMAGE ID\tCREATED\tSIZE")
	for _, e := range entries {
		repo, tag := "<none>", "<none>"
		if e.Repository != "" {
			repo = store.DisplayName(e.Repository)
		}
		if e.Tag != "" {
			tag = e.Tag
		}
		row := repo + "\t" + tag + "\t"
		if digests {
			row += e.Digest.String() + "\t"
		}
		id := e.ShortID()
		if noTrunc {
			id = e.ID.String()
		}
		created := "N/A"
		if !e.Created.IsZero() && e.Created.Unix() > 0 {
			created = units.HumanDuration(now.Sub(e.Created)) + " ago"
		}
		fmt.Fprintln(tw, row+id+"\t"+created+"\t"+units.HumanSizeWithPrecision(float64(e.Size), 3))
	}
	return tw.Flush()
}

func init() { addCommand(newImagesCmd) }
