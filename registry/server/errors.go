package server

import (
	"encoding/json"
	"net/http"
	"strconv"
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
