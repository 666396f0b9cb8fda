package kubefile

import (
	"fmt"
	"sort"
	"strings"
)

// Error is a problem with a Kubefile at a known place. Its text is
// "file:line: INSTRUCTION: message", or "file:line: message" when no instruction applies.
type Error struct {
	File        string
	Line        int
	Instruction string // upper case, or ""
	Msg         string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Instruction != "" {
		b.WriteString(e.Instruction)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errorf returns an *Error for the instruction c; the frontend uses it so that errors found
// while building name the same place as parse errors.
func Errorf(c Command, format string, args ...any) error {
	l := c.Loc()
	return &Error{File: l.File, Line: l.Line, Instruction: c.Instruction(), Msg: fmt.Sprintf(format, args...)}
}

// StageErrorf returns an *Error for the FROM of stage s.
func StageErrorf(s *Stage, format string, args ...any) error {
	return &Error{File: s.File, Line: s.Line, Instruction: "FROM", Msg: fmt.Sprintf(format, args...)}
}

// Instructions lists every instruction a Kubefile may use, upper case.
var Instructions = []string{
	"FROM", "ARG", "ENV", "LABEL", "COPY", "ADD", "RUN", "CMD", "ENTRYPOINT",
	"WORKDIR", "USER", "EXPOSE", "VOLUME", "SHELL", "MAINTAINER", "STOPSIGNAL",
}

// unsupported are Dockerfile instructions that mean nothing for a cluster image.
var unsupported = map[string]string{
	"ONBUILD":     "ONBUILD is not supported in a Kubefile: write those instructions in the Kubefile that builds FROM this image",
	"HEALTHCHECK": "HEALTHCHECK is not supported in a Kubefile: cluster images are not run as containers",
	// sealer's Kubefile dialect, which sealer users bring along.
	"APP":         sealerHint("APP"),
	"APPCMDS":     sealerHint("APPCMDS"),
	"LAUNCH":      sealerHint("LAUNCH"),
	"CMDS":        sealerHint("CMDS"),
	"CNI":         sealerHint("CNI"),
	"CSI":         sealerHint("CSI"),
	"KUBEVERSION": sealerHint("KUBEVERSION"),
}

func sealerHint(instr string) string {
	return instr + " is sealer's Kubefile instruction, not a sealos one: COPY the files into the image and run them with CMD (see Kubefile.md)"
}

// suggest returns the known instruction nearest to name, or "" when none is close.
func suggest(name string) string {
	name = strings.ToUpper(name)
	type cand struct {
		s string
		d int
	}
	var cs []cand
	for _, k := range Instructions {
		cs = append(cs, cand{k, levenshtein(name, k)})
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].d < cs[j].d })
	best := cs[0]
	limit := 2
	if len(name) <= 3 {
		limit = 1
	}
	if best.d > limit {
		// A prefix is a good hint too: "ENTRY" -> ENTRYPOINT.
		for _, k := range Instructions {
			if len(name) >= 3 && strings.HasPrefix(k, name) {
				return k
			}
		}
		return ""
	}
	return best.s
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
