// Package detect finds the container images a cluster image needs: the images named by the
// Helm charts under charts/ (rendered client-side with the Helm SDK, subcharts and values
// included), by the Kubernetes manifests and *.tmpl files under manifests/, by the image
// lists under images/shim/, and the image archives listed in images/skopeo/tar.txt. Each
// image remembers every file that named it and why. What sealos tolerates (a manifest a
// YAML parser refuses, a template fragment where an image belongs) is a Warning, and the
// file is read line by line as sealos reads it.
package detect

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Directories and files of a build context that detection reads.
const (
	ChartsDir    = "charts"
	ManifestsDir = "manifests"
	ShimDir      = "images/shim"
	SkopeoDir    = "images/skopeo"
	ArchiveList  = SkopeoDir + "/tar.txt"
	IgnoreFile   = ".sealignore"
)

// Scanned says, for messages, what detection reads.
const Scanned = ChartsDir + "/ (Helm charts, rendered), " + ManifestsDir + "/ (*.yaml, *.yml, *.json, *.tmpl), " +
	ShimDir + "/ (image lists, one per line) and " + ArchiveList + " (image archives: docker-archive:PATH@NAME or oci-archive:PATH@NAME)"

// Source says where an image was found: the context-relative file that named it and why
// (the chart template, object and container, or the list line).
type Source struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// Image is one container image a cluster image needs.
type Image struct {
	// Ref is the reference as first written (tags and digests kept, never normalized away).
	Ref string `json:"image"`
	// Name is the fully qualified reference (registry and repository made explicit).
	Name string `json:"name"`
	// Sources lists every place that named the image, in detection order.
	Sources []Source `json:"sources"`
	// Archive, when set, is where the image comes from instead of its registry.
	Archive *Archive `json:"archive,omitempty"`
}

// Files is the context-relative files that named the image, without duplicates.
func (i Image) Files() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range i.Sources {
		if !seen[s.File] {
			seen[s.File] = true
			out = append(out, s.File)
		}
	}
	return out
}

// Reference parses Ref.
func (i Image) Reference() (name.Reference, error) { return name.ParseReference(i.Ref) }

// RefError is an image reference that cannot be parsed, with the file that named it.
type RefError struct {
	Ref    string
	Source Source
	Err    error
}

func (e *RefError) Error() string {
	return fmt.Sprintf("invalid image reference %q in %s (%s): %v", e.Ref, e.Source.File, e.Source.Reason, e.Err)
}

func (e *RefError) Unwrap() error { return e.Err }

// Result collects found images in order, merging sources of the same image.
type Result struct {
	images   []Image
	index    map[string]int
	errs     []error
	warnings []Warning
	ignore   []string
}

func (r *Result) warn(file string, line int, msg string) {
	r.warnings = append(r.warnings, Warning{File: file, Line: line, Message: msg})
}

// Warnings returns what was skipped or read line by line, in detection order.
func (r *Result) Warnings() []Warning { return r.warnings }

// Add records that src names ref. A reference that does not parse is recorded as an error.
func (r *Result) Add(ref string, src Source) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return
	}
	if strings.Contains(ref, "{{") {
		// sealos skips what does not parse as a reference; an unrendered template is the
		// common case, and not worth failing a build over.
		r.warn(src.File, 0, fmt.Sprintf("%s: image %q is an unrendered template: skipped", src.Reason, ref))
		return
	}
	r.add(ref, src, nil)
}

func (r *Result) add(ref string, src Source, archive *Archive) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		r.errs = append(r.errs, &RefError{Ref: ref, Source: src, Err: err})
		return
	}
	full := fullName(ref, parsed)
	if r.ignored(ref, full) {
		return
	}
	if r.index == nil {
		r.index = map[string]int{}
	}
	if i, ok := r.index[full]; ok {
		if r.images[i].Archive == nil {
			// An archive in the context wins over the registry: it is what the author has.
			r.images[i].Archive = archive
		}
		for _, s := range r.images[i].Sources {
			if s == src {
				return
			}
		}
		r.images[i].Sources = append(r.images[i].Sources, src)
		return
	}
	r.index[full] = len(r.images)
	r.images = append(r.images, Image{Ref: ref, Name: full, Sources: []Source{src}, Archive: archive})
}

// fullName is the fully qualified form of ref, keeping a tag written next to a digest
// (name.ParseReference drops it, but name:tag@sha256:.. is not the same as name@sha256:..
// for saving: the tag is written too).
func fullName(ref string, parsed name.Reference) string {
	full := parsed.Context().Name()
	if parsed.Context().RegistryStr() == name.DefaultRegistry {
		full = "docker.io/" + parsed.Context().RepositoryStr()
	}
	if d, ok := parsed.(name.Digest); ok {
		if tag := tagOf(ref); tag != "" {
			full += ":" + tag
		}
		return full + "@" + d.DigestStr()
	}
	return full + ":" + parsed.Identifier()
}

