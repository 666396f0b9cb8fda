// Package ui is the hub's read-only web view: the repositories it holds, their tags, and
// what is inside an image (cluster-image type, labels, ENV, CMD, layers, the container
// images it carries, referrers, platforms), plus a chart of where the bytes go.
//
// It reads through the hub's own API handler in process, so it shows exactly what a client
// would see and needs nothing besides the hub. Pages are html/template (contextual escaping
// of everything that comes from images: labels, annotations, commands) and work without
// JavaScript; a small script only makes the repository search answer as you type.
package ui

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cluster-image/sealos/imagespec"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the view is served; "/" redirects there.
const Prefix = "/ui/"

// Options configure the view.
type Options struct {
	// API is the hub's API handler (GET and HEAD of /v2/...), reached without
	// authentication: the caller checks a request's credentials before it reaches the view.
	API http.Handler
	// Mirrors reports the hub's mirror namespaces; nil when the hub is not a mirror.
	Mirrors func() []MirrorStatus
}

// MirrorStatus is one mirrored registry of a mirror hub.
type MirrorStatus struct {
	Registry  string        // the name clients pull by, e.g. docker.io
	Namespace string        // where its content lives in the hub
	Upstream  string        // URL, or "" for a namespace without upstream
	TTL       time.Duration // how long a cached tag is served before it is checked again
	DownUntil time.Time     // after a network failure, no contact before this time
	Tags      []CachedTag   // the tags cached, with when each was last checked upstream
}

// CachedTag is a tag a mirror hub holds for an upstream.
type CachedTag struct {
	Repository, Tag string
	Checked         time.Time
}

// Handler serves the view under Prefix.
type Handler struct {
	opts  Options
	r     *reader
	pages map[string]*template.Template
	sizes sizeCache
}

// New returns the view's handler.
func New(opts Options) (*Handler, error) {
	if opts.API == nil {
		return nil, errors.New("ui: no API handler")
	}
	h := &Handler{opts: opts, r: newReader(opts.API), pages: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"bytes":     func(n int64) string { return units.HumanSize(float64(n)) },
		"short":     shortDigest,
		"since":     since,
		"join":      strings.Join,
		"pathEsc":   pathEscape,
		"add":       func(a, b int) int { return a + b },
		"ftime":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"platforms": func(ps []string) string { return strings.Join(ps, ", ") },
	}
	for _, p := range []string{"repos", "repo", "image", "sizes", "mirror", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", p, err)
		}
		h.pages[p] = t
	}
	return h, nil
}

// ServeHTTP routes a request under Prefix (and "/", which redirects).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the web view is read-only", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/" || p == strings.TrimSuffix(Prefix, "/"):
		http.Redirect(w, r, Prefix, http.StatusFound)
	case p == Prefix:
		h.repos(w, r)
	case p == Prefix+"api/repos":
		h.apiRepos(w, r)
	case strings.HasPrefix(p, Prefix+"static/"):
		h.static(w, r)
	case strings.HasPrefix(p, Prefix+"repo/"):
		h.repo(w, r, strings.TrimPrefix(p, Prefix+"repo/"))
	case strings.HasPrefix(p, Prefix+"image/"):
		repo, ref, ok := strings.Cut(strings.TrimPrefix(p, Prefix+"image/"), "/-/")
		if !ok || repo == "" || ref == "" {
			h.fail(w, r, http.StatusNotFound, "no such page: an image is /ui/image/REPOSITORY/-/TAG or DIGEST")
			return
		}
		h.image(w, r, repo, ref)
	case p == Prefix+"sizes":
		h.sizesPage(w, r)
	case p == Prefix+"mirror":
		h.mirror(w, r)
	default:
		h.fail(w, r, http.StatusNotFound, "no such page")
	}
}

// page is what every page's layout needs.
type page struct {
	Title  string
	Host   string
	Mirror bool
}

func (h *Handler) render(w http.ResponseWriter, name string, status int, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Everything the pages load comes from the hub itself; nothing inline runs.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := h.pages[name].Execute(w, data); err != nil {
		slog.Debug("ui: render", "page", name, "err", err)
	}
}

func (h *Handler) base(r *http.Request, title string) page {
	return page{Title: title, Host: r.Host, Mirror: h.opts.Mirrors != nil}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, "error", status, struct {
		page
		Status  int
		Message string
	}{h.base(r, http.StatusText(status)), status, msg})
}

func (h *Handler) static(w http.ResponseWriter, r *http.Request) {
	sub, _ := fs.Sub(staticFS, "static")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "max-age=300")
	http.StripPrefix(Prefix+"static/", http.FileServer(http.FS(sub))).ServeHTTP(w, r)
}

// pageSize is how many repositories one page of the list shows.
const pageSize = 100

