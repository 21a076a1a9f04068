package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// apiError is an error answered in OpenAI's shape:
//
//	{"error": {"message": "...", "type": "invalid_request_error", "param": "messages", "code": "..."}}
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
	// RetryAfter, when > 0, is sent as the Retry-After header (seconds).
	RetryAfter int `json:"-"`
}

func (e *apiError) Error() string { return e.Message }

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// badRequest is a 400 invalid_request_error naming the offending parameter.
func badRequest(param, code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...),
		Type: "invalid_request_error", Param: strPtr(param), Code: strPtr(code)}
}

func newAPIError(status int, typ, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Message: fmt.Sprintf(format, args...), Type: typ, Code: strPtr(code)}
}

// asAPIError maps any error to an apiError: an *apiError passes through,
// anything else is a 500 server_error (internal failures only: every input
// problem is turned into a 4xx where it is detected).
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return newAPIError(http.StatusInternalServerError, "server_error", "internal_error", "%v", err)
}

type errorBody struct {
	Error *apiError `json:"error"`
}

func writeError(w http.ResponseWriter, err error) {
	ae := asAPIError(err)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if ae.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	if ae.Status == http.StatusGatewayTimeout || ae.Status == http.StatusInternalServerError {
		// OpenAI's SDKs retry 5xx unless told not to: a request that ran
		// out of its time, or failed inside the server, would only do
		// the same again.
		h.Set("X-Should-Retry", "false")
	}
	w.WriteHeader(ae.Status)
	_ = json.NewEncoder(w).Encode(errorBody{ae})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
