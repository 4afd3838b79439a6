package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// Limits against abuse.
const (
	maxBody      = 8 << 20 // bytes in one request body
	maxBatch     = 10_000  // jobs in one submit, array elements included
	defaultPage  = 500
	maxPage      = 5_000
	maxNameLen   = 128     // names, projects, users, reasons
	maxScriptLen = 1 << 20 // a batch script
	maxEnvVars   = 1_000
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// fail is an *api.Error to answer with.
func fail(status int, code, field, format string, args ...any) *api.Error {
	return &api.Error{Status: status, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) *api.Error {
	return fail(http.StatusBadRequest, api.CodeInvalidField, field, format, args...)
}

// writeError answers with err as an API error body; errors that are not
// *api.Error are mapped from the store's sentinels, else internal.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *api.Error
	var fe *model.FieldError
	switch {
	case errors.As(err, &e):
	case errors.As(err, &fe):
		e = invalid(fe.Field, "%s", fe.Error())
	case errors.Is(err, store.ErrNotFound):
		e = fail(http.StatusNotFound, api.CodeNotFound, "", "%v", err)
	case errors.Is(err, store.ErrConflict):
		e = fail(http.StatusConflict, api.CodeConflict, "", "%v", err)
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = fail(http.StatusInternalServerError, api.CodeInternal, "", "internal error; the server log has the details")
	}
	writeJSON(w, e.Status, e)
}

// decode reads a JSON body into v: at most maxBody bytes, no unknown
// fields, nothing after the value.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return fail(http.StatusUnsupportedMediaType, api.CodeBadRequest, "", "Content-Type %q: send application/json", ct)
	}
	return decodeBody(io.LimitReader(r.Body, maxBody+1), v)
}

// decodeBody is decode's reading part, fuzzed on its own.
func decodeBody(body io.Reader, v any) error {
	data, err := io.ReadAll(body)
	if err != nil {
		return fail(http.StatusBadRequest, api.CodeBadRequest, "", "read body: %v", err)
	}
	if len(data) > maxBody {
		return fail(http.StatusRequestEntityTooLarge, api.CodeTooLarge, "", "body larger than %d bytes; split the request", maxBody)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return fail(http.StatusBadRequest, api.CodeBadRequest, "", "body holds more than one JSON value")
	}
	return nil
}

// jsonError turns a decoding error into one that names the field.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		// Field paths name embedded Go structs too (JobSpec.nodes); JSON
		// names are lower case.
		var parts []string
		for p := range strings.SplitSeq(te.Field, ".") {
			if p != "" && !(p[0] >= 'A' && p[0] <= 'Z') {
				parts = append(parts, p)
			}
		}
		f := strings.Join(parts, ".")
		return invalid(f, "field %s: a JSON %s cannot be a %s", f, te.Value, te.Type)
	case errors.As(err, &se):
		return fail(http.StatusBadRequest, api.CodeBadRequest, "", "malformed JSON at byte %d: %v", se.Offset, err)
	case errors.Is(err, io.EOF):
		return fail(http.StatusBadRequest, api.CodeBadRequest, "", "empty body; send a JSON object")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return invalid(f, "unknown field %q; see /api/v1/openapi.json for the fields this request takes", f)
	}
	return fail(http.StatusBadRequest, api.CodeBadRequest, "", "malformed JSON: %v", err)
}

// queryInt reads an optional non-negative integer query parameter.
func queryInt(r *http.Request, key string, def, maxV int) (int, error) {
	s := r.URL.Query().Get(key)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, invalid(key, "query parameter %s=%q: give a non-negative integer", key, s)
	}
	if n > maxV {
		return 0, invalid(key, "query parameter %s=%d: at most %d", key, n, maxV)
	}
	return n, nil
}

// checkName checks a name-like field: present when required, not too
// long, printable, no spaces.
func checkName(field, v string, required bool) error {
	if v == "" {
		if required {
			return invalid(field, "%s is required", field)
		}
		return nil
	}
	if len(v) > maxNameLen {
		return invalid(field, "%s is %d bytes long; at most %d", field, len(v), maxNameLen)
	}
	for _, c := range v {
		if c <= ' ' || c == 0x7f || c == '/' || c == ',' {
			return invalid(field, "%s %q holds %q; use letters, digits and - _ . : @", field, v, c)
		}
	}
	return nil
}

// checkText checks a free-text field: not too long, no control characters.
func checkText(field, v string, maxLen int) error {
	if len(v) > maxLen {
		return invalid(field, "%s is %d bytes long; at most %d", field, len(v), maxLen)
	}
	for _, c := range v {
		if c < ' ' && c != '\n' && c != '\t' && c != '\r' {
			return invalid(field, "%s holds the control character %q", field, c)
		}
	}
	return nil
}
