package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
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
//
// Failures cost the same whoever they name: a user the file lacks is checked against a
// hash of a random password of the same cost, so the time of an answer does not tell
// which user names exist. A client address that fails too often is refused for a while
// with 429, without running bcrypt (failureBackoff), and at most half the CPUs run
// bcrypt at once: a flood of wrong passwords leaves other clients served.
type htpasswdAuth struct {
	path  string
	realm string
	salt  [32]byte
	// compare is bcrypt.CompareHashAndPassword (tests count its calls)
	compare func(hash, password []byte) error
	bcrypts chan struct{} // a slot per bcrypt allowed to run at once
	backoff *failureBackoff

	mu       sync.Mutex
	modTime  time.Time
	size     int64
	users    map[string][]byte   // user -> bcrypt hash
	verified map[string][32]byte // user -> sha256(salt, user, password) of a verified password
	dummy    []byte              // bcrypt hash of a random password, at the users' usual cost
	dummies  map[int][]byte      // dummy hashes made so far, by cost
}

func newHtpasswdAuth(path, realm string) (*htpasswdAuth, error) {
	a := &htpasswdAuth{
		path: path, realm: realm,
		compare: bcrypt.CompareHashAndPassword,
		bcrypts: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		backoff: newFailureBackoff(),
		dummies: map[int][]byte{},
	}
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
	a.dummy, err = a.dummyHash(usualCost(users))
	return err
}

// usualCost is the bcrypt cost most users' hashes have (bcrypt.DefaultCost for none).
func usualCost(users map[string][]byte) int {
	n := map[int]int{}
	best, bestN := bcrypt.DefaultCost, 0
	for _, h := range users {
		c, err := bcrypt.Cost(h)
		if err != nil {
			continue
		}
		n[c]++
		if n[c] > bestN || (n[c] == bestN && c > best) {
			best, bestN = c, n[c]
		}
	}
	return best
}

// dummyHash is a hash of a random password at cost, made once per cost.
func (a *htpasswdAuth) dummyHash(cost int) ([]byte, error) {
	if h, ok := a.dummies[cost]; ok {
		return h, nil
	}
	h, err := bcrypt.GenerateFromPassword([]byte(randomSecret()), cost)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	a.dummies[cost] = h
	return h, nil
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

// check authenticates r and returns its user; otherwise it answers, 401 with a
// challenge, or 429 with Retry-After to an address that failed too often, and returns
// false. A request without credentials is no failure (clients ask before they log in).
func (a *htpasswdAuth) check(w http.ResponseWriter, r *http.Request) (string, bool) {
	if _, _, ok := r.BasicAuth(); !ok {
		a.challenge(w)
		return "", false
	}
	client := clientKey(r.RemoteAddr)
	user, ok, wait := a.authenticate(r, client)
	switch {
	case ok:
		return user, true
	case wait > 0:
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		writeError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", "too many failed logins from this address: retry later", nil)
		return "", false
	}
	a.challenge(w)
	return "", false
}

// authenticate returns the user of a request with valid credentials. A request from
// client (clientKey) while it is refused is not checked: wait is how much longer.
func (a *htpasswdAuth) authenticate(r *http.Request, client string) (user string, ok bool, wait time.Duration) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false, 0
	}
	if wait := a.backoff.blocked(client, time.Now()); wait > 0 {
		return "", false, wait
	}
	k := a.key(user, pass)
	a.mu.Lock()
	_ = a.reload(false) // a broken rewrite keeps the last good users
	hash, known := a.users[user]
	v, cached := a.verified[user]
	dummy := a.dummy
	a.mu.Unlock()
	if known && cached && subtle.ConstantTimeCompare(v[:], k[:]) == 1 {
		return user, true, 0
	}
	if !known {
		hash = dummy // the same work as for a wrong password: user names stay unknown
	}
	match, wait := a.bcrypt(r.Context(), client, hash, pass)
	if !match || !known {
		return "", false, wait
	}
	a.mu.Lock()
	if h2, ok := a.users[user]; ok && bytes.Equal(h2, hash) {
		a.verified[user] = k
	}
	a.mu.Unlock()
	return user, true, 0
}

// bcrypt compares pass with hash once a slot is free (no match when ctx ends first),
// and counts a mismatch as a failure of client while it holds the slot. Requests of one
// client that queued together are refused once the failures of those before them have
// the client refused (wait > 0): they run no bcrypt.
func (a *htpasswdAuth) bcrypt(ctx context.Context, client string, hash []byte, pass string) (match bool, wait time.Duration) {
	select {
	case a.bcrypts <- struct{}{}:
	case <-ctx.Done():
		return false, 0
	}
	defer func() { <-a.bcrypts }()
	if wait := a.backoff.blocked(client, time.Now()); wait > 0 {
		return false, wait
	}
	if a.compare(hash, []byte(pass)) != nil {
		a.backoff.fail(client, time.Now())
		return false, 0
	}
	return true, 0
}

func (a *htpasswdAuth) challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", a.realm))
	writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required", nil)
}

// clientKey is the address failures are counted by: the IP of an IPv4 client, the /64
// of an IPv6 one (a single host commonly holds a whole /64).
func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// failureBackoff counts failed logins per client address. An address may fail limit
// times within window; each failure after that refuses the address for a while, first
// base, doubling with every further failure up to maxWait. Refused requests are not
// checked (no bcrypt) and do not count. An address's count is forgotten once it has not
// failed for window. At most maxAddrs addresses are tracked; beyond that, the
// addresses that are not refused make room.
type failureBackoff struct {
	limit    int
	window   time.Duration
	base     time.Duration
	maxWait  time.Duration
	maxAddrs int

	mu    sync.Mutex
	addrs map[string]*failures
}

type failures struct {
	n       int
	last    time.Time // last failure
	blocked time.Time // refused until then
}

func newFailureBackoff() *failureBackoff {
	return &failureBackoff{limit: 10, window: 10 * time.Minute, base: time.Second, maxWait: 5 * time.Minute, maxAddrs: 100000, addrs: map[string]*failures{}}
}

// blocked is how much longer addr is refused (0: not refused).
func (b *failureBackoff) blocked(addr string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.addrs[addr]
	if !ok || !now.Before(f.blocked) {
		return 0
	}
	return f.blocked.Sub(now)
}

// fail counts a failed login of addr.
func (b *failureBackoff) fail(addr string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.addrs[addr]
	if ok && now.Sub(f.last) > b.window && !now.Before(f.blocked) {
		f.n = 0
	}
	if !ok {
		if len(b.addrs) >= b.maxAddrs {
			b.sweep(now)
		}
		f = &failures{}
		b.addrs[addr] = f
	}
	f.n++
	f.last = now
	if over := f.n - b.limit; over >= 0 {
		wait := b.maxWait
		if over < 30 && b.base<<over < b.maxWait {
			wait = b.base << over
		}
		f.blocked = now.Add(wait)
	}
}

// sweep forgets addresses whose failures are older than the window and, if that is
// not enough, addresses not refused now.
func (b *failureBackoff) sweep(now time.Time) {
	for k, f := range b.addrs {
		if now.Sub(f.last) > b.window && !now.Before(f.blocked) {
			delete(b.addrs, k)
		}
	}
	for k, f := range b.addrs {
		if len(b.addrs) < b.maxAddrs {
			return
		}
		if !now.Before(f.blocked) {
			delete(b.addrs, k)
		}
	}
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
