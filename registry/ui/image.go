package ui

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cluster-image/sealos/imagespec"
)

// imagePage is what the image page shows of repo@ref.
type imagePage struct {
	page
	Repo, Ref, Digest string
	MediaType         string
	Size              int64
	Index             bool
	Platforms         []platformRow
	// For an image:
	Type        string
	Warnings    []string
	Created     time.Time
	Platform    string
	Labels      [][2]string
	Env         []string
	Entrypoint  []string
	Cmd         []string
	Layers      []layerRow
	Images      []carried
	Annotations [][2]string
	Referrers   []referrer
	PullCmd     string
	RunCmd      string
}

type platformRow struct {
	Platform, Digest string
	Size             int64
}

type layerRow struct {
	Digest, MediaType string
	Size              int64
}

// carried is a container image the cluster image recorded in sealos.io.images, and
// whether the hub itself holds it (as its own repository or in a mirror namespace).
type carried struct {
	Ref     string
	Present bool
	Where   string
}

type referrer struct {
	ArtifactType, Digest string
	Size                 int64
	Annotations          [][2]string
}

func (h *Handler) image(w http.ResponseWriter, r *http.Request, repo, ref string) {
	repo = strings.Trim(repo, "/")
	m, err := h.r.manifest(repo, ref)
	if errors.Is(err, errNotFound) {
		h.fail(w, r, http.StatusNotFound, "no image "+repo+" "+ref)
		return
	}
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, err.Error())
		return
	}
	p := imagePage{page: h.base(r, repo+" "+ref), Repo: repo, Ref: ref, Digest: m.Digest, MediaType: string(m.MediaType)}
	blobs := map[string]int64{}
	h.blobsOf(repo, m, blobs, 0)
	for _, n := range blobs {
		p.Size += n
	}
	p.Annotations = sortedPairs(m.Annotations())
	target := r.Host + "/" + repo
	if strings.HasPrefix(ref, "sha256:") || strings.HasPrefix(ref, "sha512:") {
		target += "@" + ref
	} else {
		target += ":" + ref
	}
	p.PullCmd = "sealos pull " + target
	p.RunCmd = "sealos run " + target
	if refs, err := h.r.referrers(repo, m.Digest); err == nil {
		for _, d := range refs {
			at := d.ArtifactType
			if at == "" {
				at = string(d.MediaType)
			}
			p.Referrers = append(p.Referrers, referrer{ArtifactType: at, Digest: d.Digest.String(), Size: d.Size, Annotations: sortedPairs(d.Annotations)})
		}
	}
	if m.Index != nil {
		p.Index = true
		for _, d := range m.Index.Manifests {
			pl := "unknown"
			if d.Platform != nil {
				pl = d.Platform.String()
			}
			if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
				pl = "attestation of " + shortDigest(d.Annotations["vnd.docker.reference.digest"])
			}
			p.Platforms = append(p.Platforms, platformRow{Platform: pl, Digest: d.Digest.String(), Size: d.Size})
		}
		h.render(w, "image", http.StatusOK, p)
		return
	}
	for _, l := range m.Image.Layers {
		p.Layers = append(p.Layers, layerRow{Digest: l.Digest.String(), MediaType: string(l.MediaType), Size: l.Size})
	}
	if cf, err := h.r.config(repo, m); err == nil {
		labels := cf.Config.Labels
		p.Type = string(imagespec.TypeOf(labels))
		for _, wn := range imagespec.Check(labels) {
			p.Warnings = append(p.Warnings, wn.String())
		}
		p.Created = cf.Created.Time
		if pl := cf.Platform(); pl != nil {
			p.Platform = pl.String()
		}
		p.Labels = sortedPairs(labels)
		p.Env, p.Entrypoint, p.Cmd = cf.Config.Env, cf.Config.Entrypoint, cf.Config.Cmd
	} else {
		p.Warnings = append(p.Warnings, "config: "+err.Error())
	}
	for _, ref := range strings.Split(m.Image.Annotations[imagespec.AnnotationImages], ",") {
		if ref = strings.TrimSpace(ref); ref != "" {
			p.Images = append(p.Images, h.carried(ref))
		}
	}
	h.render(w, "image", http.StatusOK, p)
}

// carried looks ref up in the hub: as the site's own repository (the path a node's
// mirror asks for, registry left out) and in the registry's mirror namespace.
func (h *Handler) carried(ref string) carried {
	c := carried{Ref: ref}
	r, err := name.ParseReference(ref)
	if err != nil {
		return c
	}
	id := r.Identifier()
	repo := r.Context().RepositoryStr()
	for _, candidate := range []string{repo, strings.ReplaceAll(strings.ToLower(r.Context().RegistryStr()), ":", "_") + "/" + repo} {
		if h.r.exists(candidate, id) {
			c.Present, c.Where = true, candidate
			return c
		}
	}
	return c
}
