package testtool

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// VersityGW serves an S3 API (versitygw, posix backend) over a temporary directory holding
// one empty bucket, with the root user access/secret, until the test ends; it returns the
// endpoint URL ("http://127.0.0.1:PORT").
func VersityGW(t testing.TB, bucket, access, secret string) string {
	t.Helper()
	bin := Require(t, "versitygw")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--access", access, "--secret", secret, "--port", addr, "posix", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr
		}
		if i == 200 {
			t.Fatalf("versitygw did not start listening on %s", addr)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
