package server

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cluster-image/sealos/store/durable"
	"github.com/opencontainers/go-digest"
)

// putBlobFast completes the spec's single-POST upload (POST .../blobs/uploads/?digest=
// with the blob as body) of a filesystem hub in one pass, writing the layout distribution
// reads. Distribution's own path for it (a session, then a PUT) creates a session
// directory, writes and renames a start time, serializes the hash state twice, re-reads
// both, routes two requests through its regexps and removes the session: for a 1 MiB blob
// that bookkeeping cost more CPU than hashing the data, much of it in ext4 inode
// allocation (each created and deleted file makes the next allocation search longer).
//
// What it keeps of distribution's upload, in the same order:
//   - the data is fdatasynced (write-back started as it arrives, see uploadWriter) and its
//     digest checked before it is renamed to blobs/sha256/<xx>/<hex>/data: a blob is
//     never visible before it is durable, and never with other content than its digest;
//   - the repository's link (_layers/sha256/<hex>/link) is written after the data, and
//     both names are made durable (with the directories that changed) before the 201.
//
// The data is staged in <root>/.sealos-uploads (one file, no session directory); what a
// crash leaves there is removed when a hub starts and by gc (see sweepDead).
//
// It returns false, having written nothing, when the request is not for it (an
// in-memory hub, a digest other than sha256), and the App answers as usual.
func (s *Server) putBlobFast(w *logWriter, r *http.Request, repo string) bool {
	sd, ok := s.driver.(*syncingDriver)
	if !ok {
		return false
	}
	d, err := digest.Parse(r.URL.Query().Get("digest"))
	if err != nil || d.Algorithm() != digest.SHA256 {
		return false
	}
	s.storeBlob(sd, w, r, repo, d)
	return true
}

// putUploadFast completes, in the same one pass, the monolithic upload that clients send
// for large blobs: POST (an empty session), then PUT .../uploads/<id>?digest= with the
// whole blob. Distribution's own PUT reads the body 32 KiB at a time through its
// bookkeeping (a 1 GiB blob took 32,768 reads). It takes sessions that nothing has been
// written to yet (no PATCH before), sha256 digests and filesystem hubs, and removes the
// session when done, as distribution does, whatever the outcome. Otherwise it returns
// false, having written nothing.
func (s *Server) putUploadFast(w *logWriter, r *http.Request, repo, id string) bool {
	sd, ok := s.driver.(*syncingDriver)
	if !ok || id == "" || strings.ContainsAny(id, "/.") || r.Header.Get("Content-Range") != "" {
		return false
	}
	d, err := digest.Parse(r.URL.Query().Get("digest"))
	if err != nil || d.Algorithm() != digest.SHA256 {
		return false
	}
	session := sd.full(path.Join(repoPath(repo), "_uploads", id))
	if _, err := os.Stat(filepath.Join(session, "startedat")); err != nil {
		return false // distribution answers BLOB_UPLOAD_UNKNOWN
	}
	if fi, err := os.Stat(filepath.Join(session, "data")); err == nil && fi.Size() > 0 {
		return false // chunks were written: distribution appends the rest
	}
	defer os.RemoveAll(session)
	s.storeBlob(sd, w, r, repo, d)
	return true
}

