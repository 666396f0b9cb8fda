package client_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/internal/testtool"
	"github.com/cluster-image/sealos/registry/server"
)

// TestOCIConformance runs the distribution-spec's own conformance suite (every API of spec
// 1.1 and its data sets: sha512 content, subjects, non-distributable layers, tag
// parameters, sparse manifests...) with every optional workflow on, against the hub on a
// directory and in memory, anonymous and behind htpasswd, with sparse manifests allowed;
// and once with the defaults, where sparse manifests are refused and so not tested.
func TestOCIConformance(t *testing.T) {
	suite := tool(t, "conformance")
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, server.SetHtpasswdUser(htpasswd, "ci", "s3cret"))
	for name, cfg := range map[string]server.Config{
		"filesystem": {AllowSparseIndex: true},
		"inmemory":   {InMemory: true, AllowSparseIndex: true},
		"htpasswd":   {Htpasswd: htpasswd, AllowSparseIndex: true},
		"defaults":   {},
	} {
		t.Run(name, func(t *testing.T) {
			host := startHub(t, cfg, nil)
			results := t.TempDir()
			cmd := exec.Command(suite)
			cmd.Dir = results // it reads oci-conformance.yaml from there: none, the defaults
			cmd.Env = append(os.Environ(), "OCI_REGISTRY="+host, "OCI_TLS=disabled",
				"OCI_RESULTS_DIR="+results, "OCI_LOG=warn", "OCI_USERNAME=", "OCI_PASSWORD=")
			cmd.Env = append(cmd.Env, testtool.ConformanceAll...)
			cmd.Env = append(cmd.Env, "OCI_DATA_SPARSE="+map[bool]string{true: "true", false: "false"}[cfg.AllowSparseIndex])
			if cfg.Htpasswd != "" {
				cmd.Env = append(cmd.Env, "OCI_USERNAME=ci", "OCI_PASSWORD=s3cret")
			}
			out, err := cmd.CombinedOutput()
			// a failed test is logged, and marked FAIL in the tree and the summary (Skip is
			// an optional API the suite found unsupported: a mount without a source)
			failed := regexp.MustCompile(`(?m)^.*(failed test|:\s+FAIL\s*$).*$`).FindAllString(string(out), 40)
			counts := regexp.MustCompile(`(?m)^\s+(Pass|FAIL|Skip|Error|Disabled)\.*:\s+(\d+)`).FindAllStringSubmatch(string(out), -1)
			var summary []string
			for _, c := range counts {
				summary = append(summary, c[1]+" "+c[2])
			}
			t.Logf("conformance %s: %s", name, strings.Join(summary, ", "))
			require.NoError(t, err, "the conformance suite failed:\n%s", strings.Join(failed, "\n"))
			assert.Empty(t, failed)
			assert.Regexp(t, `Blobs sha512\.*:\s+Pass`, string(out))
			assert.Regexp(t, `Referrers\.*:\s+Pass`, string(out))
			assert.Regexp(t, `Tag Param sha512\.*:\s+Pass`, string(out))
			assert.Regexp(t, `(?m)^\s+FAIL\.*:\s+0$`, string(out))
			if cfg.AllowSparseIndex {
				assert.Regexp(t, `Sparse Manifests\.*:\s+Pass`, string(out))
			}
		})
	}
}
