package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Start-up budgets, set from `GODEBUG=inittrace=1 sealos version` when they were written
// (620 packages with an init, 6.3 MB and 55k allocations in all, 1.6 MB of it before
// package gcmode, no collection) with ~10% to spare. Every command pays for package
// initialisation, so a dependency whose init builds big tables shows up here, not in a
// benchmark months later: distribution's own S3 driver (aws-sdk-go, 2.2 MB of endpoint
// tables initialised before gcmode, a collection on every start, ~4 ms) was caught here
// and replaced by the hub's own on minio-go (registry/server/s3driver.go).
const (
	initBytesBudget  = 7_000_000
	initAllocsBudget = 61_000
	// Go collects first at a 4 MiB heap: what initialises before package gcmode pauses
	// the collector must stay well under that, or every start pays a collection.
	beforeGCModeBudget = 3 << 20
	maxStartupGCs      = 0
)

type initLine struct {
	pkg           string
	bytes, allocs int64
}

// parseInitTrace reads the runtime's inittrace lines:
// "init PKG @0.5 ms, 0.1 ms clock, 1234 bytes, 5 allocs".
func parseInitTrace(t *testing.T, out []byte) []initLine {
	t.Helper()
	var lines []initLine
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 11 || f[0] != "init" || f[8] != "bytes," || f[10] != "allocs" {
			continue
		}
		b, err1 := strconv.ParseInt(f[7], 10, 64)
		a, err2 := strconv.ParseInt(f[9], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("unexpected inittrace line %q", sc.Text())
		}
		lines = append(lines, initLine{f[1], b, a})
	}
	return lines
}

// TestStartupBudget runs `sealos version` with the runtime's init and GC traces and holds
// package initialisation to its budgets, and the start to maxStartupGCs collections.
func TestStartupBudget(t *testing.T) {
	bin := sealosBin(t)
	cmd := exec.Command(bin, "--root", t.TempDir(), "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1,gctrace=1", "GOGC=", "GOMEMLIMIT=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sealos version: %v\n%s", err, stderr.String())
	}
	lines := parseInitTrace(t, stderr.Bytes())
	if len(lines) < 100 {
		t.Fatalf("only %d inittrace lines: did the runtime's format change?\n%s", len(lines), stderr.String())
	}
	var total, allocs, before int64
	seenGCMode := false
	for _, l := range lines {
		total += l.bytes
		allocs += l.allocs
		if l.pkg == "github.com/cluster-image/sealos/internal/gcmode" {
			seenGCMode = true
			before = total
		}
	}
	t.Logf("%d packages initialised: %d bytes in %d allocations, %d bytes before gcmode", len(lines), total, allocs, before)
	if !seenGCMode {
		t.Fatal("package gcmode was not initialised: the collector runs during start-up")
	}
	if total > initBytesBudget {
		t.Errorf("package initialisation allocated %d bytes, budget %d: see GODEBUG=inittrace=1 sealos version", total, initBytesBudget)
	}
	if allocs > initAllocsBudget {
		t.Errorf("package initialisation made %d allocations, budget %d", allocs, initAllocsBudget)
	}
	if before > beforeGCModeBudget {
		t.Errorf("%d bytes allocated before package gcmode paused the collector, budget %d", before, beforeGCModeBudget)
	}
	if n := len(regexp.MustCompile(`(?m)^gc \d+ @`).FindAll(stderr.Bytes(), -1)); n > maxStartupGCs {
		t.Errorf("%d garbage collections ran during `sealos version`, at most %d expected:\n%s", n, maxStartupGCs, stderr.String())
	}
}
