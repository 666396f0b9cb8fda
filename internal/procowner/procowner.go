// Package procowner names a process so that what it leaves on disk can be judged later:
// is its writer still alive? The name, "<pid>_<start>_<boot>", holds the process's start
// time (clock ticks since boot) and the first characters of the kernel's boot ID, so a
// reused pid or a reboot never passes for the owner. The store's temporary files and the
// hub's uploads carry it.
package procowner

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Pattern matches a tag, with the pid, start and boot as groups.
const Pattern = `([0-9]+)_([0-9]+)_([0-9a-f]{8})`

var tagRE = regexp.MustCompile(`^` + Pattern + `$`)

// Tag is this process's name, "" where it cannot be known (no /proc).
var Tag = sync.OnceValue(func() string {
	start, ok := ProcStart(os.Getpid())
	boot := BootID()
	if !ok || len(boot) < 8 {
		return ""
	}
	return fmt.Sprintf("%d_%d_%s", os.Getpid(), start, boot[:8])
})

// BootID identifies the running kernel's boot ("" without /proc).
func BootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ProcStart is the start time of process pid (clock ticks since boot); false when there
// is no such process.
func ProcStart(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// the command (field 2) may hold spaces and parentheses: fields count from the last
	// ')'; starttime is field 22, the 20th after it
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return start, err == nil
}

// Dead tells whether tag names a process that is gone; ok is false when tag is not a
// tag, or this machine cannot tell (no /proc).
func Dead(tag string) (dead, ok bool) {
	m := tagRE.FindStringSubmatch(tag)
	if m == nil {
		return false, false
	}
	if boot := BootID(); len(boot) >= 8 && m[3] != boot[:8] {
		return true, true // an earlier boot
	}
	pid, err1 := strconv.Atoi(m[1])
	start, err2 := strconv.ParseUint(m[2], 10, 64)
	if err1 != nil || err2 != nil {
		return false, false
	}
	got, alive := ProcStart(pid)
	if !alive {
		if _, err := os.Stat("/proc/self/stat"); err != nil {
			return false, false
		}
		return true, true
	}
	return got != start, true
}
