package kubefile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Names are the file names FindKubefile looks for, in order.
var Names = []string{"Kubefile", "Sealfile", "Dockerfile", "Containerfile"}

// FindKubefile returns the path of the build file in contextDir: the first of Kubefile,
// Sealfile, Dockerfile and Containerfile that exists.
func FindKubefile(contextDir string) (string, error) {
	for _, n := range Names {
		p := filepath.Join(contextDir, n)
		st, err := os.Stat(p)
		if err == nil && !st.IsDir() {
			return p, nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("find Kubefile: %w", err)
		}
	}
	return "", fmt.Errorf("no Kubefile, Sealfile, Dockerfile or Containerfile in %s: add one or name it with -f", contextDir)
}

// ParseFile reads and parses the Kubefile at path; messages name the path as given.
func ParseFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read Kubefile: %w", err)
	}
	defer f.Close()
	return Parse(path, f)
}

const emptyMsg = "the file has no instructions: a Kubefile needs at least a FROM line"

// Parse reads a Kubefile from r. filename is used in messages only. Errors are *Error.
func Parse(filename string, r io.Reader) (*File, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filename, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &Error{File: filename, Msg: emptyMsg}
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, lexError(filename, data, err)
	}
	f := &File{Name: filename, EscapeToken: res.EscapeToken, Source: data}
	var cur *Stage
	names := map[string]*Stage{}
	for _, n := range res.AST.Children {
		nd := newNode(filename, n)
		if nd.name == "FROM" {
			s, err := nd.parseFrom(len(f.Stages))
			if err != nil {
				return nil, err
			}
			if s.Name != "" {
				if prev, ok := names[s.Name]; ok {
					return nil, nd.errorf("duplicate stage name %q (first used at %s)", s.Name, prev.Location)
				}
				names[s.Name] = s
			}
			f.Stages = append(f.Stages, s)
			cur = s
			continue
		}
		c, err := nd.dispatch()
		if err != nil {
			return nil, err
		}
		if cur == nil {
			a, ok := c.(*ArgCommand)
			if !ok {
				return nil, nd.errorf("comes before the first FROM: only ARG may come before FROM")
			}
			f.MetaArgs = append(f.MetaArgs, a)
			continue
		}
		cur.Commands = append(cur.Commands, c)
	}
	if len(f.Stages) == 0 {
		return nil, &Error{File: filename, Msg: "no FROM instruction: every Kubefile starts a stage with FROM (FROM scratch for an empty one)"}
	}
	return f, nil
}

// lexError turns a BuildKit parser error into an *Error with the line and instruction.
func lexError(filename string, data []byte, err error) error {
	line := 0
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		line = le.Locations[0][0].Start.Line
	}
	msg := err.Error()
	if le != nil {
		msg = le.Unwrap().Error()
	}
	lines := strings.Split(string(data), "\n")
	if line <= 0 {
		line = 1
	}
	instr := ""
	if line-1 < len(lines) {
		w := strings.Fields(lines[line-1])
		if len(w) > 0 {
			up := strings.ToUpper(w[0])
			for _, k := range Instructions {
				if k == up {
					instr = up
				}
			}
		}
	}
	if instr != "" {
		msg = strings.TrimPrefix(msg, instr+" ")
		msg = strings.TrimPrefix(msg, strings.ToLower(instr)+" ")
	}
	switch msg {
	case "file with no instructions":
		return &Error{File: filename, Msg: emptyMsg}
	case "unterminated heredoc":
		msg = "heredoc is not terminated: end it with a line holding only its terminator word"
	}
	return &Error{File: filename, Line: line, Instruction: instr, Msg: msg}
}

// node is one lexed instruction, ready for dispatch.
type node struct {
	loc      Location
	name     string // upper case as written
	args     []string
	json     bool
	flags    []string
	heredocs []parser.Heredoc
	n        *parser.Node
}

func newNode(filename string, n *parser.Node) *node {
	nd := &node{
		loc:      Location{File: filename, Line: n.StartLine, EndLine: n.EndLine, Text: strings.TrimSpace(n.Original)},
		name:     strings.ToUpper(n.Value),
		json:     n.Attributes["json"],
		flags:    n.Flags,
		heredocs: n.Heredocs,
		n:        n,
	}
	for a := n.Next; a != nil; a = a.Next {
		nd.args = append(nd.args, a.Value)
	}
	return nd
}

