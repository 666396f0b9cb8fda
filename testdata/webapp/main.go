// webapp is the container image of the Kubernetes end-to-end test: a static web server
// that answers every request with its pod's name, so a test can tell which pod served it.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	addr := ":8080"
	if p := os.Getenv("PORT"); p != "" {
		addr = ":" + p
	}
	host, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "webapp %s\n", host)
	})
	log.Printf("webapp listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
