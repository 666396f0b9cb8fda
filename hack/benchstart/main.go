// Command benchstart times whole short commands, ours against a peer's, for their start-up
// cost: wall time and peak resident memory (the kernel's ru_maxrss of the child, which
// counts the binary's own pages as they are touched) of each run, the two tools taking
// turns at going first, and a floor: this program re-run with -noop, a Go process that
// starts and exits, which is what the machine allows any Go command.
//
//	benchstart -runs 20 -row version -ours "sealos version" -peer-name crane -peer "crane version"
//
// Commands are split on white space (no quoting). Prints one line for people and one
// RESULT line in hack/bench-lib.sh's format; fails if a command fails.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"
)

type sample struct {
	wall time.Duration
	rss  int64 // bytes
}

func main() {
	var (
		runs     = flag.Int("runs", 20, "runs of each command")
		row      = flag.String("row", "", "name of the figure")
		ours     = flag.String("ours", "", "our command")
		peer     = flag.String("peer", "", "the peer's command (optional)")
		peerName = flag.String("peer-name", "", "the peer's name")
		wallMax  = flag.Duration("target-wall", 25*time.Millisecond, "target median wall time")
		rssMax   = flag.Int64("target-rss", 20<<20, "target median peak RSS in bytes")
		noop     = flag.Bool("noop", false, "exit at once (the floor)")
	)
	flag.Parse()
	if *noop {
		return
	}
	if *ours == "" || *row == "" {
		fmt.Fprintln(os.Stderr, "benchstart: -row and -ours are required")
		os.Exit(2)
	}
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	floorCmd := self + " -noop"
	var o, p, f []sample
	for i := 0; i < *runs; i++ {
		// odd runs: ours, peer; even runs: peer, ours; the floor in between
		if i%2 == 0 {
			o = append(o, run(*ours))
			f = append(f, run(floorCmd))
			if *peer != "" {
				p = append(p, run(*peer))
			}
		} else {
			if *peer != "" {
				p = append(p, run(*peer))
			}
			f = append(f, run(floorCmd))
			o = append(o, run(*ours))
		}
	}
	ow, orss := medians(o)
	fw, frss := medians(f)
	met := "met"
	if ow > *wallMax || orss > *rssMax {
		met = "NOT met"
	}
	fmt.Printf("  %-24s sealos %6.1f ms %5.1f MiB", *row, ms(ow), mib(orss))
	ratio, pw, prss := "-", time.Duration(0), int64(0)
	if *peer != "" {
		pw, prss = medians(p)
		var rs []float64
		for i := range o {
			rs = append(rs, float64(p[i].wall)/float64(o[i].wall))
		}
		ratio = fmt.Sprintf("%.2f", median(rs))
		fmt.Printf("  %s %6.1f ms %5.1f MiB  ratio %sx", *peerName, ms(pw), mib(prss), ratio)
	}
	fmt.Printf("  floor %.1f ms %.1f MiB  (target %v, %.0f MiB: %s)\n", ms(fw), mib(frss), *wallMax, mib(*rssMax), met)
	note := fmt.Sprintf("peak RSS sealos %.1f MiB", mib(orss))
	if *peer != "" {
		note += fmt.Sprintf(", %s %.1f MiB", *peerName, mib(prss))
	}
	note += fmt.Sprintf(", floor %.1f MiB; target %v and %.0f MiB: %s", mib(frss), *wallMax, mib(*rssMax), met)
	peerS := "-"
	if *peer != "" {
		peerS = fmt.Sprintf("%.4f", pw.Seconds())
	}
	fmt.Printf("RESULT|bench-startup|%s|%s|%.4f|%s|%s|%.4f|%s\n", *row, *peerName, ow.Seconds(), peerS, ratio, fw.Seconds(), note)
}

func run(cmdline string) sample {
	args := strings.Fields(cmdline)
	cmd := exec.Command(args[0], args[1:]...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		fail(fmt.Errorf("%s: %v\n%s", cmdline, err, out.String()))
	}
	wall := time.Since(start)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return sample{wall: wall, rss: ru.Maxrss << 10}
}

func medians(s []sample) (time.Duration, int64) {
	var w, r []float64
	for _, x := range s {
		w = append(w, float64(x.wall))
		r = append(r, float64(x.rss))
	}
	return time.Duration(median(w)), int64(median(r))
}

func median(v []float64) float64 {
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
func mib(b int64) float64        { return float64(b) / (1 << 20) }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchstart:", err)
	os.Exit(1)
}