func (nd *node) errorf(format string, args ...any) error {
	return &Error{File: nd.loc.File, Line: nd.loc.Line, Instruction: nd.name, Msg: fmt.Sprintf(format, args...)}
}

// flagSpec says which flags an instruction accepts: name -> boolean?
type flagSpec map[string]bool

type flagValues map[string][]string

func (v flagValues) get(name string) string {
	if s := v[name]; len(s) > 0 {
		return s[len(s)-1]
	}
	return ""
}

// repeatable flags may be given more than once.
var repeatable = map[string]bool{"exclude": true}

func (nd *node) parseFlags(spec flagSpec) (flagValues, error) {
	out := flagValues{}
	for _, f := range nd.flags {
		if !strings.HasPrefix(f, "--") || len(f) == 2 {
			return nil, nd.errorf("bad flag %q: flags look like --name=value", f)
		}
		name, val, hasVal := strings.Cut(f[2:], "=")
		isBool, ok := spec[name]
		if !ok {
			return nil, nd.errorf("unknown flag --%s%s", name, acceptedFlags(nd.name, spec))
		}
		if len(out[name]) > 0 && !repeatable[name] {
			return nil, nd.errorf("flag --%s is given twice", name)
		}
		if isBool {
			if !hasVal {
				val = "true"
			}
			if _, err := strconv.ParseBool(val); err != nil {
				return nil, nd.errorf("flag --%s takes true or false, not %q", name, val)
			}
		} else if !hasVal || val == "" {
			return nil, nd.errorf("flag --%s needs a value, e.g. --%s=%s", name, name, flagExample[name])
		}
		out[name] = append(out[name], val)
	}
	return out, nil
}

var flagExample = map[string]string{
	"from": "builder", "chmod": "0755", "chown": "1000:1000", "platform": "linux/amd64",
	"exclude": "'*.md'", "checksum": "sha256:<hex>", "network": "none",
}

func acceptedFlags(instr string, spec flagSpec) string {
	if len(spec) == 0 {
		return " (" + instr + " takes no flags)"
	}
	var names []string
	for k := range spec {
		names = append(names, "--"+k)
	}
	sort.Strings(names)
	return " (" + instr + " accepts " + strings.Join(names, ", ") + ")"
}

var stageName = regexp.MustCompile(`^[a-z][a-z0-9\-_.]*$`)

func (nd *node) parseFrom(index int) (*Stage, error) {
	fl, err := nd.parseFlags(flagSpec{"platform": false})
	if err != nil {
		return nil, err
	}
	s := &Stage{Location: nd.loc, Index: index, Platform: fl.get("platform")}
	switch {
	case len(nd.args) == 1:
	case len(nd.args) == 3 && strings.EqualFold(nd.args[1], "AS"):
		s.Name = strings.ToLower(nd.args[2])
		if !stageName.MatchString(s.Name) {
			return nil, nd.errorf("invalid stage name %q: use lower-case letters, digits, '-', '_' and '.', starting with a letter", nd.args[2])
		}
	case len(nd.args) == 0:
		return nil, nd.errorf("requires an image: FROM <image> [AS <name>] (FROM scratch for an empty base)")
	default:
		return nil, nd.errorf("expected FROM <image> [AS <name>], got %q", strings.Join(nd.args, " "))
	}
	s.Base = nd.args[0]
	return s, nil
}

func (nd *node) noFlags() error {
	_, err := nd.parseFlags(flagSpec{})
	return err
}

