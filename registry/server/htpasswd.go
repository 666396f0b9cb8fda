package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// SetHtpasswdUser adds user to the htpasswd file at path, or changes their password,
// with a bcrypt hash. The file (and its directory) is created if missing and replaced
// atomically; other lines are kept as they are. A running hub picks the change up.
func SetHtpasswdUser(path, user, password string) error {
	if user == "" || strings.ContainsAny(user, ":\n\r") {
		return fmt.Errorf("htpasswd: invalid user name %q (no colons or newlines)", user)
	}
	if password == "" {
		return errors.New("htpasswd: empty password")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	return editHtpasswd(path, user, user+":"+string(hash))
}

// RemoveHtpasswdUser deletes user from the htpasswd file; it is an error if absent.
func RemoveHtpasswdUser(path, user string) error {
	return editHtpasswd(path, user, "")
}

func editHtpasswd(path, user, line string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("htpasswd: %w", err)
	}
	var out bytes.Buffer
	found := false
	sc := bufio.NewScanner(bytes.NewReader(old))
	for sc.Scan() {
		l := sc.Text()
		if u, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && u == user && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			found = true
			if line != "" {
				out.WriteString(line + "\n")
				line = ""
			}
			continue
		}
		out.WriteString(l + "\n")
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("htpasswd %s: %w", path, err)
	}
	if line != "" {
		out.WriteString(line + "\n")
	} else if !found {
		return fmt.Errorf("htpasswd %s: no user %q", path, user)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".htpasswd-*")
	if err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("htpasswd: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("htpasswd: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("htpasswd: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	return nil
}
