package frontend

import (
	"strings"
	"time"

	"github.com/moby/buildkit/client/llb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// What `build` flags change in the result after the Kubefile is converted, as buildah's
// --env and --squash do.

// squash returns st as a single layer: its whole filesystem copied onto scratch, so the
// image has one layer with no whiteouts, whatever its base and instructions made.
func squash(st llb.State) llb.State {
	return llb.Scratch().File(llb.Copy(st, "/", "/", &llb.CopyInfo{
		CopyDirContentsOnly: true,
		AllowWildcard:       false,
		CreateDestPath:      true,
	}), llb.WithCustomName("squash into one layer"))
}

// layers counts the layers a history describes (base image and build steps).
func layers(history []ocispecs.History) int {
	n := 0
	for _, h := range history {
		if !h.EmptyLayer {
			n++
		}
	}
	return n
}

// squashedHistory is the history of a squashed image: one entry for its one layer, after
// the empty-layer entries (ENV, LABEL, CMD ...) that still say how the config was made.
func squashedHistory(in []ocispecs.History, epoch *time.Time) []ocispecs.History {
	var out []ocispecs.History
	for _, h := range in {
		if h.EmptyLayer {
			out = append(out, h)
		}
	}
	created := epoch
	if created == nil {
		now := time.Now().UTC()
		created = &now
	}
	return append(out, ocispecs.History{Created: created, CreatedBy: "sealos build --squash", Comment: "all layers squashed into one"})
}

// mergeEnv sets each KEY=VALUE of set in env, replacing an earlier value of KEY.
func mergeEnv(env, set []string) []string {
	out := append([]string(nil), env...)
	for _, kv := range set {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, e := range out {
			if ek, _, _ := strings.Cut(e, "="); ek == k {
				out[i] = kv
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}
