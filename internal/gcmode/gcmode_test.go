package gcmode

import (
	"runtime/debug"
	"testing"
)

// state reads the collector's settings without changing them.
func state() (percent int, limit int64) {
	percent = debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	return percent, debug.SetMemoryLimit(-1)
}

func TestModes(t *testing.T) {
	// the test binary has no GOGC or GOMEMLIMIT unless whoever runs it set them
	if p, l := state(); p != -1 || l != limit {
		t.Fatalf("at start: GC percent %d, limit %d; want paused (-1) and the limit untouched", p, l)
	}
	Normal()
	if p, l := state(); p != percent || l != limit {
		t.Fatalf("Normal: GC percent %d, limit %d; want %d and %d", p, l, percent, limit)
	}
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	Batch()
	if p, l := state(); p != -1 || l != BatchLimit {
		t.Fatalf("Batch: GC percent %d, limit %d; want -1 and %d", p, l, BatchLimit)
	}
	Normal()
	t.Setenv("GOGC", "50")
	Batch()
	if p, l := state(); p != percent || l != limit {
		t.Fatalf("Batch with GOGC set: GC percent %d, limit %d; want the user's %d and %d", p, l, percent, limit)
	}
}
