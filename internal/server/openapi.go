package server

import "net/http"

// openapi serves the OpenAPI 3 document of the API.
func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, openAPIDoc(s.apiRoutes()))
	return nil
}

func openAPIDoc(routes []route) map[string]any {
	paths := map[string]any{}
	for _, rt := range routes {
		ops, _ := paths[rt.path].(map[string]any)
		if ops == nil {
			ops = map[string]any{}
			paths[rt.path] = ops
		}
		ops[lower(rt.method)] = map[string]any{"responses": map[string]any{"200": map[string]any{"description": "OK"}}}
	}
	return map[string]any{"openapi": "3.0.3", "info": map[string]any{"title": "usine", "version": "1"}, "paths": paths}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}
