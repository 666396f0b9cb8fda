package kube

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// CACertHash is kubeadm's discovery hash of a CA certificate (PEM): "sha256:" and the
// hex SHA-256 of its DER SubjectPublicKeyInfo.
func CACertHash(caPEM []byte) (string, error) {
	b, _ := pem.Decode(caPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return "", errors.New("the CA file holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return "", fmt.Errorf("the CA certificate: %w", err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// NewCertificateKey returns a key for `kubeadm init phase upload-certs`: 32 random bytes
// in hex, as kubeadm makes them.
func NewCertificateKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ParseToken returns the bootstrap token `kubeadm token create` printed (the last
// non-empty line, of the form [a-z0-9]{6}.[a-z0-9]{16}).
func ParseToken(out string) (string, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	tok := strings.TrimSpace(lines[len(lines)-1])
	id, secret, ok := strings.Cut(tok, ".")
	if !ok || len(id) != 6 || len(secret) != 16 || !lowerAlnum(id+secret) {
		return "", fmt.Errorf("kubeadm token create printed no token: %q", out)
	}
	return tok, nil
}

func lowerAlnum(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
