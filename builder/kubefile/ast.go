// Package kubefile parses Kubefiles: the Dockerfile dialect that describes a cluster image.
//
// Lexing (line continuations, heredocs, the escape directive, JSON and shell forms) is
// BuildKit's frontend/dockerfile/parser; this package gives the raw nodes their meaning as
// Kubefile instructions, checks their arguments and reports every error as
// "file:line: INSTRUCTION: what is wrong". Words keep their quotes and variables: they are
// expanded later, per stage, with Expand and the stage's ARG and ENV values.
package kubefile

import "fmt"

// File is a parsed Kubefile.
type File struct {
	// Name is the file name used in messages, e.g. "Kubefile".
	Name string
	// EscapeToken is '\\' or '`' (from the "# escape=" directive).
	EscapeToken rune
	// MetaArgs are the ARG instructions before the first FROM; they may be used in FROM.
	MetaArgs []*ArgCommand
	// Stages in file order; there is at least one.
	Stages []*Stage
	// Source is the text that was parsed (for source maps in build errors).
	Source []byte
}

// Stage is one FROM and the instructions up to the next FROM.
type Stage struct {
	Location
	// Index is the position of the stage in the file, from 0.
	Index int
	// Name is the lowercased "AS name", or "" for an unnamed stage.
	Name string
	// Base is the image reference as written after FROM: "scratch", a stage name, an image
	// reference, possibly with $VARS from the meta args.
	Base string
	// Platform is the --platform value as written, or "".
	Platform string
	// Commands are the stage's instructions in order, FROM excluded.
	Commands []Command
}

// Location is where an instruction is in its file.
type Location struct {
	File    string
	Line    int // first line, from 1
	EndLine int // last line, including continuations and heredocs
	// Text is the instruction as written, continuations joined, heredoc bodies left out.
	Text string
}

// String returns "file:line".
func (l Location) String() string { return fmt.Sprintf("%s:%d", l.File, l.Line) }

// Loc returns the location itself; it makes every command a Located.
func (l Location) Loc() Location { return l }

// Command is one instruction of a stage.
type Command interface {
	// Instruction is the upper-case instruction name, e.g. "COPY".
	Instruction() string
	// Loc is where the instruction is.
	Loc() Location
}

// KeyValue is one NAME=value pair of ENV or LABEL. Value is raw (quotes kept) until expanded.
type KeyValue struct {
	Key   string
	Value string
}

// Arg is one ARG declaration. Value is nil when the ARG has no default.
type Arg struct {
	Key   string
	Value *string
}

// Heredoc is an inline document of COPY, ADD or RUN.
type Heredoc struct {
	// Name is the terminator word, e.g. "EOF".
	Name string
	// Content is the text between the instruction and the terminator; leading tabs are
	// already removed for "<<-" heredocs.
	Content string
	// Expand is true when the terminator was not quoted: $VARS in Content are expanded
	// (COPY and ADD only; RUN leaves them to the shell).
	Expand bool
}

// ArgCommand is ARG NAME[=default] ...
type ArgCommand struct {
	Location
	Args []Arg
}

// EnvCommand is ENV NAME=value ... (or the legacy ENV NAME value).
type EnvCommand struct {
	Location
	Env []KeyValue
}

// LabelCommand is LABEL key=value ...
type LabelCommand struct {
	Location
	Labels []KeyValue
}

// Source is one source of COPY or ADD: a path in the context (or the --from stage or
// image), a URL (ADD only), or an inline heredoc file.
type Source struct {
	Path    string
	Heredoc *Heredoc
}

// CopyCommand is COPY or ADD.
type CopyCommand struct {
	Location
	// Add is true for ADD: URLs are downloaded and local tar archives are unpacked.
	Add     bool
	Sources []Source
	Dest    string
	// From is the --from stage name, stage index or image reference, or "" for the context.
	From  string
	Chmod string
	Chown string
	Link  bool
	// Exclude holds the --exclude patterns.
	Exclude []string
	// Checksum is ADD --checksum (for URLs).
	Checksum string
}

// RunCommand is RUN, in exec form (["prog", "arg"]) or shell form (PrependShell).
type RunCommand struct {
	Location
	// Args is the exec argv, or for the shell form a single element: the script.
	Args         []string
	PrependShell bool
	Heredocs     []Heredoc
	// Network is the --network value ("default", "none", "host"), or "".
	Network string
}

// CmdCommand is CMD; in a cluster image it is what the apply engine runs.
type CmdCommand struct {
	Location
	Args         []string
	PrependShell bool
}

// EntrypointCommand is ENTRYPOINT; its items run before CMD's.
type EntrypointCommand struct {
	Location
	Args         []string
	PrependShell bool
}

// WorkdirCommand is WORKDIR path.
type WorkdirCommand struct {
	Location
	Path string
}

// UserCommand is USER name[:group].
type UserCommand struct {
	Location
	User string
}

// ExposeCommand is EXPOSE port[/proto] ...
type ExposeCommand struct {
	Location
	Ports []string
}

// VolumeCommand is VOLUME path ...
type VolumeCommand struct {
	Location
	Volumes []string
}

// ShellCommand is SHELL ["exe", "arg"]: the shell of later shell-form instructions.
type ShellCommand struct {
	Location
	Shell []string
}

// MaintainerCommand is the deprecated MAINTAINER name; it becomes a label.
type MaintainerCommand struct {
	Location
	Maintainer string
}

// StopSignalCommand is STOPSIGNAL signal.
type StopSignalCommand struct {
	Location
	Signal string
}

func (*ArgCommand) Instruction() string        { return "ARG" }
func (*EnvCommand) Instruction() string        { return "ENV" }
func (*LabelCommand) Instruction() string      { return "LABEL" }
func (*RunCommand) Instruction() string        { return "RUN" }
func (*CmdCommand) Instruction() string        { return "CMD" }
func (*EntrypointCommand) Instruction() string { return "ENTRYPOINT" }
func (*WorkdirCommand) Instruction() string    { return "WORKDIR" }
func (*UserCommand) Instruction() string       { return "USER" }
func (*ExposeCommand) Instruction() string     { return "EXPOSE" }
func (*VolumeCommand) Instruction() string     { return "VOLUME" }
func (*ShellCommand) Instruction() string      { return "SHELL" }
func (*MaintainerCommand) Instruction() string { return "MAINTAINER" }
func (*StopSignalCommand) Instruction() string { return "STOPSIGNAL" }

// Instruction returns "COPY" or "ADD".
func (c *CopyCommand) Instruction() string {
	if c.Add {
		return "ADD"
	}
	return "COPY"
}
