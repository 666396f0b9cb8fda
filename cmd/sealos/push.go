package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/store"
)

// transferFlags are the flags push and pull share.
type transferFlags struct {
	tlsVerify  bool
	jobs       int
	quiet      bool
	output     string
	login      loginFlags
	retry      int
	retryDelay time.Duration
}

func (f *transferFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.tlsVerify, "tls-verify", true, "require HTTPS with a verified certificate (plain HTTP is always allowed for localhost and loopback)")
	cmd.Flags().IntVarP(&f.jobs, "jobs", "j", client.DefaultJobs, "blobs to move at once")
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "no progress display")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "result format: text or json")
	cmd.Flags().IntVar(&f.retry, "retry", 3, "retry a failed request this many times")
	cmd.Flags().DurationVar(&f.retryDelay, "retry-delay", time.Second, "wait this long before the first retry (then longer)")
	f.login.register(cmd.Flags())
}

// clientOptions are the client options the flags choose: TLS, jobs, logins and retries.
func (f *transferFlags) clientOptions() ([]client.Option, error) {
	if err := checkOutput(f.output); err != nil {
		return nil, err
	}
	if err := atLeastOne("--jobs", f.jobs); err != nil {
		return nil, err
	}
	if f.retry < 0 {
		return nil, fmt.Errorf("--retry %d: give 0 or more", f.retry)
	}
	creds, err := f.login.credentials()
	if err != nil {
		return nil, err
	}
	return []client.Option{
		client.WithTLSVerify(f.tlsVerify), client.WithJobs(f.jobs), client.WithUserAgent("sealos/" + version),
		client.WithKeychain(creds.Keychain()), client.WithRetry(f.retry, f.retryDelay),
	}, nil
}

// options are clientOptions with a progress display on stderr (redrawn on a terminal,
// plain lines otherwise). Close the returned Progress when done.
func (f *transferFlags) options() ([]client.Option, *client.Progress, error) {
	opts, err := f.clientOptions()
	if err != nil {
		return nil, nil, err
	}
	var p *client.Progress
	if !f.quiet {
		p = client.NewProgress(os.Stderr, term.IsTerminal(int(os.Stderr.Fd())))
		opts = append(opts, client.WithProgress(p))
	}
	return opts, p, nil
}

func newPushCmd() *cobra.Command {
	var (
		f          transferFlags
		digestFile string
	)
	cmd := &cobra.Command{
		Use:   "push IMAGE [DESTINATION]",
		Short: "Push an image from the local store to a registry",
		Long: `push uploads IMAGE (an image or a multi-platform index) from the local store to a registry,
under the name DESTINATION, or under IMAGE itself when DESTINATION is omitted.

Blobs are sent exactly as stored, so the digest printed is the digest in the registry. Blobs
the registry already has are not sent again, blobs of other repositories of the same
registry are mounted, and transient network errors are retried. Credentials come from the
docker config.json (see sealos login) and its credential helpers.`,
		Example: `  # push under the image's own name
  sealos push localhost:5000/apps/nginx:v1

  # push a local image to another name
  sealos push myapp:v1 registry.example.com/team/myapp:v1

  # a registry with a self-signed certificate, result as JSON
  sealos push --tls-verify=false -o json myapp:v1 10.0.0.2:5000/myapp:v1`,
		Annotations: batchGC,
		Args:        cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, dst := args[0], args[0]
			if len(args) == 2 {
				dst = args[1]
			}
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			return f.push(cmd, st, src, dst, digestFile, nil)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&digestFile, "digestfile", "", "write the pushed digest to this file")
	return cmd
}

func init() { addCommand(newPushCmd) }

// push sends src of the store to dst as the flags say, writes digestFile when given, runs
// then (if any) once the push succeeded, and prints the result (push and manifest push).
func (f *transferFlags) push(cmd *cobra.Command, st *store.Store, src, dst, digestFile string, then func() error) error {
	opts, p, err := f.options()
	if err != nil {
		return err
	}
	dstRef, err := client.ParseReference(dst, client.WithTLSVerify(f.tlsVerify))
	if err != nil {
		return fmt.Errorf("push: destination %q: %w", dst, err)
	}
	opts = append(opts, client.WithMountFromStore(st))
	desc, err := client.PushFromStore(cmd.Context(), st, src, dst, opts...)
	p.CloseWith(err)
	if err != nil {
		return err
	}
	if digestFile != "" {
		if err := os.WriteFile(digestFile, []byte(desc.Digest.String()), 0o644); err != nil {
			return fmt.Errorf("--digestfile: %w", err)
		}
	}
	if then != nil {
		if err := then(); err != nil {
			return fmt.Errorf("pushed %s@%s, but: %w", dstRef.Context(), desc.Digest, err)
		}
	}
	if f.output == "json" {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(struct {
			Source      string `json:"source"`
			Destination string `json:"destination"`
			Digest      string `json:"digest"`
			MediaType   string `json:"mediaType"`
			Size        int64  `json:"size"`
		}{src, dstRef.String(), desc.Digest.String(), string(desc.MediaType), desc.Size})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s@%s\n", dstRef.Context(), desc.Digest)
	return nil
}
