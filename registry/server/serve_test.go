package server

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func serveOnLoopback(t *testing.T, srv *Server, opts ServeOptions) (string, context.CancelFunc, chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, opts) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String(), cancel, done
}

// TestServeShutdown: on shutdown an upload in flight may finish; one that does not finish
// in time is cut and never becomes visible.
func TestServeShutdown(t *testing.T) {
	dir := t.TempDir()
	srv, err := New(Config{RootDirectory: dir})
	require.NoError(t, err)
	defer srv.Close()
	addr, cancel, done := serveOnLoopback(t, srv, ServeOptions{ShutdownTimeout: time.Minute})
	h := &hub{t: t, url: "http://" + addr}

	// an upload in flight when the shutdown starts finishes
	blob := randomBytes(2 << 20)
	conn, uuid := startPartialUpload(t, h, "finish", blob, 1<<20)
	defer conn.Close()
	waitUploadData(t, dir, "finish", uuid, 512<<10)
	cancel()
	_, err = conn.Write(blob[1<<20:])
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusCreated, res.StatusCode)
	require.NoError(t, <-done)
	done <- nil // for the cleanup

	// the blob is there for the next hub
	srv2, err := New(Config{RootDirectory: dir})
	require.NoError(t, err)
	defer srv2.Close()
	addr2, cancel2, done2 := serveOnLoopback(t, srv2, ServeOptions{ShutdownTimeout: 50 * time.Millisecond})
	h2 := &hub{t: t, url: "http://" + addr2}
	assert.Equal(t, http.StatusOK, h2.do("HEAD", "/v2/finish/blobs/"+digest.FromBytes(blob).String(), nil, nil).status)

	// a stalled upload is cut when the timeout ends, and stays invisible
	conn2, uuid2 := startPartialUpload(t, h2, "stall", blob, 1<<20)
	defer conn2.Close()
	waitUploadData(t, dir, "stall", uuid2, 512<<10)
	cancel2()
	err = <-done2
	require.ErrorContains(t, err, "were cut")
	done2 <- nil

	srv3, err := New(Config{RootDirectory: dir})
	require.NoError(t, err)
	defer srv3.Close()
	addr3, _, _ := serveOnLoopback(t, srv3, ServeOptions{})
	h3 := &hub{t: t, url: "http://" + addr3}
	assert.Equal(t, http.StatusNotFound, h3.do("HEAD", "/v2/stall/blobs/"+digest.FromBytes(blob).String(), nil, nil).status)
}

func TestServeTLS(t *testing.T) {
	cert, key := selfSignedCert(t)
	srv, err := New(Config{InMemory: true})
	require.NoError(t, err)
	defer srv.Close()
	addr, _, _ := serveOnLoopback(t, srv, ServeOptions{TLSCert: cert, TLSKey: key})

	pool := x509.NewCertPool()
	pem, err := os.ReadFile(cert)
	require.NoError(t, err)
	require.True(t, pool.AppendCertsFromPEM(pem))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := client.Get("https://" + addr + "/v2/")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)

	require.Error(t, srv.Serve(context.Background(), nil, ServeOptions{TLSCert: cert}))
}

func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	return certFile, keyFile
}
