package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
)

// The file format. Nested parts are kept raw so that each is decoded on its
// own and an error can name its path (partitions[0].pools[1].count).
type fileJSON struct {
	Name         string                     `json:"name"`
	Sites        []json.RawMessage          `json:"sites"`
	Accelerators map[string]json.RawMessage `json:"accelerators"`
	Partitions   []json.RawMessage          `json:"partitions"`
}

type siteJSON struct {
	Name    string `json:"name"`
	Country string `json:"country"`
}

type accelJSON struct {
	Vendor     string  `json:"vendor"`
	Model      string  `json:"model"`
	MemoryGiB  int     `json:"memory_gib"`
	BF16TFLOPS float64 `json:"bf16_tflops"`
	Watts      int     `json:"watts"`
}

type partitionJSON struct {
	Name  string            `json:"name"`
	Site  string            `json:"site"`
	Model string            `json:"model"`
	Down  bool              `json:"down"`
	Pools []json.RawMessage `json:"pools"`
	Nodes []json.RawMessage `json:"nodes"`
}

type poolJSON struct {
	Prefix         string `json:"prefix"`
	Count          int    `json:"count"`
	Start          *int   `json:"start"`  // first index; default 1
	Digits         int    `json:"digits"` // index width; 0 = that of the last index
	Accelerators   int    `json:"accelerators"`
	CPUs           int    `json:"cpus"`
	MemoryMiB      int64  `json:"memory_mib"`
	NodesPerBlock  int    `json:"nodes_per_block"`  // 0 = the whole pool in one block
	BlocksPerGroup int    `json:"blocks_per_group"` // 0 = all the pool's blocks in one group
}

type nodeJSON struct {
	Name         string `json:"name"`
	Accelerators int    `json:"accelerators"`
	CPUs         int    `json:"cpus"`
	MemoryMiB    int64  `json:"memory_mib"`
	Block        string `json:"block"`
	Group        string `json:"group"`
	State        string `json:"state"`
	Reason       string `json:"reason"`
}

// Error is a problem in a cluster file: which file, which field (a path such
// as partitions[0].pools[1].count; "" for the file as a whole) and what is
// wrong.
type Error struct {
	File string
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.File + ": " + e.Msg
	}
	return e.File + ": " + e.Path + ": " + e.Msg
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	if strings.HasPrefix(field, "[") {
		return path + field
	}
	return path + "." + field
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data, and turns the decoder's errors into *Error at path.
func decodeStrict(file string, data []byte, path string, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return &Error{File: file, Path: path, Msg: "holds more than one JSON value; a cluster file is one object"}
		}
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset)
		return &Error{File: fmt.Sprintf("%s:%d:%d", file, line, col), Path: path, Msg: "invalid JSON: " + strings.TrimPrefix(syn.Error(), "json: ")}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return &Error{File: file, Path: path, Msg: fmt.Sprintf("is a JSON %s; want %s", typ.Value, describe(typ.Type))}
		}
		return &Error{File: file, Path: join(path, field), Msg: fmt.Sprintf("is a JSON %s; want %s", typ.Value, describe(typ.Type))}
	case errors.Is(err, io.EOF):
		return &Error{File: file, Path: path, Msg: "is empty; a cluster file is a JSON object"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{File: file, Path: path, Msg: "invalid JSON: the file ends too early"}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return &Error{File: file, Path: join(path, name), Msg: "unknown field; known fields here: " + strings.Join(fieldNames(v), ", ")}
	}
	return &Error{File: file, Path: path, Msg: strings.TrimPrefix(err.Error(), "json: ")}
}

// position turns a byte offset into a 1-based line and column.
func position(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, max(col, 1)
}

func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list [...]"
	case reflect.Map, reflect.Struct:
		return "an object {...}"
	case reflect.Pointer:
		return describe(t.Elem())
	}
	return t.String()
}

// fieldNames lists the JSON names of the struct v points to.
func fieldNames(v any) []string {
	t := reflect.TypeOf(v).Elem()
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