// tagOf returns the tag of a reference written as name:tag@digest, or "".
func tagOf(ref string) string {
	base, _, ok := strings.Cut(ref, "@")
	if !ok {
		return ""
	}
	i := strings.LastIndex(base, ":")
	if i < 0 || strings.Contains(base[i:], "/") {
		return ""
	}
	return base[i+1:]
}

// Tag is the tag of an image: the one written beside a digest, the tag of a tag reference,
// or "" for a bare digest reference.
func (i Image) Tag() string {
	ref, err := name.ParseReference(i.Ref)
	if err != nil {
		return ""
	}
	if t, ok := ref.(name.Tag); ok {
		return t.TagStr()
	}
	return tagOf(i.Ref)
}

func (r *Result) ignored(ref, full string) bool {
	familiar := strings.TrimPrefix(strings.TrimPrefix(full, "docker.io/"), "library/")
	for _, p := range r.ignore {
		if matchImage(p, ref) || matchImage(p, full) || matchImage(p, familiar) {
			return true
		}
	}
	return false
}

// matchImage matches an image pattern of .sealignore: '*' matches any run of characters
// (including '/' and ':'), '?' one character; a pattern without tag or digest also matches
// every tag and digest of that repository.
func matchImage(pattern, ref string) bool {
	if globMatch(pattern, ref) {
		return true
	}
	if !strings.ContainsAny(pattern, "@") && !strings.Contains(path.Base(pattern), ":") {
		repo := ref
		if i := strings.Index(repo, "@"); i >= 0 {
			repo = repo[:i]
		}
		if i := strings.LastIndex(repo, ":"); i >= 0 && !strings.Contains(repo[i:], "/") {
			repo = repo[:i]
		}
		return globMatch(pattern, repo)
	}
	return false
}

func globMatch(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if globMatch(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && globMatch(pattern[1:], s[1:])
	default:
		return s != "" && s[0] == pattern[0] && globMatch(pattern[1:], s[1:])
	}
}

// Images returns the images found so far, in detection order.
func (r *Result) Images() []Image { return r.images }

// Err returns every reference error found so far, joined.
func (r *Result) Err() error { return errors.Join(r.errs...) }

// Options tune detection.
type Options struct {
	// ReleaseName and Namespace are the release charts are rendered as. The defaults are
	// sealos's: release "dryrun" in no namespace, so a chart's guards (on "default", say)
	// trip, or not, as they do there.
	ReleaseName string
	Namespace   string
	// KubeVersion renders charts for this Kubernetes version (default: Helm's default).
	KubeVersion string
	// Env renders the *.tmpl files under manifests/ (the image's ENV, as apply renders
	// them) before they are scanned. Without it they are read line by line.
	Env map[string]string
	// Warn receives each Warning (nil: they are dropped).
	Warn func(Warning)
}

// Detect finds every image the build context dir needs. Images excluded by .sealignore are
// left out. Any unparsable reference or unrenderable chart or manifest is an error that
// names the file; all such errors are reported together.
func Detect(ctx context.Context, dir string, opts Options) ([]Image, error) {
	if opts.ReleaseName == "" {
		opts.ReleaseName = "dryrun"
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("build context %s is not a directory", dir)
	}
	var res Result
	ignore, err := readIgnore(filepath.Join(dir, IgnoreFile))
	if err != nil {
		return nil, err
	}
	res.ignore = ignore

	var errs []error
	if err := detectCharts(ctx, dir, opts, &res); err != nil {
		errs = append(errs, err)
	}
	if err := detectManifests(ctx, dir, opts, &res); err != nil {
		errs = append(errs, err)
	}
	if err := detectShim(dir, &res); err != nil {
		errs = append(errs, err)
	}
	if err := detectArchives(dir, &res); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, res.errs...)
	if opts.Warn != nil {
		for _, w := range res.warnings {
			opts.Warn(w)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return res.Images(), nil
}

// readIgnore reads .sealignore: one image pattern per line, '#' comments and blank lines.
func readIgnore(file string) ([]string, error) {
	lines, err := readLines(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range lines {
		out = append(out, l.text)
	}
	return out, nil
}

type line struct {
	no   int
	text string
}

// readLines returns the non-blank, non-comment lines of file, each trimmed and with any
// trailing " # comment" removed.
func readLines(file string) ([]line, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		t := strings.TrimSpace(sc.Text())
		if i := strings.Index(t, "#"); i == 0 {
			continue
		} else if i > 0 && (t[i-1] == ' ' || t[i-1] == '\t') {
			t = strings.TrimSpace(t[:i])
		}
		if t == "" {
			continue
		}
		out = append(out, line{no: n, text: t})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return out, nil
}

// detectShim reads every file under images/shim/: one image per line.
func detectShim(dir string, res *Result) error {
	root := filepath.Join(dir, ShimDir)
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", ShimDir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		lines, err := readLines(f)
		if err != nil {
			return fmt.Errorf("read image list: %w", err)
		}
		rel := relPath(dir, f)
		for _, l := range lines {
			res.Add(l.text, Source{File: rel, Reason: fmt.Sprintf("image list, line %d", l.no)})
		}
	}
	return nil
}

func relPath(dir, p string) string {
	r, err := filepath.Rel(dir, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}
