package platform

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]string{
		"linux/amd64":    "linux/amd64",
		"linux/x86_64":   "linux/amd64",
		"linux/aarch64":  "linux/arm64",
		"linux/arm64/v8": "linux/arm64/v8",
		"linux/arm/v7":   "linux/arm/v7",
		"windows/amd64":  "windows/amd64",
		"amd64":          runtime.GOOS + "/amd64",
	} {
		p, err := Parse(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, p.String(), in)
	}
	for in, msg := range map[string]string{
		"linux/notanarch":  `unknown architecture "notanarch"`,
		"bogus":            "want os/arch",
		"plan10/amd64":     `unknown operating system "plan10"`,
		"":                 "want os/arch",
		"linux/amd64/v2/x": "want os/arch",
	} {
		_, err := Parse(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), msg, in)
	}
}
