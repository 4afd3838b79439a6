package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIMatchesTheRoutes checks the served document against the real
// router: every route is documented, every documented operation exists,
// and each answers something other than "no such route".
func TestOpenAPIMatchesTheRoutes(t *testing.T) {
	s := &Server{}
	routes := s.apiRoutes()
	var fromRoutes, fromDoc []string
	for _, rt := range routes {
		fromRoutes = append(fromRoutes, rt.method+" "+rt.path)
	}
	for k := range operations {
		fromDoc = append(fromDoc, k)
	}
	slices.Sort(fromRoutes)
	slices.Sort(fromDoc)
	for _, k := range fromRoutes {
		if _, ok := operations[k]; !ok {
			t.Errorf("route %s is not in the OpenAPI document: add it to operations", k)
		}
	}
	for _, k := range fromDoc {
		if !slices.Contains(fromRoutes, k) {
			t.Errorf("the OpenAPI document names %s, which no route serves", k)
		}
	}

	doc := openAPIDoc(routes)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &parsed); err != nil || !strings.HasPrefix(parsed.OpenAPI, "3.") {
		t.Fatalf("document is not OpenAPI 3: %v %q", err, parsed.OpenAPI)
	}
	// Route every documented operation through a mux built like the real
	// one: none may fall through to the catch-all.
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) })
	n := 0
	for path, ops := range parsed.Paths {
		for method := range ops {
			n++
			url := strings.NewReplacer("{id}", "7", "{name}", "x", "{user}", "u", "{node}", "n").Replace(path)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(strings.ToUpper(method), url, nil))
			if rec.Code != 299 {
				t.Errorf("%s %s routes to %d, not to its handler", strings.ToUpper(method), url, rec.Code)
			}
		}
	}
	if n != len(routes) {
		t.Errorf("document has %d operations; the router %d", n, len(routes))
	}
}
