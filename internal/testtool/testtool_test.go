package testtool

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
)

// recorder is a testing.TB that records how the test ended.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func run(fn func(t testing.TB)) *recorder {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r
}

func TestMissingSkipsByHandAndFailsInCI(t *testing.T) {
	const tool = "sealos-no-such-tool"
	for _, c := range []struct {
		ci   string
		fail bool
	}{{"", false}, {"false", false}, {"0", false}, {"true", true}, {"1", true}, {"yes", true}} {
		t.Setenv("CI", c.ci)
		r := run(func(t testing.TB) { Require(t, tool) })
		if c.fail {
			assert.Contains(t, r.failed, tool+" is not installed", "CI=%q", c.ci)
			assert.Empty(t, r.skipped)
		} else {
			assert.Contains(t, r.skipped, tool+" is not installed", "CI=%q", c.ci)
			assert.Empty(t, r.failed)
		}
	}
	t.Setenv("CI", "true")
	r := run(func(t testing.TB) { RequireFile(t, "/no/such/file", "nothing provides it") })
	assert.Contains(t, r.failed, "/no/such/file is missing (nothing provides it)")
	r = run(func(t testing.TB) { Require(t, "sh") })
	assert.Empty(t, r.failed+r.skipped, "a tool that is there ends nothing")
}
