package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/usine-project/usine/internal/accel"
)

func TestAgentAcceleratorFlags(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name, emulate, declare string
		wantN                  int
		wantVendor, wantModel  string
		wantSrc                accel.Source
		wantErr                string
	}{
		{name: "emulated", emulate: "8xH100", wantN: 8, wantVendor: "nvidia", wantModel: "H100", wantSrc: accel.SourceEmulated},
		{name: "declared", declare: "4 x mi300x", wantN: 4, wantVendor: "amd", wantModel: "MI300X", wantSrc: accel.SourceConfig},
		{name: "both", emulate: "8xH100", declare: "8xH100", wantErr: "not both"},
		{name: "several nodes for one agent", emulate: "2x8xH100", wantErr: "one agent is one node"},
		{name: "a model to emulate that usine does not know", emulate: "4xFoo9", wantErr: "not in the built-in table"},
		{name: "a bad declaration", declare: "eight H100", wantErr: "--accelerators"},
	} {
		devs, src, count, err := nodeDevices(ctx, tc.emulate, tc.declare)
		if tc.wantErr != "" {
			var u *UsageError
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &u) {
				t.Errorf("%s: %v; want a usage error saying %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(devs) != tc.wantN || src != tc.wantSrc || devs[0].Vendor != tc.wantVendor || devs[0].Model != tc.wantModel || devs[len(devs)-1].Index != tc.wantN-1 {
			t.Errorf("%s: %d devices from %s, first %+v; want %d %s %s from %s", tc.name, len(devs), src, devs[0], tc.wantN, tc.wantVendor, tc.wantModel, tc.wantSrc)
		}
		if count != nil {
			t.Errorf("%s: devices that cannot be lost are recounted", tc.name)
		}
	}
}
