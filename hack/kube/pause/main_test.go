package main

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cluster-image/sealos/internal/testtool"
)

// The test binary doubles as the pause program when PAUSE_TEST_MAIN is set.
func TestMain(m *testing.M) {
	if os.Getenv("PAUSE_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestExitsZeroOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "PAUSE_TEST_MAIN=1")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A signal before Notify would kill it: wait for the "not PID 1" warning, printed
		// just before, and give it a moment.
		line, _ := bufio.NewReader(stderr).ReadString('\n')
		if !strings.Contains(line, "not running as PID 1") {
			t.Fatalf("first line %q", line)
		}
		time.Sleep(50 * time.Millisecond)
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%v: %v", sig, err)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("%v: still running after 10s", sig)
		}
	}
}

func TestReapsExitedChildren(t *testing.T) {
	attr := &os.ProcAttr{Files: []*os.File{nil, nil, nil}}
	p, err := os.StartProcess("/bin/true", []string{"true"}, attr)
	if err != nil {
		testtool.Missing(t, "no /bin/true: %v", err)
	}
	stat := "/proc/" + strconv.Itoa(p.Pid) + "/stat"
	// Wait until the child is a zombie: exited, not yet collected.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(stat)
		if err == nil && strings.Contains(string(b), ") Z ") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	sigs := make(chan os.Signal, 2)
	sigs <- syscall.SIGCHLD
	sigs <- syscall.SIGTERM
	if code := run(sigs); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if _, err := os.Stat(stat); !os.IsNotExist(err) {
		t.Fatalf("child %d was not reaped (%v)", p.Pid, err)
	}
}
