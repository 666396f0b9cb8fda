package frontend

import (
	"context"
	"strings"
	"testing"

	"github.com/cluster-image/sealos/builder/kubefile"
	"github.com/moby/buildkit/client/llb"
)

// FuzzConvert proves that no Kubefile the parser accepts makes the conversion (or the LLB
// marshalling after it) panic.
func FuzzConvert(f *testing.F) {
	for _, s := range []string{
		"FROM scratch\nCOPY . .\nCMD [\"bash\", \"init.sh\"]\n",
		"ARG B=scratch\nFROM ${B} AS a\nRUN echo hi\nFROM a\nCOPY --from=a --chmod=755 /x /y\nWORKDIR rel\nUSER 1:1\n",
		"FROM scratch\nCOPY <<EOF /etc/x\nhi $A\nEOF\nRUN <<EOF\n#!/bin/sh\necho\nEOF\nLABEL sealos.io.type=rootfs sealos.io.version=v1beta1\n",
		"FROM scratch AS x\nFROM x\nCOPY --from=0 --link a b\nADD http://h/f /d/\nEXPOSE 80/udp\nVOLUME /v\nSHELL [\"sh\",\"-c\"]\nENTRYPOINT e\n",
		"FROM --platform=linux/arm64 scratch\nARG TARGETARCH\nENV A=$TARGETARCH\nSTOPSIGNAL 9\nMAINTAINER m\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		file, err := kubefile.Parse("Kubefile", strings.NewReader(src))
		if err != nil {
			return
		}
		ctx := context.Background()
		res, err := Convert(ctx, file, ConvertOptions{TargetPlatform: &amd64, BuildPlatform: &amd64, BuildArgs: map[string]string{"A": "1"}})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "Kubefile") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		_, _ = res.State.Marshal(ctx, llb.Platform(amd64))
	})
}
