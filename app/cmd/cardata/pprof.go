//go:build pprof

package main

// Built with -tags pprof, the binary serves net/http/pprof on
// CARDATA_PPROF_ADDR (e.g. 127.0.0.1:6060) for profiling under load
// (docs/PERFORMANCE.md). Only `serve` listens, so a benchmark command that
// starts the server as a child process profiles the server, not itself.
// Production builds do not contain it.

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("CARDATA_PPROF_ADDR"); addr != "" && len(os.Args) > 1 && os.Args[1] == "serve" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
