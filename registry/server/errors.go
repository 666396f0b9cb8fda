package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// writeError writes an OCI distribution error body: {"errors":[{code,message,detail}]}.
func writeError(w http.ResponseWriter, status int, code, message string, detail any) {
	body, _ := json.Marshal(map[string]any{"errors": []map[string]any{{"code": code, "message": message, "detail": detail}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// maxQuote is how many bytes of one string an error body carries: errors quote user input
// (a repository name, a tag, a digest, a reason that repeats them), and a request line may
// be long, so every string of every error body is cut to this many bytes and "...".
const maxQuote = 256

// boundErrorBody is the one place error bodies are bounded, ours and distribution's
// (errcode details) alike: every string in a JSON body is cut to maxQuote bytes, and the
// storage root, where a message names a file, is not shown. A body that is no JSON is cut
// as one string.
func boundErrorBody(body []byte, root string) []byte {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		s := bound(string(body), root)
		if len(s) < len(body) {
			return []byte(s)
		}
		return body
	}
	out, err := json.Marshal(boundValue(v, root))
	if err != nil {
		return body
	}
	if len(body) > 0 && body[len(body)-1] == '\n' {
		out = append(out, '\n')
	}
	return out
}

func boundValue(v any, root string) any {
	switch x := v.(type) {
	case string:
		return bound(x, root)
	case []any:
		for i := range x {
			x[i] = boundValue(x[i], root)
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[bound(k, root)] = boundValue(e, root)
		}
		return out
	}
	return v
}

// bound cuts s to maxQuote bytes (on a character boundary) and hides root in it.
func bound(s, root string) string {
	if root != "" && len(root) > 1 {
		s = strings.ReplaceAll(s, root, "<storage>")
	}
	if len(s) <= maxQuote {
		return s
	}
	n := maxQuote
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
