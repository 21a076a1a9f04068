package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"strings"
)

// This file holds how a request body is accepted and read: its declared
// type, and the errors of reading it (as opposed to parsing it).

// checkContentType accepts a JSON body: Content-Type application/json (or
// a structured application/...+json type), or none at all (the body is
// parsed as JSON). Anything declared otherwise, form-urlencoded and XML
// included, is 415.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return nil
	}
	if err != nil {
		mt = ct
	}
	hint := ""
	if mt == "application/x-www-form-urlencoded" {
		hint = " (curl -d sends application/x-www-form-urlencoded unless given -H 'Content-Type: application/json')"
	}
	return newAPIError(http.StatusUnsupportedMediaType, "invalid_request_error", "unsupported_media_type",
		"Content-Type %q is not accepted: send the body as application/json%s", mt, hint)
}

// bodyReader marks the errors of reading the request body (a read
// deadline, broken chunked encoding, a body shorter than its
// Content-Length, the size limit), so that they are not reported as
// malformed JSON.
type bodyReader struct {
	io.ReadCloser
	chunked bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyReadError{err: err, chunked: b.chunked}
	}
	return n, err
}

type bodyReadError struct {
	err     error
	chunked bool
}

func (e *bodyReadError) Error() string { return e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// bodyError maps a body read error to its API error.
func bodyError(e *bodyReadError) *apiError {
	var mb *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(e.err, &mb):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: strPtr("request_too_large"),
			Message: fmt.Sprintf("request body exceeds %d bytes", mb.Limit)}
	case errors.Is(e.err, os.ErrDeadlineExceeded) || errors.As(e.err, &ne) && ne.Timeout():
		return newAPIError(http.StatusRequestTimeout, "invalid_request_error", "request_timeout",
			"the request body did not arrive within the server's read timeout (--read-timeout)")
	case errors.Is(e.err, io.ErrUnexpectedEOF) && e.chunked:
		return badRequest("", "invalid_body", "the request body ended before its last chunk (chunked transfer encoding)")
	case errors.Is(e.err, io.ErrUnexpectedEOF):
		return badRequest("", "invalid_body", "the request body ended before the length its Content-Length header gives")
	case e.chunked:
		return badRequest("", "invalid_chunked_encoding", "the request body's chunked transfer encoding is malformed: %v", e.err)
	}
	return badRequest("", "invalid_body", "reading the request body failed: %v", e.err)
}
