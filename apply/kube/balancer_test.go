package kube

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// backend answers each connection with its name and closes.
func backend(t *testing.T, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, name)
			c.Close()
		}
	}()
	return ln
}

func startBalancer(t *testing.T, backends ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b := &Balancer{Backends: backends, ProbeInterval: time.Hour}
	go func() { done <- b.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})
	return ln.Addr().String()
}

func ask(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestBalancerRoundRobinAndFailover(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	addr := startBalancer(t, a.Addr().String(), b.Addr().String())
	got := map[string]int{}
	for range 4 {
		got[ask(t, addr)]++
	}
	assert.Equal(t, map[string]int{"a": 2, "b": 2}, got, "connections alternate")

	// a stops answering: every connection goes to b at once, before any probe runs.
	a.Close()
	for range 4 {
		assert.Equal(t, "b", ask(t, addr))
	}
}

func TestBalancerAllDown(t *testing.T) {
	a := backend(t, "a")
	down := a.Addr().String()
	a.Close()
	addr := startBalancer(t, down)
	assert.Equal(t, "", ask(t, addr), "the client's connection is closed when no apiserver answers")
}

func TestBalancerPassesHalfClose(t *testing.T) {
	// An echo backend that answers after the client is done sending.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	// Every connection is answered: the balancer's probe dials the backend too, and the
	// client's connection may come second (it waited forever when only one was accepted).
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				_, _ = c.Write(append([]byte("echo:"), b...))
			}()
		}
	}()
	addr := startBalancer(t, ln.Addr().String())
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "hello")
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, "echo:hello", string(b))
}
