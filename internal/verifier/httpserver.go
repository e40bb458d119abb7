package verifier

import (
	"net/http"
	"time"
)

// Server timeouts and limits of the verification service's HTTP listener
// (docs/verifier.md, "Server timeouts").
const (
	// readHeaderTimeout bounds the wait for a request's headers, from its
	// first byte: the Slowloris bound.
	readHeaderTimeout = 5 * time.Second
	// readTimeout bounds reading a whole request, headers and body.
	readTimeout = 10 * time.Second
	// writeTimeout bounds writing a response.
	writeTimeout = 10 * time.Second
	// idleTimeout closes a keep-alive connection without a new request.
	idleTimeout = 90 * time.Second
	// maxHeaderBytes bounds a request's headers.
	maxHeaderBytes = 32 << 10
)

// NewHTTPServer is the http.Server the verification service answers on,
// serving h with the timeouts and limits above. make bench serves its null
// handlers with it as well, so that they compare like with like.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout,
		IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes,
	}
}
