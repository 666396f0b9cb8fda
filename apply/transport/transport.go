// Package transport runs commands on target hosts and streams bytes to them: over SSH for
// remote hosts, directly for this machine. Both implementations satisfy Transport and are
// tested by the same suite (package transporttest).
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds one command when RunOptions.Timeout is zero. It is generous:
// shipping a rootfs or an init script may take many minutes.
const DefaultTimeout = 30 * time.Minute

// Transport runs commands on one host. Implementations are safe for concurrent use: many
// commands may run on the same host at once.
type Transport interface {
	// Host is the address commands run on, as given by the user (for messages).
	Host() string
	// Run runs cmd with "sh -c" on the host as the transport's user. Stdin, when set, is
	// copied to the command's standard input and then closed; Stdout and Stderr receive
	// the output as it is produced (nil discards it). A non-zero exit returns an *ExitError
	// carrying the last lines of output. When ctx is done or the timeout passes, the
	// command is killed and Run returns an error wrapping ctx.Err() or ErrTimeout.
	Run(ctx context.Context, cmd string, opts RunOptions) error
	// Copy writes r to path on the host with mode, creating parent directories. The file
	// appears complete or not at all: it is written to a temporary name and renamed.
	Copy(ctx context.Context, r io.Reader, path string, mode os.FileMode) error
	// Close releases the connection; running commands are ended.
	Close() error
}

// RunOptions are the optional settings of Transport.Run.
type RunOptions struct {
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Timeout time.Duration // DefaultTimeout when zero; negative means none
	// Env is exported to the command. It is never part of error messages (values may be
	// secrets); keys that are not shell names are left out.
	Env map[string]string
}

// withEnv returns cmd with env exported first.
func withEnv(env map[string]string, cmd string) string {
	if len(env) == 0 {
		return cmd
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		if validName(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s; ", k, Quote(env[k]))
	}
	return b.String() + cmd
}

func validName(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ErrTimeout is wrapped by the error of a command that ran past its timeout.
var ErrTimeout = errors.New("command timed out")

// ExitError is a command that ran and exited with a non-zero status.
type ExitError struct {
	Host string
	Cmd  string
	Code int
	Tail string // the last lines of stdout and stderr, interleaved as produced
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: command %q exited with status %d", e.Host, e.Cmd, e.Code)
	if t := strings.TrimSpace(e.Tail); t != "" {
		msg += "; last output:\n" + indent(t)
	}
	return msg
}

func indent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}

// Output runs cmd and returns its standard output; stderr goes into the error's tail.
func Output(ctx context.Context, t Transport, cmd string) ([]byte, error) {
	var out strings.Builder
	err := t.Run(ctx, cmd, RunOptions{Stdout: &out})
	return []byte(out.String()), err
}

// Quote quotes s for a POSIX shell.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func newTail(max int) *tail { return &tail{max: max} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// String returns at most the last 20 lines within the last max bytes.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > t.max {
		b = b[len(b)-t.max:]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

func writers(w io.Writer, t *tail) io.Writer {
	if w == nil {
		return t
	}
	return io.MultiWriter(w, t)
}

func timeoutCtx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d == 0 {
		d = DefaultTimeout
	}
	if d < 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, d, ErrTimeout)
}

// ctxErr is the error for a command ended by its context: the timeout or the cancellation.
func ctxErr(host, cmd string, ctx context.Context) error {
	cause := context.Cause(ctx)
	if errors.Is(cause, ErrTimeout) {
		return fmt.Errorf("%s: %q: %w", host, cmd, ErrTimeout)
	}
	return fmt.Errorf("%s: %q: %w", host, cmd, cause)
}

// IsLocal reports whether host names this machine: "localhost", 127.0.0.1, ::1, or an
// address of one of its non-loopback interfaces. Other loopback addresses (127.0.0.2 and
// up) are not local: test nodes live there, each behind its own sshd.
func IsLocal(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback) {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
