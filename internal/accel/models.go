package accel

import (
	"slices"
	"strings"
	"unicode"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/training"
)

// extraModels are the models emulation and name matching know beyond
// training.Catalogue, which is the one table of published figures and is
// reused rather than copied. Figures are per accelerator (per GPU of a
// superchip or rack), peak dense BF16, vendors' data sheets.
func extraModels() []model.Accelerator {
	return []model.Accelerator{
		{Vendor: "nvidia", Model: "L40S", MemoryGiB: 48, BF16TFLOPS: 362, Watts: 350},
		{Vendor: "nvidia", Model: "GH200", MemoryGiB: 96, BF16TFLOPS: 989, Watts: 1000}, // the superchip's power, CPU included
		{Vendor: "nvidia", Model: "B200", MemoryGiB: 180, BF16TFLOPS: 2250, Watts: 1000},
		{Vendor: "nvidia", Model: "GB200", MemoryGiB: 186, BF16TFLOPS: 2500, Watts: 1200},
		{Vendor: "amd", Model: "MI300A", MemoryGiB: 128, BF16TFLOPS: 980.6, Watts: 550},
		{Vendor: "amd", Model: "MI325X", MemoryGiB: 256, BF16TFLOPS: 1307, Watts: 1000},
		{Vendor: "amd", Model: "MI355X", MemoryGiB: 288, BF16TFLOPS: 2500, Watts: 1400},
	}
}

// Models lists every accelerator model usine knows, sorted by name.
func Models() []model.Accelerator {
	var out []model.Accelerator
	for _, a := range training.Catalogue() {
		out = append(out, a.Accelerator)
	}
	out = append(out, extraModels()...)
	slices.SortFunc(out, func(a, b model.Accelerator) int { return strings.Compare(a.Model, b.Model) })
	return out
}

// Lookup finds a model by name, ignoring case.
func Lookup(name string) (model.Accelerator, bool) {
	for _, a := range Models() {
		if strings.EqualFold(a.Model, name) {
			return a, true
		}
	}
	return model.Accelerator{}, false
}

// modelNames lists the known model names, for error messages.
func modelNames() string {
	var names []string
	for _, a := range Models() {
		names = append(names, a.Model)
	}
	return strings.Join(names, ", ")
}

// ModelFromName turns a vendor's product name ("NVIDIA H100 80GB HBM3",
// "NVIDIA A100-SXM4-80GB", "AMD Instinct MI300X OAM") into usine's model
// name ("H100", "A100", "MI300X"): a known model when one of the name's
// words is one, else the name without the vendor's words, spaces turned
// into dashes ("NVIDIA RTX A6000" → "RTX-A6000").
func ModelFromName(name string) string {
	words := strings.FieldsFunc(strings.ToUpper(name), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	for _, a := range Models() {
		if slices.Contains(words, strings.ToUpper(a.Model)) {
			return a.Model
		}
	}
	var kept []string
	for _, w := range strings.Fields(name) {
		switch strings.ToUpper(w) {
		case "NVIDIA", "AMD", "INSTINCT", "TESLA", "RADEON":
			continue
		}
		kept = append(kept, w)
	}
	if len(kept) == 0 {
		return strings.Join(strings.Fields(name), "-")
	}
	return strings.Join(kept, "-")
}
