// Command pause is the sandbox ("pause") container of the Kubernetes image: the first
// process of every pod, holding its namespaces. It sleeps until SIGINT or SIGTERM and then
// exits 0. As PID 1 of a pod that shares its PID namespace it is also the reaper: orphaned
// processes are re-parented to it, and it waits for them so they do not stay zombies.
//
// It is built static (CGO_ENABLED=0) by hack/kube/image.sh into an image FROM scratch
// whose ENTRYPOINT is ["/pause"].
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is printed by -v, like the upstream pause program.
const version = "sealos-pause-1"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println(version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "pause: warning: not running as PID 1")
	}
	os.Exit(run(make(chan os.Signal, 8)))
}

// run waits for signals on sigs until SIGINT or SIGTERM and returns the exit status.
// Every SIGCHLD reaps all exited children.
func run(sigs chan os.Signal) int {
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	reap() // children that exited before Notify took effect
	for s := range sigs {
		switch s {
		case syscall.SIGCHLD:
			reap()
		default:
			fmt.Fprintf(os.Stderr, "pause: %v: exiting\n", s)
			return 0
		}
	}
	return 0
}

// reap collects every child that has exited, without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
