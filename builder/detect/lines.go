package detect

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Warning is something detection skipped or guessed, at a place of the build context.
type Warning struct {
	File string `json:"file"`
	// Line is 1-based; 0 when the warning is about the whole file.
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

func (w Warning) String() string {
	if w.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", w.File, w.Line, w.Message)
	}
	return w.File + ": " + w.Message
}

// ScanLines adds the images named by "image:" fields of data, read line by line as sealos
// reads manifests, for files that are not YAML a parser accepts (duplicate keys, template
// fragments). A line counts when its key is exactly "image" (a list item's too) and its
// value is one reference; values that are template fragments or not references are
// skipped with a warning.
func ScanLines(data []byte, file, prefix string, res *Result) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for n := 1; sc.Scan(); n++ {
		ref, ok := imageField(sc.Text())
		if !ok {
			continue
		}
		if strings.Contains(ref, "{{") || strings.Contains(ref, "}}") {
			res.warn(file, n, fmt.Sprintf("%simage %q is an unrendered template: skipped", prefix, ref))
			continue
		}
		if _, err := name.ParseReference(ref); err != nil {
			res.warn(file, n, fmt.Sprintf("%simage %q is not an image reference: skipped (%v)", prefix, ref, err))
			continue
		}
		res.Add(ref, Source{File: file, Reason: fmt.Sprintf("%sline %d", prefix, n)})
	}
}

// imageField returns the value of an "image: VALUE" line, unquoted and without a trailing
// comment.
func imageField(line string) (string, bool) {
	t := strings.TrimSpace(line)
	if strings.HasPrefix(t, "#") {
		return "", false
	}
	t = strings.TrimSpace(strings.TrimPrefix(t, "- "))
	key, val, ok := strings.Cut(t, ":")
	if !ok || strings.Trim(key, `"'`) != "image" {
		return "", false
	}
	val = strings.TrimSpace(val)
	if i := strings.Index(val, " #"); i >= 0 {
		val = strings.TrimSpace(val[:i])
	}
	if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
		val = val[1 : len(val)-1]
	}
	return val, val != ""
}
