package kubefile

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Expander expands $NAME and ${NAME} (with the ${NAME:-default} family) in words, with
// BuildKit's shell lexer: the rules of a Dockerfile. Quotes are removed the way a shell
// removes them. The zero value uses '\\' as the escape token.
type Expander struct {
	Escape rune
}

// NewExpander returns the expander for f (its escape token).
func (f *File) NewExpander() Expander { return Expander{Escape: f.EscapeToken} }

func (e Expander) lex() *shell.Lex {
	esc := e.Escape
	if esc == 0 {
		esc = '\\'
	}
	return shell.NewLex(esc)
}

// Word expands one word with env (KEY=VALUE items; later items win).
func (e Expander) Word(word string, env []string) (string, error) {
	s, _, err := e.lex().ProcessWord(word, shell.EnvsFromSlice(env))
	return s, err
}

// Words expands and splits a string into words, like a shell.
func (e Expander) Words(word string, env []string) ([]string, error) {
	return e.lex().ProcessWords(word, shell.EnvsFromSlice(env))
}

// text expands variables in free text (a heredoc) and keeps its quotes.
func (e Expander) text(s string, env []string) (string, error) {
	l := e.lex()
	l.SkipProcessQuotes = true
	r, _, err := l.ProcessWord(s, shell.EnvsFromSlice(env))
	return r, err
}

// Expand returns a copy of c with its words expanded with env, for the instructions whose
// words a Dockerfile expands (ENV, LABEL, ARG defaults, COPY/ADD, WORKDIR, USER, EXPOSE,
// VOLUME, STOPSIGNAL). RUN, CMD, ENTRYPOINT and SHELL are returned as they are: their
// variables are the shell's business. Errors name the instruction's file and line.
func (e Expander) Expand(c Command, env []string) (Command, error) {
	var err error
	w := func(s string) string {
		if err != nil {
			return s
		}
		var r string
		r, err = e.Word(s, env)
		return r
	}
	var out Command
	switch c := c.(type) {
	case *EnvCommand:
		n := *c
		n.Env = expandKV(c.Env, w)
		out = &n
	case *LabelCommand:
		n := *c
		n.Labels = expandKV(c.Labels, w)
		out = &n
	case *ArgCommand:
		n := *c
		n.Args = make([]Arg, len(c.Args))
		for i, a := range c.Args {
			n.Args[i] = Arg{Key: a.Key}
			if a.Value != nil {
				v := w(*a.Value)
				n.Args[i].Value = &v
			}
		}
		out = &n
	case *CopyCommand:
		n := *c
		n.Sources = make([]Source, len(c.Sources))
		for i, s := range c.Sources {
			if s.Heredoc != nil {
				h := *s.Heredoc
				if h.Expand && err == nil {
					h.Content, err = e.text(h.Content, env)
				}
				n.Sources[i] = Source{Path: s.Path, Heredoc: &h}
				continue
			}
			n.Sources[i] = Source{Path: w(s.Path)}
		}
		n.Dest = w(c.Dest)
		n.From = w(c.From)
		n.Chmod = w(c.Chmod)
		n.Chown = w(c.Chown)
		n.Exclude = make([]string, len(c.Exclude))
		for i, x := range c.Exclude {
			n.Exclude[i] = w(x)
		}
		out = &n
	case *WorkdirCommand:
		n := *c
		n.Path = w(c.Path)
		out = &n
	case *UserCommand:
		n := *c
		n.User = w(c.User)
		out = &n
	case *StopSignalCommand:
		n := *c
		n.Signal = w(c.Signal)
		out = &n
	case *ExposeCommand:
		n := *c
		n.Ports = nil
		for _, p := range c.Ports {
			if err != nil {
				break
			}
			var ws []string
			ws, err = e.Words(p, env)
			n.Ports = append(n.Ports, ws...)
		}
		out = &n
	case *VolumeCommand:
		n := *c
		n.Volumes = make([]string, len(c.Volumes))
		for i, v := range c.Volumes {
			n.Volumes[i] = w(v)
		}
		out = &n
	case *MaintainerCommand:
		n := *c
		n.Maintainer = w(c.Maintainer)
		out = &n
	default:
		return c, nil
	}
	if err != nil {
		return nil, Errorf(c, "%v", err)
	}
	return out, nil
}

func expandKV(in []KeyValue, w func(string) string) []KeyValue {
	out := make([]KeyValue, len(in))
	for i, kv := range in {
		out[i] = KeyValue{Key: w(kv.Key), Value: w(kv.Value)}
	}
	return out
}