func (nd *node) dispatch() (Command, error) {
	switch nd.name {
	case "ARG":
		return nd.parseArg()
	case "ENV":
		kv, err := nd.keyValues("NAME=value")
		if err != nil {
			return nil, err
		}
		return &EnvCommand{Location: nd.loc, Env: kv}, nil
	case "LABEL":
		kv, err := nd.keyValues("key=value")
		if err != nil {
			return nil, err
		}
		return &LabelCommand{Location: nd.loc, Labels: kv}, nil
	case "COPY", "ADD":
		return nd.parseCopy()
	case "RUN":
		return nd.parseRun()
	case "CMD", "ENTRYPOINT":
		if err := nd.noFlags(); err != nil {
			return nil, err
		}
		if len(nd.args) == 0 && !nd.json {
			return nil, nd.errorf(`requires a command, e.g. %s ["bash", "init.sh"] (%s [] clears it)`, nd.name, nd.name)
		}
		args, shell := nd.shellForm()
		if nd.name == "CMD" {
			return &CmdCommand{Location: nd.loc, Args: args, PrependShell: shell}, nil
		}
		return &EntrypointCommand{Location: nd.loc, Args: args, PrependShell: shell}, nil
	case "WORKDIR":
		s, err := nd.oneArg("a directory, e.g. WORKDIR /opt/app")
		if err != nil {
			return nil, err
		}
		return &WorkdirCommand{Location: nd.loc, Path: s}, nil
	case "USER":
		s, err := nd.oneArg("a user, e.g. USER 1000:1000")
		if err != nil {
			return nil, err
		}
		return &UserCommand{Location: nd.loc, User: s}, nil
	case "MAINTAINER":
		s, err := nd.oneArg("a name")
		if err != nil {
			return nil, err
		}
		return &MaintainerCommand{Location: nd.loc, Maintainer: s}, nil
	case "STOPSIGNAL":
		s, err := nd.oneArg("a signal, e.g. STOPSIGNAL SIGTERM")
		if err != nil {
			return nil, err
		}
		return &StopSignalCommand{Location: nd.loc, Signal: s}, nil
	case "EXPOSE":
		if err := nd.noFlags(); err != nil {
			return nil, err
		}
		if len(nd.args) == 0 {
			return nil, nd.errorf("requires at least one port, e.g. EXPOSE 6443/tcp")
		}
		return &ExposeCommand{Location: nd.loc, Ports: nd.args}, nil
	case "VOLUME":
		if err := nd.noFlags(); err != nil {
			return nil, err
		}
		if len(nd.args) == 0 {
			return nil, nd.errorf("requires at least one path")
		}
		for _, v := range nd.args {
			if strings.TrimSpace(v) == "" {
				return nil, nd.errorf("a volume path cannot be empty")
			}
		}
		return &VolumeCommand{Location: nd.loc, Volumes: nd.args}, nil
	case "SHELL":
		if err := nd.noFlags(); err != nil {
			return nil, err
		}
		if !nd.json || len(nd.args) == 0 {
			return nil, nd.errorf(`requires a JSON array, e.g. SHELL ["/bin/bash", "-c"]`)
		}
		return &ShellCommand{Location: nd.loc, Shell: nd.args}, nil
	}
	if msg, ok := unsupported[nd.name]; ok {
		return nil, &Error{File: nd.loc.File, Line: nd.loc.Line, Msg: msg}
	}
	raw := nd.n.Value
	msg := fmt.Sprintf("unknown instruction %q", raw)
	if s := suggest(raw); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	} else {
		msg += " (a Kubefile takes Dockerfile instructions: FROM, ARG, ENV, LABEL, COPY, ADD, RUN, WORKDIR, CMD, ENTRYPOINT, ...; see Kubefile.md)"
	}
	return nil, &Error{File: nd.loc.File, Line: nd.loc.Line, Msg: msg}
}

// shellForm returns the argv of a JSON-form instruction, or the single script of a shell-form
// one with shell=true.
func (nd *node) shellForm() (args []string, shell bool) {
	if nd.json {
		return append([]string{}, nd.args...), false
	}
	return append([]string{}, nd.args...), true
}

func (nd *node) oneArg(what string) (string, error) {
	if err := nd.noFlags(); err != nil {
		return "", err
	}
	if len(nd.args) != 1 || strings.TrimSpace(nd.args[0]) == "" {
		return "", nd.errorf("requires exactly one argument: %s", what)
	}
	return nd.args[0], nil
}

