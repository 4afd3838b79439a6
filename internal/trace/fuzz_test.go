package trace

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzReaders feeds arbitrary bytes to every reader: they may refuse the
// input but never panic, and what they accept must be writable as CSV v1
// and read back the same. go test -fuzz FuzzReaders ./internal/trace
func FuzzReaders(f *testing.F) {
	f.Add(csvFile(good, "j2,5,p1,u1,8,,3600,,completed"))
	f.Add(openbHead + "p1,1500,100,1,250,V100M16|V100M32,BE,Succeeded,100,400,150\n")
	f.Add("1 0 0 60 4 -1 -1 4 120 -1 1 1 1 -1 -1 -1 -1 -1\n")
	f.Add("ResNet\tcmd\t-n\t1\t100\t5.0\t4\n")
	d := &Durations{classes: []int{1, 8}, byClass: [][]int64{{10, 20}, {30}}}
	f.Fuzz(func(t *testing.T, in string) {
		for _, skip := range []bool{false, true} {
			opt := ReadOptions{SkipBad: skip}
			outs := [][]Record{}
			if recs, _, err := ReadCSV(strings.NewReader(in), "f.csv", opt); err == nil {
				outs = append(outs, recs)
			}
			if recs, _, err := ReadOpenB(strings.NewReader(in), "f.csv", opt); err == nil {
				outs = append(outs, recs)
			}
			if recs, _, err := ReadSWF(strings.NewReader(in), "f.swf", SWFOptions{ReadOptions: opt, PerNode: 4}); err == nil {
				outs = append(outs, recs)
			}
			if recs, _, err := ReadGavelVC(strings.NewReader(in), "f.trace", "f", d, GavelRNG(1, "f"), opt); err == nil {
				outs = append(outs, recs)
			}
			for _, recs := range outs {
				var b bytes.Buffer
				if err := WriteCSV(&b, recs); err != nil {
					t.Fatalf("a reader accepted %q but WriteCSV refuses it: %v", in, err)
				}
				back, _, err := ReadCSV(&b, "back.csv", ReadOptions{})
				if err != nil || len(back) != len(recs) {
					t.Fatalf("written records of %q do not read back: %v", in, err)
				}
			}
		}
	})
}
