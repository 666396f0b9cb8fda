package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/imagespec"
	"github.com/cluster-image/sealos/store"
)

// The store commands are driven through the test binary re-executed as sealos: a
// separate process running the real command line, as the installed binary would.
const envStoreCLI = "SEALOS_TEST_STORE_CLI"

func TestHelperStoreCLI(t *testing.T) {
	if os.Getenv(envStoreCLI) != "1" {
		return // only a helper process for the tests below
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	root := newRootCmd()
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

type cliResult struct {
	stdout, stderr string
	err            error
}

// sealosCLI runs `sealos --root root args...` in a new process, with stdin: the binary
// $SEALOS_BIN when set (make test sets it), else this test binary as sealos.
func sealosCLI(t testing.TB, root string, stdin []byte, args ...string) cliResult {
	t.Helper()
	var cmd *exec.Cmd
	if bin := os.Getenv("SEALOS_BIN"); bin != "" {
		cmd = exec.Command(bin, append([]string{"--root", root}, args...)...)
	} else {
		cmd = exec.Command(os.Args[0], append([]string{"-test.run=^TestHelperStoreCLI$", "--", "--root", root}, args...)...)
		cmd.Env = append(os.Environ(), envStoreCLI+"=1")
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	return cliResult{out.String(), errb.String(), err}
}

func mustCLI(t testing.TB, root string, args ...string) string {
	t.Helper()
	r := sealosCLI(t, root, nil, args...)
	require.NoError(t, r.err, "sealos %s: %s", strings.Join(args, " "), r.stderr)
	return r.stdout
}

func seedStore(t testing.TB, root string) (app v1.Image, multi v1.ImageIndex) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(root)
	require.NoError(t, err)
	base, err := random.Image(500, 2)
	require.NoError(t, err)
	cfg, err := base.ConfigFile()
	require.NoError(t, err)
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config = v1.Config{
		Labels: map[string]string{imagespec.LabelType: "rootfs", imagespec.LabelVersion: "v1beta1"},
		Env:    []string{"registryDomain=sealos.hub"},
		Cmd:    []string{"bash init.sh"},
	}
	app, err = mutate.ConfigFile(base, cfg)
	require.NoError(t, err)
	app = mutate.Annotations(app, map[string]string{imagespec.AnnotationImages: "docker.io/library/nginx:1.25"}).(v1.Image)
	require.NoError(t, st.WriteImage(ctx, "app:v1", app))
	a, _ := random.Image(200, 1)
	b, _ := random.Image(200, 1)
	multi = mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: a, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: b, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	require.NoError(t, st.WriteIndex(ctx, "localhost:5000/multi:v1", multi))
	return app, multi
}

func TestStoreCommands(t *testing.T) {
	root := t.TempDir()
	app, multi := seedStore(t, root)
	appD, _ := app.Digest()
	appID, _ := app.ConfigName()
	multiD, _ := multi.Digest()

	// images: table and JSON.
	table := mustCLI(t, root, "images")
	assert.Contains(t, table, "REPOSITORY")
	assert.Regexp(t, `(?m)^app\s+v1\s+`+appID.Hex[:12]+`\s`, table)
	assert.Regexp(t, `(?m)^localhost:5000/multi\s+v1\s+`+multiD.Hex[:12]+`\s`, table)
	var entries []store.Entry
	require.NoError(t, json.Unmarshal([]byte(mustCLI(t, root, "images", "--output", "json")), &entries))
	require.Len(t, entries, 2)
	assert.Equal(t, "docker.io/library/app:v1", entries[0].Name)
	assert.Equal(t, appD, entries[0].Digest)
	assert.True(t, entries[1].Index)
	assert.Equal(t, appID.Hex[:12]+"\n"+multiD.Hex[:12]+"\n", mustCLI(t, root, "images", "-q"))
	assert.NotContains(t, mustCLI(t, root, "images", "localhost:5000/multi"), "app")

	// tag, then inspect by the new name.
	assert.Equal(t, "Tagged localhost:5000/app:v1\n", mustCLI(t, root, "tag", "app:v1", "localhost:5000/app:v1"))
	var ins []map[string]any
	require.NoError(t, json.Unmarshal([]byte(mustCLI(t, root, "inspect", "localhost:5000/app:v1")), &ins))
	require.Len(t, ins, 1)
	assert.Equal(t, appD.String(), ins[0]["digest"])
	assert.Equal(t, "rootfs", ins[0]["type"])
	assert.Equal(t, true, ins[0]["valid"])
	assert.Equal(t, map[string]any{imagespec.LabelType: "rootfs", imagespec.LabelVersion: "v1beta1"}, ins[0]["labels"])
	assert.Equal(t, []any{"registryDomain=sealos.hub"}, ins[0]["env"])
	assert.Equal(t, []any{"bash init.sh"}, ins[0]["cmd"])
	assert.Equal(t, []any{"docker.io/library/nginx:1.25"}, ins[0]["images"])
	assert.Equal(t, []any{"docker.io/library/app:v1", "localhost:5000/app:v1"}, ins[0]["names"])
	assert.NotNil(t, ins[0]["manifest"])
	assert.NotNil(t, ins[0]["config"])
	assert.Equal(t, "rootfs true\n", mustCLI(t, root, "inspect", "--format", "{{.Type}} {{.Valid}}", appID.Hex[:8]))
	r := sealosCLI(t, root, nil, "inspect", "missing:v1")
	assert.Error(t, r.err)
	assert.Contains(t, r.stderr, "not found")

	// save and load, both formats, into fresh stores; oci-archive keeps digests.
	dir := t.TempDir()
	oci := filepath.Join(dir, "oci.tar")
	dock := filepath.Join(dir, "docker.tar")
	mustCLI(t, root, "save", "-o", oci, "app:v1", "localhost:5000/multi:v1")
	mustCLI(t, root, "save", "-o", dock, "--format", "docker-archive", "app:v1")
	root2 := t.TempDir()
	assert.Equal(t, "Loaded image: app:v1\nLoaded image: localhost:5000/multi:v1\n", mustCLI(t, root2, "load", "-i", oci))
	var entries2 []store.Entry
	require.NoError(t, json.Unmarshal([]byte(mustCLI(t, root2, "images", "-o", "json")), &entries2))
	require.Len(t, entries2, 2)
	assert.Equal(t, appD, entries2[0].Digest)
	assert.Equal(t, multiD, entries2[1].Digest)
	if _, err := exec.LookPath("skopeo"); err == nil {
		out, err := exec.Command("skopeo", "inspect", "oci-archive:"+oci+":v1").CombinedOutput()
		require.NoError(t, err, "%s", out)
		out, err = exec.Command("skopeo", "inspect", "docker-archive:"+dock).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	root3 := t.TempDir()
	data, err := os.ReadFile(dock)
	require.NoError(t, err)
	lr := sealosCLI(t, root3, data, "load") // from stdin
	require.NoError(t, lr.err, lr.stderr)
	assert.Equal(t, "Loaded image: app:v1\n", lr.stdout)
	var ins3 []store.Inspection
	require.NoError(t, json.Unmarshal([]byte(mustCLI(t, root3, "inspect", "app:v1")), &ins3))
	assert.Equal(t, appID, ins3[0].ID, "docker-archive keeps the image ID")
	assert.Equal(t, "rootfs", ins3[0].Type)

	// rmi: by ID with two names needs -f; blobs go with the last name.
	r = sealosCLI(t, root, nil, "rmi", appID.Hex[:12])
	assert.Error(t, r.err)
	assert.Contains(t, r.stderr, "--force")
	out := mustCLI(t, root, "rmi", "-f", appID.Hex[:12])
	assert.Contains(t, out, "Untagged: app:v1\n")
	assert.Contains(t, out, "Untagged: localhost:5000/app:v1\n")
	assert.Contains(t, out, "Deleted: "+appD.String())
	assert.False(t, fileExists(filepath.Join(root, "store", "blobs", "sha256", appID.Hex)))
	mustCLI(t, root, "rmi", "localhost:5000/multi:v1")
	ents, err := os.ReadDir(filepath.Join(root, "store", "blobs", "sha256"))
	require.NoError(t, err)
	assert.Empty(t, ents)
	assert.Equal(t, "[]\n", mustCLI(t, root, "images", "-o", "json"))
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Several sealos processes tagging and removing in one store at once: the index stays
// valid and ends with exactly what they left.
func TestStoreCommandsConcurrentProcesses(t *testing.T) {
	root := t.TempDir()
	seedStore(t, root)
	const procs, rounds = 4, 4
	var wg sync.WaitGroup
	errs := make(chan error, procs)
	for p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				a := fmt.Sprintf("localhost/p%d:%d", p, i)
				b := fmt.Sprintf("localhost/p%d:%d-gone", p, i)
				for _, args := range [][]string{{"tag", "app:v1", a, b}, {"images", "-q"}, {"rmi", b}} {
					if r := sealosCLI(t, root, nil, args...); r.err != nil {
						errs <- fmt.Errorf("sealos %v: %v: %s", args, r.err, r.stderr)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var entries []store.Entry
	require.NoError(t, json.Unmarshal([]byte(mustCLI(t, root, "images", "-o", "json")), &entries))
	var got []string
	for _, e := range entries {
		got = append(got, e.Name)
	}
	want := []string{"docker.io/library/app:v1", "localhost:5000/multi:v1"}
	for p := range procs {
		for i := range rounds {
			want = append(want, fmt.Sprintf("localhost/p%d:%d", p, i))
		}
	}
	assert.ElementsMatch(t, want, got)
}
