// Package testtool is how tests ask for what they drive from outside the module: a tool
// on PATH (skopeo, buildah, crane, regctl, the conformance suite, containerd, runc,
// busybox, sshd, chromium), root, or a built sealos binary.
//
// Run by hand without it, such a test skips and says what to install. In CI (the
// environment variable CI set to anything but "" or "false", as CI services and .ci/run
// do) it fails instead: a missing tool must not turn the claims those tests check (e.g.
// "passes the conformance suite") into silent skips.
package testtool

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// Hints says how to install the tools tests drive.
var Hints = map[string]string{
	"skopeo":       "apt-get install skopeo",
	"buildah":      "apt-get install buildah",
	"crane":        "go install github.com/google/go-containerregistry/cmd/crane@v0.22.1",
	"regctl":       "go install github.com/regclient/regclient/cmd/regctl@v0.11.7",
	"conformance":  "go install github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111",
	"containerd":   "apt-get install containerd",
	"versitygw":    "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0",
	"redis-server": "apt-get install redis-server",
	"ctr":          "apt-get install containerd",
	"runc":         "apt-get install runc",
	"busybox":      "apt-get install busybox-static",
	"sshd":         "apt-get install openssh-server",
	"ip":           "apt-get install iproute2",
	"iptables":     "apt-get install iptables",
	"nsenter":      "apt-get install util-linux",
	"unshare":      "apt-get install util-linux",
	"chromium":     "apt-get install chromium",
}

// InCI reports whether the tests run in CI, where a missing tool fails them.
func InCI() bool {
	v := os.Getenv("CI")
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b
}

// Missing ends the test because something it needs is missing: t.Skipf when run by
// hand, t.Fatalf in CI. The message says what is missing and how to get it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI is set: what a test drives must be installed; hack/deps.sh installs it all)", msg)
		return
	}
	t.Skip(msg)
}

// Require returns the path of tool on PATH, or ends the test as Missing does.
func Require(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		hint := Hints[tool]
		if hint == "" {
			hint = "install it"
		}
		Missing(t, "%s is not installed (%s)", tool, hint)
	}
	return p
}

// RequireFile ends the test as Missing does when path does not exist; hint says what
// provides it.
func RequireFile(t testing.TB, path, hint string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, "%s is missing (%s)", path, hint)
	}
}

// RequireRoot ends the test as Missing does unless it runs as root; why says what needs
// root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "%s needs root; run the tests as root (CI does)", why)
	}
}

// RandomStrings returns n strings of 0 to maxLen bytes drawn from alphabet (its bytes, so
// a multi-byte character can be cut), the same ones for the same seed: inputs for checking
// a hand-written matcher against the pattern it replaces.
func RandomStrings(seed uint64, n, maxLen int, alphabet string) []string {
	r := rand.New(rand.NewPCG(seed, seed+1))
	out := make([]string, n)
	for i := range out {
		b := make([]byte, r.IntN(maxLen+1))
		for j := range b {
			b[j] = alphabet[r.IntN(len(alphabet))]
		}
		out[i] = string(b)
	}
	return out
}

// ConformanceAll switches on every optional workflow and data set of the OCI
// distribution-spec conformance suite (OCI_VERSION=dev turns on upload cancel, both digest
// headers and tag parameters on manifest PUT); OCI_DATA_SPARSE is the caller's to set.
var ConformanceAll = []string{
	"OCI_VERSION=dev",
	"OCI_API_PULL=true", "OCI_API_PUSH=true", "OCI_API_REFERRER=true",
	"OCI_API_BLOBS_DELETE=true", "OCI_API_BLOBS_MOUNT_ANONYMOUS=true",
	"OCI_API_BLOBS_UPLOAD_CANCEL=true", "OCI_API_BLOBS_DIGEST_HEADER=true",
	"OCI_API_MANIFESTS_DELETE=true", "OCI_API_MANIFESTS_DIGEST_HEADER=true", "OCI_API_MANIFESTS_TAG_PARAM=true",
	"OCI_API_TAGS_DELETE=true", "OCI_API_TAGS_LIST=true",
	"OCI_DATA_IMAGE=true", "OCI_DATA_INDEX=true", "OCI_DATA_INDEX_LIST=true", "OCI_DATA_ARTIFACT=true",
	"OCI_DATA_SUBJECT=true", "OCI_DATA_SUBJECT_MISSING=true", "OCI_DATA_ARTIFACT_LIST=true",
	"OCI_DATA_SUBJECT_LIST=true", "OCI_DATA_DATA_FIELD=true", "OCI_DATA_NONDISTRIBUTABLE=true",
	"OCI_DATA_CUSTOM_FIELDS=true", "OCI_DATA_NO_LAYERS=true", "OCI_DATA_EMPTY_BLOB=true", "OCI_DATA_SHA512=true",
}
