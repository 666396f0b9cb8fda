package ui

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// repoSize is where a repository's bytes go: Total counts each blob of its tags once;
// Shared are those other repositories use too, Unique the rest: what deleting the
// repository and collecting garbage would free.
type repoSize struct {
	Repo          string
	Tags          int
	Total, Shared int64
	Unique        int64
}

// sizeCache keeps the last computation for a while: it reads every manifest of the hub.
type sizeCache struct {
	mu    sync.Mutex
	at    time.Time
	sizes []repoSize
	bytes int64
}

const sizesTTL = 30 * time.Second

// computeSizes walks every tag of every repository (manifests are cached by digest, so a
// second walk costs the tag lists).
func (h *Handler) computeSizes() ([]repoSize, int64, error) {
	h.sizes.mu.Lock()
	defer h.sizes.mu.Unlock()
	if h.sizes.sizes != nil && time.Since(h.sizes.at) < sizesTTL {
		return h.sizes.sizes, h.sizes.bytes, nil
	}
	repos, err := h.r.repositories()
	if err != nil {
		return nil, 0, err
	}
	blobsOf := make([]map[string]int64, len(repos))
	users := map[string]int{} // blob -> repositories using it
	tagCount := make([]int, len(repos))
	for i, repo := range repos {
		blobs := map[string]int64{}
		tags, err := h.r.tags(repo)
		if err != nil {
			continue
		}
		tagCount[i] = len(tags)
		for _, t := range tags {
			if m, err := h.r.manifest(repo, t); err == nil {
				h.blobsOf(repo, m, blobs, 0)
			}
		}
		for d := range blobs {
			users[d]++
		}
		blobsOf[i] = blobs
	}
	all := map[string]int64{}
	out := make([]repoSize, len(repos))
	for i, repo := range repos {
		s := repoSize{Repo: repo, Tags: tagCount[i]}
		for d, n := range blobsOf[i] {
			s.Total += n
			all[d] = n
			if users[d] > 1 {
				s.Shared += n
			}
		}
		s.Unique = s.Total - s.Shared
		out[i] = s
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Total != out[j].Total {
			return out[i].Total > out[j].Total
		}
		return out[i].Repo < out[j].Repo
	})
	var total int64
	for _, n := range all {
		total += n
	}
	h.sizes.sizes, h.sizes.bytes, h.sizes.at = out, total, time.Now()
	return out, total, nil
}

// bar is one row of the SVG chart, in chart coordinates.
type bar struct {
	repoSize
	Y, UniqueW, SharedW int
}

// chartRows is how many repositories the chart draws (the largest).
const chartRows = 40

const (
	chartLabelW = 260
	chartBarW   = 520
	chartRowH   = 22
)

func (h *Handler) sizesPage(w http.ResponseWriter, r *http.Request) {
	sizes, total, err := h.computeSizes()
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, err.Error())
		return
	}
	top := sizes[:min(len(sizes), chartRows)]
	var biggest int64 = 1
	for _, s := range top {
		biggest = max(biggest, s.Total)
	}
	bars := make([]bar, len(top))
	for i, s := range top {
		bars[i] = bar{repoSize: s, Y: i * chartRowH,
			UniqueW: int(s.Unique * chartBarW / biggest), SharedW: int(s.Shared * chartBarW / biggest)}
	}
	// The table, like the repository list, shows 100 rows a page.
	n, _ := strconv.Atoi(r.URL.Query().Get("page"))
	pages := max(1, (len(sizes)+pageSize-1)/pageSize)
	n = min(max(n, 1), pages)
	rows := sizes[(n-1)*pageSize : min(n*pageSize, len(sizes))]
	h.render(w, "sizes", http.StatusOK, struct {
		page
		Repos        []repoSize
		Count        int
		Bars         []bar
		Total        int64
		Height       int
		LabelW, BarW int
		Page, Pages  int
	}{h.base(r, "Sizes"), rows, len(sizes), bars, total, len(bars)*chartRowH + 4, chartLabelW, chartBarW, n, pages})
}

func (h *Handler) mirror(w http.ResponseWriter, r *http.Request) {
	if h.opts.Mirrors == nil {
		h.fail(w, r, http.StatusNotFound, "this hub is not a mirror (see registry serve --mirror)")
		return
	}
	ms := h.opts.Mirrors()
	repos, err := h.r.repositories()
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, err.Error())
		return
	}
	sort.Slice(ms, func(a, b int) bool { return ms[a].Registry < ms[b].Registry })
	for i := range ms {
		// Every tag the namespace holds; those synced or pushed into it were never checked.
		seen := map[string]bool{}
		for _, t := range ms[i].Tags {
			seen[t.Repository+":"+t.Tag] = true
		}
		for _, repo := range repos {
			if !strings.HasPrefix(repo, ms[i].Namespace+"/") {
				continue
			}
			tags, _ := h.r.tags(repo)
			for _, t := range tags {
				if !seen[repo+":"+t] {
					ms[i].Tags = append(ms[i].Tags, CachedTag{Repository: repo, Tag: t})
				}
			}
		}
		sort.Slice(ms[i].Tags, func(a, b int) bool { return ms[i].Tags[a].Checked.After(ms[i].Tags[b].Checked) })
	}
	h.render(w, "mirror", http.StatusOK, struct {
		page
		Mirrors []MirrorStatus
		Now     time.Time
	}{h.base(r, "Mirror"), ms, time.Now()})
}
