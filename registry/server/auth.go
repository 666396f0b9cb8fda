package server

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// htpasswdAuth checks HTTP basic credentials against an htpasswd file of bcrypt entries.
// A password that verified once is remembered (as a salted SHA-256, never in clear) so
// bcrypt, which costs tens of milliseconds, runs once per user and password rather than
// on every request. The file is re-read when its size or modification time changes,
// which also forgets every remembered password.
type htpasswdAuth struct {
	path  string
	realm string
	salt  [32]byte

	mu       sync.Mutex
	modTime  time.Time
	size     int64
	users    map[string][]byte   // user -> bcrypt hash
	verified map[string][32]byte // user -> sha256(salt, user, password) of a verified password
}

func newHtpasswdAuth(path, realm string) (*htpasswdAuth, error) {
	a := &htpasswdAuth{path: path, realm: realm}
	copy(a.salt[:], randomSecret())
	if err := a.reload(true); err != nil {
		return nil, err
	}
	return a, nil
}

// reload re-reads the file if it changed (a stat per request: microseconds).
func (a *htpasswdAuth) reload(force bool) error {
	fi, err := os.Stat(a.path)
	if err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	if !force && fi.ModTime().Equal(a.modTime) && fi.Size() == a.size {
		return nil
	}
	b, err := os.ReadFile(a.path)
	if err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	users, err := ParseHtpasswd(b)
	if err != nil {
		return fmt.Errorf("htpasswd %s: %w", a.path, err)
	}
	a.users, a.verified = users, map[string][32]byte{}
	a.modTime, a.size = fi.ModTime(), fi.Size()
	return nil
}

func (a *htpasswdAuth) key(user, pass string) [32]byte {
	h := sha256.New()
	h.Write(a.salt[:])
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(pass))
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

// authenticate returns the user of a request with valid credentials.
func (a *htpasswdAuth) authenticate(r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	k := a.key(user, pass)
	a.mu.Lock()
	_ = a.reload(false) // a broken rewrite keeps the last good users
	hash, known := a.users[user]
	v, cached := a.verified[user]
	a.mu.Unlock()
	if !known {
		return "", false
	}
	if cached && subtle.ConstantTimeCompare(v[:], k[:]) == 1 {
		return user, true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return "", false
	}
	a.mu.Lock()
	if h2, ok := a.users[user]; ok && bytes.Equal(h2, hash) {
		a.verified[user] = k
	}
	a.mu.Unlock()
	return user, true
}

func (a *htpasswdAuth) challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", a.realm))
	writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required", nil)
}

// ParseHtpasswd reads htpasswd content: "user:hash" lines, bcrypt hashes only
// ($2y$, $2a$, $2b$); blank lines and lines starting with # are ignored.
func ParseHtpasswd(b []byte) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("line %d: want user:bcrypt-hash", n)
		}
		if !strings.HasPrefix(hash, "$2") {
			return nil, fmt.Errorf("line %d: user %s: only bcrypt hashes are supported (htpasswd -B)", n, user)
		}
		users[user] = []byte(hash)
	}
	return users, sc.Err()
}
