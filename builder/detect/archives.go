package detect

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Archive transports of images/skopeo/tar.txt (skopeo's names for them).
const (
	DockerArchive = "docker-archive" // a `docker save` tarball
	OCIArchive    = "oci-archive"    // a tar of an OCI image layout
)

// Archive is an image archive of the build context that holds an image.
type Archive struct {
	Transport string `json:"transport"`
	// Path is the archive file (absolute).
	Path string `json:"path"`
	// Ref picks the image in an archive holding several (docker-archive:PATH:REF, or an
	// OCI layout's org.opencontainers.image.ref.name); "" when the archive holds one.
	Ref string `json:"ref,omitempty"`
}

// detectArchives reads images/skopeo/tar.txt, which sealos reads: one TRANSPORT:PATH@NAME
// per line, TRANSPORT docker-archive or oci-archive, PATH relative to images/skopeo, NAME
// the repository (and tag) the image is saved as. A missing file is no error.
func detectArchives(dir string, res *Result) error {
	lines, err := readLines(filepath.Join(dir, ArchiveList))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read image archive list: %w", err)
	}
	var errs []error
	for _, l := range lines {
		a, ref, err := parseArchiveLine(filepath.Join(dir, SkopeoDir), l.text)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", ArchiveList, l.no, err))
			continue
		}
		src := Source{File: ArchiveList, Reason: fmt.Sprintf("%s %s, line %d", a.Transport, relPath(dir, a.Path), l.no)}
		if _, err := name.NewTag(ref); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: image name %q: %w (an archive is saved under a repository and tag, not a digest)", ArchiveList, l.no, ref, err))
			continue
		}
		res.add(ref, src, a)
	}
	return errors.Join(errs...)
}

func parseArchiveLine(base, line string) (*Archive, string, error) {
	loc, ref, ok := strings.Cut(line, "@")
	transport, p, ok2 := strings.Cut(loc, ":")
	if !ok || !ok2 || strings.TrimSpace(ref) == "" || p == "" {
		return nil, "", fmt.Errorf("%q: want docker-archive:PATH@NAME or oci-archive:PATH@NAME", line)
	}
	if transport != DockerArchive && transport != OCIArchive {
		return nil, "", fmt.Errorf("%q: transport %q: want docker-archive or oci-archive", line, transport)
	}
	a := &Archive{Transport: transport, Path: filepath.Join(base, p)}
	if _, err := os.Stat(a.Path); err != nil {
		// PATH:REF picks one image of an archive holding several.
		if file, sel, ok := strings.Cut(p, ":"); ok && fileExists(filepath.Join(base, file)) {
			a.Path, a.Ref = filepath.Join(base, file), sel
		} else {
			return nil, "", fmt.Errorf("archive %s: %w", p, err)
		}
	}
	return a, strings.TrimSpace(ref), nil
}