func (nd *node) keyValues(form string) ([]KeyValue, error) {
	if err := nd.noFlags(); err != nil {
		return nil, err
	}
	if len(nd.args) == 0 {
		return nil, nd.errorf("requires at least one %s", form)
	}
	if len(nd.args)%3 != 0 {
		return nil, nd.errorf("malformed arguments: use %s", form)
	}
	var out []KeyValue
	for i := 0; i < len(nd.args); i += 3 {
		k := nd.args[i]
		if k == "" {
			return nil, nd.errorf("empty name in %s", form)
		}
		out = append(out, KeyValue{Key: k, Value: nd.args[i+1]})
	}
	return out, nil
}

func (nd *node) parseArg() (Command, error) {
	if err := nd.noFlags(); err != nil {
		return nil, err
	}
	if len(nd.args) == 0 {
		return nil, nd.errorf("requires a name, e.g. ARG VERSION or ARG VERSION=v1.0")
	}
	c := &ArgCommand{Location: nd.loc}
	for _, w := range nd.args {
		k, v, hasVal := strings.Cut(w, "=")
		if k == "" {
			return nil, nd.errorf("missing name in %q: use ARG NAME[=default]", w)
		}
		if strings.ContainsAny(k, "$ \t'\"") {
			return nil, nd.errorf("invalid name %q: use ARG NAME[=default]", k)
		}
		a := Arg{Key: k}
		if hasVal {
			a.Value = &v
		}
		c.Args = append(c.Args, a)
	}
	return c, nil
}

func (nd *node) parseCopy() (Command, error) {
	add := nd.name == "ADD"
	spec := flagSpec{"from": false, "chmod": false, "chown": false, "link": true, "exclude": false}
	if add {
		delete(spec, "from")
		spec["checksum"] = false
	}
	fl, err := nd.parseFlags(spec)
	if err != nil {
		return nil, err
	}
	if len(nd.args) < 2 {
		return nil, nd.errorf("requires at least two arguments: %s <src>... <dest>", nd.name)
	}
	c := &CopyCommand{
		Location: nd.loc, Add: add,
		Dest:  nd.args[len(nd.args)-1],
		From:  fl.get("from"),
		Chmod: fl.get("chmod"), Chown: fl.get("chown"),
		Exclude: fl["exclude"], Checksum: fl.get("checksum"),
	}
	if v := fl.get("link"); v != "" {
		c.Link, _ = strconv.ParseBool(v)
	}
	if h, _ := parser.ParseHeredoc(c.Dest); h != nil && !nd.json {
		return nil, nd.errorf("the destination cannot be a heredoc")
	}
	docs := map[string]parser.Heredoc{}
	for _, h := range nd.heredocs {
		docs[h.Name] = h
	}
	for _, src := range nd.args[:len(nd.args)-1] {
		if !nd.json {
			if h, _ := parser.ParseHeredoc(src); h != nil {
				d, ok := docs[h.Name]
				if !ok {
					return nil, nd.errorf("heredoc %s has no content", src)
				}
				content := d.Content
				if d.Chomp {
					content = parser.ChompHeredocContent(content)
				}
				c.Sources = append(c.Sources, Source{Path: h.Name, Heredoc: &Heredoc{Name: h.Name, Content: content, Expand: d.Expand}})
				continue
			}
		}
		if strings.TrimSpace(src) == "" {
			return nil, nd.errorf("a source cannot be empty")
		}
		c.Sources = append(c.Sources, Source{Path: src})
	}
	return c, nil
}

func (nd *node) parseRun() (Command, error) {
	fl, err := nd.parseFlags(flagSpec{"network": false})
	if err != nil {
		return nil, err
	}
	if len(nd.args) == 0 {
		return nil, nd.errorf(`requires a command, e.g. RUN echo hi or RUN ["echo", "hi"]`)
	}
	switch n := fl.get("network"); n {
	case "", "default", "none", "host":
	default:
		return nil, nd.errorf("unknown network %q: use default, none or host", n)
	}
	args, shell := nd.shellForm()
	c := &RunCommand{Location: nd.loc, Args: args, PrependShell: shell, Network: fl.get("network")}
	for _, h := range nd.heredocs {
		content := h.Content
		if h.Chomp {
			content = parser.ChompHeredocContent(content)
		}
		c.Heredocs = append(c.Heredocs, Heredoc{Name: h.Name, Content: content, Expand: h.Expand})
	}
	return c, nil
}
