package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/apply"
)

// Bad values of flags are refused with a line that names the flag, before anything is
// done; nothing is silently taken to mean something else.
func TestBadFlagsRefused(t *testing.T) {
	root := t.TempDir()
	ctx := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(ctx, "Kubefile"), []byte("FROM scratch\nCOPY Kubefile .\n"), 0o644))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pull", "--platform", "bogus", "localhost:1/x:1"}, `--platform "bogus": want os/arch`},
		{[]string{"pull", "--platform", "linux/notanarch", "localhost:1/x:1"}, `--platform "linux/notanarch": unknown architecture "notanarch"`},
		{[]string{"build", "--platform", "linux/notanarch", "-t", "x:1", ctx}, `unknown architecture "notanarch"`},
		{[]string{"build", "--platform", "plan10/amd64", "-t", "x:1", ctx}, `unknown operating system "plan10"`},
		{[]string{"inspect", "--platform", "linux/", "x:1"}, `--platform "linux/"`},
		{[]string{"registry", "sync", "--platform", "linux/zz", "localhost:1/a", "localhost:2"}, `unknown architecture "zz"`},
		{[]string{"registry", "save", "--platform", "windoze/amd64", ctx}, `unknown operating system "windoze"`},
		{[]string{"push", "-j", "0", "x:1"}, "--jobs 0: give at least 1"},
		{[]string{"push", "-j", "-3", "x:1"}, "--jobs -3: give at least 1"},
		{[]string{"pull", "-j", "0", "localhost:1/x:1"}, "--jobs 0: give at least 1"},
		{[]string{"registry", "sync", "--image-jobs", "0", "localhost:1/a", "localhost:2"}, "--image-jobs 0: give at least 1"},
		{[]string{"registry", "save", "--max-pull-procs", "0", ctx}, "--max-pull-procs 0: give at least 1"},
		{[]string{"run", "--compress", "brotli", "x:1", "--masters", "127.0.0.1"}, `--compress: compression "brotli": use zstd, gzip or none`},
		{[]string{"run", "--parallel", "0", "x:1", "--masters", "127.0.0.1"}, "--parallel 0: give at least 1"},
	} {
		r := sealos(t, nil, "", append([]string{"--root", root}, tc.args...)...)
		name := strings.Join(tc.args, " ")
		assert.Error(t, r.err, name)
		assert.Contains(t, r.stderr, tc.want, name)
	}
	_, err := os.Stat(filepath.Join(root, "clusters"))
	assert.True(t, os.IsNotExist(err), "no cluster state was recorded")
}

// A run of an image that does not resolve says so once and records nothing: the next
// run does not try the typo again.
func TestRunUnknownImageRecordsNothing(t *testing.T) {
	root := t.TempDir()
	r := sealos(t, nil, "", "--root", root, "run", "nosuch:img", "--masters", "127.0.0.1", "--no-pull")
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "plan: image nosuch:img")
	assert.NotContains(t, r.stderr, "plan: plan:")
	_, err := apply.LoadState(root, "default")
	assert.ErrorIs(t, err, os.ErrNotExist, "the typo is not recorded")
}

// load with an empty stdin says the input is empty, not that stdin is a terminal.
func TestLoadEmptyInput(t *testing.T) {
	devnull, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer devnull.Close()
	cmd := exec.Command(sealosBin(t), "--root", t.TempDir(), "load")
	cmd.Stdin = devnull
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "the input is empty")
	assert.NotContains(t, string(out), "terminal")
}
