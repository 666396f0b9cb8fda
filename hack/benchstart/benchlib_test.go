package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The shell harness every hack/bench-*.sh sources keeps one time per line, so that three
// runs give three times, three ratios and their median (a missing newline once made every
// later run's time part of the first one's line: the figures were run 1's alone).
func TestBenchLibKeepsEveryRun(t *testing.T) {
	dir := t.TempDir()
	script := `set -euo pipefail
. ../bench-lib.sh
BENCH_DROP_CACHES=0
for r in 1 2 3; do
	bench_timed "$D/ours" true
	bench_timed "$D/peer" sleep 0.02
done
wc -l <"$D/ours"
bench_ratios "$D/ours" "$D/peer" | wc -l
bench_med "$D/peer"
`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(cmd.Environ(), "D="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench-lib.sh: %v\n%s", err, out)
	}
	lines := strings.Fields(string(out))
	if len(lines) != 3 || lines[0] != "3" || lines[1] != "3" {
		t.Fatalf("want 3 times and 3 ratios, got %q", lines)
	}
	if !strings.HasPrefix(lines[2], "0.0") {
		t.Errorf("median of three ~0.02 s sleeps: %s", lines[2])
	}
}
