package main

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/cluster-image/sealos/internal/gcmode"
)

// TestMain turns the collector back on: package gcmode pauses it at init for the sealos
// process, whose root command picks a mode before any command runs; tests run none first.
func TestMain(m *testing.M) {
	gcmode.Normal()
	code := m.Run()
	if kubeRoot.dir != "" {
		os.RemoveAll(kubeRoot.dir)
	}
	os.Exit(code)
}

// The transfer commands run with the collector off up to gcmode.BatchLimit; the others, the
// long-running ones among them, as GOGC says.
func TestGCModeOfCommands(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	defer gcmode.Normal()
	root := newRootCmd()
	for _, tc := range []struct {
		args  []string
		batch bool
	}{
		{[]string{"push"}, true},
		{[]string{"pull"}, true},
		{[]string{"save"}, true},
		{[]string{"load"}, true},
		{[]string{"build"}, false},
		{[]string{"registry", "serve"}, false},
		{[]string{"run"}, false},
		{[]string{"images"}, false},
	} {
		cmd, _, err := root.Find(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		root.PersistentPreRun(cmd, nil)
		percent := debug.SetGCPercent(-1)
		debug.SetGCPercent(percent)
		limit := debug.SetMemoryLimit(-1)
		if batch := percent < 0 && limit == gcmode.BatchLimit; batch != tc.batch {
			t.Errorf("%v: GC percent %d, memory limit %d; batch mode %v, want %v", tc.args, percent, limit, batch, tc.batch)
		}
	}
}