// ResolveMetaArgs returns the values of the ARGs declared before the first FROM: a --build-arg
// value wins over the default; defaults are expanded with the ARGs before them and with
// predefined (e.g. TARGETARCH), which a declaration overrides. An ARG with neither a value
// nor a default is absent from the map.
func (f *File) ResolveMetaArgs(buildArgs, predefined map[string]string) (map[string]string, error) {
	e := f.NewExpander()
	out := map[string]string{}
	for k, v := range predefined {
		out[k] = v
	}
	for _, c := range f.MetaArgs {
		for _, a := range c.Args {
			if v, ok := buildArgs[a.Key]; ok {
				out[a.Key] = v
				continue
			}
			if a.Value == nil {
				continue
			}
			v, err := e.Word(*a.Value, EnvList(out))
			if err != nil {
				return nil, Errorf(c, "%v", err)
			}
			out[a.Key] = v
		}
	}
	return out, nil
}

// EnvList turns a map into sorted KEY=VALUE items.
func EnvList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// BaseOf returns the FROM image and platform of s with the meta args expanded.
func (f *File) BaseOf(s *Stage, metaArgs map[string]string) (base, platform string, err error) {
	e := f.NewExpander()
	env := EnvList(metaArgs)
	base, err = e.Word(s.Base, env)
	if err != nil {
		return "", "", StageErrorf(s, "%v", err)
	}
	if base == "" {
		return "", "", StageErrorf(s, "image %q expands to an empty name: set it with --build-arg or give the ARG a default", s.Base)
	}
	if s.Platform != "" {
		platform, err = e.Word(s.Platform, env)
		if err != nil {
			return "", "", StageErrorf(s, "%v", err)
		}
	}
	return base, platform, nil
}

// Target returns the stage named name, or the last stage when name is "".
func (f *File) Target(name string) (*Stage, error) {
	if name == "" {
		return f.Stages[len(f.Stages)-1], nil
	}
	if s := f.StageByName(name, len(f.Stages)); s != nil {
		return s, nil
	}
	var names []string
	for _, s := range f.Stages {
		if s.Name != "" {
			names = append(names, s.Name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: target stage %q not found: no stage is named (use FROM <image> AS <name>)", f.Name, name)
	}
	return nil, fmt.Errorf("%s: target stage %q not found: stages are %s", f.Name, name, strings.Join(names, ", "))
}

// StageByName returns the stage among the first `before` stages whose name (case
// insensitive) or index is ref, or nil.
func (f *File) StageByName(ref string, before int) *Stage {
	ref = strings.ToLower(ref)
	for _, s := range f.Stages[:min(before, len(f.Stages))] {
		if s.Name != "" && s.Name == ref {
			return s
		}
		if fmt.Sprint(s.Index) == ref {
			return s
		}
	}
	return nil
}

// BaseImages returns the images the stages are built FROM, in file order and each once,
// with the meta args resolved from buildArgs and predefined: scratch and the names of
// earlier stages are left out.
func (f *File) BaseImages(buildArgs, predefined map[string]string) ([]string, error) {
	meta, err := f.ResolveMetaArgs(buildArgs, predefined)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, s := range f.Stages {
		base, _, err := f.BaseOf(s, meta)
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(base, "scratch") || f.StageByName(base, i) != nil || slices.Contains(out, base) {
			continue
		}
		out = append(out, base)
	}
	return out, nil
}

// StaticEnv is the environment the Kubefile's ENV instructions give the target stage (""
// for the last), following FROM through earlier stages, with ARGs from buildArgs and their
// defaults. What a FROM image brings is not known here and is left out: it serves to
// render templates before the build (image detection), not to replace the built config.
func (f *File) StaticEnv(target string, buildArgs map[string]string) (map[string]string, error) {
	stage, err := f.Target(target)
	if err != nil {
		return nil, err
	}
	meta, err := f.ResolveMetaArgs(buildArgs, nil)
	if err != nil {
		return nil, err
	}
	var chain []*Stage
	for s := stage; s != nil && len(chain) <= len(f.Stages); {
		chain = append([]*Stage{s}, chain...)
		base, _, err := f.BaseOf(s, meta)
		if err != nil {
			return nil, err
		}
		s = f.StageByName(base, s.Index)
	}
	e := f.NewExpander()
	env := map[string]string{}
	for _, s := range chain {
		args := map[string]string{}
		scope := func() []string {
			all := maps.Clone(args)
			maps.Copy(all, env)
			return EnvList(all)
		}
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *ArgCommand:
				for _, a := range c.Args {
					switch v, ok := buildArgs[a.Key]; {
					case ok:
						args[a.Key] = v
					case a.Value != nil:
						if args[a.Key], err = e.Word(*a.Value, scope()); err != nil {
							return nil, Errorf(c, "%v", err)
						}
					default:
						if v, ok := meta[a.Key]; ok {
							args[a.Key] = v
						}
					}
				}
			case *EnvCommand:
				for _, kv := range c.Env {
					v, err := e.Word(kv.Value, scope())
					if err != nil {
						return nil, Errorf(c, "%v", err)
					}
					env[kv.Key] = v
				}
			}
		}
	}
	return env, nil
}