// repoPage is one page of the repository list, as the page and its script show it.
type repoPage struct {
	Query string   `json:"query"`
	Repos []string `json:"repos"`
	Total int      `json:"total"`
	Page  int      `json:"page"`
	Pages int      `json:"pages"`
}

// listRepos filters the catalog by q (a substring, case-insensitive) and cuts page n.
func (h *Handler) listRepos(r *http.Request) (repoPage, error) {
	all, err := h.r.repositories()
	if err != nil {
		return repoPage{}, err
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	match := all
	if q != "" {
		lq := strings.ToLower(q)
		match = nil
		for _, name := range all {
			if strings.Contains(name, lq) {
				match = append(match, name)
			}
		}
	}
	n, _ := strconv.Atoi(r.URL.Query().Get("page"))
	pages := max(1, (len(match)+pageSize-1)/pageSize)
	n = min(max(n, 1), pages)
	from := (n - 1) * pageSize
	out := repoPage{Query: q, Total: len(match), Page: n, Pages: pages, Repos: []string{}}
	if from < len(match) {
		out.Repos = match[from:min(from+pageSize, len(match))]
	}
	return out, nil
}

func (h *Handler) repos(w http.ResponseWriter, r *http.Request) {
	p, err := h.listRepos(r)
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, err.Error())
		return
	}
	h.render(w, "repos", http.StatusOK, struct {
		page
		repoPage
	}{h.base(r, "Repositories"), p})
}

func (h *Handler) apiRepos(w http.ResponseWriter, r *http.Request) {
	p, err := h.listRepos(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(p)
}

// tagRow is one tag of a repository page.
type tagRow struct {
	Tag, Digest string
	Size        int64
	Platforms   []string
	Created     time.Time
	Type        string
	Err         string
}

func (h *Handler) repo(w http.ResponseWriter, r *http.Request, repo string) {
	repo = strings.Trim(repo, "/")
	tags, err := h.r.tags(repo)
	if errors.Is(err, errNotFound) {
		h.fail(w, r, http.StatusNotFound, "no repository "+repo)
		return
	}
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, err.Error())
		return
	}
	rows := make([]tagRow, len(tags))
	for i, t := range tags {
		rows[i] = h.tagRow(repo, t)
	}
	h.render(w, "repo", http.StatusOK, struct {
		page
		Repo string
		Tags []tagRow
	}{h.base(r, repo), repo, rows})
}

// tagRow summarizes repo:tag: its digest, the bytes of its blobs (each counted once),
// platforms, creation time and cluster-image type.
func (h *Handler) tagRow(repo, tag string) tagRow {
	row := tagRow{Tag: tag}
	m, err := h.r.manifest(repo, tag)
	if err != nil {
		row.Err = err.Error()
		return row
	}
	row.Digest = m.Digest
	blobs := map[string]int64{}
	h.blobsOf(repo, m, blobs, 0)
	for _, n := range blobs {
		row.Size += n
	}
	img := m
	if m.Index != nil {
		for _, d := range m.Index.Manifests {
			if d.Platform != nil && d.Platform.OS != "unknown" {
				row.Platforms = append(row.Platforms, d.Platform.String())
				if img == m {
					if c, err := h.r.manifest(repo, d.Digest.String()); err == nil && c.Image != nil {
						img = c
					}
				}
			}
		}
	}
	if img.Image != nil {
		if cf, err := h.r.config(repo, img); err == nil {
			row.Created = cf.Created.Time
			row.Type = string(imagespec.TypeOf(cf.Config.Labels))
			if m.Index == nil && cf.OS != "" {
				row.Platforms = []string{(&v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}).String()}
			}
		}
	}
	return row
}

// blobsOf adds the blobs m refers to (itself, configs, layers, children) to out.
func (h *Handler) blobsOf(repo string, m *manifest, out map[string]int64, depth int) {
	out[m.Digest] = m.Size
	if m.Image != nil {
		out[m.Image.Config.Digest.String()] = m.Image.Config.Size
		for _, l := range m.Image.Layers {
			out[l.Digest.String()] = l.Size
		}
	}
	if m.Index != nil && depth < 4 {
		for _, d := range m.Index.Manifests {
			if c, err := h.r.manifest(repo, d.Digest.String()); err == nil {
				h.blobsOf(repo, c, out, depth+1)
			} else {
				out[d.Digest.String()] = d.Size
			}
		}
	}
}

func shortDigest(d string) string {
	_, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) < 12 {
		return d
	}
	return hex[:12]
}

func since(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return units.HumanDuration(time.Since(t)) + " ago"
}

// pathEscape escapes a repository name or reference for a path, keeping its slashes.
func pathEscape(s string) string {
	parts := strings.Split(s, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// sortedPairs turns a map into key-sorted pairs for a template.
func sortedPairs(m map[string]string) [][2]string {
	out := make([][2]string, 0, len(m))
	for k, v := range m {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}
