package kubefile

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParse parses a 1000-instruction Kubefile (COPY, ENV, LABEL, RUN with
// continuations), about the largest a real one gets.
func BenchmarkParse(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("ARG BASE=scratch\nFROM ${BASE} AS a\n")
	for i := range 250 {
		fmt.Fprintf(&sb, "COPY --chmod=0644 files/%d /opt/%d/\nENV K%d=v%d\nLABEL l%d=\"x y\"\nRUN echo %d \\\n  && true\n", i, i, i, i, i, i)
	}
	src := sb.String()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := Parse("Kubefile", strings.NewReader(src)); err != nil {
			b.Fatal(err)
		}
	}
}