// storeBlob writes the request body as blob d of repo: staged, hashed, made durable,
// checked against d, then put in place and linked (placeBlob), and answers the request.
func (s *Server) storeBlob(sd *syncingDriver, w *logWriter, r *http.Request, repo string, d digest.Digest) {
	ctx := r.Context()
	st, err := stage(sd, r.ContentLength)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", "upload: "+err.Error(), nil)
		return
	}
	defer os.Remove(st.Name()) // gone already once it is in place
	h := sha256.New()
	n, err := st.ReadFrom(io.TeeReader(r.Body, h))
	if err == nil && r.ContentLength >= 0 && n != r.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		_ = st.Close()
		if ctx.Err() != nil {
			w.WriteHeader(499) // the client went away: nobody reads an answer
			return
		}
		if isNoSpaceErr(err) {
			writeError(w, errNoSpace.status, errNoSpace.code, errNoSpace.message, nil)
			return
		}
		writeError(w, http.StatusBadRequest, "BLOB_UPLOAD_INVALID", "blob upload invalid", map[string]string{"reason": err.Error()})
		return
	}
	if got := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil))); got != d {
		_ = st.Close()
		writeError(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content", map[string]string{"digest": d.String(), "content": got.String()})
		return
	}
	err = st.Sync()
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = placeBlob(sd, st.Name(), d, repo)
	}
	if isNoSpaceErr(err) {
		writeError(w, errNoSpace.status, errNoSpace.code, errNoSpace.message, nil)
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", "upload: "+err.Error(), nil)
		return
	}
	hd := w.Header()
	hd.Set("Docker-Distribution-API-Version", "registry/2.0")
	hd.Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	hd.Set("Docker-Content-Digest", d.String())
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// stagedFile is where storeBlob writes a blob before placing it.
type stagedFile interface {
	Name() string
	ReadFrom(io.Reader) (int64, error)
	Sync() error // durable
	Close() error
}

// directMin is the size from which a blob is staged with O_DIRECT (durable.DirectWriter):
// it spares the CPU the page cache costs, and small blobs are done before that pays.
const directMin = 8 << 20

// stage creates a staged file for a blob of size bytes (-1: unknown).
func stage(sd *syncingDriver, size int64) (stagedFile, error) {
	dir := filepath.Join(sd.root, stagingDir)
	if size >= directMin {
		var rnd [8]byte
		_, _ = rand.Read(rnd[:])
		if dw, err := durable.CreateDirect(filepath.Join(dir, stagePrefix()+hex.EncodeToString(rnd[:]))); err == nil {
			return dw, nil
		} // no O_DIRECT here (tmpfs): through the page cache
	}
	f, err := os.CreateTemp(dir, stagePrefix()+"*")
	if err != nil {
		return nil, err
	}
	return &bufferedStage{f: f, w: durable.NewWriter(f, 0)}, nil
}

// bufferedStage stages through the page cache, with a durable.Writer.
type bufferedStage struct {
	f *os.File
	w *durable.Writer
}

func (b *bufferedStage) Name() string { return b.f.Name() }
func (b *bufferedStage) Sync() error  { return b.w.Sync() }
func (b *bufferedStage) Close() error { return errors.Join(b.w.Flush(), b.f.Close()) }

func (b *bufferedStage) ReadFrom(r io.Reader) (int64, error) {
	bufp := uploadBufs.Get().(*[]byte)
	defer uploadBufs.Put(bufp)
	return io.CopyBuffer(b.w, r, *bufp)
}

// placeBlob renames the durable staged data to its blob path (unless the blob is there
// already) and links it into repo, then makes the new names durable with one concurrent
// round of fsyncs, so that an upload waits for the disk twice (data, then names) instead
// of once per step.
func placeBlob(sd *syncingDriver, staged string, d digest.Digest, repo string) error {
	var sync []string
	if _, err := os.Stat(sd.full(blobData(d))); err != nil {
		// absent (or unreadable): put it in place; a concurrent upload of the same
		// content renames identical bytes over it, which is harmless
		dirs, err := sd.mkdirsFor(sd.full(blobData(d)))
		if err != nil {
			return err
		}
		if err := os.Rename(staged, sd.full(blobData(d))); err != nil {
			return err
		}
		sync = append(sync, dirs...)
	}
	link := sd.full(blobLink(repo, d))
	if b, err := os.ReadFile(link); err == nil && string(b) == d.String() {
		return syncPaths(append(sync, link))
	}
	dirs, err := sd.mkdirsFor(link)
	if err != nil {
		return err
	}
	// in place, as distribution writes links
	if err := os.WriteFile(link, []byte(d.String()), 0o666); err != nil {
		return err
	}
	return syncPaths(append(append(sync, dirs...), link))
}

// stagingDir (under the hub's root) holds upload data of single-POST uploads until it is
// complete and durable.
const stagingDir = ".sealos-uploads"

// uploadBufs are the buffers upload bodies are read with: a 1 MiB blob in a few reads.
var uploadBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
