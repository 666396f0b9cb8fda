// Package gcmode chooses how much the garbage collector runs in a sealos process.
//
// The process starts with the collector paused: package initialisation (Helm's JSON-schema
// compiler, client-go's scheme, distribution's routes, ...) allocates ~8 MiB, and without
// the pause that costs one or two collections (~2.5 ms of wall time) on every start. Where this
// package's init lands is the linker's choice: it runs the lexically first package whose
// imports are all initialised, and this one waits for runtime/debug, which sorts late
// and so is scheduled after every ready package named before "runtime" (GODEBUG=inittrace=1
// shows gcmode ~289th of ~620), ahead of the JSON-schema compiler and client-go's scheme,
// with ~1.6 MiB allocated before it: under the 4 MiB heap of Go's first collection. The
// start-up test in cmd/sealos holds both to a budget, so a change of order shows there.
//
// Before a command runs, the root command picks a mode: [Normal] for anything long-running
// or memory-hungry (a build, the hub, an apply), [Batch] for a short transfer whose live
// heap stays small whatever it moves (push, pull, save, load: ~60 MB RSS for 1 GiB, nearly
// all of it the binary's own pages). A collection every 4-8 MiB of garbage costs a 64 x
// 1 MiB pull a tenth of its time on two cores (the mark worker takes one), for nothing it
// needs; esbuild's CLI turns the collector off for the same reason.
package gcmode

import (
	"os"
	"runtime/debug"
)

// BatchLimit is the memory the Go runtime may hold (heap and all, debug.SetMemoryLimit)
// before a Batch command collects after all: push, pull, save and load of 1 GiB peaked
// at 48-62 MB RSS with the collector off, so this only bounds a case nobody measured.
const BatchLimit = 256 << 20

var (
	percent = debug.SetGCPercent(-1) // GOGC as the user set it (default 100)
	limit   = debug.SetMemoryLimit(-1)
)

// Normal restores the collector as GOGC and GOMEMLIMIT set it.
func Normal() {
	debug.SetMemoryLimit(limit)
	debug.SetGCPercent(percent)
}

// Batch turns the collector off until the runtime holds BatchLimit, unless the user set
// GOGC or GOMEMLIMIT: their setting wins.
func Batch() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		Normal()
		return
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(BatchLimit)
}
