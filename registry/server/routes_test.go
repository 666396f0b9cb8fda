package server

import (
	"regexp"
	"strings"
	"testing"

	"github.com/cluster-image/sealos/internal/testtool"
)

// The hand-written checks accept exactly what distribution's patterns accept.
func TestValidTagAndUploadIDMatchTheirPatterns(t *testing.T) {
	tagRE := regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	idRE := regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	cases := []string{"", "v1", "latest", "_x", ".x", "-x", "a.b-c_d", "a/b", "a:b", "é",
		strings.Repeat("a", 128), strings.Repeat("a", 129), "A-Z_09", "x y", "x\n"}
	cases = append(cases, testtool.RandomStrings(1, 20000, 130, "aZ09_.-/:é \x00")...)
	for _, c := range cases {
		if got, want := validTag(c), tagRE.MatchString(c); got != want {
			t.Fatalf("validTag(%q) = %v, the pattern says %v", c, got, want)
		}
		if got, want := validUploadID(c), idRE.MatchString(c); got != want {
			t.Fatalf("validUploadID(%q) = %v, the pattern says %v", c, got, want)
		}
	}
}
