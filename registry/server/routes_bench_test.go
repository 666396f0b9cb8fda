package server

import (
	"regexp"
	"testing"
)

// BenchmarkRouteBlobGET tries the routes serveHTTP and validRoute try for a blob GET,
// with the literal prefilter and with the bare regexps.
func BenchmarkRouteBlobGET(b *testing.B) {
	p := "/v2/bench/small/blobs/sha256:848e65b6ed850eaf249edc9765a8159ad7ddc3a8ca967962611c3e183aceafa1"
	pats := []pathPattern{manifestPath, uploadPath, blobPath, referrersPath, manifestPath, uploadPath, blobPath}
	b.Run("prefiltered", func(b *testing.B) {
		for range b.N {
			for _, pt := range pats {
				pt.FindStringSubmatch(p)
			}
		}
	})
	b.Run("regexp", func(b *testing.B) {
		var res []*regexp.Regexp
		for _, pt := range pats {
			res = append(res, pt.re)
		}
		for range b.N {
			for _, re := range res {
				re.FindStringSubmatch(p)
			}
		}
	})
}
