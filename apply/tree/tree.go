package tree

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/template"

	"github.com/Masterminds/sprig/v3"

	"github.com/cluster-image/sealos/imagespec"
)

// Tree is a directory on this machine (Base, described by BaseManifest) with some files
// replaced or added in memory (Overrides, e.g. rendered templates). It is a value: With
// and Render return new Trees and never touch Base.
type Tree struct {
	Base         string
	BaseManifest *Manifest
	Overrides    map[string]Override

	memo *memo // the manifest with overrides and its digest, computed once
}

type memo struct {
	once     sync.Once
	manifest *Manifest
	digest   string
	byPath   map[string]Entry
}

// Override is a file whose content lives in memory.
type Override struct {
	Data []byte
	Mode uint32
}

// New returns the tree of dir, scanning it.
func New(dir string) (*Tree, error) {
	m, err := Scan(dir)
	if err != nil {
		return nil, err
	}
	return &Tree{Base: dir, BaseManifest: m}, nil
}

// With returns a copy of t with the file p set to data.
func (t *Tree) With(p string, data []byte, mode uint32) *Tree {
	n := *t
	n.memo = nil
	n.Overrides = make(map[string]Override, len(t.Overrides)+1)
	for k, v := range t.Overrides {
		n.Overrides[k] = v
	}
	n.Overrides[p] = Override{Data: data, Mode: mode}
	return &n
}

// Manifest describes the tree with its overrides. Do not modify the result.
func (t *Tree) Manifest() *Manifest { return t.computed().manifest }

// Digest is the digest of Manifest.
func (t *Tree) Digest() string { return t.computed().digest }

// Entry returns the entry of path p.
func (t *Tree) Entry(p string) (Entry, bool) {
	e, ok := t.computed().byPath[p]
	return e, ok
}

var memoMu sync.Mutex

func (t *Tree) computed() *memo {
	memoMu.Lock()
	if t.memo == nil {
		t.memo = &memo{}
	}
	m := t.memo
	memoMu.Unlock()
	m.once.Do(func() {
		m.manifest = t.manifest()
		m.digest = m.manifest.Digest()
		m.byPath = m.manifest.Map()
	})
	return m
}

func (t *Tree) manifest() *Manifest {
	if len(t.Overrides) == 0 {
		return t.BaseManifest
	}
	byPath := t.BaseManifest.Map()
	for p, o := range t.Overrides {
		byPath[p] = Entry{Path: p, Type: TypeFile, Mode: o.Mode, Size: int64(len(o.Data)), Sum: HashBytes(o.Data)}
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := byPath[d]; !ok {
				byPath[d] = Entry{Path: d, Type: TypeDir, Mode: 0o755}
			}
		}
	}
	m := &Manifest{Entries: make([]Entry, 0, len(byPath))}
	for _, e := range byPath {
		m.Entries = append(m.Entries, e)
	}
	m.sort()
	return m
}

// Open opens the content of the file p.
func (t *Tree) Open(p string) (io.ReadCloser, error) {
	if o, ok := t.Overrides[p]; ok {
		return io.NopCloser(bytes.NewReader(o.Data)), nil
	}
	return os.Open(filepath.Join(t.Base, filepath.FromSlash(p)))
}

// TemplateDirs are the directories whose *.tmpl files are rendered.
var TemplateDirs = []string{imagespec.DirEtc, imagespec.DirScripts, imagespec.DirManifests}

// Templates lists the template files of t.
func (t *Tree) Templates() []string {
	var out []string
	for _, e := range t.BaseManifest.Entries {
		if e.Type != TypeFile || !strings.HasSuffix(e.Path, imagespec.TemplateSuffix) {
			continue
		}
		for _, d := range TemplateDirs {
			if strings.HasPrefix(e.Path, d+"/") {
				out = append(out, e.Path)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// Render returns t with every template rendered with env (Go text/template with the
// sprig functions; {{ .KEY }} is the env value, missing keys render empty), written
// without the .tmpl suffix and with the template's mode. The templates stay as they are.
func (t *Tree) Render(env map[string]string) (*Tree, error) {
	n := t
	modes := t.BaseManifest.Map()
	for _, p := range t.Templates() {
		src, err := os.ReadFile(filepath.Join(t.Base, filepath.FromSlash(p)))
		if err != nil {
			return nil, err
		}
		tmpl, err := template.New(p).Funcs(sprig.TxtFuncMap()).Option("missingkey=zero").Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", p, err)
		}
		var out bytes.Buffer
		if err := tmpl.Execute(&out, env); err != nil {
			return nil, fmt.Errorf("render %s: %w", p, err)
		}
		n = n.With(strings.TrimSuffix(p, imagespec.TemplateSuffix), out.Bytes(), modes[p].Mode)
	}
	return n, nil
}
