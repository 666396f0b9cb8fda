package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHConfig says how to log in to hosts over SSH.
type SSHConfig struct {
	User          string // default root
	Password      string
	KeyFile       string // private key; when empty and no Password, ~/.ssh/id_ed25519 and ~/.ssh/id_rsa are tried
	KeyPassphrase string // for an encrypted KeyFile
	Port          int    // default 22; a host given as ip:port overrides it
	DialTimeout   time.Duration
	// HostKeys is the host-key policy; nil accepts every key (tests and one-off tools only).
	HostKeys *HostKeys
}

// HostKeys is the host-key policy "accept and record, refuse on change": the first key a
// host presents is appended to a known_hosts file; later connections must present a key
// recorded there, otherwise the connection is refused (remove the host's line to accept a
// new key on purpose). It is safe for concurrent use.
type HostKeys struct {
	mu   sync.Mutex
	file string
}

// NewHostKeys records keys in file (created with its directory on first use).
func NewHostKeys(file string) *HostKeys { return &HostKeys{file: file} }

// File is the known_hosts file.
func (h *HostKeys) File() string { return h.file }

// ErrHostKeyChanged is wrapped when a host presents a key other than the recorded one.
var ErrHostKeyChanged = errors.New("host key changed")

func (h *HostKeys) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(h.file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(h.file, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	check, err := knownhosts.New(h.file)
	if err != nil {
		return fmt.Errorf("read %s: %w", h.file, err)
	}
	err = check(hostname, remote, key)
	var ke *knownhosts.KeyError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ke) && len(ke.Want) == 0:
		f, err := os.OpenFile(h.file, os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key))
		return err
	case errors.As(err, &ke):
		return fmt.Errorf("%w for %s (%s, recorded in %s line %d): refusing to connect; if the host was reinstalled, delete that line",
			ErrHostKeyChanged, hostname, ssh.FingerprintSHA256(key), ke.Want[0].Filename, ke.Want[0].Line)
	default:
		return err
	}
}

// SSH is a Transport over one SSH connection; every Run opens a session on it.
type SSH struct {
	host   string
	client *ssh.Client
}

// DialSSH connects to host ("ip" or "ip:port") and logs in.
func DialSSH(ctx context.Context, host string, cfg SSHConfig) (*SSH, error) {
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		port := cfg.Port
		if port == 0 {
			port = 22
		}
		addr = net.JoinHostPort(host, strconv.Itoa(port))
	}
	auth, err := authMethods(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	user := cfg.User
	if user == "" {
		user = "root"
	}
	cb := ssh.InsecureIgnoreHostKey()
	if cfg.HostKeys != nil {
		cb = cfg.HostKeys.callback
	}
	timeout := cfg.DialTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	d := net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", host, err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User:            user,
		Auth:            auth,
		HostKeyCallback: cb,
		Timeout:         timeout,
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: ssh login as %s: %w", host, user, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return &SSH{host: host, client: ssh.NewClient(c, chans, reqs)}, nil
}

func authMethods(cfg SSHConfig) ([]ssh.AuthMethod, error) {
	var methods []ssh.AuthMethod
	keyFiles := []string{cfg.KeyFile}
	if cfg.KeyFile == "" && cfg.Password == "" {
		home, _ := os.UserHomeDir()
		keyFiles = []string{filepath.Join(home, ".ssh", "id_ed25519"), filepath.Join(home, ".ssh", "id_rsa")}
	}
	var signers []ssh.Signer
	for _, f := range keyFiles {
		if f == "" {
			continue
		}
		pem, err := os.ReadFile(f)
		if err != nil {
			if cfg.KeyFile == "" && os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("read private key: %w", err)
		}
		var s ssh.Signer
		if cfg.KeyPassphrase != "" {
			s, err = ssh.ParsePrivateKeyWithPassphrase(pem, []byte(cfg.KeyPassphrase))
		} else {
			s, err = ssh.ParsePrivateKey(pem)
		}
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("private key %s is encrypted: give its passphrase (--pk-passwd, spec.ssh.pkPasswd)", f)
		}
		if err != nil {
			return nil, fmt.Errorf("private key %s: %w", f, err)
		}
		signers = append(signers, s)
	}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if cfg.Password != "" {
		pw := cfg.Password
		methods = append(methods, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
				ans := make([]string, len(qs))
				for i := range ans {
					ans[i] = pw
				}
				return ans, nil
			}))
	}
	if len(methods) == 0 {
		return nil, errors.New("no way to log in: give a password (-p) or a private key (-i)")
	}
	return methods, nil
}

func (s *SSH) Host() string { return s.host }

func (s *SSH) Run(ctx context.Context, cmd string, opts RunOptions) error {
	ctx, cancel := timeoutCtx(ctx, opts.Timeout)
	defer cancel()
	sess, err := s.client.NewSession()
	if err != nil {
		return fmt.Errorf("%s: open session: %w (connection lost?)", s.host, err)
	}
	defer sess.Close()
	t := newTail(4096)
	sess.Stdin = opts.Stdin
	sess.Stdout = writers(opts.Stdout, t)
	sess.Stderr = writers(opts.Stderr, t)
	if err := sess.Start(withEnv(opts.Env, cmd)); err != nil {
		return fmt.Errorf("%s: start %q: %w", s.host, cmd, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGKILL)
		sess.Close()
		return ctxErr(s.host, cmd, ctx)
	}
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		if ee.Signal() != "" && ee.ExitStatus() == 0 {
			return &ExitError{Host: s.host, Cmd: cmd, Code: 128 + 9, Tail: t.String() + "\n(killed by signal " + ee.Signal() + ")"}
		}
		return &ExitError{Host: s.host, Cmd: cmd, Code: ee.ExitStatus(), Tail: t.String()}
	case errors.As(err, &missing), errors.Is(err, io.EOF):
		return fmt.Errorf("%s: %q: connection lost before the command finished", s.host, cmd)
	default:
		return fmt.Errorf("%s: %q: %w", s.host, cmd, err)
	}
}

func (s *SSH) Copy(ctx context.Context, r io.Reader, p string, mode os.FileMode) error {
	dir := path.Dir(p)
	tmp := path.Join(dir, "."+path.Base(p)+".tmp-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	// Two steps: a stream cut short looks like a normal end of input to the remote cat,
	// so the file is moved into place only after the whole stream was sent.
	err := s.Run(ctx, fmt.Sprintf("mkdir -p %s && cat > %s", Quote(dir), Quote(tmp)), RunOptions{Stdin: r})
	if err == nil {
		err = s.Run(ctx, fmt.Sprintf("chmod %o %s && mv -f %s %s", mode.Perm(), Quote(tmp), Quote(tmp), Quote(p)), RunOptions{})
	}
	if err != nil {
		_ = s.Run(context.WithoutCancel(ctx), "rm -f "+Quote(tmp), RunOptions{Timeout: time.Minute})
		return fmt.Errorf("copy to %s: %w", p, err)
	}
	return nil
}

func (s *SSH) Close() error { return s.client.Close() }
