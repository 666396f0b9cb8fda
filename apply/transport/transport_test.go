package transport_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/apply/applytest"
	"github.com/cluster-image/sealos/apply/transport"
	"github.com/cluster-image/sealos/apply/transport/transporttest"
)

func TestLocal(t *testing.T) {
	transporttest.Run(t, transport.NewLocal(""), t.TempDir())
}

func TestSSH(t *testing.T) {
	set := applytest.StartNodes(t, 1, 1)
	ctx := context.Background()
	hk := transport.NewHostKeys(filepath.Join(t.TempDir(), "known_hosts"))
	tr, err := transport.DialSSH(ctx, set.IPs[0], transport.SSHConfig{KeyFile: set.Key, Port: set.Port, HostKeys: hk})
	require.NoError(t, err)
	defer tr.Close()
	transporttest.Run(t, tr, "/var/lib/sealos/suite")
}

func TestSSHAuth(t *testing.T) {
	set := applytest.StartNodes(t, 1, 2)
	ctx := context.Background()
	ip := set.IPs[0]
	cases := []struct {
		name    string
		cfg     transport.SSHConfig
		wantErr string
	}{
		{"key", transport.SSHConfig{KeyFile: set.Key}, ""},
		{"password", transport.SSHConfig{Password: set.Password}, ""},
		{"key with passphrase", transport.SSHConfig{KeyFile: set.KeyPass, KeyPassphrase: set.Passphrase}, ""},
		{"key without its passphrase", transport.SSHConfig{KeyFile: set.KeyPass}, "encrypted"},
		{"wrong password", transport.SSHConfig{Password: "nope"}, "unable to authenticate"},
		{"ip:port form", transport.SSHConfig{KeyFile: set.Key, Port: 1}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host := ip
			if c.name == "ip:port form" {
				host = ip + ":22"
			}
			tr, err := transport.DialSSH(ctx, host, c.cfg)
			if c.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.wantErr)
				assert.Contains(t, err.Error(), ip)
				assert.NotContains(t, err.Error(), set.Password)
				return
			}
			require.NoError(t, err)
			defer tr.Close()
			out, err := transport.Output(ctx, tr, "id -un")
			require.NoError(t, err)
			assert.Equal(t, "root\n", string(out))
		})
	}
}

func TestHostKeyPolicy(t *testing.T) {
	set := applytest.StartNodes(t, 1, 3)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "clusters", "c", "known_hosts")
	hk := transport.NewHostKeys(file)
	cfg := transport.SSHConfig{KeyFile: set.Key, HostKeys: hk}

	tr, err := transport.DialSSH(ctx, set.IPs[0], cfg)
	require.NoError(t, err, "first connection records the key")
	tr.Close()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(data), "\n"))
	assert.True(t, strings.HasPrefix(string(data), set.IPs[0]+" ssh-ed25519 "))

	tr, err = transport.DialSSH(ctx, set.IPs[0], cfg)
	require.NoError(t, err, "same key again")
	tr.Close()
	data2, _ := os.ReadFile(file)
	assert.Equal(t, string(data), string(data2), "nothing appended for a known host")

	// Another key recorded for the host: refused.
	other := strings.Replace(string(data), set.IPs[0], "127.9.9.9", 1)
	fields := strings.Fields(string(data))
	fake := set.IPs[0] + " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG3dF0e8b3lE0gS3fC0Qd0cX1xq6n8b7t0pG9zT3oVbq\n"
	_ = fields
	require.NoError(t, os.WriteFile(file, []byte(other+fake), 0o600))
	_, err = transport.DialSSH(ctx, set.IPs[0], cfg)
	require.Error(t, err)
	assert.True(t, errors.Is(err, transport.ErrHostKeyChanged), "%v", err)
	assert.Contains(t, err.Error(), "line 2")
}

func TestConnectionLost(t *testing.T) {
	set := applytest.StartNodes(t, 1, 4)
	ctx := context.Background()
	tr, err := transport.DialSSH(ctx, set.IPs[0], transport.SSHConfig{KeyFile: set.Key})
	require.NoError(t, err)
	defer tr.Close()
	errc := make(chan error, 1)
	go func() { errc <- tr.Run(ctx, "echo started; sleep 60", transport.RunOptions{}) }()
	// Wait until the command runs, then kill the node.
	for i := 0; i < 100; i++ {
		out, _ := transport.Output(ctx, tr, "pgrep -f 'sleep 60' || true")
		if len(strings.TrimSpace(string(out))) > 0 {
			break
		}
	}
	require.NoError(t, set.Kill(0))
	err = <-errc
	require.Error(t, err)
	assert.Contains(t, err.Error(), set.IPs[0])
}

func TestIsLocal(t *testing.T) {
	assert.True(t, transport.IsLocal("localhost"))
	assert.True(t, transport.IsLocal("127.0.0.1"))
	assert.True(t, transport.IsLocal("127.0.0.1:22"))
	assert.False(t, transport.IsLocal("127.0.0.11"))
	assert.False(t, transport.IsLocal("192.0.2.1"))
}
